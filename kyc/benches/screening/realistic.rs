//! A list shaped like the real SDN + CSL (about 25 000 entries by default): persons with
//! Russian, Ukrainian and Belarusian names (given name, patronymic, surname) in the list's
//! BGN/PCGN romanization, Arabic-script names in the list's romanization, Chinese names in
//! pinyin, Greek names, and Latin-script names; organizations and vessels; aliases; dates of
//! birth for most persons; the native-script name as an extra alias where the list gives one.
//!
//! Every person also carries its [`Origin`] (the native-script parts) so that the held-out
//! variant generator (`variants.rs`, separate code) can re-romanize it the way another
//! language or standard would. Deterministic: the same seed gives the same list.

use computegate_kyc::screening::{EntryKind, ListEntry, PartialDate};

use super::data::Rng;

/// Where a listed person's name comes from, in its own script.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// Given name, patronymic, surname in Cyrillic.
    Cyrillic {
        given: String,
        patronymic: String,
        surname: String,
    },
    /// Arabic-script name elements in order (given, father's, family…).
    Arabic(Vec<&'static str>),
    /// Surname and given-name characters.
    Chinese {
        surname: &'static str,
        given: String,
    },
    /// Given name and surname in Greek.
    Greek {
        given: &'static str,
        surname: &'static str,
    },
    /// Latin script only (or an organization or vessel).
    Latin,
}

/// One generated entry and its origin.
pub(crate) struct Generated {
    pub(crate) entry: ListEntry,
    pub(crate) origin: Origin,
    /// Whether the list gives the native-script name (as an alias).
    pub(crate) native_listed: bool,
}

#[rustfmt::skip]
const RU_GIVEN_M: &[&str] = &[
    "Владимир", "Сергей", "Дмитрий", "Алексей", "Андрей", "Иван", "Николай", "Михаил", "Юрий",
    "Олег", "Игорь", "Евгений", "Александр", "Виктор", "Геннадий", "Аркадий", "Вячеслав",
    "Григорий", "Фёдор", "Пётр", "Борис", "Анатолий", "Валерий", "Константин", "Максим",
    "Тимофей", "Ярослав", "Леонид", "Роман", "Вадим", "Эдуард", "Степан", "Тарас", "Богдан",
];
#[rustfmt::skip]
const RU_GIVEN_F: &[&str] = &[
    "Ольга", "Татьяна", "Наталья", "Елена", "Ирина", "Светлана", "Анна", "Юлия", "Ксения",
    "Екатерина", "Мария", "Людмила", "Оксана", "Евгения", "Галина",
];
/// Patronymic stems (the father's name), to which `ич` / `на` is added.
#[rustfmt::skip]
const RU_PATRONYMIC: &[&str] = &[
    "Владимиров", "Сергеев", "Дмитриев", "Алексеев", "Андреев", "Иванов", "Николаев",
    "Михайлов", "Юрьев", "Олегов", "Игорев", "Евгеньев", "Александров", "Викторов", "Геннадьев",
    "Борисов", "Анатольев", "Валерьев", "Константинов", "Петров", "Григорьев", "Фёдоров",
    "Леонидов", "Романов", "Вячеславов", "Аркадьев", "Степанов",
];
#[rustfmt::skip]
const RU_STEM: &[&str] = &[
    "Щербак", "Жук", "Чайк", "Хабар", "Зайц", "Ходорк", "Медвед", "Пригож", "Шевч", "Кузнец",
    "Соколь", "Журавл", "Черныш", "Юдаш", "Яковл", "Ерем", "Шувал", "Чиж", "Хрущ", "Цыган",
    "Щеглов", "Жириновск", "Ющ", "Ковальч", "Кирилл", "Тимошч", "Лукаш", "Гусь", "Воробь",
    "Белоус", "Дерипаск", "Абрамов", "Вексельб", "Ротенб", "Сечин", "Чемез", "Шойг", "Патруш",
];
const RU_ONSET: &[&str] = &[
    "б", "в", "г", "д", "ж", "з", "к", "л", "м", "н", "п", "р", "с", "т", "х", "ц", "ч", "ш", "щ",
    "кр", "гр", "бр", "ст",
];
const RU_VOWEL: &[&str] = &["а", "о", "е", "и", "у", "ы", "я", "ю", "ё"];
/// Surname endings: (male, female).
#[rustfmt::skip]
const RU_ENDING: &[(&str, &str)] = &[
    ("ов", "ова"), ("ев", "ева"), ("ин", "ина"), ("енко", "енко"), ("ский", "ская"),
    ("чук", "чук"), ("ович", "ович"), ("ук", "ук"), ("ёв", "ёва"), ("ых", "ых"),
];

/// Arabic name elements: (native, the list's romanization).
#[rustfmt::skip]
pub(crate) const AR_GIVEN: &[(&str, &str)] = &[
    ("محمد", "Muhammad"), ("أحمد", "Ahmad"), ("علي", "Ali"), ("حسين", "Husayn"),
    ("حسن", "Hasan"), ("خالد", "Khalid"), ("يوسف", "Yusuf"), ("عمر", "Umar"),
    ("إبراهيم", "Ibrahim"), ("قاسم", "Qasim"), ("مصطفى", "Mustafa"), ("جمال", "Jamal"),
    ("عبد الله", "Abdallah"), ("عبد الرحمن", "Abd al-Rahman"), ("سعيد", "Said"),
    ("هشام", "Hisham"), ("فيصل", "Faysal"), ("سليمان", "Sulayman"), ("طارق", "Tariq"),
    ("ناصر", "Nasir"), ("عيسى", "Isa"), ("زكريا", "Zakariya"), ("مهدي", "Mahdi"),
    ("رضا", "Rida"), ("حمزة", "Hamza"), ("فاطمة", "Fatima"), ("عائشة", "Aisha"),
    ("زينب", "Zaynab"), ("رقية", "Ruqayya"), ("مريم", "Maryam"), ("خديجة", "Khadija"),
];
#[rustfmt::skip]
pub(crate) const AR_FAMILY: &[(&str, &str)] = &[
    ("الرشيد", "al-Rashid"), ("التميمي", "al-Tamimi"), ("العراقي", "al-Iraqi"),
    ("القحطاني", "al-Qahtani"), ("الحسيني", "al-Husayni"), ("الخطيب", "al-Khatib"),
    ("الزهراني", "al-Zahrani"), ("الشمري", "al-Shammari"), ("المصري", "al-Masri"),
    ("الأسد", "al-Asad"), ("حداد", "Haddad"), ("خوري", "Khuri"), ("نصر الله", "Nasrallah"),
    ("قاسمي", "Qasimi"), ("الجبوري", "al-Jaburi"), ("الدوري", "al-Duri"), ("البغدادي", "al-Baghdadi"),
    ("السوداني", "al-Sudani"), ("الكبيسي", "al-Kubaysi"), ("العلي", "al-Ali"),
    ("المهندس", "al-Muhandis"), ("الحوثي", "al-Huthi"), ("الظواهري", "al-Zawahiri"),
    ("الحكيم", "al-Hakim"), ("الهاشمي", "al-Hashimi"), ("الربيعي", "al-Rubayi"),
];

#[rustfmt::skip]
const ZH_SURNAME: &[(&str, &str)] = &[
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"), ("杨", "Yang"),
    ("黄", "Huang"), ("赵", "Zhao"), ("周", "Zhou"), ("吴", "Wu"), ("徐", "Xu"), ("孙", "Sun"),
    ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"), ("郭", "Guo"), ("何", "He"), ("林", "Lin"),
];
#[rustfmt::skip]
const ZH_GIVEN: &[(&str, &str)] = &[
    ("伟", "Wei"), ("芳", "Fang"), ("敏", "Min"), ("静", "Jing"), ("强", "Qiang"), ("磊", "Lei"),
    ("军", "Jun"), ("洋", "Yang"), ("勇", "Yong"), ("艳", "Yan"), ("杰", "Jie"), ("涛", "Tao"),
    ("明", "Ming"), ("超", "Chao"), ("华", "Hua"), ("平", "Ping"), ("东", "Dong"), ("海", "Hai"),
    ("建", "Jian"), ("国", "Guo"), ("志", "Zhi"), ("新", "Xin"), ("晓", "Xiao"), ("鹏", "Peng"),
];

#[rustfmt::skip]
pub(crate) const EL_GIVEN: &[(&str, &str)] = &[
    ("Γεώργιος", "Georgios"), ("Δημήτριος", "Dimitrios"), ("Κωνσταντίνος", "Konstantinos"),
    ("Ιωάννης", "Ioannis"), ("Νικόλαος", "Nikolaos"), ("Χρήστος", "Christos"),
    ("Παναγιώτης", "Panagiotis"), ("Βασίλειος", "Vasileios"), ("Μιχαήλ", "Michail"),
    ("Ελένη", "Eleni"), ("Αικατερίνη", "Aikaterini"), ("Σοφία", "Sofia"),
];
#[rustfmt::skip]
pub(crate) const EL_SURNAME: &[(&str, &str)] = &[
    ("Παπαδόπουλος", "Papadopoulos"), ("Παπαγεωργίου", "Papageorgiou"),
    ("Οικονόμου", "Oikonomou"), ("Γεωργίου", "Georgiou"), ("Νικολάου", "Nikolaou"),
    ("Χατζηδάκης", "Chatzidakis"), ("Καραγιάννης", "Karagiannis"), ("Βλάχος", "Vlachos"),
    ("Αντωνίου", "Antoniou"), ("Μακρής", "Makris"), ("Θεοδωρίδης", "Theodoridis"),
    ("Ζαχαρίου", "Zachariou"), ("Κωστόπουλος", "Kostopoulos"), ("Σταυρόπουλος", "Stavropoulos"),
];

/// `n` entries: 40 % persons with a native-script origin (of them 40 % Cyrillic, 40 % Arabic,
/// 12 % Chinese, 8 % Greek) and 60 % from the 1 M benchmark's generator (there 60 %
/// Latin-script persons, 35 % organizations, 5 % vessels).
pub(crate) fn generate(n: usize, seed: u64) -> Vec<Generated> {
    let mut rng = Rng::new(seed);
    let mut filler = super::data::generate(n, seed ^ 0xa5a5);
    (0..n)
        .map(|i| {
            let roll = rng.below(100);
            if roll >= 40 {
                // Latin-script persons, organizations and vessels from the 1 M benchmark's
                // generator.
                let mut entry = std::mem::replace(&mut filler[i], placeholder());
                entry.key = format!("syn:{i}");
                return Generated {
                    entry,
                    origin: Origin::Latin,
                    native_listed: false,
                };
            }
            let roll = rng.below(100);
            let mut g = if roll < 40 {
                cyrillic_person(&mut rng)
            } else if roll < 80 {
                arabic_person(&mut rng)
            } else if roll < 92 {
                chinese_person(&mut rng)
            } else {
                greek_person(&mut rng)
            };
            g.entry.key = format!("syn:{i}");
            dates_of_birth(&mut g.entry, &mut rng);
            g
        })
        .collect()
}

fn placeholder() -> ListEntry {
    person_entry(Vec::new())
}

fn person_entry(names: Vec<String>) -> ListEntry {
    ListEntry {
        key: String::new(),
        source: "SYN".into(),
        kind: EntryKind::Person,
        names,
        weak_aliases: vec![],
        dates_of_birth: vec![],
        countries: vec![],
        id_numbers: vec![],
        programs: vec!["SYNTHETIC".into()],
    }
}

/// 60 % a full date, 15 % only a year, 25 % none.
fn dates_of_birth(e: &mut ListEntry, rng: &mut Rng) {
    let year = 1945 + rng.below(60) as u16;
    let roll = rng.below(100);
    if roll < 60 {
        let (month, day) = (1 + rng.below(12) as u8, 1 + rng.below(28) as u8);
        e.dates_of_birth.extend(PartialDate::full(year, month, day));
    } else if roll < 75 {
        e.dates_of_birth.extend(PartialDate::year(year));
    }
}

fn cyrillic_person(rng: &mut Rng) -> Generated {
    let female = rng.chance(25);
    let given = if female {
        pick(rng, RU_GIVEN_F)
    } else {
        pick(rng, RU_GIVEN_M)
    };
    let patronymic = format!(
        "{}{}",
        pick(rng, RU_PATRONYMIC),
        if female { "на" } else { "ич" }
    );
    let stem = if rng.chance(50) {
        pick(rng, RU_STEM).to_owned()
    } else {
        let mut s = pick(rng, RU_ONSET).to_uppercase();
        for _ in 0..1 + rng.below(2) {
            s.push_str(pick(rng, RU_VOWEL));
            s.push_str(pick(rng, RU_ONSET));
        }
        s
    };
    let (m, f) = RU_ENDING[rng.below(RU_ENDING.len())];
    let surname = format!("{stem}{}", if female { f } else { m });
    let native = format!("{given} {patronymic} {surname}");
    let latin = |s: &str| bgn_pcgn(s);
    let mut names = vec![format!(
        "{} {} {}",
        latin(given),
        latin(&patronymic),
        latin(&surname).to_uppercase()
    )];
    if rng.chance(40) {
        names.push(format!("{} {}", latin(given), latin(&surname)));
    }
    let native_listed = rng.chance(40);
    if native_listed {
        names.push(native);
    }
    Generated {
        entry: person_entry(names),
        origin: Origin::Cyrillic {
            given: given.to_owned(),
            patronymic,
            surname,
        },
        native_listed,
    }
}

fn arabic_person(rng: &mut Rng) -> Generated {
    let mut parts = vec![AR_GIVEN[rng.below(AR_GIVEN.len())]];
    if rng.chance(60) {
        parts.push(AR_GIVEN[rng.below(AR_GIVEN.len())]);
    }
    parts.push(AR_FAMILY[rng.below(AR_FAMILY.len())]);
    let latin: Vec<&str> = parts.iter().map(|p| p.1).collect();
    let mut names = vec![latin.join(" ")];
    if parts.len() > 2 && rng.chance(40) {
        names.push(format!("{} {}", latin[0], latin[latin.len() - 1]));
    }
    let native_listed = rng.chance(40);
    if native_listed {
        names.push(parts.iter().map(|p| p.0).collect::<Vec<_>>().join(" "));
    }
    Generated {
        entry: person_entry(names),
        origin: Origin::Arabic(parts.iter().map(|p| p.0).collect()),
        native_listed,
    }
}

fn chinese_person(rng: &mut Rng) -> Generated {
    let (s_native, s_latin) = ZH_SURNAME[rng.below(ZH_SURNAME.len())];
    let mut given = String::new();
    let mut given_latin = String::new();
    for i in 0..1 + rng.below(2) {
        let (n, l) = ZH_GIVEN[rng.below(ZH_GIVEN.len())];
        given.push_str(n);
        given_latin.push_str(&if i == 0 {
            l.to_owned()
        } else {
            l.to_lowercase()
        });
    }
    let mut names = vec![format!("{} {given_latin}", s_latin.to_uppercase())];
    let native_listed = rng.chance(60);
    if native_listed {
        names.push(format!("{s_native}{given}"));
    }
    Generated {
        entry: person_entry(names),
        origin: Origin::Chinese {
            surname: s_native,
            given,
        },
        native_listed,
    }
}

fn greek_person(rng: &mut Rng) -> Generated {
    let (gn, gl) = EL_GIVEN[rng.below(EL_GIVEN.len())];
    let (sn, sl) = EL_SURNAME[rng.below(EL_SURNAME.len())];
    let mut names = vec![format!("{gl} {}", sl.to_uppercase())];
    let native_listed = rng.chance(50);
    if native_listed {
        names.push(format!("{gn} {sn}"));
    }
    Generated {
        entry: person_entry(names),
        origin: Origin::Greek {
            given: gn,
            surname: sn,
        },
        native_listed,
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

/// The list's romanization of Cyrillic (BGN/PCGN as OFAC writes it: `ye` after a vowel or at
/// the start, `iy` / `yy` endings, no diacritics).
pub(crate) fn bgn_pcgn(native: &str) -> String {
    let chars: Vec<char> = native.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let lower = c.to_lowercase().next().unwrap_or(c);
        let after_vowel = i == 0
            || chars[i - 1]
                .to_lowercase()
                .next()
                .is_some_and(|p| "аеёиоуыэюяьъй".contains(p));
        let latin = match lower {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'е' if after_vowel => "ye",
            'е' => "e",
            'ё' if after_vowel => "yo",
            'ё' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' => "i",
            'й' => "y",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ъ' | 'ь' => "",
            'ы' => "y",
            'э' => "e",
            'ю' => "yu",
            'я' => "ya",
            ' ' => " ",
            _ => "",
        };
        if c.is_uppercase() {
            let mut l = latin.chars();
            if let Some(f) = l.next() {
                out.extend(f.to_uppercase());
                out.push_str(l.as_str());
            }
        } else {
            out.push_str(latin);
        }
    }
    out
}

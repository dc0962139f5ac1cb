//! The held-out variant generator: how a listed person's name reaches us spelled another way.
//! Separate code from the list generator (`realistic.rs`): its own romanization tables, its
//! own Arabic variant table, its own typo model; run with its own seed.
//!
//! Classes: Cyrillic names romanized the English (popular), French, German and scholarly
//! (ISO 9 with diacritics, or Library of Congress) way; Arabic names with another common
//! romanization of each element plus spelling rules (`y`/`i`/`j`, `ey`/`eh`/`iya` endings,
//! `al-`/`el-`/`ul-`, `ou`/`u`, `kh`/`h`, `q`/`k`); the native script (where the list gives
//! it); typos; reordering; a dropped patronymic or middle name.

use super::data::Rng;
use super::realistic::{Generated, Origin};

/// A variant class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    CyrillicEnglish,
    CyrillicFrench,
    CyrillicGerman,
    CyrillicScholarly,
    ArabicRomanization,
    NativeScript,
    Typo,
    Reordered,
    DroppedMiddle,
}

pub(crate) const CLASSES: [Class; 9] = [
    Class::CyrillicEnglish,
    Class::CyrillicFrench,
    Class::CyrillicGerman,
    Class::CyrillicScholarly,
    Class::ArabicRomanization,
    Class::NativeScript,
    Class::Typo,
    Class::Reordered,
    Class::DroppedMiddle,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    English,
    French,
    German,
    Iso9,
    Loc,
}

/// Other common romanizations of each Arabic name element, keyed by the native spelling.
#[rustfmt::skip]
const AR_VARIANTS: &[(&str, &[&str])] = &[
    ("محمد", &["Mohammed", "Mohamed", "Mohammad", "Muhammed", "Mohamad", "Mouhamed"]),
    ("أحمد", &["Ahmed", "Ahmet", "Achmed", "Ahmad"]),
    ("علي", &["Aly", "Ali", "Alee"]),
    ("حسين", &["Hussein", "Hussain", "Hossein", "Husein", "Houssein", "Husseyn"]),
    ("حسن", &["Hassan", "Hasan", "Hassen"]),
    ("خالد", &["Khaled", "Khalid", "Chaled", "Halid"]),
    ("يوسف", &["Youssef", "Yousef", "Yussuf", "Jusuf", "Youcef", "Yousif"]),
    ("عمر", &["Omar", "Umar", "Omer"]),
    ("إبراهيم", &["Ebrahim", "Ibraheem", "Ibrahim", "Brahim"]),
    ("قاسم", &["Kassem", "Qassem", "Kasim", "Qassim", "Ghasem"]),
    ("مصطفى", &["Mostafa", "Moustafa", "Mustapha", "Mustafa"]),
    ("جمال", &["Gamal", "Djamal", "Jamal", "Cemal"]),
    ("عبد الله", &["Abdullah", "Abdulla", "Abd Allah", "Abdellah", "Abdallah"]),
    ("عبد الرحمن", &["Abdul Rahman", "Abdurrahman", "Abdel Rahman", "Abd ar-Rahman", "Abdulrahman"]),
    ("سعيد", &["Saeed", "Saied", "Sayed", "Said"]),
    ("هشام", &["Hesham", "Hicham", "Hisham"]),
    ("فيصل", &["Faisal", "Faysal", "Feisal", "Faycal"]),
    ("سليمان", &["Suleiman", "Sulaiman", "Soliman", "Sleiman", "Suleyman"]),
    ("طارق", &["Tarek", "Tareq", "Tarik", "Tariq"]),
    ("ناصر", &["Nasser", "Naser", "Nacer", "Nasir"]),
    ("عيسى", &["Issa", "Eissa", "Isa", "Eisa"]),
    ("زكريا", &["Zakaria", "Zakariya", "Zakariyya", "Zakarya"]),
    ("مهدي", &["Mehdi", "Mahdi", "Mehdy"]),
    ("رضا", &["Reza", "Ridha", "Rida", "Redha"]),
    ("حمزة", &["Hamza", "Hamzah", "Hamzeh", "Hamsa"]),
    ("فاطمة", &["Fatma", "Fatemeh", "Fatimah", "Fatima", "Fatimeh"]),
    ("عائشة", &["Aicha", "Aysha", "Aishah", "Ayesha", "Aisha"]),
    ("زينب", &["Zainab", "Zeinab", "Zaynab", "Zeynep"]),
    ("رقية", &["Ruqaiya", "Roqayeh", "Ruqayyah", "Rukaya", "Ruqiya"]),
    ("مريم", &["Mariam", "Maryam", "Meryem", "Miriam"]),
    ("خديجة", &["Khadija", "Khadijah", "Hatice", "Khadidja", "Khadijeh"]),
    ("الرشيد", &["al-Rashid", "el-Rachid", "ar-Rashid", "al-Rasheed", "Al Rasheed"]),
    ("التميمي", &["al-Tamimi", "al-Tamimy", "el-Temimi", "at-Tamimi", "Al Tamimi"]),
    ("العراقي", &["al-Iraqi", "al-Iraki", "el-Iraqi", "Al Iraqi"]),
    ("القحطاني", &["al-Qahtani", "al-Kahtani", "el-Qahtani", "Al Qahtany"]),
    ("الحسيني", &["al-Husseini", "al-Hussaini", "el-Hosseini", "al-Husayni"]),
    ("الخطيب", &["al-Khateeb", "el-Khatib", "al-Chatib", "Al Khatib"]),
    ("الزهراني", &["al-Zahrani", "az-Zahrani", "el-Zahrany", "Al Zahrani"]),
    ("الشمري", &["al-Shammari", "ash-Shammari", "al-Shamari", "el-Chammari"]),
    ("المصري", &["al-Masri", "el-Masry", "al-Misri", "Al Masri"]),
    ("الأسد", &["al-Assad", "el-Assad", "al-Asad", "Al Assad"]),
    ("حداد", &["Hadad", "Haddad", "Al Haddad"]),
    ("خوري", &["Khoury", "Khouri", "Khury", "Khuri"]),
    ("نصر الله", &["Nasrallah", "Nasr Allah", "Nasrullah", "Nasrala"]),
    ("قاسمي", &["Ghasemi", "Qasemi", "Kasimi", "Qassimi"]),
    ("الجبوري", &["al-Jubouri", "al-Juburi", "el-Jbouri", "al-Jabouri"]),
    ("الدوري", &["al-Douri", "al-Duri", "ad-Duri", "el-Douri"]),
    ("البغدادي", &["al-Baghdady", "el-Baghdadi", "al-Bagdadi", "al-Baghdadi"]),
    ("السوداني", &["al-Soudani", "as-Sudani", "el-Sudani", "Al Sudani"]),
    ("الكبيسي", &["al-Kubaisi", "al-Kubeisi", "el-Koubaissi", "al-Kubaysi"]),
    ("العلي", &["al-Aly", "el-Ali", "Al Ali", "al-Ali"]),
    ("المهندس", &["al-Mohandes", "el-Mohandis", "al-Muhandes", "al-Muhandis"]),
    ("الحوثي", &["al-Houthi", "al-Hothi", "el-Houthi", "al-Huthi"]),
    ("الظواهري", &["al-Zawahri", "az-Zawahiri", "el-Zawahiry", "al-Dhawahiri"]),
    ("الحكيم", &["al-Hakeem", "el-Hakim", "Al Hakim", "al-Hakim"]),
    ("الهاشمي", &["al-Hashemi", "el-Hachemi", "al-Hashimy", "al-Hashimi"]),
    ("الربيعي", &["al-Rubaie", "al-Rubaii", "ar-Rubayi", "al-Rubaiy"]),
];

/// One variant of `g`'s name for `class`, or `None` when the class does not apply to it (a
/// Cyrillic class for a non-Cyrillic name, native script the list does not give, …).
pub(crate) fn variant(g: &Generated, class: Class, rng: &mut Rng) -> Option<String> {
    let primary = &g.entry.names[0];
    match class {
        Class::CyrillicEnglish => cyrillic(g, System::English, rng),
        Class::CyrillicFrench => cyrillic(g, System::French, rng),
        Class::CyrillicGerman => cyrillic(g, System::German, rng),
        Class::CyrillicScholarly => {
            let system = if rng.below(2) == 0 {
                System::Iso9
            } else {
                System::Loc
            };
            cyrillic(g, system, rng)
        }
        Class::ArabicRomanization => arabic(g, rng),
        Class::NativeScript => native(g, rng),
        Class::Typo => Some(typo(primary, rng)),
        Class::Reordered => {
            let words: Vec<&str> = primary.split(' ').collect();
            (words.len() >= 2).then(|| {
                let mut w = words.clone();
                w.rotate_right(1);
                if rng.below(2) == 0 {
                    format!("{}, {}", w[0], w[1..].join(" "))
                } else {
                    w.join(" ")
                }
            })
        }
        Class::DroppedMiddle => {
            let words = name_words(primary);
            (words.len() >= 3).then(|| {
                let drop = 1 + rng.below(words.len() - 2);
                words
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != drop)
                    .map(|(_, w)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        }
    }
}

/// The words of a name, `Abd al-Rahman` (one name written as two words) kept together.
fn name_words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in name.split(' ') {
        match out.last_mut() {
            Some(prev) if prev == "Abd" => {
                prev.push(' ');
                prev.push_str(w);
            }
            _ => out.push(w.to_owned()),
        }
    }
    out
}

fn cyrillic(g: &Generated, system: System, rng: &mut Rng) -> Option<String> {
    let Origin::Cyrillic {
        given,
        patronymic,
        surname,
    } = &g.origin
    else {
        return None;
    };
    let r = |s: &str| romanize(s, system);
    // Foreign-language sources often leave the patronymic out.
    Some(if rng.below(3) == 0 {
        format!("{} {}", r(given), r(surname))
    } else {
        format!("{} {} {}", r(given), r(patronymic), r(surname))
    })
}

fn arabic(g: &Generated, rng: &mut Rng) -> Option<String> {
    let Origin::Arabic(parts) = &g.origin else {
        return None;
    };
    let mut words = Vec::new();
    for native in parts {
        let options = AR_VARIANTS
            .iter()
            .find(|(n, _)| n == native)
            .map_or(&[][..], |(_, v)| *v);
        let chosen = options
            .get(rng.below(options.len().max(1)))
            .copied()
            .unwrap_or(native);
        words.push(chosen.to_owned());
    }
    // One spelling rule on top, half the time.
    if rng.below(2) == 0 {
        let i = rng.below(words.len());
        words[i] = arabic_rule(&words[i], rng);
    }
    Some(words.join(" "))
}

/// One of the spelling habits that separate romanizations of the same Arabic name.
fn arabic_rule(word: &str, rng: &mut Rng) -> String {
    let rules: [(&str, &str); 14] = [
        ("y", "i"),
        ("i", "y"),
        ("j", "dj"),
        ("iya", "iyah"),
        ("a", "eh"),
        ("ey", "ei"),
        ("u", "ou"),
        ("ou", "u"),
        ("kh", "h"),
        ("q", "k"),
        ("al-", "el-"),
        ("al-", "ul-"),
        ("ee", "i"),
        ("i", "ee"),
    ];
    let start = rng.below(rules.len());
    for k in 0..rules.len() {
        let (from, to) = rules[(start + k) % rules.len()];
        let lower = word.to_lowercase();
        // `a` → `eh` only as an ending.
        if from == "a" {
            if lower.ends_with('a') {
                return format!("{}eh", &word[..word.len() - 1]);
            }
            continue;
        }
        if let Some(pos) = lower.find(from) {
            return format!("{}{to}{}", &word[..pos], &word[pos + from.len()..]);
        }
    }
    word.to_owned()
}

fn native(g: &Generated, rng: &mut Rng) -> Option<String> {
    if !g.native_listed {
        return None;
    }
    Some(match &g.origin {
        Origin::Cyrillic {
            given,
            patronymic,
            surname,
        } => {
            if rng.below(3) == 0 {
                format!("{given} {surname}")
            } else {
                format!("{surname} {given} {patronymic}")
            }
        }
        Origin::Arabic(parts) => parts.join(" "),
        Origin::Chinese { surname, given } => format!("{surname}{given}"),
        Origin::Greek { given, surname } => format!("{surname} {given}"),
        Origin::Latin => return None,
    })
}

/// A typing slip in one word of four or more letters: a neighbouring key, a doubled or lost
/// letter, or two letters swapped.
fn typo(name: &str, rng: &mut Rng) -> String {
    const ROWS: [&str; 3] = ["qwertyuiop", "asdfghjkl", "zxcvbnm"];
    let mut words: Vec<Vec<char>> = name.split(' ').map(|w| w.chars().collect()).collect();
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].len() >= 4 && words[i].iter().all(|c| c.is_ascii_alphabetic()))
        .collect();
    if long.is_empty() {
        return name.to_owned();
    }
    let w = &mut words[long[rng.below(long.len())]];
    let pos = 1 + rng.below(w.len() - 1);
    match rng.below(4) {
        0 => {
            let c = w[pos].to_ascii_lowercase();
            if let Some(row) = ROWS.iter().find(|r| r.contains(c)) {
                let bytes = row.as_bytes();
                let at = row.find(c).unwrap_or(0);
                let next = if at + 1 < bytes.len() { at + 1 } else { at - 1 };
                w[pos] = char::from(bytes[next]);
            }
        }
        1 => w.insert(pos, w[pos]),
        2 => {
            w.remove(pos);
        }
        _ => {
            let p = pos.min(w.len() - 2);
            w.swap(p, p + 1);
        }
    }
    words
        .iter()
        .map(|w| w.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cyrillic to Latin under one romanization system.
fn romanize(native: &str, system: System) -> String {
    let chars: Vec<char> = native.chars().flat_map(char::to_lowercase).collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev_vowel = i == 0 || "аеёиоуыэюяьъ".contains(chars[i - 1]);
        let next = chars.get(i + 1).copied();
        let last = next.is_none();
        use System::*;
        let latin: &str = match (system, c) {
            (_, 'а') => "a",
            (_, 'б') => "b",
            (German, 'в') => "w",
            (_, 'в') => "v",
            (French, 'г') if next.is_some_and(|n| "еиэ".contains(n)) => "gu",
            (_, 'г') => "g",
            (_, 'д') => "d",
            (English, 'е') if prev_vowel => "ye",
            (German, 'е') if prev_vowel => "je",
            (French | Iso9 | Loc | English | German, 'е') => "e",
            (English, 'ё') => "yo",
            (French, 'ё') => "io",
            (German, 'ё') => "jo",
            (Iso9, 'ё') => "ë",
            (Loc, 'ё') => "ë",
            (English, 'ж') => "zh",
            (French, 'ж') => "j",
            (German, 'ж') => "sch",
            (Iso9 | Loc, 'ж') => "ž",
            (German, 'з') => "s",
            (_, 'з') => "z",
            (French, 'и') if prev_vowel && i > 0 => "ï",
            (_, 'и') => "i",
            (English, 'й') if i > 0 && chars[i - 1] == 'е' => "i",
            (English, 'й') => "y",
            (French, 'й') => "ï",
            (German | Iso9, 'й') => "j",
            (Loc, 'й') => "ĭ",
            (_, 'к') => "k",
            (_, 'л') => "l",
            (_, 'м') => "m",
            (_, 'н') => "n",
            (_, 'о') => "o",
            (_, 'п') => "p",
            (_, 'р') => "r",
            (French | German, 'с') if prev_vowel && i > 0 && !last => "ss",
            (_, 'с') => "s",
            (_, 'т') => "t",
            (French, 'у') => "ou",
            (_, 'у') => "u",
            (_, 'ф') => "f",
            (English | French | Loc, 'х') => "kh",
            (German, 'х') => "ch",
            (Iso9, 'х') => "h",
            (English | French | Loc, 'ц') => "ts",
            (German, 'ц') => "z",
            (Iso9, 'ц') => "c",
            (English, 'ч') => "ch",
            (French, 'ч') => "tch",
            (German, 'ч') => "tsch",
            (Iso9 | Loc, 'ч') => "č",
            (English, 'ш') => "sh",
            (French, 'ш') => "ch",
            (German, 'ш') => "sch",
            (Iso9 | Loc, 'ш') => "š",
            (English | Loc, 'щ') => "shch",
            (French, 'щ') => "chtch",
            (German, 'щ') => "schtsch",
            (Iso9, 'щ') => "ŝ",
            (Iso9, 'ъ') => "ʺ",
            (Iso9 | Loc, 'ь') => "ʹ",
            (_, 'ъ' | 'ь') => "",
            (_, 'ы') => "y",
            (Iso9, 'э') => "è",
            (Loc, 'э') => "ė",
            (_, 'э') => "e",
            (English, 'ю') => "yu",
            (French, 'ю') => "iou",
            (German, 'ю') => "ju",
            (Iso9, 'ю') => "û",
            (Loc, 'ю') => "iu",
            (English, 'я') => "ya",
            (French | Loc, 'я') => "ia",
            (German, 'я') => "ja",
            (Iso9, 'я') => "â",
            _ => "",
        };
        out.push_str(latin);
    }
    // English and French drop the ending `-iy` to `-i` / `-y` (Dmitri, Dmitry).
    if system == System::English && out.ends_with("iy") {
        out.pop();
    }
    let mut c = out.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

//! The synthetic list and the name variants of the screening benchmark. Deterministic: the
//! same seed gives the same list.
//!
//! Persons get a common first name (international table), sometimes a middle name, and a
//! surname built from syllables with regional endings — or, for one in ten, a common real
//! surname, so that unlisted common names meet realistic near-collisions. Organizations are a
//! coined word plus industry words and a legal form; vessels an adjective and a noun.

use std::fmt::Write as _;

use computegate_kyc::screening::{EntryKind, ListEntry, PartialDate};

/// International common first names.
#[rustfmt::skip]
pub(crate) const FIRST_NAMES: &[&str] = &[
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Maria", "Jose", "Juan", "Carlos", "Luis", "Miguel", "Ana", "Carmen", "Rosa",
    "Lucia", "Sofia", "Pedro", "Antonio", "Francisco", "Javier", "Mohammed", "Muhammad", "Ahmed",
    "Ali", "Omar", "Hassan", "Hussein", "Ibrahim", "Yusuf", "Khalid", "Abdullah", "Mahmoud",
    "Mustafa", "Fatima", "Aisha", "Zainab", "Mariam", "Layla", "Nour", "Vladimir", "Sergei",
    "Dmitri", "Alexei", "Andrei", "Ivan", "Nikolai", "Mikhail", "Yuri", "Oleg", "Igor", "Olga",
    "Tatiana", "Natalia", "Elena", "Irina", "Svetlana", "Anna", "Wei", "Jing", "Li", "Ming", "Hui",
    "Xin", "Yan", "Jun", "Hao", "Lei", "Raj", "Amit", "Rahul", "Priya", "Sunita", "Anil", "Vijay",
    "Sanjay", "Deepak", "Pooja", "Arjun", "Hiroshi", "Takashi", "Yuki", "Kenji", "Min", "Jae",
    "Hyun", "Seo", "Nguyen", "Thanh", "Minh", "Hans", "Klaus", "Jurgen", "Wolfgang", "Stefan",
    "Pierre", "Jean", "Michel", "Francois", "Marie", "Giuseppe", "Marco", "Luca", "Giovanni",
    "Paolo", "Mehmet", "Mustafa", "Emre", "Ayse", "Reza", "Mehdi", "Hossein", "Parisa", "Kwame",
    "Kofi", "Chinedu", "Oluwaseun", "Amara", "Tendai", "Jan", "Piotr", "Krzysztof", "Tomasz",
    "Katarzyna", "Lars", "Erik", "Anders", "Ingrid", "Sven", "Pablo", "Diego", "Mateo",
    "Valentina", "Camila", "Daniel", "Samuel", "Benjamin", "Noah", "Leah", "Rachel", "Esther",
];

/// Common real surnames (the first 100 also appear in the list, one person in ten).
#[rustfmt::skip]
pub(crate) const COMMON_SURNAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang",
    "Zhao", "Wu", "Zhou", "Kumar", "Singh", "Sharma", "Patel", "Gupta", "Khan", "Ahmed", "Ali",
    "Hassan", "Hussain", "Rahman", "Hossain", "Ibrahim", "Mohamed", "Abdullah", "Ivanov",
    "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov", "Mikhailov", "Novikov",
    "Fedorov", "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Silva", "Santos", "Oliveira", "Souza",
    "Pereira", "Kim", "Park", "Choi", "Jung", "Kang", "Nguyen", "Tran", "Le", "Pham", "Yilmaz",
    "Kaya", "Demir", "Sahin", "Cohen", "Levi", "Mizrahi", "Dubois", "Moreau", "Laurent",
    "Lefebvre", "Bernard", "Kowalski", "Nowak", "Wisniewski", "Jensen", "Nielsen", "Hansen",
    "Johansson", "Karlsson", "Okafor", "Mensah", "Mwangi", "Tanaka", "Suzuki", "Sato", "Watanabe",
    "Takahashi", "Hosseini", "Mohammadi", "Rezaei", "Ahmadi", "Haddad", "Khoury", "Saleh",
    "Nasser", "Mansour", "Reyes", "Cruz", "Flores", "Morales", "Ortiz", "Gutierrez", "Chavez",
    "Romero", "Herrera", "Medina", "Castillo", "Vargas", "Jimenez", "Ruiz", "Alvarez",
];

#[rustfmt::skip]
const ONSETS: &[&str] = &[
    "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "gr",
    "st", "sh", "kh", "ch", "zh", "h", "f", "y", "",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "a", "o", "ai", "ei", "ou"];
const CODAS: &[&str] = &["", "", "", "n", "r", "l", "s", "k", "m", "t", "z", "v"];
#[rustfmt::skip]
const SURNAME_ENDINGS: &[&str] = &[
    "ov", "ova", "ev", "enko", "sky", "ian", "yan", "oglu", "zadeh", "i", "ini", "ez", "es", "son",
    "sen", "berg", "mann", "ovic", "escu", "", "", "", "",
];
#[rustfmt::skip]
const INDUSTRY: &[&str] = &[
    "Trading", "Shipping", "Petrochemical", "Industries", "Logistics", "Engineering", "Holding",
    "Group", "International", "Technologies", "Electronics", "Aviation", "Maritime", "Energy",
    "Mining", "Metals", "Chemicals", "Machinery", "Construction", "Investment", "Capital",
    "Import Export", "Defense Systems", "Precision Instruments", "Semiconductor",
    "Marine Services", "Oil and Gas", "Pharmaceuticals", "Telecom", "General Trading",
];
#[rustfmt::skip]
const LEGAL: &[&str] = &[
    "LLC", "Ltd", "Co., Ltd.", "JSC", "OOO", "GmbH", "S.A.", "FZE", "Inc.", "PJSC", "Limited",
    "Company", "", "",
];
#[rustfmt::skip]
const VESSEL_ADJ: &[&str] = &[
    "Northern", "Southern", "Eastern", "Western", "Golden", "Silver", "Blue", "Ocean", "Pacific",
    "Atlantic", "Royal", "Grand", "Lucky", "Bright", "Swift", "Great",
];
#[rustfmt::skip]
const VESSEL_NOUN: &[&str] = &[
    "Star", "Pearl", "Wind", "Dragon", "Eagle", "Horizon", "Spirit", "Glory", "Fortune", "Breeze",
    "Voyager", "Phoenix", "Harmony", "Crown", "Zephyr", "Tide",
];
#[rustfmt::skip]
const COUNTRIES: &[&str] = &[
    "RU", "IR", "KP", "SY", "CU", "VE", "BY", "CN", "AE", "TR", "IQ", "AF", "LB", "YE", "SD", "LY",
    "PK", "IN", "HK", "SG", "MY", "CY", "GE", "AM", "KZ", "UZ", "UA", "RS", "MM", "ZW", "NI", "ML",
    "DE", "GB", "FR", "IT", "ES", "US", "PA", "LR",
];

/// SplitMix64: small, fast, deterministic.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// `n` entries: 60 % persons, 35 % organizations, 5 % vessels.
/// A common name that may or may not be listed: a common first name with one common surname, or
/// (one time in four) two — the false-positive probe of both screening benches.
pub(crate) fn common_name(rng: &mut Rng) -> String {
    let first = FIRST_NAMES[rng.below(FIRST_NAMES.len())];
    let last = COMMON_SURNAMES[rng.below(COMMON_SURNAMES.len())];
    if rng.below(4) == 0 {
        let second = COMMON_SURNAMES[rng.below(COMMON_SURNAMES.len())];
        format!("{first} {last} {second}")
    } else {
        format!("{first} {last}")
    }
}

pub(crate) fn generate(n: usize, seed: u64) -> Vec<ListEntry> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let roll = rng.below(100);
            if roll < 60 {
                person(i, &mut rng)
            } else if roll < 95 {
                organization(i, &mut rng)
            } else {
                vessel(i, &mut rng)
            }
        })
        .collect()
}

fn word(rng: &mut Rng, syllables: usize) -> String {
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(rng.pick(ONSETS));
        w.push_str(rng.pick(VOWELS));
        w.push_str(rng.pick(CODAS));
    }
    capitalize(&w)
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn surname(rng: &mut Rng) -> String {
    if rng.chance(10) {
        return COMMON_SURNAMES[rng.below(100)].to_owned();
    }
    let syllables = 1 + rng.below(3);
    let mut s = word(rng, syllables);
    s.push_str(rng.pick(SURNAME_ENDINGS));
    if rng.chance(8) {
        s = format!("Al-{s}");
    }
    s
}

fn base(i: usize, kind: EntryKind, names: Vec<String>) -> ListEntry {
    ListEntry {
        key: format!("csl:SYN:{i}"),
        source: "SYN".into(),
        kind,
        names,
        weak_aliases: vec![],
        dates_of_birth: vec![],
        countries: vec![],
        id_numbers: vec![],
        programs: vec!["SYNTHETIC".into()],
    }
}

fn person(i: usize, rng: &mut Rng) -> ListEntry {
    let first = rng.pick(FIRST_NAMES);
    let last = surname(rng);
    let mut name = first.to_owned();
    if rng.chance(30) {
        name = format!("{name} {}", rng.pick(FIRST_NAMES));
    }
    name = format!("{name} {last}");
    if rng.chance(15) {
        name = format!("{name} {}", surname(rng));
    }
    let mut names = vec![name];
    if rng.chance(20) {
        names.push(format!("{} {last}", rng.pick(FIRST_NAMES)));
    }
    let mut e = base(i, EntryKind::Person, names);
    if rng.chance(10) {
        e.weak_aliases
            .push(format!("Abu {}", rng.pick(FIRST_NAMES)));
    }
    let year = 1940 + rng.below(60) as u16;
    let month = 1 + rng.below(12) as u8;
    let day = 1 + rng.below(28) as u8;
    let roll = rng.below(10);
    if roll < 7 {
        e.dates_of_birth.extend(PartialDate::full(year, month, day));
    } else if roll < 9 {
        e.dates_of_birth.extend(PartialDate::year(year));
    }
    countries(&mut e, rng);
    if rng.chance(50) {
        e.id_numbers.push(format!("P{:08}", rng.below(100_000_000)));
    }
    e
}

fn organization(i: usize, rng: &mut Rng) -> ListEntry {
    let syllables = 2 + rng.below(2);
    let mut name = word(rng, syllables);
    for _ in 0..1 + rng.below(2) {
        name = format!("{name} {}", rng.pick(INDUSTRY));
    }
    let legal = rng.pick(LEGAL);
    if !legal.is_empty() {
        name = format!("{name} {legal}");
    }
    let mut names = vec![name.clone()];
    if rng.chance(15) {
        names.push(format!(
            "{} {}",
            name.split(' ').next().unwrap_or_default(),
            rng.pick(INDUSTRY)
        ));
    }
    let mut e = base(i, EntryKind::Organization, names);
    countries(&mut e, rng);
    if rng.chance(40) {
        e.id_numbers
            .push(format!("{:010}", rng.below(10_000_000_000)));
    }
    e
}

fn vessel(i: usize, rng: &mut Rng) -> ListEntry {
    let mut name = format!("{} {}", rng.pick(VESSEL_ADJ), rng.pick(VESSEL_NOUN));
    if rng.chance(50) {
        name = format!("{name} {}", 1 + rng.below(20));
    }
    let mut e = base(i, EntryKind::Vessel, vec![name.to_uppercase()]);
    e.id_numbers
        .push(format!("IMO {}", 9_000_000 + rng.below(999_999)));
    countries(&mut e, rng);
    e
}

fn countries(e: &mut ListEntry, rng: &mut Rng) {
    for _ in 0..1 + rng.below(2) {
        let c = rng.pick(COUNTRIES).to_owned();
        if !e.countries.contains(&c) {
            e.countries.push(c);
        }
    }
    e.countries.sort();
}

/// The list as Consolidated Screening List CSV.
pub(crate) fn to_csl_csv(entries: &[ListEntry]) -> Vec<u8> {
    let mut out = String::with_capacity(entries.len() * 120);
    out.push_str("_id,source,type,name,alt_names,dates_of_birth,nationalities,ids,programs\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for (i, e) in entries.iter().enumerate() {
        let kind = match e.kind {
            EntryKind::Person => "Individual",
            EntryKind::Organization => "Entity",
            EntryKind::Vessel => "Vessel",
            EntryKind::Aircraft => "Aircraft",
            EntryKind::Other => "",
        };
        let dobs: Vec<String> = e.dates_of_birth.iter().map(ToString::to_string).collect();
        let ids: Vec<String> = e.id_numbers.iter().map(|n| format!("ID, {n}")).collect();
        let _ = writeln!(
            out,
            "{i},SYN,{kind},{},{},{},{},{},{}",
            quote(&e.names[0]),
            quote(&e.names[1..].join("; ")),
            dobs.join("; "),
            e.countries.join("; "),
            quote(&ids.join("; ")),
            e.programs.join("; ")
        );
    }
    out.into_bytes()
}

// === variants ===

/// Latin → Cyrillic letter by letter (digraphs first), as a Russian-language source would write
/// the name.
pub(crate) fn to_cyrillic(name: &str, _: &mut Rng) -> String {
    let lower = name.to_lowercase();
    let mut out = String::new();
    let chars: Vec<char> = lower.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let pair: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let digraph = match pair.as_str() {
            "sh" => Some("ш"),
            "ch" => Some("ч"),
            "zh" => Some("ж"),
            "kh" => Some("х"),
            "ya" => Some("я"),
            "yu" => Some("ю"),
            "ts" => Some("ц"),
            _ => None,
        };
        if let Some(d) = digraph {
            out.push_str(d);
            i += 2;
            continue;
        }
        let c = match chars[i] {
            'a' => "а",
            'b' => "б",
            'c' => "к",
            'd' => "д",
            'e' => "е",
            'f' => "ф",
            'g' => "г",
            'h' => "х",
            'i' => "и",
            'j' => "дж",
            'k' => "к",
            'l' => "л",
            'm' => "м",
            'n' => "н",
            'o' => "о",
            'p' => "п",
            'q' => "к",
            'r' => "р",
            's' => "с",
            't' => "т",
            'u' => "у",
            'v' => "в",
            'w' => "в",
            'x' => "кс",
            'y' => "й",
            'z' => "з",
            other => {
                out.push(other);
                i += 1;
                continue;
            }
        };
        out.push_str(c);
        i += 1;
    }
    out
}

/// Tokens in another order: `SURNAME, Given` for persons, reversed otherwise.
pub(crate) fn reorder(name: &str, rng: &mut Rng) -> String {
    let mut tokens: Vec<&str> = name.split(' ').collect();
    if tokens.len() >= 2 && rng.chance(50) {
        let last = tokens.pop().unwrap_or_default();
        return format!("{}, {}", last.to_uppercase(), tokens.join(" "));
    }
    tokens.reverse();
    tokens.join(" ")
}

/// Accents on about a third of the accentable letters (at least one).
pub(crate) fn diacritics(name: &str, rng: &mut Rng) -> String {
    let accent = |c: char| match c {
        'a' => Some('á'),
        'e' => Some('é'),
        'i' => Some('í'),
        'o' => Some('ö'),
        'u' => Some('ü'),
        'n' => Some('ñ'),
        'c' => Some('ç'),
        's' => Some('š'),
        'z' => Some('ž'),
        _ => None,
    };
    let mut changed = false;
    let mut out: String = name
        .chars()
        .map(|c| match accent(c) {
            Some(a) if rng.chance(33) => {
                changed = true;
                a
            }
            _ => c,
        })
        .collect();
    if !changed {
        out = name.replacen('a', "ä", 1);
    }
    out
}

/// One substitution, deletion, insertion or transposition in one token of four or more
/// letters.
pub(crate) fn typo(name: &str, rng: &mut Rng) -> String {
    let mut tokens: Vec<String> = name.split(' ').map(str::to_owned).collect();
    let long: Vec<usize> = (0..tokens.len())
        .filter(|&t| tokens[t].chars().count() >= 4 && tokens[t].chars().all(char::is_alphabetic))
        .collect();
    if long.is_empty() {
        return name.to_owned();
    }
    let t = long[rng.below(long.len())];
    let mut chars: Vec<char> = tokens[t].chars().collect();
    let pos = rng.below(chars.len());
    let letter = char::from(b'a' + rng.below(26) as u8);
    match rng.below(4) {
        0 => chars[pos] = if chars[pos] == letter { 'q' } else { letter },
        1 => {
            chars.remove(pos);
        }
        2 => chars.insert(pos, letter),
        _ => {
            let p = pos.min(chars.len() - 2);
            chars.swap(p, p + 1);
        }
    }
    tokens[t] = chars.into_iter().collect();
    tokens.join(" ")
}

/// One to three Latin letters replaced by Cyrillic or Greek lookalikes.
pub(crate) fn homoglyphs(name: &str, rng: &mut Rng) -> String {
    let glyph = |c: char| match c {
        'a' => Some('а'),
        'e' => Some('е'),
        'o' => Some('о'),
        'p' => Some('р'),
        'c' => Some('с'),
        'x' => Some('х'),
        'y' => Some('у'),
        'A' => Some('А'),
        'E' => Some('Е'),
        'O' => Some('Ο'),
        'P' => Some('Р'),
        'C' => Some('С'),
        'K' => Some('К'),
        'M' => Some('М'),
        'T' => Some('Т'),
        'H' => Some('Н'),
        'B' => Some('В'),
        _ => None,
    };
    let mut chars: Vec<char> = name.chars().collect();
    let positions: Vec<usize> = (0..chars.len())
        .filter(|&i| glyph(chars[i]).is_some())
        .collect();
    for _ in 0..1 + rng.below(3) {
        if positions.is_empty() {
            break;
        }
        let p = positions[rng.below(positions.len())];
        if let Some(g) = glyph(chars[p]) {
            chars[p] = g;
        }
    }
    chars.into_iter().collect()
}

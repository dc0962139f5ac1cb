//! Phonetic skeleton keys of name tokens: one key for the spellings that different
//! romanization systems and languages give the same sound.
//!
//! A name from Cyrillic or Arabic script reaches us in English (`Shcherbakov`, `Yusuf`),
//! French (`Chtcherbakov`, `Youssef`), German (`Schtscherbakow`, `Jussuf`) or scholarly
//! (`Ŝerbakov`) spelling; normalization turns all of them into ASCII, but they stay several
//! letters apart, beyond the one-edit tolerance of the index. The key keeps what these
//! systems agree on — the consonant skeleton — and merges what they disagree on:
//!
//! - every vowel, and the semivowels `y` and `j`, is dropped (`ey`/`ei`/`ej`, `iya`/`ia`/`ja`,
//!   `ou`/`u`, `-iy`/`-ij`/`-i`); a token starting with one keeps a single `a` marker;
//! - the hushing and hissing sibilants (`sh ch zh sch tsch tch shch chtch schtsch ts tz z c s`;
//!   `c` is `ts` in ISO 9 and pinyin, and `č` has lost its caron) are one letter `s`;
//!   `dzh`/`dj`/`dsch` are `d` (the glide after it dropped, as German `Medwedjow` needs);
//! - `kh` is `h`, and an `h` ending the key (`Fatimah`/`Fatima`, `-ykh`/`-yh`) is dropped;
//! - `v`, `w`, `f`, `ph` are `f` (`-ov`/`-ow`/`-off`); `q`, `ck`, `qu` are `k`; `x` is `ks`;
//!   `th` is `t`; `dh` is `d`; `gh` is `g`;
//! - the Arabic article in any spelling (`al el ul ar as ash at az ad an`…) is `al`, and
//!   `Abd` + the article (`Abdul-`, `Abdel-`, `Abdal-`, `Abdur-`) is `abd`;
//! - where languages read a letter differently, a second reading is kept: `ch` as `kh`
//!   (German `Chabarow`, `Michail`) and a `j` before a vowel, at the start or after a vowel,
//!   as `zh` (French `Joukov`, `Khoupajin`), in
//!   tokens of six or more letters; two keys agree when any reading of one equals any
//!   reading of the other;
//! - a letter repeated next to itself counts once (`Hassan`/`Hasan`, `Abdullah`/`Abdulah`);
//! - the alternative reading also takes `gh` as `q` (Persian `Ghasem` for Arabic `Qasim`) and
//!   `dh` as `z` (`al-Dhawahiri`/`al-Zawahiri`: the letters Persian, Turkish and Egyptian
//!   Arabic say as `z`);
//! - a given name whose Turkish or Persian form is spelled too differently for the rules
//!   above (`Ahmet`, `Cemal`, `Zeynep`, `Hatice`, `Reza`, `Morteza`) shares a third form with
//!   the Arabic one, from a short table of such names ([`GIVEN_NAME_EQUIVALENTS`]). It is keyed
//!   by the exact token, so it adds nothing to other names that happen to sound alike.
//!
//! It is deliberately coarse: it is only used to reach more candidates and to let two tokens
//! pair when their spellings differ this way; the name score still weighs the real letters.
//! Unlike Double Metaphone (built for English spelling) it knows the French and German
//! renderings of Slavic sounds.

use std::collections::HashMap;

/// Keys shorter than this are too common to mean anything (`a`, one consonant).
pub const MIN_KEY_LEN: usize = 2;

/// Multi-letter spellings and their key letter, longest first at any position.
const CLUSTERS: &[(&str, &str)] = &[
    ("schtsch", "s"),
    ("chtch", "s"),
    ("shch", "s"),
    ("tsch", "s"),
    ("dsch", "d"),
    ("dzh", "d"),
    ("sch", "s"),
    ("tch", "s"),
    ("sh", "s"),
    ("zh", "s"),
    ("kh", "h"),
    ("gh", "g"),
    ("ph", "f"),
    ("th", "t"),
    ("dh", "d"),
    ("ts", "s"),
    ("tz", "s"),
    ("dj", "d"),
    ("ck", "k"),
    ("qu", "k"),
];

/// Spellings of the Arabic article, assimilated or not (`al-`, `el-`, `ul-`, `ash-`, `az-`…):
/// all one key.
const ARTICLES: &[&str] = &[
    "al", "el", "ul", "il", "ar", "as", "ash", "at", "az", "ad", "adh", "ath", "an",
];

/// Shortest token given an alternative reading: short keys collide too easily (`Chen` read
/// as `Khen` would be `Khan`; `Jan` read as `Zhan` would be `Sanjay`).
const MIN_ALTERNATIVE_LEN: usize = 6;

/// Longest token read; names never come close.
const MAX_TOKEN_BYTES: usize = 64;

/// Given names written in Turkish or Persian (sometimes French North African) spelling that
/// no rule of the skeleton brings to their Arabic form: Turkish `c` for `j`, final `t`/`p` for
/// `d`/`b` and `e` for `a`; Persian `z` for `dh`/`d` and `gh` for `q`. Each group is one name,
/// with its common spellings (matched exactly: a token that merely sounds like one of them
/// gets nothing); its first spelling names it. Names whose Turkish form the skeleton already
/// matches (`Huseyin`, `Omer`, `Halil`, `Ayse`, `Emine`) are not needed here.
#[rustfmt::skip]
pub const GIVEN_NAME_EQUIVALENTS: &[&[&str]] = &[
    &["muhammad", "mohammed", "mohamed", "mohammad", "muhammed", "mohamad", "muhamad",
      "mouhamed", "mehmet", "mehmed"],
    &["ahmad", "ahmed", "achmed", "ahmet", "ahmat"],
    &["mahmud", "mahmoud", "mahmood", "mahmut"],
    &["jamal", "jamaal", "jamel", "djamal", "djamel", "gamal", "cemal"],
    &["jalal", "djalal", "jalaal", "celal"],
    &["jafar", "jaafar", "djafar", "jafer", "cafer"],
    &["jawad", "jawwad", "javad", "djawad", "cevat", "cevad"],
    &["jihad", "djihad", "cihat", "cihad"],
    &["mujahid", "mujahed", "moudjahid", "mucahit", "mucahid"],
    &["majid", "majed", "majeed", "madjid", "mecit", "mecid"],
    &["hamid", "hamed", "hameed", "hamit"],
    &["rashid", "rachid", "rasheed", "reshid", "resit", "rasit"],
    &["wahid", "waheed", "vahid", "vahit"],
    &["najib", "najeeb", "nadjib", "necip", "necib"],
    &["rajab", "rajeb", "radjab", "recep", "receb"],
    &["zaynab", "zainab", "zeinab", "zaineb", "zeynep"],
    &["khadija", "khadijah", "khadidja", "khadijeh", "hatice", "hadice"],
    &["uthman", "othman", "osman"],
    &["ridha", "rida", "redha", "reza", "riza", "rza"],
    &["murtada", "murtadha", "mortada", "morteza", "murtaza"],
    &["fadl", "fadhl", "fadil", "fazl", "fazil"],
    &["qasim", "qassim", "qasem", "kassem", "kasim", "ghasem", "ghassem"],
    &["baqir", "baqer", "bager", "bagher"],
    &["taqi", "taki", "taghi"],
    &["sadiq", "sadeq", "saddiq", "sadik", "sadegh"],
    &["ramadan", "ramadhan", "ramazan"],
];

/// The skeleton key of one token: its primary reading, and an alternative one when the
/// token has a letter that languages read differently (`ch` is `sh`/`tsh` in English and
/// French but `kh` in German; a leading `j` is `y` in German but `zh` in French).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhoneticKey {
    primary: Box<str>,
    alternative: Option<Box<str>>,
    /// `=` and the name of the token's group in [`GIVEN_NAME_EQUIVALENTS`] (`=` is never in
    /// a skeleton, so it agrees only with the group's other spellings).
    equivalent: Option<&'static str>,
}

/// Which way the ambiguous letters are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// `ch` as a hushing sibilant, a leading `j` as a glide, `gh` as `g`, `dh` as `d`.
    Primary,
    /// `ch` as `kh`, a `j` before a vowel (leading or between vowels) as `zh`, `gh` as `q`,
    /// `dh` as `z`.
    Alternative,
}

// === impl PhoneticKey ===

impl PhoneticKey {
    /// The primary reading.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// Both readings (the alternative only when it differs), and the given-name group's form
    /// when the token is in one.
    pub fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.primary)
            .chain(self.alternative.as_deref())
            .chain(self.equivalent)
    }

    /// Whether the two tokens may sound alike: a reading of one equals a reading of the
    /// other, and it is at least [`MIN_KEY_LEN`] long.
    pub fn agrees(&self, other: &PhoneticKey) -> bool {
        self.forms()
            .any(|a| a.len() >= MIN_KEY_LEN && other.forms().any(|b| a == b))
    }
}

/// The skeleton key of one normalized token. Letters other than ASCII are ignored, so any
/// input gives a key (possibly empty).
pub fn phonetic_key(token: &str) -> PhoneticKey {
    let mut bytes: Vec<u8> = token
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .take(MAX_TOKEN_BYTES)
        .collect();
    if ARTICLES.iter().any(|a| a.as_bytes() == bytes) {
        return PhoneticKey {
            primary: "al".into(),
            alternative: None,
            equivalent: None,
        };
    }
    let equivalent = equivalent_form(&bytes);
    theophoric(&mut bytes);
    let primary = skeleton(&bytes, Reading::Primary);
    let alternative = (bytes.len() >= MIN_ALTERNATIVE_LEN)
        .then(|| skeleton(&bytes, Reading::Alternative))
        .filter(|alternative| *alternative != primary);
    PhoneticKey {
        alternative: alternative.map(Into::into),
        primary: primary.into(),
        equivalent,
    }
}

/// The form shared by the spellings of the token's group in [`GIVEN_NAME_EQUIVALENTS`].
fn equivalent_form(token: &[u8]) -> Option<&'static str> {
    /// Each spelling of the table → `=` + its group's name.
    static FORMS: std::sync::LazyLock<HashMap<&'static [u8], &'static str>> =
        std::sync::LazyLock::new(|| {
            let mut forms = HashMap::new();
            for group in GIVEN_NAME_EQUIVALENTS {
                let form: &'static str = format!("={}", group[0]).leak();
                for name in *group {
                    forms.insert(name.as_bytes(), form);
                }
            }
            forms
        });
    FORMS.get(token).copied()
}

/// `Abd` + vowel + the article's `l` (`Abdul Rahman`, `Abdel`, `Abdallah`): the article's
/// vowel and `l` are left out or assimilated by some spellings (`Abdurrahman`), so they are
/// dropped from all.
fn theophoric(bytes: &mut Vec<u8>) {
    if bytes.len() <= 4 || !bytes.starts_with(b"abd") || !is_vowel(bytes[3]) {
        return;
    }
    let mut cut = 4;
    while bytes.get(cut).is_some_and(|&b| is_vowel(b)) {
        cut += 1;
    }
    if bytes.get(cut) == Some(&b'l') && bytes.len() > cut + 1 {
        cut += 1;
    }
    bytes.drain(3..cut);
}

fn skeleton(bytes: &[u8], reading: Reading) -> String {
    let mut key = String::with_capacity(bytes.len());
    let leading_j = reading == Reading::Alternative
        && bytes.first() == Some(&b'j')
        && bytes.get(1).is_some_and(|&b| is_vowel(b));
    if bytes.first().is_some_and(|&b| is_vowel(b)) && !leading_j {
        key.push('a');
    }
    // The last key letter pushed, cleared by a vowel: only letters that stand next to each
    // other merge.
    let mut last: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let (letters, len): (&[u8], usize) = if reading == Reading::Alternative
            && (rest.starts_with(b"gh") || rest.starts_with(b"dh"))
        {
            // Persian `gh` for `q`; `dh` said as `z`.
            (if rest[0] == b'g' { b"k" } else { b"s" }, 2)
        } else if let Some((from, to)) = CLUSTERS
            .iter()
            .find(|(from, _)| rest.starts_with(from.as_bytes()))
        {
            (to.as_bytes(), from.len())
        } else if rest.starts_with(b"ch") {
            let letter: &[u8] = match reading {
                Reading::Primary => b"s",
                Reading::Alternative => b"h",
            };
            (letter, 2)
        } else if i == 0 && leading_j
            || reading == Reading::Alternative
                && rest[0] == b'j'
                && i > 0
                && is_vowel(bytes[i - 1])
                && rest.get(1).is_some_and(|&b| is_vowel(b))
        {
            (b"s", 1)
        } else {
            (single(rest[0]), 1)
        };
        i += len;
        if letters.is_empty() {
            if is_vowel(rest[0]) {
                last = None;
            }
            continue;
        }
        for &l in letters {
            if last != Some(l) {
                key.push(char::from(l));
            }
            last = Some(l);
        }
    }
    // A final `h` (`Fatimah`, `Hamzeh`, `-ykh`/`-yh`) is written by some systems only.
    if key.len() > 1 && key.ends_with('h') {
        key.pop();
    }
    key
}

/// The key letters of one letter (empty: dropped).
fn single(b: u8) -> &'static [u8] {
    match b {
        b'a' | b'e' | b'i' | b'o' | b'u' | b'y' | b'j' => b"",
        b'v' | b'w' | b'f' => b"f",
        b'z' | b's' | b'c' => b"s",
        b'q' | b'k' => b"k",
        b'x' => b"ks",
        b'b' => b"b",
        b'd' => b"d",
        b'g' => b"g",
        b'h' => b"h",
        b'l' => b"l",
        b'm' => b"m",
        b'n' => b"n",
        b'p' => b"p",
        b'r' => b"r",
        b't' => b"t",
        b'0' => b"0",
        b'1' => b"1",
        b'2' => b"2",
        b'3' => b"3",
        b'4' => b"4",
        b'5' => b"5",
        b'6' => b"6",
        b'7' => b"7",
        b'8' => b"8",
        b'9' => b"9",
        _ => b"",
    }
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y' | b'j')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::screening::EntryKind;
    use crate::screening::normalize::normalize_name;

    /// Every spelling of one name normalizes to tokens whose keys agree one to one.
    fn same(spellings: &[&str]) {
        let keys = |s: &str| -> Vec<PhoneticKey> {
            normalize_name(s, EntryKind::Person)
                .tokens()
                .iter()
                .map(|t| phonetic_key(t))
                .collect()
        };
        let first = keys(spellings[0]);
        for s in &spellings[1..] {
            let mut other = keys(s);
            assert_eq!(other.len(), first.len(), "{} vs {s}", spellings[0]);
            for a in &first {
                let found = other.iter().position(|b| a.agrees(b));
                assert!(
                    found.is_some(),
                    "{} vs {s}: {a:?} in {other:?}",
                    spellings[0]
                );
                other.remove(found.unwrap_or_default());
            }
        }
    }

    #[test]
    fn cyrillic_romanizations_share_keys() {
        same(&[
            "Shcherbakov",
            "Chtcherbakov",
            "Schtscherbakow",
            "Ŝerbakov",
            "Щербаков",
        ]);
        same(&["Yevgeniy", "Evgueni", "Jewgeni", "Evgenij", "Евгений"]);
        same(&["Zaytsev", "Zaïtsev", "Saizew", "Zajcev", "Зайцев"]);
        same(&["Yuriy", "Iouri", "Jurij", "Yuri", "Юрий"]);
        same(&["Sergey", "Sergueï", "Sergej", "Sergei"]);
        same(&["Fyodor", "Fiodor", "Fjodor", "Fëdor"]);
        same(&["Natalya", "Natalia", "Natalja", "Natalʹâ"]);
        same(&[
            "Vladimirovich",
            "Vladimirovitch",
            "Wladimirowitsch",
            "Vladimirovič",
        ]);
        same(&["Ivanov", "Iwanow", "Ivanoff"]);
        same(&["Medvedev", "Medwedjow", "Medvediov"]);
        same(&["Dzhokhar", "Djokhar", "Dschochar"]);
        same(&["Khabarov", "Chabarow"]);
        same(&["Zhukov", "Joukov", "Schukow", "Žukov"]);
        same(&["Zhuravlev", "Jouravlev", "Schurawljow"]);
        same(&["Khupazhin", "Khoupajin", "Chupaschin"]);
        same(&["Timoshchykh", "Timoščyh", "Timoschtschych"]);
        same(&["Shevchuk", "Ševčuk", "Chevtchouk", "Schewtschuk"]);
    }

    #[test]
    fn arabic_romanizations_share_keys() {
        same(&["Muhammad", "Mohammed", "Mohamed", "Mouhamed", "Mohamad"]);
        same(&["Husayn", "Hussein", "Hossein", "Hussain"]);
        same(&["Yusuf", "Youssef", "Jusuf", "Youcef", "Yousef"]);
        same(&["Qasim", "Kassem", "Kasim"]);
        same(&["Fatima", "Fatimah", "Fatimeh"]);
        same(&["Abdullah", "Abdallah", "Abdulla", "Abdellah"]);
        same(&["Khalid", "Khaled", "Halid"]);
        same(&["al-Tamimi", "el-Tamimy", "ul-Tamimi"]);
        same(&["Ruqayya", "Ruqaiya", "Rukaya"]);
        same(&[
            "Abd al-Rahman",
            "Abdurrahman",
            "Abdul Rahman",
            "Abdelrahman",
            "Abdoulrahman",
        ]);
        same(&["Tariq al-Zawahiri", "Tarik az-Zawahiri"]);
        same(&["Rida", "Ridha", "Redha"]);
        same(&["Qasim", "Ghasem", "Qasem"]);
        same(&["al-Zawahiri", "al-Dhawahiri"]);
    }

    #[test]
    fn turkish_and_persian_given_names_share_a_form_with_the_arabic_one() {
        same(&["Ahmad", "Ahmet", "Ahmed"]);
        same(&["Muhammad", "Mehmet"]);
        same(&["Jamal", "Cemal", "Djamal", "Gamal"]);
        same(&["Zaynab", "Zeynep", "Zainab"]);
        same(&["Khadija", "Hatice"]);
        same(&["Ridha", "Reza"]);
        same(&["Murtada", "Morteza"]);
        same(&["Uthman", "Osman"]);
        // Only the listed spellings: a name that merely sounds like one gets nothing.
        let form = |t: &str| phonetic_key(t).equivalent;
        assert_eq!(form("cemal"), Some("=jamal"));
        assert_eq!(form("jamal"), Some("=jamal"));
        assert_eq!(form("samuel"), None);
        assert!(!phonetic_key("amal").agrees(&phonetic_key("cemal")));
        assert!(!phonetic_key("cemal").agrees(&phonetic_key("celal")));
        // Any two spellings of a group agree, not only with its first one.
        assert!(phonetic_key("ahmet").agrees(&phonetic_key("ahmed")));
        assert!(phonetic_key("mehmet").agrees(&phonetic_key("mohammed")));
        // Every group is named by a spelling of its own and no spelling is in two groups.
        let mut seen = std::collections::HashSet::new();
        for group in GIVEN_NAME_EQUIVALENTS {
            assert!(group.len() >= 2, "{group:?}");
            for name in *group {
                assert!(seen.insert(*name), "{name} in two groups");
                assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
            }
        }
    }

    #[test]
    fn different_names_keep_different_keys() {
        for (a, b) in [
            ("ivanov", "petrov"),
            ("smith", "schmidt"),
            ("hassan", "khalid"),
            ("carlos", "karl"),
            ("maria", "mario1"),
        ] {
            assert_ne!(phonetic_key(a), phonetic_key(b), "{a} {b}");
        }
        assert_eq!(phonetic_key("muhammad").primary(), "mhmd");
        assert_eq!(phonetic_key("ivanov").primary(), "afnf");
        assert_eq!(phonetic_key("alexei").primary(), "alks");
        let a = phonetic_key("a");
        assert!(!a.agrees(&a), "too short to count");
        assert!(phonetic_key("al").agrees(&phonetic_key("az")));
        // Short tokens get no alternative reading.
        assert!(!phonetic_key("chen").agrees(&phonetic_key("khan")));
        assert!(!phonetic_key("jan").agrees(&phonetic_key("sanjay")));
        assert_eq!(phonetic_key("chabarow").forms().count(), 2);
    }

    proptest! {
        /// Any text gives a key without panicking; the key is short lower-case ASCII and
        /// does not depend on ASCII case.
        #[test]
        fn any_input_gives_a_bounded_ascii_key(s in "\\PC{0,80}") {
            let key = phonetic_key(&s);
            for form in key.forms() {
                prop_assert!(form.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
                prop_assert!(form.len() <= 2 * MAX_TOKEN_BYTES + 1);
            }
            prop_assert_eq!(phonetic_key(&s.to_ascii_uppercase()), phonetic_key(&s.to_ascii_lowercase()));
        }
    }
}

//! Name normalization, applied alike to list names and to the names being screened, so that
//! spelling differences that do not change who is meant also do not change the tokens.
//!
//! In order: Unicode NFKC (full-width and styled letters, ligatures); words split on anything
//! that is not a letter or digit (apostrophes are dropped inside a word, dotted initials such
//! as `S.A.` or `U.S.A.` are joined); homoglyphs folded in words that are otherwise Latin
//! (Cyrillic `а е о р с х у`, Greek `ο α`…, so `Vlаdimir` with a Cyrillic `а` is `vladimir`);
//! every other letter transliterated to Latin and stripped of diacritics (`Путин` → `putin`,
//! `Müller` → `muller`); lower case; `0`/`1` between two letters read as `o`/`l`; honorifics
//! (persons) and legal-form suffixes (organizations, also one typo away from a long one:
//! `Lomited`) removed; the parts of an Arabic compound
//! name joined into one token (`Abd al-Rahman` → `abdalrahman`, `Nasr Allah` → `nasrallah`,
//! persons); the tokens sorted and
//! deduplicated, so token order never matters.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::EntryKind;

/// Characters of a name considered; longer input is truncated (no list name comes close).
const MAX_NAME_CHARS: usize = 512;

/// Longest identifier number kept.
const MAX_ID_CHARS: usize = 64;

/// Honorifics and generational suffixes dropped from person names.
const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady", "madam",
    "madame", "mme", "mlle", "herr", "frau", "hon", "rev", "jr", "jnr", "sr", "snr", "ii", "iii",
    "sheikh", "shaikh", "shaykh", "haji", "hajji", "mullah",
];

/// Legal-form suffixes and filler words dropped from organization names.
const LEGAL_FORMS: &[&str] = &[
    "llc",
    "ltd",
    "limited",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "cos",
    "plc",
    "llp",
    "lp",
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "sl",
    "bv",
    "nv",
    "oy",
    "oyj",
    "ab",
    "as",
    "asa",
    "aps",
    "jsc",
    "ojsc",
    "cjsc",
    "pjsc",
    "ooo",
    "oao",
    "zao",
    "pao",
    "ao",
    "tov",
    "fze",
    "fzco",
    "fzc",
    "fzllc",
    "pte",
    "pty",
    "bhd",
    "sdn",
    "tbk",
    "kk",
    "kft",
    "zrt",
    "doo",
    "sro",
    "sal",
    "wll",
    "spc",
    "the",
    "and",
    "of",
];

/// A name reduced to its sorted, deduplicated tokens (lower-case ASCII letters and digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NormalizedName {
    tokens: Vec<String>,
}

// === impl NormalizedName ===

impl NormalizedName {
    /// The tokens, sorted and deduplicated.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether nothing of the name survived normalization.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens joined by single spaces (the "sorted-token string").
    pub fn joined(&self) -> String {
        self.tokens.join(" ")
    }
}

/// Normalizes a name for matching; `kind` picks which filler tokens are dropped (honorifics
/// for persons, legal forms for organizations, both for [`EntryKind::Other`]). When dropping
/// would leave nothing (a company called "Company Limited"), nothing is dropped.
pub fn normalize_name(raw: &str, kind: EntryKind) -> NormalizedName {
    let mut words = name_tokens(raw);
    let drop_honorifics = matches!(kind, EntryKind::Person | EntryKind::Other);
    if drop_honorifics {
        words = join_theophoric(words);
    }
    let drop_legal = matches!(kind, EntryKind::Organization | EntryKind::Other);
    let mut tokens: Vec<String> = strip_sp_z_oo(&words, drop_legal)
        .iter()
        .filter(|t| {
            !(drop_honorifics && HONORIFICS.contains(&t.as_str()) || drop_legal && is_legal_form(t))
        })
        .cloned()
        .collect();
    if tokens.is_empty() {
        tokens = words;
    }
    tokens.sort_unstable();
    tokens.dedup();
    NormalizedName { tokens }
}

/// The name's tokens in their original order, before filler removal and sorting.
pub fn name_tokens(raw: &str) -> Vec<String> {
    let chars: Vec<char> = if raw.is_ascii() {
        raw.chars().take(MAX_NAME_CHARS).collect()
    } else {
        raw.nfkc().take(MAX_NAME_CHARS).collect()
    };
    let words = split_words(&chars);
    let name_has_latin = words.iter().any(|w| w.iter().copied().any(is_latin_letter));
    let mut tokens = Vec::with_capacity(words.len());
    for word in &words {
        let has_latin = word.iter().copied().any(is_latin_letter);
        let all_foreign_confusable = word
            .iter()
            .all(|&c| !is_greek_or_cyrillic(c) || homoglyph(c).is_some());
        let fold = has_latin || (name_has_latin && all_foreign_confusable);
        to_ascii_tokens(word, fold, &mut tokens);
    }
    for token in &mut tokens {
        fold_digits(token);
    }
    tokens
}

/// An identifier number reduced to upper-case ASCII letters and digits (`A-123 456` →
/// `A123456`), so punctuation and spacing differences do not hide a match.
pub fn normalize_id(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().take(MAX_ID_CHARS) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !c.is_ascii() {
            let folded = c.to_string().nfkc().collect::<String>();
            for d in deunicode::deunicode(&folded).chars() {
                if d.is_ascii_alphanumeric() {
                    out.push(d.to_ascii_uppercase());
                }
            }
        }
    }
    out
}

/// Splits on anything that is not a letter, digit or combining mark; drops apostrophes inside
/// words and joins dotted initials (`S.A.` → `SA`, but `R.Smith` → `R`, `Smith`).
fn split_words(chars: &[char]) -> Vec<Vec<char>> {
    let mut words = Vec::new();
    let mut word: Vec<char> = Vec::new();
    // Letters since the start of the word or the last joined dot: a dot joins only after a
    // single letter, so every segment of a joined word is one letter.
    let mut segment = 0usize;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() || is_combining_mark(c) {
            word.push(c);
            if !is_combining_mark(c) {
                segment += 1;
            }
            continue;
        }
        if is_apostrophe(c) {
            continue;
        }
        let next = chars.get(i + 1).copied();
        let after = chars.get(i + 2).copied();
        let joins_initials = c == '.'
            && segment == 1
            && next.is_some_and(char::is_alphabetic)
            && !after.is_some_and(char::is_alphanumeric);
        if joins_initials {
            segment = 0;
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        segment = 0;
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Appends the word as lower-case ASCII; transliteration may split it (CJK gives one token
/// per syllable).
fn to_ascii_tokens(word: &[char], fold: bool, tokens: &mut Vec<String>) {
    let mut current = String::with_capacity(word.len());
    for &c in word {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                current.push(c.to_ascii_lowercase());
            }
            continue;
        }
        if fold && let Some(latin) = homoglyph(c) {
            current.push(latin);
            continue;
        }
        if is_combining_mark(c) {
            continue;
        }
        let Some(latin) = deunicode::deunicode_char(c) else {
            continue;
        };
        for d in latin.chars() {
            if d.is_ascii_alphanumeric() {
                current.push(d.to_ascii_lowercase());
            } else if !is_apostrophe(d) && !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
}

/// `0` and `1` with a letter on both sides are read as `o` and `l` (`B0ris` → `boris`).
fn fold_digits(token: &mut String) {
    if !token.bytes().any(|b| b == b'0' || b == b'1') {
        return;
    }
    let mut bytes = std::mem::take(token).into_bytes();
    for i in 1..bytes.len().saturating_sub(1) {
        let inside = bytes[i - 1].is_ascii_alphabetic() && bytes[i + 1].is_ascii_alphabetic();
        match bytes[i] {
            b'0' if inside => bytes[i] = b'o',
            b'1' if inside => bytes[i] = b'l',
            _ => {}
        }
    }
    // Only ASCII bytes were replaced by ASCII bytes, so the text is still UTF-8.
    *token = String::from_utf8(bytes).unwrap_or_default();
}

/// Legal forms at least this long are also recognized one typo away (`Lomited`, `Compay`).
const MIN_FUZZY_LEGAL_FORM: usize = 6;

/// Whether a token is a legal form or filler word of an organization's name.
fn is_legal_form(token: &str) -> bool {
    LEGAL_FORMS.contains(&token)
        || token.len() + 1 >= MIN_FUZZY_LEGAL_FORM
            && LEGAL_FORMS.iter().any(|f| {
                f.len() >= MIN_FUZZY_LEGAL_FORM
                    && f.len().abs_diff(token.len()) <= 1
                    && strsim::osa_distance(f, token) <= 1
            })
}

/// Endings of East Slavic patronymics in the common romanizations (`-ovich`, `-ovitch`,
/// `-owitsch`, `-ovič` → `-ovic`, `-ovna`, `-owna`), and of South Slavic `-ović` surnames,
/// which read the same way.
const PATRONYMIC_ENDINGS: &[&str] = &[
    "ovich", "evich", "ovitch", "evitch", "owitsch", "ewitsch", "ovic", "evic", "ovna", "evna",
    "owna", "ewna",
];

/// Whether a normalized token is a patronymic (`Vladimirovich`, `Petrovna`). A patronymic
/// and a surname are different names even when one starts with the other (`Ivanovich`,
/// `Ivanov`), so the scorer never pairs one with the other.
pub fn is_patronymic(token: &str) -> bool {
    token.len() > 6 && PATRONYMIC_ENDINGS.iter().any(|e| token.ends_with(e))
}

/// `Abd` forms that begin an Arabic compound name (`Abd al-Rahman`, `Abdul Karim`).
const ABD_FORMS: &[&str] = &[
    "abd", "abdul", "abdel", "abdal", "abdol", "abdoul", "abdu", "abdur", "abdar", "abdus",
];

/// Spellings of the Arabic article inside such a compound.
const ARTICLE_FORMS: &[&str] = &["al", "el", "ul", "ar", "as", "ash", "ur", "ad", "az", "an"];

/// `Allah` forms that end one (`Nasr Allah`, `Abd Allah`, `Ahmad Ullah`).
const ALLAH_FORMS: &[&str] = &["allah", "ullah", "ollah", "illah"];

/// Joins the parts of an Arabic compound name into one token (`Abd al-Rahman` →
/// `abdalrahman`, `Nasr Allah` → `nasrallah`), because lists and applicants write them as one
/// word (`Abdurrahman`, `Nasrallah`) or as two or three, and one token cannot pair with two.
fn join_theophoric(words: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if ABD_FORMS.contains(&word.as_str()) && i + 1 < words.len() {
            let mut joined = word.clone();
            let mut next = i + 1;
            if ARTICLE_FORMS.contains(&words[next].as_str()) && next + 1 < words.len() {
                joined.push_str(&words[next]);
                next += 1;
            }
            joined.push_str(&words[next]);
            out.push(joined);
            i = next + 1;
            continue;
        }
        match out.last_mut() {
            Some(prev) if ALLAH_FORMS.contains(&word.as_str()) => prev.push_str(word),
            _ => out.push(word.clone()),
        }
        i += 1;
    }
    out
}

/// Drops a trailing Polish `sp. z o.o.` (`sp`, `z`, `oo`) from an organization's tokens.
fn strip_sp_z_oo(words: &[String], drop_legal: bool) -> &[String] {
    match words {
        [rest @ .., a, b, c] if drop_legal && a == "sp" && b == "z" && c == "oo" => rest,
        _ => words,
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '`'
            | '\u{2019}'
            | '\u{2018}'
            | '\u{02BC}'
            | '\u{02BB}'
            | '\u{02BF}'
            | '\u{02BE}'
            | '\u{00B4}'
    )
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || ('\u{00C0}'..='\u{024F}').contains(&c) && c != '\u{00D7}' && c != '\u{00F7}'
        || ('\u{1E00}'..='\u{1EFF}').contains(&c)
}

fn is_greek_or_cyrillic(c: char) -> bool {
    ('\u{0370}'..='\u{052F}').contains(&c)
}

/// The Latin letter a Greek or Cyrillic character is commonly used to imitate.
fn homoglyph(c: char) -> Option<char> {
    let latin = match c {
        // Cyrillic
        'а' | 'А' => 'a',
        'В' => 'b',
        'е' | 'Е' | 'ё' | 'Ё' => 'e',
        'к' | 'К' => 'k',
        'М' => 'm',
        'Н' | 'һ' | 'Һ' => 'h',
        'о' | 'О' => 'o',
        'р' | 'Р' => 'p',
        'с' | 'С' => 'c',
        'Т' => 't',
        'х' | 'Х' => 'x',
        'у' | 'У' | 'ү' | 'Ү' => 'y',
        'і' | 'І' | 'ї' | 'Ї' => 'i',
        'ј' | 'Ј' => 'j',
        'ѕ' | 'Ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' | 'Ԛ' => 'q',
        'ԝ' | 'Ԝ' => 'w',
        'ӏ' | 'Ӏ' => 'l',
        // Greek
        'α' | 'Α' => 'a',
        'Β' => 'b',
        'Ε' => 'e',
        'Ζ' => 'z',
        'Η' => 'h',
        'ι' | 'Ι' => 'i',
        'κ' | 'Κ' => 'k',
        'Μ' => 'm',
        'Ν' => 'n',
        'ν' => 'v',
        'ο' | 'Ο' => 'o',
        'ρ' | 'Ρ' => 'p',
        'τ' | 'Τ' => 't',
        'υ' | 'Υ' => 'y',
        'χ' | 'Χ' => 'x',
        'ϲ' | 'Ϲ' => 'c',
        _ => return None,
    };
    Some(latin)
}

#[cfg(test)]
mod tests;

//! Country names, demonyms and codes to ISO 3166-1 alpha-2, so that `nationality Iran`,
//! `IRN`, `ir` and `Iran, Islamic Republic of` all compare as `IR`.

mod table;

use std::collections::HashMap;
use std::sync::LazyLock;

use self::table::COUNTRIES;

/// Longest text looked up; longer input is not a country name.
const MAX_NAME_LEN: usize = 80;

/// Normalized name → alpha-2.
static BY_NAME: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for (alpha2, _, names) in COUNTRIES {
        for name in *names {
            map.insert(*name, *alpha2);
        }
    }
    map
});

/// The ISO 3166-1 alpha-2 code (upper case) for a code or name, or `None` when it names no
/// country this table knows.
///
/// Two letters in any case are taken as alpha-2 when such a code exists (`ru` → `RU`); three
/// upper-case letters as alpha-3 (`IRN` → `IR`); anything else is looked up by name after
/// transliteration, case folding and punctuation removal (`Côte d'Ivoire` → `CI`).
pub fn country_code(text: &str) -> Option<&'static str> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_NAME_LEN {
        return None;
    }
    if t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = t.to_ascii_uppercase();
        if let Some((code, _, _)) = COUNTRIES.iter().find(|(a2, _, _)| *a2 == upper) {
            return Some(code);
        }
    }
    if t.len() == 3
        && t.bytes().all(|b| b.is_ascii_uppercase())
        && let Some((code, _, _)) = COUNTRIES.iter().find(|(_, a3, _)| *a3 == t)
    {
        return Some(code);
    }
    BY_NAME.get(name_key(t).as_str()).copied()
}

/// Lower-case ASCII words separated by single spaces, apostrophes dropped, a leading `the`
/// removed: the spelling the table is written in.
fn name_key(text: &str) -> String {
    let ascii = deunicode::deunicode(text);
    let mut key = String::with_capacity(ascii.len());
    let mut gap = false;
    for c in ascii.chars() {
        if c == '\'' || c == '`' {
            continue;
        }
        if c.is_ascii_alphanumeric() {
            if gap && !key.is_empty() {
                key.push(' ');
            }
            gap = false;
            key.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    match key.strip_prefix("the ") {
        Some(rest) => rest.to_owned(),
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_demonyms() {
        for (text, code) in [
            ("IR", "IR"),
            ("ir", "IR"),
            ("IRN", "IR"),
            ("Iran", "IR"),
            ("Iran, Islamic Republic of", "IR"),
            ("Islamic Republic of Iran", "IR"),
            ("Iranian", "IR"),
            ("Russia", "RU"),
            ("Russian Federation", "RU"),
            ("Korea, North", "KP"),
            ("Democratic People's Republic of Korea", "KP"),
            ("Burma", "MM"),
            ("Côte d'Ivoire", "CI"),
            ("UK", "GB"),
            ("United States", "US"),
            ("the Netherlands", "NL"),
            ("Türkiye", "TR"),
            ("Kosovo", "XK"),
        ] {
            assert_eq!(country_code(text), Some(code), "{text}");
        }
    }

    #[test]
    fn unknown_is_none() {
        for text in [
            "",
            "Atlantis",
            "and",
            "ZZ",
            "Tehran, Iran",
            &"x".repeat(500),
        ] {
            assert_eq!(country_code(text), None, "{text}");
        }
    }

    #[test]
    fn table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for (a2, a3, names) in COUNTRIES {
            assert_eq!(a2.len(), 2);
            assert_eq!(a3.len(), 3);
            assert!(seen.insert(*a2), "duplicate {a2}");
            for name in *names {
                assert_eq!(name_key(name), *name, "{a2}: {name:?} is not normalized");
            }
        }
    }
}

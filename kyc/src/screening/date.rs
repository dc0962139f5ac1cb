//! Partial dates of birth: lists give a year, a month or a full date, in several spellings
//! (`1970-01-12`, `12 Jan 1970`, `Jan 1970`, `circa 1970`, `1968 to 1970`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The widest year range (`1960 to 1969`) expanded into single years; wider ranges say too
/// little to corroborate anything and are dropped.
const MAX_YEAR_RANGE: u16 = 10;

/// A date known to the year, the month or the day. Serialized as `YYYY`, `YYYY-MM` or
/// `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartialDate {
    year: u16,
    month: Option<u8>,
    day: Option<u8>,
}

// === impl PartialDate ===

impl PartialDate {
    /// A year only (1000–2999).
    pub fn year(year: u16) -> Option<PartialDate> {
        (1000..=2999).contains(&year).then_some(PartialDate {
            year,
            month: None,
            day: None,
        })
    }

    /// A year and month.
    pub fn year_month(year: u16, month: u8) -> Option<PartialDate> {
        let mut d = PartialDate::year(year)?;
        (1..=12).contains(&month).then(|| {
            d.month = Some(month);
            d
        })
    }

    /// A full date; the day is checked against the month (29 February in any year).
    pub fn full(year: u16, month: u8, day: u8) -> Option<PartialDate> {
        let mut d = PartialDate::year_month(year, month)?;
        let days = match month {
            2 => 29,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (1..=days).contains(&day).then(|| {
            d.day = Some(day);
            d
        })
    }

    /// The year.
    pub fn get_year(self) -> u16 {
        self.year
    }

    /// The month, when known.
    pub fn get_month(self) -> Option<u8> {
        self.month
    }

    /// The day, when known.
    pub fn get_day(self) -> Option<u8> {
        self.day
    }

    /// Parses one date in any supported spelling: `YYYY`, `YYYY-MM`, `YYYY-MM-DD` (also with
    /// `/`), `DD Mon YYYY`, `Mon YYYY`, with an optional `circa`/`c.`/`approximately` prefix.
    pub fn parse(text: &str) -> Option<PartialDate> {
        let t = strip_circa(text.trim());
        if t.is_empty() || t.len() > 40 {
            return None;
        }
        if let Some(d) = parse_iso(t) {
            return Some(d);
        }
        parse_words(t)
    }

    /// Parses a date or a year range (`1968 to 1970`, `1968-1970`), returning every year of a
    /// range of at most ten years. Unparseable text gives nothing.
    pub fn parse_many(text: &str) -> Vec<PartialDate> {
        let t = strip_circa(text.trim());
        for sep in [" to ", " - ", "–"] {
            if let Some((a, b)) = t.split_once(sep) {
                return year_range(a, b);
            }
        }
        // `1968-1970`: two bare years around a hyphen (not an ISO month).
        if let Some((a, b)) = t.split_once('-')
            && a.trim().len() == 4
            && b.trim().len() == 4
        {
            return year_range(a, b);
        }
        PartialDate::parse(t).into_iter().collect()
    }
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
            if let Some(d) = self.day {
                write!(f, "-{d:02}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for PartialDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_iso(&text)
            .ok_or_else(|| serde::de::Error::custom("expected YYYY, YYYY-MM or YYYY-MM-DD"))
    }
}

fn strip_circa(t: &str) -> &str {
    let lower_starts = |p: &str| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    for prefix in [
        "circa ",
        "approximately ",
        "approx. ",
        "approx ",
        "c. ",
        "ca. ",
        "about ",
    ] {
        if t.is_char_boundary(prefix.len()) && lower_starts(prefix) {
            return t[prefix.len()..].trim();
        }
    }
    t
}

fn year_range(a: &str, b: &str) -> Vec<PartialDate> {
    let (Some(a), Some(b)) = (parse_year(a.trim()), parse_year(b.trim())) else {
        return Vec::new();
    };
    if b < a || b - a > MAX_YEAR_RANGE {
        return Vec::new();
    }
    (a..=b).filter_map(PartialDate::year).collect()
}

fn parse_year(t: &str) -> Option<u16> {
    (t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

fn parse_num<T: std::str::FromStr>(t: &str, max_len: usize) -> Option<T> {
    (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

/// `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, with `-` or `/`; a trailing time (`T…`) is ignored.
fn parse_iso(t: &str) -> Option<PartialDate> {
    let t = t.split('T').next().unwrap_or(t);
    let mut parts = t.split(['-', '/']);
    let year = parse_year(parts.next()?)?;
    let Some(m) = parts.next() else {
        return PartialDate::year(year);
    };
    let month = parse_num::<u8>(m, 2)?;
    let Some(d) = parts.next() else {
        return PartialDate::year_month(year, month);
    };
    if parts.next().is_some() {
        return None;
    }
    PartialDate::full(year, month, parse_num::<u8>(d, 2)?)
}

/// `12 Jan 1970`, `12 January 1970`, `Jan 1970`, `January 12, 1970`.
fn parse_words(t: &str) -> Option<PartialDate> {
    let words: Vec<&str> = t
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .take(4)
        .collect();
    match words.as_slice() {
        [day, mon, year] if day.bytes().all(|b| b.is_ascii_digit()) => {
            PartialDate::full(parse_year(year)?, month_number(mon)?, parse_num(day, 2)?)
        }
        [mon, day, year] => {
            PartialDate::full(parse_year(year)?, month_number(mon)?, parse_num(day, 2)?)
        }
        [mon, year] => PartialDate::year_month(parse_year(year)?, month_number(mon)?),
        _ => None,
    }
}

fn month_number(word: &str) -> Option<u8> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let prefix = w.get(..3)?;
    let idx = MONTHS.iter().position(|m| *m == prefix)?;
    u8::try_from(idx + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let full = PartialDate::full(1970, 1, 12).unwrap();
        for t in [
            "1970-01-12",
            "12 Jan 1970",
            "12 January 1970",
            "Jan 12, 1970",
            "1970/01/12",
        ] {
            assert_eq!(PartialDate::parse(t), Some(full), "{t}");
        }
        assert_eq!(
            PartialDate::parse("Jan 1970"),
            PartialDate::year_month(1970, 1)
        );
        assert_eq!(PartialDate::parse("circa 1970"), PartialDate::year(1970));
        assert_eq!(PartialDate::parse("1970-02-30"), None);
        assert_eq!(PartialDate::parse("Smarch 1970"), None);
        assert_eq!(PartialDate::parse("0999"), None);
        assert_eq!(full.to_string(), "1970-01-12");
    }

    #[test]
    fn ranges() {
        assert_eq!(PartialDate::parse_many("1968 to 1970").len(), 3);
        assert_eq!(PartialDate::parse_many("1968-1970").len(), 3);
        assert_eq!(PartialDate::parse_many("1900 to 1970"), vec![]);
        assert_eq!(PartialDate::parse_many("1970-03").len(), 1);
    }

    #[test]
    fn serde_round_trip() {
        let d = PartialDate::year_month(1981, 7).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"1981-07\"");
        assert_eq!(serde_json::from_str::<PartialDate>(&json).unwrap(), d);
    }
}

//! STIX 2.1 patterns for our indicator types, both ways: the pattern an export writes for an
//! indicator (raw or as its shared SHA-256), and reading a partner's pattern back into an
//! indicator we can match.
//!
//! Writing (docs/incidents.md lists them):
//!
//! | type | raw | shared digest (partner export) |
//! |---|---|---|
//! | ipv4 / ipv6 | `[ipv4-addr:value = '…']` / `[ipv6-addr:value = '…']` | hashed form |
//! | email_domain | `[email-addr:value LIKE '%@example.com']` | hashed form |
//! | document_sha256 | `[file:hashes.'SHA-256' = '…']` | (raw: it is a digest) |
//! | payment_fingerprint | `[x-computegate-payment-instrument:fingerprint = '…']` | hashed form |
//! | api_key_id | `[x-computegate-api-key:key_id = '…']` | hashed form |
//!
//! The hashed form is `[x-computegate-hashed-indicator:type = 'ipv4' AND
//! x-computegate-hashed-indicator:sha256 = '<hex>']`.
//!
//! (`id` is a reserved property name in STIX patterns, hence `key_id`.)
//!
//! Reading accepts exactly those shapes (plus `file:hashes.SHA256` and a `/32` or `/128`
//! single-address CIDR): one observation expression, comparisons joined by `AND`. Anything
//! else is not an indicator we can match and is skipped by the caller; nothing here panics on
//! any input.

use super::indicators::{Indicator, IndicatorKind};

/// The custom object type of a hashed indicator.
const HASHED: &str = "x-computegate-hashed-indicator";
/// The custom object type of a payment instrument (also the custom SCO type, see
/// [`super::observables`]).
pub(super) const PAYMENT: &str = "x-computegate-payment-instrument";
/// The custom object type of one of our API keys (also the custom SCO type).
pub(super) const API_KEY: &str = "x-computegate-api-key";

/// Longest pattern read, in bytes (ours are under 200).
pub const MAX_PATTERN_BYTES: usize = 2048;

/// A partner's indicator as its pattern states it: a raw value, or the shared SHA-256 of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternValue {
    /// A value in clear.
    Raw(Indicator),
    /// The plain SHA-256 of a canonical value of `kind`.
    Sha256 {
        /// What the hashed value is.
        kind: IndicatorKind,
        /// The digest.
        digest: [u8; 32],
    },
}

/// One `path op 'value'` comparison of a pattern.
#[derive(Debug, PartialEq, Eq)]
struct Comparison {
    path: String,
    like: bool,
    value: String,
}

/// The pattern for `indicator`: raw, or in the hashed form when `hashed`.
pub fn write(indicator: &Indicator, hashed: bool) -> String {
    if hashed {
        return format!(
            "[{HASHED}:type = '{}' AND {HASHED}:sha256 = '{}']",
            indicator.kind().as_str(),
            indicator.shared_sha256()
        );
    }
    let v = quote(indicator.value());
    match indicator.kind() {
        IndicatorKind::Ipv4 => format!("[ipv4-addr:value = '{v}']"),
        IndicatorKind::Ipv6 => format!("[ipv6-addr:value = '{v}']"),
        IndicatorKind::EmailDomain => format!("[email-addr:value LIKE '%@{v}']"),
        IndicatorKind::DocumentSha256 => format!("[file:hashes.'SHA-256' = '{v}']"),
        IndicatorKind::PaymentFingerprint => format!("[{PAYMENT}:fingerprint = '{v}']"),
        IndicatorKind::ApiKeyId => format!("[{API_KEY}:key_id = '{v}']"),
    }
}

/// The indicator a partner's pattern states, when it is one of the shapes we read.
pub fn read(pattern: &str) -> Option<PatternValue> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return None;
    }
    let comparisons = comparisons(pattern)?;
    match comparisons.as_slice() {
        [one] => read_one(one),
        [a, b] => read_hashed(a, b).or_else(|| read_hashed(b, a)),
        _ => None,
    }
}

fn read_one(c: &Comparison) -> Option<PatternValue> {
    let raw = |kind, value: &str| Indicator::parse(kind, value).ok().map(PatternValue::Raw);
    match (c.path.as_str(), c.like) {
        ("ipv4-addr:value", false) => raw(
            IndicatorKind::Ipv4,
            c.value.strip_suffix("/32").unwrap_or(&c.value),
        ),
        ("ipv6-addr:value", false) => raw(
            IndicatorKind::Ipv6,
            c.value.strip_suffix("/128").unwrap_or(&c.value),
        ),
        ("email-addr:value", true) => raw(IndicatorKind::EmailDomain, c.value.strip_prefix("%@")?),
        ("file:hashes.'SHA-256'" | "file:hashes.SHA256" | "file:hashes.'SHA256'", false) => {
            raw(IndicatorKind::DocumentSha256, &c.value)
        }
        (p, false) if p == format!("{PAYMENT}:fingerprint") => {
            raw(IndicatorKind::PaymentFingerprint, &c.value)
        }
        (p, false) if p == format!("{API_KEY}:key_id") => raw(IndicatorKind::ApiKeyId, &c.value),
        _ => None,
    }
}

fn read_hashed(kind: &Comparison, digest: &Comparison) -> Option<PatternValue> {
    if kind.like
        || digest.like
        || kind.path != format!("{HASHED}:type")
        || digest.path != format!("{HASHED}:sha256")
    {
        return None;
    }
    let kind = IndicatorKind::from_name(&kind.value)?;
    let bytes = hex::decode(&digest.value).ok()?;
    Some(PatternValue::Sha256 {
        kind,
        digest: bytes.try_into().ok()?,
    })
}

/// `[a = 'x' AND b LIKE 'y']` → its comparisons; `None` for any other shape.
fn comparisons(pattern: &str) -> Option<Vec<Comparison>> {
    let inner = pattern.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut rest = inner.trim_start();
    let mut out = Vec::new();
    loop {
        let (comparison, after) = comparison(rest)?;
        out.push(comparison);
        rest = after.trim_start();
        if rest.is_empty() {
            return Some(out);
        }
        rest = rest.strip_prefix("AND")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        rest = rest.trim_start();
    }
}

/// One comparison at the start of `text`, and what follows it.
fn comparison(text: &str) -> Option<(Comparison, &str)> {
    let (path, rest) = object_path(text)?;
    let rest = rest.trim_start();
    let (like, rest) = if let Some(r) = rest.strip_prefix('=') {
        (false, r)
    } else {
        let r = rest.strip_prefix("LIKE")?;
        r.starts_with(char::is_whitespace).then_some((true, r))?
    };
    let (value, rest) = string_literal(rest.trim_start())?;
    Some((
        Comparison {
            path: path.to_owned(),
            like,
            value,
        },
        rest,
    ))
}

/// An object path (`type:prop`, quoted segments such as `hashes.'SHA-256'` allowed) at the
/// start of `text`, up to the first whitespace or `=` outside quotes.
fn object_path(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            c if !quoted && (c.is_whitespace() || c == '=') => {
                let path = &text[..i];
                return (path.contains(':') && !path.is_empty()).then_some((path, &text[i..]));
            }
            _ => {}
        }
    }
    None
}

/// A `'…'` literal with `\'` and `\\` escapes at the start of `text`, and what follows it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\'' | '\\'))) => value.push(e),
                _ => return None,
            },
            '\'' => return Some((value, &body[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// `value` inside a pattern's quotes.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ind(kind: IndicatorKind, v: &str) -> Indicator {
        Indicator::parse(kind, v).unwrap()
    }

    #[test]
    fn every_kind_round_trips_raw_and_hashed() {
        let all = [
            ind(IndicatorKind::Ipv4, "203.0.113.7"),
            ind(IndicatorKind::Ipv6, "2001:db8::1"),
            ind(IndicatorKind::EmailDomain, "abuse.example"),
            ind(IndicatorKind::PaymentFingerprint, "pm_fp_Xt5EWLL9"),
            ind(IndicatorKind::DocumentSha256, &"ab".repeat(32)),
            ind(IndicatorKind::ApiKeyId, "Ab3dEf7hIj9kLm1n"),
        ];
        for i in all {
            assert_eq!(read(&write(&i, false)), Some(PatternValue::Raw(i.clone())));
            let digest: [u8; 32] = hex::decode(i.shared_sha256()).unwrap().try_into().unwrap();
            assert_eq!(
                read(&write(&i, true)),
                Some(PatternValue::Sha256 {
                    kind: i.kind(),
                    digest
                })
            );
        }
    }

    #[test]
    fn written_patterns_look_as_documented() {
        assert_eq!(
            write(&ind(IndicatorKind::EmailDomain, "abuse.example"), false),
            "[email-addr:value LIKE '%@abuse.example']"
        );
        // sha256("203.0.113.7"), computed independently (`printf %s 203.0.113.7 | sha256sum`).
        assert_eq!(
            write(&ind(IndicatorKind::Ipv4, "203.0.113.7"), true),
            "[x-computegate-hashed-indicator:type = 'ipv4' AND \
             x-computegate-hashed-indicator:sha256 = \
             'fec52565aa0cf18f57d7cf5b3ac728503b8992d2d6f7d46da1d1201090902b02']"
        );
    }

    #[test]
    fn partner_spellings_we_accept() {
        let p = |s: &str| read(s);
        assert_eq!(
            p("[ipv4-addr:value='198.51.100.1/32']"),
            Some(PatternValue::Raw(ind(IndicatorKind::Ipv4, "198.51.100.1")))
        );
        assert_eq!(
            p(&format!("[ file:hashes.SHA256 = '{}' ]", "AB".repeat(32))),
            Some(PatternValue::Raw(ind(
                IndicatorKind::DocumentSha256,
                &"ab".repeat(32)
            )))
        );
        // Hashed comparisons in either order.
        let digest = "0".repeat(64);
        assert!(matches!(
            p(&format!(
                "[{HASHED}:sha256 = '{digest}' AND {HASHED}:type = 'email_domain']"
            )),
            Some(PatternValue::Sha256 {
                kind: IndicatorKind::EmailDomain,
                ..
            })
        ));
    }

    #[test]
    fn other_shapes_are_not_read() {
        for pattern in [
            "",
            "[]",
            "[ipv4-addr:value = '198.51.100.0/24']",
            "[ipv4-addr:value = '198.51.100.1'] AND [ipv4-addr:value = '198.51.100.2']",
            "[ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '198.51.100.2']",
            "[domain-name:value = 'example.com']",
            "[email-addr:value = 'someone@example.com']",
            "[email-addr:value LIKE 'x%']",
            "[ipv4-addr:value = '198.51.100.1]",
            "[ipv4-addr:value = '198.51.100.1' ANDipv4-addr:value = '1.1.1.1']",
            "[x-computegate-hashed-indicator:type = 'ipv4']",
            "[x-computegate-hashed-indicator:type = 'url' AND x-computegate-hashed-indicator:sha256 = 'ab']",
            "[ipv4-addr:value = 'a\\b']",
        ] {
            assert_eq!(read(pattern), None, "{pattern}");
        }
        assert_eq!(read(&format!("[{}]", "a".repeat(MAX_PATTERN_BYTES))), None);
    }

    #[test]
    fn quotes_are_escaped_and_unescaped() {
        let (v, rest) = string_literal(r"'it\'s \\ here' tail").unwrap();
        assert_eq!(v, r"it's \ here");
        assert_eq!(rest, " tail");
        assert_eq!(quote(r"it's \"), r"it\'s \\");
    }

    proptest::proptest! {
        #[test]
        fn reading_never_panics(s in "\\PC{0,200}") {
            let _ = read(&s);
        }

        #[test]
        fn reading_bracketed_noise_never_panics(s in "[\\[\\]' =A-Za-z0-9:.%@\\\\-]{0,120}") {
            let _ = read(&format!("[{s}]"));
        }
    }
}

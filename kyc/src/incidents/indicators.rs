//! Incident indicators: what staff record about an abuse incident (a client address, an email
//! domain, a payment fingerprint, a document's SHA-256, an API key id), validated per type and
//! reduced to one canonical spelling, and the two digests made of that spelling:
//!
//! - the **keyed hash** ([`IndicatorKey`]): HMAC-SHA256 under a key derived from the master
//!   key, over the type and the value. It is what the store keeps beside the sealed value and
//!   what a partner's indicator is compared by, so equal values meet without a stolen database
//!   being matchable against a dictionary of addresses;
//! - the **shared digest** ([`Indicator::shared_sha256`]): a plain SHA-256 of the canonical
//!   value, the documented form a partner export carries so that partners can hash their own
//!   values the same way and compare (docs/incidents.md).
//!
//! Canonical forms: IPv4 dotted quad; IPv6 in RFC 5952 text (lower case, `::` compressed);
//! email domains lower case without the `@`; SHA-256 as 64 lower-case hex digits; payment
//! fingerprints and API key ids as given (case is significant in both).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use sha2::{Digest as _, Sha256};

use crate::crypto::{KeyedHasher, MasterKey};

/// HKDF label of the indicator key (see [`MasterKey::derive_subkey`]). Changing it re-keys
/// every stored indicator hash.
const KEY_LABEL: &[u8] = b"computegate/incidents/indicators/v1";

/// Shortest and longest payment fingerprint accepted, in characters (processors issue ~16–64).
const FINGERPRINT_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// Shortest personal value [`Indicator::masked`] shows any of: below it, four characters
/// would be most of the value.
const MASK_MIN_CHARS: usize = 8;

/// Longest email domain (RFC 1035: 253 characters of text).
const MAX_DOMAIN_CHARS: usize = 253;

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndicatorKind {
    /// A client IPv4 address.
    Ipv4,
    /// A client IPv6 address.
    Ipv6,
    /// The domain of an email address.
    EmailDomain,
    /// A payment instrument fingerprint from the payment processor.
    PaymentFingerprint,
    /// The SHA-256 of an uploaded document.
    DocumentSha256,
    /// The id of an API key we issued (`cg_<id>_…`).
    ApiKeyId,
}

crate::names::stored_enum!(IndicatorKind {
    Ipv4 => "ipv4",
    Ipv6 => "ipv6",
    EmailDomain => "email_domain",
    PaymentFingerprint => "payment_fingerprint",
    DocumentSha256 => "document_sha256",
    ApiKeyId => "api_key_id",
});

/// A validated indicator in canonical form. `Debug` shows only the kind: most values are
/// personal data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Indicator {
    kind: IndicatorKind,
    canonical: String,
}

/// Why an indicator value was refused; the text says what the type takes (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndicatorError {
    /// The type is none of [`IndicatorKind::ALL`].
    #[error(
        "type must be one of ipv4, ipv6, email_domain, payment_fingerprint, document_sha256, api_key_id"
    )]
    UnknownKind,
    /// Not an IPv4 address.
    #[error("not an IPv4 address (a.b.c.d)")]
    NotIpv4,
    /// Not an IPv6 address.
    #[error("not an IPv6 address")]
    NotIpv6,
    /// Not a domain name.
    #[error("not an email domain (labels of letters, digits and '-', at least two)")]
    NotEmailDomain,
    /// Not an opaque processor token.
    #[error("a payment fingerprint is 8–128 characters of letters, digits, '_', '-', '.'")]
    NotFingerprint,
    /// Not 64 hex digits.
    #[error("a document SHA-256 is 64 hexadecimal digits")]
    NotSha256,
    /// Not the shape of our key ids.
    #[error("an API key id is the 16 letters and digits after `cg_` in a key")]
    NotApiKeyId,
}

/// The keyed hash of an indicator: HMAC-SHA256 under the [`IndicatorKey`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndicatorHash([u8; 32]);

/// The key of [`IndicatorHash`]es, derived from the master key. Never printed.
#[derive(Clone, Debug)]
pub struct IndicatorKey(KeyedHasher);

// === impl Indicator ===

impl Indicator {
    /// Validates `raw` as an indicator of type `kind` (surrounding whitespace ignored).
    pub fn parse(kind: IndicatorKind, raw: &str) -> Result<Indicator, IndicatorError> {
        let raw = raw.trim();
        let canonical = match kind {
            IndicatorKind::Ipv4 => raw
                .parse::<Ipv4Addr>()
                .map_err(|_| IndicatorError::NotIpv4)?
                .to_string(),
            IndicatorKind::Ipv6 => raw
                .parse::<Ipv6Addr>()
                .map_err(|_| IndicatorError::NotIpv6)?
                .to_string(),
            IndicatorKind::EmailDomain => {
                email_domain(raw).ok_or(IndicatorError::NotEmailDomain)?
            }
            IndicatorKind::PaymentFingerprint => {
                let ok = FINGERPRINT_CHARS.contains(&raw.len())
                    && raw
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !ok {
                    return Err(IndicatorError::NotFingerprint);
                }
                raw.to_owned()
            }
            IndicatorKind::DocumentSha256 => {
                if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(IndicatorError::NotSha256);
                }
                raw.to_ascii_lowercase()
            }
            IndicatorKind::ApiKeyId => {
                if !crate::api_keys::is_key_id(raw) {
                    return Err(IndicatorError::NotApiKeyId);
                }
                raw.to_owned()
            }
        };
        Ok(Indicator { kind, canonical })
    }

    /// Parses a type name and a value, as the staff API takes them.
    pub fn parse_named(kind: &str, raw: &str) -> Result<Indicator, IndicatorError> {
        let kind = IndicatorKind::from_name(kind).ok_or(IndicatorError::UnknownKind)?;
        Indicator::parse(kind, raw)
    }

    /// What kind of indicator this is.
    pub fn kind(&self) -> IndicatorKind {
        self.kind
    }

    /// The canonical value (personal data for addresses, domains and fingerprints).
    pub fn value(&self) -> &str {
        &self.canonical
    }

    /// Whether a partner export shares this kind only as its [`Self::shared_sha256`]: client
    /// addresses, email domains and payment fingerprints are personal data, and our API key
    /// ids name our customers' credentials. A document SHA-256 is a digest already.
    pub fn hashed_for_partners(&self) -> bool {
        match self.kind {
            IndicatorKind::Ipv4
            | IndicatorKind::Ipv6
            | IndicatorKind::EmailDomain
            | IndicatorKind::PaymentFingerprint
            | IndicatorKind::ApiKeyId => true,
            IndicatorKind::DocumentSha256 => false,
        }
    }

    /// The value as a page may show it next to its type: personal values (those a partner
    /// export hashes) keep only their first and last two characters (`20…77`), and nothing
    /// when shorter than [`MASK_MIN_CHARS`]; a document digest keeps its first 12 digits,
    /// enough to tell two documents apart.
    pub fn masked(&self) -> String {
        let v = &self.canonical;
        if !self.hashed_for_partners() {
            return format!("{}…", &v[..v.len().min(12)]);
        }
        // Canonical values are ASCII (see `parse`), so byte slicing is character slicing.
        if v.len() < MASK_MIN_CHARS {
            return "…".to_owned();
        }
        format!("{}…{}", &v[..2], &v[v.len() - 2..])
    }

    /// The plain SHA-256 of the canonical value (UTF-8), as lower-case hex: the digest a
    /// partner export carries.
    pub fn shared_sha256(&self) -> String {
        hex::encode(shared_digest(&self.canonical))
    }
}

impl fmt::Debug for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Indicator({}, ..)", self.kind.as_str())
    }
}

/// The plain SHA-256 of a canonical value (see [`Indicator::shared_sha256`]).
pub fn shared_digest(canonical: &str) -> [u8; 32] {
    Sha256::digest(canonical.as_bytes()).into()
}

/// `example.com` from `example.com`, `@Example.COM` or ` example.com. `: lower case, the
/// root dot dropped; `None` unless it is at least two labels of letters, digits and inner
/// hyphens with a non-numeric top-level label.
fn email_domain(raw: &str) -> Option<String> {
    let domain = raw
        .strip_prefix('@')
        .unwrap_or(raw)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() || domain.len() > MAX_DOMAIN_CHARS {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    (labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok).then_some(domain)
}

// === impl IndicatorHash ===

impl IndicatorHash {
    /// An existing digest (as read back from the store).
    pub fn from_bytes(digest: [u8; 32]) -> IndicatorHash {
        IndicatorHash(digest)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for IndicatorHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndicatorHash({})", hex::encode(&self.0[..4]))
    }
}

// === impl IndicatorKey ===

impl IndicatorKey {
    /// The indicator key of the store whose master key is `master`.
    pub fn derive(master: &MasterKey) -> IndicatorKey {
        IndicatorKey(KeyedHasher::derive(master, KEY_LABEL))
    }

    /// `HMAC-SHA256(key, kind ‖ 0x00 ‖ value)`: the kind separates the domains, so an API key
    /// id never meets a fingerprint spelled the same.
    pub fn hash(&self, indicator: &Indicator) -> IndicatorHash {
        IndicatorHash(self.0.digest(indicator.kind.as_str(), &indicator.canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: IndicatorKind, raw: &str) -> String {
        Indicator::parse(kind, raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .value()
            .to_owned()
    }

    #[test]
    fn values_are_validated_and_canonical() {
        use IndicatorKind::*;
        assert_eq!(ok(Ipv4, " 203.0.113.7 "), "203.0.113.7");
        assert_eq!(ok(Ipv6, "2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(ok(EmailDomain, "@Mail.Example.COM."), "mail.example.com");
        assert_eq!(ok(PaymentFingerprint, "pm_fp_Xt5EWLL9"), "pm_fp_Xt5EWLL9");
        assert_eq!(ok(DocumentSha256, &"AB".repeat(32)), "ab".repeat(32));
        assert_eq!(ok(ApiKeyId, "Ab3dEf7hIj9kLm1n"), "Ab3dEf7hIj9kLm1n");
    }

    #[test]
    fn bad_values_say_what_the_type_takes() {
        use IndicatorError as E;
        use IndicatorKind::*;
        let cases = [
            (Ipv4, "203.0.113", E::NotIpv4),
            (Ipv4, "2001:db8::1", E::NotIpv4),
            (Ipv6, "203.0.113.7", E::NotIpv6),
            (EmailDomain, "localhost", E::NotEmailDomain),
            (EmailDomain, "user@example.com", E::NotEmailDomain),
            (EmailDomain, "-bad.example", E::NotEmailDomain),
            (EmailDomain, "10.0.0.1", E::NotEmailDomain),
            (PaymentFingerprint, "short", E::NotFingerprint),
            (PaymentFingerprint, "has space inside", E::NotFingerprint),
            (DocumentSha256, "abc", E::NotSha256),
            (DocumentSha256, &"zz".repeat(32), E::NotSha256),
            (ApiKeyId, "cg_Ab3dEf7hIj9kLm1n", E::NotApiKeyId),
        ];
        for (kind, raw, want) in cases {
            assert_eq!(Indicator::parse(kind, raw), Err(want), "{raw}");
        }
        assert_eq!(
            Indicator::parse_named("url", "x"),
            Err(IndicatorError::UnknownKind)
        );
    }

    #[test]
    fn the_keyed_hash_separates_kinds_and_keys() {
        use hmac::{Hmac, KeyInit, Mac as _};
        let master = MasterKey::generate().unwrap();
        let key = IndicatorKey::derive(&master);
        let fp = Indicator::parse(IndicatorKind::PaymentFingerprint, "Ab3dEf7hIj9kLm1n").unwrap();
        let api = Indicator::parse(IndicatorKind::ApiKeyId, "Ab3dEf7hIj9kLm1n").unwrap();
        assert_ne!(key.hash(&fp), key.hash(&api));
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&master.derive_subkey(KEY_LABEL)).unwrap();
        mac.update(b"api_key_id\0Ab3dEf7hIj9kLm1n");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(key.hash(&api).as_bytes(), &expected);
        let other = IndicatorKey::derive(&MasterKey::generate().unwrap());
        assert_ne!(key.hash(&api), other.hash(&api));
    }

    #[test]
    fn the_shared_digest_is_plain_sha256_of_the_canonical_value() {
        let ip = Indicator::parse(IndicatorKind::Ipv6, "2001:DB8::0001").unwrap();
        // sha256("2001:db8::1"), computed independently (`printf %s 2001:db8::1 | sha256sum`).
        assert_eq!(
            ip.shared_sha256(),
            "5afd19e856d1c18d17d600dfd2b5f534992333985e126c2a951047102c1ed536"
        );
        assert!(ip.hashed_for_partners());
        let doc = Indicator::parse(IndicatorKind::DocumentSha256, &"0".repeat(64)).unwrap();
        assert!(!doc.hashed_for_partners());
    }

    #[test]
    fn masked_values_show_little() {
        use IndicatorKind::*;
        let masked = |kind, v: &str| Indicator::parse(kind, v).unwrap().masked();
        assert_eq!(masked(Ipv4, "203.0.113.77"), "20…77");
        assert_eq!(masked(Ipv4, "1.2.3.4"), "…", "too short to show any of it");
        assert_eq!(masked(EmailDomain, "resold.example"), "re…le");
        assert_eq!(masked(PaymentFingerprint, "pm_fp_Xt5EWLL9"), "pm…L9");
        assert_eq!(masked(DocumentSha256, &"ab".repeat(32)), "abababababab…");
    }

    #[test]
    fn debug_shows_no_value() {
        let v = Indicator::parse(IndicatorKind::EmailDomain, "secret.example").unwrap();
        assert_eq!(format!("{v:?}"), "Indicator(email_domain, ..)");
        let key = IndicatorKey::derive(&MasterKey::generate().unwrap());
        assert_eq!(format!("{key:?}"), "IndicatorKey(KeyedHasher(..))");
    }
}

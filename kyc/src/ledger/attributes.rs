//! Linking attributes: the normalized forms of what two accounts may share (a payment
//! fingerprint, a beneficial owner, an identity document, an organization) and their keyed
//! hashes, the only form in which they reach the store.
//!
//! A [`LinkValue`] is built only by its constructors, which normalize, so equal values hash
//! equally whatever their spelling: Unicode NFKC, case and whitespace folded, names reduced to
//! their sorted tokens with the screening engine's rules (`Astrid  BERGLUND` and
//! `Berglund, Astrid` are one person), document and registration numbers to upper-case
//! letters and digits (`ab-123 456` is `AB123456`). The hash is HMAC-SHA256 under a key
//! derived from the master key ([`AttributeKey`]), over the attribute kind and the value: a
//! stolen database cannot be matched against a dictionary of names, dates of birth or card
//! fingerprints without the master key.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::crypto::{KeyedHasher, MasterKey};
use crate::screening::EntryKind;
use crate::screening::normalize::{normalize_id, normalize_name};

/// HMAC-SHA256 of a normalized attribute value under the [`AttributeKey`]. Raw values never
/// reach the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttributeHash([u8; 32]);

/// The key of [`AttributeHash`]es, derived from the master key. Never printed.
#[derive(Clone, Debug)]
pub struct AttributeKey(KeyedHasher);

/// A normalized attribute value, ready to hash. `Debug` shows only the kind: the value is
/// personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkValue {
    kind: LinkAttribute,
    canonical: String,
}

/// HKDF label of the attribute key (see [`MasterKey::derive_subkey`]). Changing it re-keys
/// every stored hash.
const KEY_LABEL: &[u8] = b"computegate/ledger/link-attributes/v1";

/// Longest payment fingerprint considered, in characters (processors issue ~16–64).
const MAX_FINGERPRINT_CHARS: usize = 256;

/// What two accounts share that links them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAttribute {
    /// A beneficial owner (hash of a normalized identity of the person).
    BeneficialOwner,
    /// A payment instrument fingerprint.
    PaymentFingerprint,
    /// A verified identity document (hash of issuing country and number).
    IdDocument,
    /// Membership of one organization (hash of the organization id).
    Organization,
}

// === impl LinkAttribute ===

crate::names::stored_enum!(LinkAttribute {
    BeneficialOwner => "beneficial_owner",
    PaymentFingerprint => "payment_fingerprint",
    IdDocument => "id_document",
    Organization => "organization",
});

// === impl AttributeHash ===

impl AttributeHash {
    /// An existing digest (as read back from the store).
    pub fn from_bytes(digest: [u8; 32]) -> AttributeHash {
        AttributeHash(digest)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AttributeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttributeHash({})", hex::encode(&self.0[..4]))
    }
}

// === impl AttributeKey ===

impl AttributeKey {
    /// The attribute key of the store whose master key is `master`.
    pub fn derive(master: &MasterKey) -> AttributeKey {
        AttributeKey(KeyedHasher::derive(master, KEY_LABEL))
    }

    /// `HMAC-SHA256(key, kind ‖ 0x00 ‖ value)`: the kind separates the domains, so a document
    /// number never matches a fingerprint that happens to be spelled the same.
    pub fn hash(&self, value: &LinkValue) -> AttributeHash {
        AttributeHash(self.0.digest(value.kind.as_str(), &value.canonical))
    }
}

// === impl LinkValue ===

impl LinkValue {
    /// A payment instrument fingerprint (from the payment processor). NFKC and all whitespace
    /// removed, but case kept: fingerprints are opaque processor tokens in which case is
    /// significant (`Xt5E…` and `xt5e…` are different cards), and a false link merges the
    /// budgets of strangers. `None` when nothing is left.
    pub fn payment_fingerprint(raw: &str) -> Option<LinkValue> {
        let canonical: String = raw
            .nfkc()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .take(MAX_FINGERPRINT_CHARS)
            .collect();
        LinkValue::new(LinkAttribute::PaymentFingerprint, canonical)
    }

    /// A beneficial owner (or an individual applicant, who owns their own account): the name's
    /// sorted tokens (screening normalization, honorifics dropped) and the date of birth
    /// (`YYYY-MM-DD`, a real calendar date). `None` unless both are present and valid: a
    /// placeholder date (`0000-00-00`) must not make strangers with one name the same owner.
    pub fn beneficial_owner(legal_name: &str, date_of_birth: &str) -> Option<LinkValue> {
        let name = normalize_name(legal_name, EntryKind::Person).joined();
        let dob = crate::verification::payload::parse_date(date_of_birth.trim())?;
        if name.is_empty() {
            return None;
        }
        let dob = format!(
            "{:04}-{:02}-{:02}",
            dob.year(),
            u8::from(dob.month()),
            dob.day()
        );
        LinkValue::new(LinkAttribute::BeneficialOwner, format!("{name}|{dob}"))
    }

    /// A verified identity document: type (`passport`, …), issuing country and number. `None`
    /// unless all three are present.
    pub fn id_document(doc_type: &str, issuing_country: &str, number: &str) -> Option<LinkValue> {
        let doc_type = word(doc_type);
        let country = word(issuing_country).to_ascii_uppercase();
        let number = normalize_id(number);
        if doc_type.is_empty() || country.is_empty() || number.is_empty() {
            return None;
        }
        LinkValue::new(
            LinkAttribute::IdDocument,
            format!("{doc_type}|{country}|{number}"),
        )
    }

    /// An organization by its registration: jurisdiction and company registration number.
    /// `None` unless both are present.
    pub fn organization_registration(
        jurisdiction: &str,
        registration_number: &str,
    ) -> Option<LinkValue> {
        let jurisdiction = word(jurisdiction).to_ascii_uppercase();
        let number = normalize_id(registration_number);
        if jurisdiction.is_empty() || number.is_empty() {
            return None;
        }
        LinkValue::new(
            LinkAttribute::Organization,
            format!("registration|{jurisdiction}|{number}"),
        )
    }

    /// An organization account of this store, by id.
    pub fn organization_id(id: Uuid) -> LinkValue {
        LinkValue {
            kind: LinkAttribute::Organization,
            canonical: format!("id|{id}"),
        }
    }

    /// What kind of attribute this is.
    pub fn kind(&self) -> LinkAttribute {
        self.kind
    }

    /// The normalized value. Personal data: only for deriving another keyed value from the same
    /// normalization (an end customer's identity key), never for a log or the store.
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    fn new(kind: LinkAttribute, canonical: String) -> Option<LinkValue> {
        (!canonical.is_empty()).then_some(LinkValue { kind, canonical })
    }
}

impl fmt::Debug for LinkValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkValue({}, ..)", self.kind.as_str())
    }
}

/// A short code word (document type, country code): NFKC, lower case, only ASCII letters,
/// digits and `_` kept (`Driving Licence` → `drivinglicence`, `driving_licence` kept).
fn word(raw: &str) -> String {
    raw.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AttributeKey {
        AttributeKey::derive(&MasterKey::from_base64(&"A".repeat(43)).unwrap())
    }

    fn same(a: Option<LinkValue>, b: Option<LinkValue>) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b);
        assert_eq!(key().hash(&a), key().hash(&b));
    }

    #[test]
    fn names_and_numbers_normalize() {
        same(
            LinkValue::beneficial_owner("  Astrid   BERGLUND ", "1986-04-12"),
            LinkValue::beneficial_owner("Berglund, Dr. Astrid", " 1986-04-12"),
        );
        // NFKC: full-width letters are the plain ones.
        same(
            LinkValue::beneficial_owner("Ａｓｔｒｉｄ Berglund", "1986-04-12"),
            LinkValue::beneficial_owner("astrid berglund", "1986-04-12"),
        );
        same(
            LinkValue::id_document("Passport", "se", "ab-123 456"),
            LinkValue::id_document(" passport ", "SE", "AB123456"),
        );
        same(
            LinkValue::organization_registration("gb", "0123 4567"),
            LinkValue::organization_registration("GB", "01234567"),
        );
        same(
            LinkValue::payment_fingerprint(" pm_fp_Xt5E\tWLL "),
            LinkValue::payment_fingerprint("pm_fp_Xt5EWLL"),
        );
    }

    #[test]
    fn different_values_differ() {
        let k = key();
        let h = |v: Option<LinkValue>| k.hash(&v.unwrap());
        assert_ne!(
            h(LinkValue::beneficial_owner("Astrid Berglund", "1986-04-12")),
            h(LinkValue::beneficial_owner("Astrid Berglund", "1986-04-13"))
        );
        assert_ne!(
            h(LinkValue::payment_fingerprint("Xt5EWLL")),
            h(LinkValue::payment_fingerprint("xt5ewll")),
            "fingerprints keep their case"
        );
        assert_ne!(
            h(LinkValue::id_document("passport", "SE", "AB1")),
            h(LinkValue::id_document("national_id", "SE", "AB1"))
        );
        // The kind separates domains: the same text as a fingerprint and as a registration.
        let org = LinkValue::organization_id(Uuid::nil());
        let fp = LinkValue::payment_fingerprint(&format!("id|{}", Uuid::nil())).unwrap();
        assert_ne!(k.hash(&org), k.hash(&fp));
    }

    #[test]
    fn incomplete_values_are_none() {
        assert!(LinkValue::beneficial_owner("", "1986-04-12").is_none());
        assert!(LinkValue::beneficial_owner("Astrid", "").is_none());
        assert!(LinkValue::beneficial_owner("Astrid", "12/04/1986").is_none());
        for placeholder in ["0000-00-00", "----------", "1986-02-30", "1986-13-01"] {
            assert!(
                LinkValue::beneficial_owner("Astrid", placeholder).is_none(),
                "{placeholder}"
            );
        }
        assert!(LinkValue::id_document("passport", "", "AB1").is_none());
        assert!(LinkValue::id_document("passport", "SE", " - ").is_none());
        assert!(LinkValue::organization_registration("GB", "").is_none());
        assert!(LinkValue::payment_fingerprint(" \t").is_none());
    }

    #[test]
    fn the_hash_is_keyed_hmac_sha256() {
        use hmac::{Hmac, KeyInit, Mac as _};
        use sha2::Sha256;
        let master = MasterKey::generate().unwrap();
        let k = AttributeKey::derive(&master);
        let v = LinkValue::payment_fingerprint("card-1").unwrap();
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&master.derive_subkey(KEY_LABEL)).unwrap();
        mac.update(b"payment_fingerprint\0card-1");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(k.hash(&v).as_bytes(), &expected);
        // Not the unkeyed SHA-256, and another master key gives another hash.
        use sha2::Digest as _;
        let plain: [u8; 32] = Sha256::digest(b"payment_fingerprint\0card-1").into();
        assert_ne!(k.hash(&v).as_bytes(), &plain);
        let other = AttributeKey::derive(&MasterKey::generate().unwrap());
        assert_ne!(k.hash(&v), other.hash(&v));
    }

    #[test]
    fn debug_shows_no_value_and_no_key() {
        let v = LinkValue::payment_fingerprint("secret-card").unwrap();
        assert_eq!(format!("{v:?}"), "LinkValue(payment_fingerprint, ..)");
        assert_eq!(format!("{:?}", key()), "AttributeKey(KeyedHasher(..))");
    }
}

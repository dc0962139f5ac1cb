//! The identity keys of an end customer: what makes two registrations by one reseller the same
//! person or company, as keyed hashes — the only form in which they reach the store
//! (`end_customer_identities`, unique per reseller and key).
//!
//! A person has two keys, either of which makes a second registration the same end customer:
//! name, date of birth and nationality (what [`Person::same_identity`] compares, but normalized
//! like the linking attributes: `Berglund, Astrid` is `Astrid BERGLUND`), and the identity
//! document (type, issuing country, number). An organization has one: its registration
//! (jurisdiction and company registration number). Its representative and beneficial owners are
//! not the organization (one person owns several companies) and are left to linking.
//!
//! The hash is HMAC-SHA256 under its own subkey of the master key, over the key's kind and its
//! normalized value: a stolen database cannot be matched against a dictionary of identities
//! without the master key, and these hashes never equal the linking attributes' ones.

use crate::crypto::{KeyedHasher, MasterKey};
use crate::ledger::LinkValue;
use crate::verification::payload::{ApplicationPayload, Person};

/// HKDF label of the identity-key hasher. Changing it re-keys every stored key.
const KEY_LABEL: &[u8] = b"computegate/resellers/end-customer-identity/v1";

/// The keyed hash of one identity key of an end customer.
pub(crate) type IdentityHash = [u8; 32];

/// The identity keys of `payload`, hashed under `key`: none for an identity too incomplete to
/// have one (validation refuses those before registration).
pub(crate) fn identity_hashes(key: &MasterKey, payload: &ApplicationPayload) -> Vec<IdentityHash> {
    let hasher = KeyedHasher::derive(key, KEY_LABEL);
    identity_keys(payload)
        .iter()
        .map(|(kind, value)| hasher.digest(kind, value))
        .collect()
}

/// The normalized identity keys of `payload`, each with its kind.
fn identity_keys(payload: &ApplicationPayload) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    if let Some(person) = &payload.individual {
        person_keys(person, &mut keys);
    }
    if let Some(org) = &payload.organization
        && let (Some(j), Some(n)) = (&org.jurisdiction, &org.registration_number)
        && let Some(v) = LinkValue::organization_registration(j, n)
    {
        keys.push(("organization", v.canonical().to_owned()));
    }
    keys
}

/// A person's keys: name, date of birth and nationality; and the identity document.
fn person_keys(person: &Person, keys: &mut Vec<(&'static str, String)>) {
    if let (Some(name), Some(dob), Some(nationality)) = (
        &person.legal_name,
        &person.date_of_birth,
        &person.nationality,
    ) && let Some(v) = LinkValue::beneficial_owner(name, dob)
    {
        let nationality = nationality.trim().to_ascii_uppercase();
        if !nationality.is_empty() {
            keys.push(("person", format!("{}|{nationality}", v.canonical())));
        }
    }
    if let Some(doc) = &person.id_document
        && let (Some(t), Some(c), Some(n)) = (&doc.doc_type, &doc.issuing_country, &doc.number)
        && let Some(v) = LinkValue::id_document(t, c, n)
    {
        keys.push(("id_document", v.canonical().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verification::payload::{ApplicantKind, IdDocument, OrganizationDetails};

    fn individual(name: &str, dob: &str, nationality: &str, passport: &str) -> ApplicationPayload {
        ApplicationPayload {
            kind: ApplicantKind::Individual,
            requested_tier: None,
            individual: Some(Person {
                legal_name: Some(name.into()),
                date_of_birth: Some(dob.into()),
                nationality: Some(nationality.into()),
                id_document: Some(IdDocument {
                    doc_type: Some("passport".into()),
                    number: Some(passport.into()),
                    issuing_country: Some(nationality.into()),
                }),
                ..Person::default()
            }),
            organization: None,
            payment_fingerprint: None,
            intended_use: None,
            expected_peak_accelerators: None,
            expected_total_flop: None,
        }
    }

    fn company(jurisdiction: &str, number: &str) -> ApplicationPayload {
        ApplicationPayload {
            kind: ApplicantKind::Organization,
            organization: Some(OrganizationDetails {
                registration_number: Some(number.into()),
                jurisdiction: Some(jurisdiction.into()),
                ..OrganizationDetails::default()
            }),
            individual: None,
            ..individual("x", "2000-01-01", "SE", "X")
        }
    }

    fn shares_a_key(a: &ApplicationPayload, b: &ApplicationPayload) -> bool {
        let key = MasterKey::from_base64(&"A".repeat(43)).unwrap();
        let b = identity_hashes(&key, b);
        identity_hashes(&key, a).iter().any(|h| b.contains(h))
    }

    #[test]
    fn one_person_spelled_differently_or_with_another_document_is_one_identity() {
        let astrid = individual("Astrid Berglund", "1986-04-12", "SE", "SE1234567");
        assert_eq!(
            identity_keys(&astrid)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            ["person", "id_document"]
        );
        // Spelling, honorifics and case of the name and of the document number.
        let respelled = individual("BERGLUND, Dr. Astrid", " 1986-04-12", "se", "se-123 4567");
        assert!(shares_a_key(&astrid, &respelled));
        // A new passport: still the same name, birth date and nationality.
        let new_passport = individual("Astrid Berglund", "1986-04-12", "SE", "SE7654321");
        assert!(shares_a_key(&astrid, &new_passport));
        // Another name on the same passport is the same document.
        let renamed = individual("Astrid Lind", "1986-04-12", "SE", "SE1234567");
        assert!(shares_a_key(&astrid, &renamed));
    }

    #[test]
    fn namesakes_of_another_birth_date_or_nationality_are_other_people() {
        let astrid = individual("Astrid Berglund", "1986-04-12", "SE", "SE1234567");
        let younger = individual("Astrid Berglund", "1990-04-12", "SE", "SE0000001");
        let norwegian = individual("Astrid Berglund", "1986-04-12", "NO", "NO0000001");
        assert!(!shares_a_key(&astrid, &younger));
        assert!(!shares_a_key(&astrid, &norwegian));
    }

    #[test]
    fn an_organization_is_its_registration_and_never_a_person() {
        assert!(shares_a_key(
            &company("GB", "0123 4567"),
            &company("gb", "01234567")
        ));
        assert!(!shares_a_key(
            &company("GB", "01234567"),
            &company("IE", "01234567")
        ));
        assert_eq!(identity_keys(&company("GB", "1")).len(), 1);
    }

    #[test]
    fn the_hash_is_keyed_by_the_master_key() {
        let astrid = individual("Astrid Berglund", "1986-04-12", "SE", "SE1234567");
        let one = identity_hashes(&MasterKey::generate().unwrap(), &astrid);
        let other = identity_hashes(&MasterKey::generate().unwrap(), &astrid);
        assert_eq!(one.len(), 2);
        assert!(one.iter().all(|h| !other.contains(h)));
    }
}

//! Automatic linking on approval: what an approved application says about who is behind the
//! account (payment fingerprint, the individual applicant or beneficial owners, identity
//! documents, the organization) becomes keyed linking attributes, and the customer is linked
//! with every account sharing one — in the approval's own transaction (see
//! [`crate::ledger::link_attributes`]), so an approved customer is never left unlinked.
//!
//! Beneficial owners are identified by name and date of birth; an individual applicant owns
//! their own account, so an individual and a company they own link. The representative of an
//! organization is not an owner (one lawyer may act for unrelated companies) and does not
//! link.

use time::OffsetDateTime;
use uuid::Uuid;

use super::VerificationError;
use super::payload::{ApplicationPayload, Person};
use crate::audit::{self, ChainTx};
use crate::crypto::MasterKey;
use crate::ledger::{AttributeKey, GroupTx, LedgerError, LinkValue};

/// Links `customer_id` by every attribute of its approved `payload` inside the caller's
/// transaction, appending one audit entry per link made. Call it after every other lock the
/// transaction needs except the audit chain's (it locks budget rows, then appends).
pub(super) async fn link_approved<T>(
    tx: &mut T,
    key: &MasterKey,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    payload: &ApplicationPayload,
    now: OffsetDateTime,
) -> Result<(), VerificationError>
where
    T: ChainTx + GroupTx,
{
    let key = AttributeKey::derive(key);
    let attributes: Vec<_> = link_values(payload, organization_id)
        .iter()
        .map(|v| (v.kind(), key.hash(v)))
        .collect();
    if attributes.is_empty() {
        return Ok(());
    }
    let (_, entries) = crate::ledger::link_attributes(tx, customer_id, &attributes, now)
        .await
        .map_err(|e| match e {
            LedgerError::Store(e) => VerificationError::Store(e),
            LedgerError::UnknownCustomer => VerificationError::NotFound,
            other => VerificationError::Linking(other),
        })?;
    for entry in &entries {
        audit::append(tx, entry).await?;
    }
    Ok(())
}

/// Every linking attribute of an application, deduplicated; incomplete ones are skipped.
pub(super) fn link_values(
    payload: &ApplicationPayload,
    organization_id: Option<Uuid>,
) -> Vec<LinkValue> {
    let mut out = Vec::new();
    if let Some(fp) = payload.payment_fingerprint.as_deref() {
        out.extend(LinkValue::payment_fingerprint(fp));
    }
    if let Some(person) = &payload.individual {
        owner(person, &mut out);
    }
    if let Some(org) = &payload.organization {
        if let (Some(j), Some(n)) = (&org.jurisdiction, &org.registration_number) {
            out.extend(LinkValue::organization_registration(j, n));
        }
        for bo in &org.beneficial_owners {
            owner(&bo.person, &mut out);
        }
    }
    out.extend(organization_id.map(LinkValue::organization_id));
    let mut unique: Vec<LinkValue> = Vec::with_capacity(out.len());
    for v in out {
        if !unique.contains(&v) {
            unique.push(v);
        }
    }
    unique
}

/// A person who owns the account: by name and date of birth, and by identity document.
fn owner(person: &Person, out: &mut Vec<LinkValue>) {
    if let (Some(name), Some(dob)) = (&person.legal_name, &person.date_of_birth) {
        out.extend(LinkValue::beneficial_owner(name, dob));
    }
    if let Some(doc) = &person.id_document
        && let (Some(t), Some(c), Some(n)) = (&doc.doc_type, &doc.issuing_country, &doc.number)
    {
        out.extend(LinkValue::id_document(t, c, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LinkAttribute;
    use crate::verification::payload::{
        ApplicantKind, BeneficialOwner, IdDocument, OrganizationDetails,
    };

    fn person(name: &str, dob: &str, passport: Option<&str>) -> Person {
        Person {
            legal_name: Some(name.into()),
            date_of_birth: Some(dob.into()),
            id_document: passport.map(|n| IdDocument {
                doc_type: Some("passport".into()),
                number: Some(n.into()),
                issuing_country: Some("SE".into()),
            }),
            ..Person::default()
        }
    }

    fn payload(kind: ApplicantKind) -> ApplicationPayload {
        ApplicationPayload {
            kind,
            requested_tier: None,
            individual: None,
            organization: None,
            payment_fingerprint: None,
            intended_use: None,
            expected_peak_accelerators: None,
            expected_total_flop: None,
        }
    }

    fn kinds(values: &[LinkValue]) -> Vec<LinkAttribute> {
        values.iter().map(LinkValue::kind).collect()
    }

    #[test]
    fn an_individual_links_by_card_self_and_passport() {
        let mut p = payload(ApplicantKind::Individual);
        p.payment_fingerprint = Some("pm_fp_1".into());
        p.individual = Some(person("Astrid Berglund", "1986-04-12", Some("SE1234567")));
        let v = link_values(&p, None);
        assert_eq!(
            kinds(&v),
            [
                LinkAttribute::PaymentFingerprint,
                LinkAttribute::BeneficialOwner,
                LinkAttribute::IdDocument
            ]
        );
        // The owner of an individual account is the same value as the same person owning a
        // company, so the two accounts link.
        let mut org = payload(ApplicantKind::Organization);
        org.organization = Some(OrganizationDetails {
            beneficial_owners: vec![BeneficialOwner {
                person: person("BERGLUND, Astrid", "1986-04-12", None),
                ownership_percent: Some(60.0),
            }],
            ..OrganizationDetails::default()
        });
        assert!(link_values(&org, None).contains(&v[1]));
    }

    #[test]
    fn an_organization_links_by_registration_owners_and_id_but_not_representative() {
        let mut p = payload(ApplicantKind::Organization);
        let owners = ["Ada Lovelace", "Alan Turing", "Ada  Lovelace"];
        p.organization = Some(OrganizationDetails {
            registration_number: Some("0123-4567".into()),
            jurisdiction: Some("GB".into()),
            representative: Some(person("Rep Resentative", "1970-01-01", Some("X1"))),
            beneficial_owners: owners
                .iter()
                .map(|n| BeneficialOwner {
                    person: person(n, "1815-12-10", None),
                    ownership_percent: Some(30.0),
                })
                .collect(),
            ..OrganizationDetails::default()
        });
        let org = Uuid::now_v7();
        let v = link_values(&p, Some(org));
        assert_eq!(
            kinds(&v),
            [
                LinkAttribute::Organization,
                LinkAttribute::BeneficialOwner,
                LinkAttribute::BeneficialOwner,
                LinkAttribute::Organization
            ],
            "duplicates dropped, the representative ignored"
        );
        assert!(v.contains(&LinkValue::organization_id(org)));
    }

    #[test]
    fn an_empty_application_has_no_attributes() {
        assert!(link_values(&payload(ApplicantKind::Individual), None).is_empty());
    }
}

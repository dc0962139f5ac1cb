//! The organization a KYB approval establishes: approving an organization application creates
//! the applicant's organization (named by the application's legal name) and makes the
//! applicant its owner — or, for a re-verification, keeps the organization the applicant
//! already has and records them as its owner. Runs inside the decision's transaction, before
//! linking (which links by the organization id); the audit record it returns is appended after
//! the links, with the decision's own records.

use time::OffsetDateTime;
use uuid::Uuid;

use super::VerificationError;
use super::payload::{ApplicantKind, ApplicationPayload};
use crate::accounts::membership::MemberRole;
use crate::accounts::{Actor, MAX_ORGANIZATION_NAME_CHARS, MembershipTx};
use crate::audit::{AuditAction, AuditEntry};

/// Name of an organization whose application carries no legal name (validation requires one,
/// so only older rows can lack it).
const UNNAMED: &str = "unnamed organization";

/// For an approved organization application, the organization the applicant now owns (created
/// or kept) and the audit entry to append; otherwise the applicant's organization unchanged
/// and no entry.
pub(super) async fn establish<T: MembershipTx>(
    tx: &mut T,
    customer_id: Uuid,
    current: Option<Uuid>,
    payload: &ApplicationPayload,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<(Option<Uuid>, Option<AuditEntry>), VerificationError> {
    if payload.kind != ApplicantKind::Organization {
        return Ok((current, None));
    }
    let (organization, action) = match current {
        Some(org) => (org, AuditAction::OrganizationLinked),
        None => {
            let name = organization_name(payload);
            let org = tx.insert_organization(&name, now).await?;
            (org, AuditAction::OrganizationCreated)
        }
    };
    tx.join(organization, customer_id, MemberRole::Owner, now)
        .await?;
    let entry = AuditEntry::new(now, actor, action, format!("organization:{organization}"))
        .with_detail(serde_json::json!({ "customer_id": customer_id, "role": MemberRole::Owner }));
    Ok((Some(organization), Some(entry)))
}

/// The organization's name: its legal name, trimmed and cut to the longest name stored.
fn organization_name(payload: &ApplicationPayload) -> String {
    let name = payload
        .organization
        .as_ref()
        .and_then(|o| o.legal_name.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(UNNAMED);
    name.chars().take(MAX_ORGANIZATION_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verification::payload::OrganizationDetails;

    #[test]
    fn the_name_is_the_trimmed_legal_name_or_a_placeholder() {
        let mut p: ApplicationPayload =
            serde_json::from_value(serde_json::json!({ "kind": "organization" })).unwrap();
        assert_eq!(organization_name(&p), UNNAMED);
        p.organization = Some(OrganizationDetails {
            legal_name: Some("  Helios Compute AB ".into()),
            ..OrganizationDetails::default()
        });
        assert_eq!(organization_name(&p), "Helios Compute AB");
        p.organization = Some(OrganizationDetails {
            legal_name: Some("x".repeat(300)),
            ..OrganizationDetails::default()
        });
        assert_eq!(
            organization_name(&p).chars().count(),
            MAX_ORGANIZATION_NAME_CHARS
        );
    }
}

//! What an application still needs, in the customer's terms: the fields a submission would
//! refuse (the payload's own submit-mode validation, so the list cannot drift from the check)
//! and the evidence the requested tier's approval needs (the policy's `requires`), split into
//! what the customer supplies (documents) and what is checked by us or the identity provider.
//! Also the policy's tiers a customer of a given kind can climb to.

use std::sync::Arc;

use computegate_kyc::verification::{
    ApplicantKind, ApplicationView, DocumentType, FieldError, ValidationMode, tier_fits,
};
use computegate_policy::{Evidence, Policy, Tier};
use time::Date;

use super::Verification;

/// What an application still needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Outstanding {
    /// Fields that are missing or invalid for a submission, in form order.
    pub fields: Vec<FieldError>,
    /// Evidence the customer must upload (a document kind the tier requires, not on file).
    pub documents: Vec<Evidence>,
    /// Evidence checked by us or the identity-verification provider, not by uploading.
    pub checks: Vec<Evidence>,
}

// === impl Outstanding ===

impl Outstanding {
    /// Whether nothing the customer can supply is missing.
    pub fn is_complete(&self) -> bool {
        self.fields.is_empty() && self.documents.is_empty()
    }
}

/// What `view` still needs when its tier requires `required` (pure; `today` dates ages).
pub fn outstanding(view: &ApplicationView, required: &[Evidence], today: Date) -> Outstanding {
    // A payload retention withdrew has no fields left to complete (its application ended).
    let fields = (view.payload.as_ref())
        .map(|p| p.validate(ValidationMode::Submit, today))
        .unwrap_or_default();
    let mut documents = Vec::new();
    let mut checks = Vec::new();
    for &evidence in required {
        match evidence {
            Evidence::CompliancePlan => {
                let on_file =
                    (view.documents.iter()).any(|d| d.doc_type == DocumentType::CompliancePlan);
                if !on_file {
                    documents.push(evidence);
                }
            }
            Evidence::IdvVerified => checks.push(evidence),
        }
    }
    Outstanding {
        fields,
        documents,
        checks,
    }
}

/// The tiers of `policy` above `current` that an applicant of `kind` may apply for, lowest
/// first.
pub fn tiers_above<'p>(policy: &'p Policy, current: &str, kind: ApplicantKind) -> Vec<&'p Tier> {
    let rank = policy.tier_rank(current).unwrap_or(0);
    (policy.tiers().iter().enumerate())
        .filter(|(i, t)| *i > rank && tier_fits(kind, &t.name))
        .map(|(_, t)| t)
        .collect()
}

// === impl Verification ===

impl Verification {
    /// The policy in force (tiers, caps, thresholds), for pages that show them.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.current()
    }

    /// What `view` still needs for its requested tier (see [`outstanding`]).
    pub fn outstanding(&self, view: &ApplicationView, today: Date) -> Outstanding {
        let required = (view.payload.as_ref())
            .and_then(|p| p.requested_tier.as_deref())
            .or(view.requested_tier.as_deref())
            .map(|t| self.required_evidence(t))
            .unwrap_or_default();
        outstanding(view, &required, today)
    }
}

#[cfg(test)]
mod tests {
    use computegate_kyc::verification::{ApplicationPayload, ApplicationStatus};
    use time::OffsetDateTime;
    use time::macros::date;
    use uuid::Uuid;

    use super::*;

    fn view(kind: &str, tier: &str) -> ApplicationView {
        let payload: ApplicationPayload =
            serde_json::from_value(serde_json::json!({"kind": kind, "requested_tier": tier}))
                .unwrap();
        ApplicationView {
            id: Uuid::nil(),
            kind: payload.kind,
            status: ApplicationStatus::Draft,
            requested_tier: Some(tier.into()),
            granted_tier: None,
            expires_at: None,
            reason: None,
            payload: Some(payload),
            identity_purged_at: None,
            documents: Vec::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            submitted_at: None,
        }
    }

    #[test]
    fn a_payload_retention_withdrew_has_no_fields_to_complete() {
        let mut v = view("individual", "identity_verified");
        v.payload = None;
        v.identity_purged_at = Some(OffsetDateTime::UNIX_EPOCH);
        let out = outstanding(&v, &[Evidence::IdvVerified], date!(2026 - 12 - 07));
        assert!(out.fields.is_empty(), "{:?}", out.fields);
        assert_eq!(out.checks, vec![Evidence::IdvVerified]);
    }

    #[test]
    fn an_empty_draft_lists_every_missing_field_and_document() {
        let v = view("organization", "validated_end_user");
        let required = [Evidence::IdvVerified, Evidence::CompliancePlan];
        let out = outstanding(&v, &required, date!(2026 - 12 - 07));
        let fields: Vec<&str> = out.fields.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"organization"), "{fields:?}");
        assert!(fields.contains(&"intended_use"), "{fields:?}");
        assert_eq!(out.documents, vec![Evidence::CompliancePlan]);
        assert_eq!(out.checks, vec![Evidence::IdvVerified]);
        assert!(!out.is_complete());
    }

    #[test]
    fn the_ladder_skips_tiers_of_the_other_kind() {
        let policy = crate::policy_file::load(None, &mut Default::default())
            .unwrap()
            .0
            .current();
        let names = |kind| {
            tiers_above(&policy, "unverified", kind)
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ApplicantKind::Individual), vec!["identity_verified"]);
        assert_eq!(
            names(ApplicantKind::Organization),
            vec!["organization_verified", "validated_end_user"]
        );
    }
}

//! Resellers and their end customers, in the store (docs/resellers.md).
//!
//! A reseller is a KYB-verified organization staff marked as one (`resellers`). It registers its
//! end customers with the same identity document as an application; each is screened at once and
//! becomes an account row of its own (`customers`, no password, never in an organization) beside
//! its `end_customers` row (whose it is, its screening, its identity sealed under the master key
//! bound to its id), so the ledger meters, thresholds and reports an end customer exactly like
//! one of our own customers — linked, like an approved customer, with every account sharing an
//! identity document, beneficial owner or payment fingerprint — and a screening hit suspends
//! that account alone.
//!
//! Every job of a reseller names an end customer; the refusals for a missing, unknown or
//! uncleared one are kept (`reseller_refusals`) and, with the reseller's other job decisions
//! (counted from `ledger_jobs`), feed the pass-through rule of the policy. A reseller the rule
//! flags waits for staff; staff may suspend it (none of its jobs run) or resume it. Each change
//! writes its audit record in the same transaction.
//!
//! One identity is one end customer of a reseller: its keyed identity keys (`identity`) are
//! unique per reseller in the store, and registering it again answers with the end customer
//! already registered, so no one's usage is split across ids to stay under a cap.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::payload::{ApplicantKind, ApplicationPayload, FieldError, ValidationMode};
use super::{ScreeningDecision, VerificationError};
use crate::accounts::Tier;
use crate::audit::AuditAction;
use crate::names::stored_enum;
use crate::store::StoreError;

/// A reseller's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResellerStatus {
    /// Its jobs run for its cleared end customers.
    Active,
    /// The pass-through rule found too many of its jobs refused for their end customer; its
    /// jobs still run while staff review it.
    Flagged,
    /// Staff suspended it: none of its jobs run.
    Suspended,
}

stored_enum!(ResellerStatus {
    Active => "active",
    Flagged => "flagged",
    Suspended => "suspended",
});

/// How an end customer's screening came out at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCustomerScreening {
    /// No party near a listed one: its jobs may run.
    Cleared,
    /// A party scored in the review band (or no list was loaded): its jobs wait for staff.
    Review,
    /// A party is a denied-party hit: the end customer is suspended.
    Refused,
}

stored_enum!(EndCustomerScreening {
    Cleared => "cleared",
    Review => "review",
    Refused => "refused",
});

/// What staff do to a reseller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResellerAction {
    /// Refuse all its jobs.
    Suspend,
    /// Back to `active` (from `flagged` after a review, or from `suspended`).
    Resume,
}

/// A staff decision on an end customer whose screening is in the review band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCustomerDecision {
    /// Not the listed party: its jobs may run.
    Clear,
    /// The listed party: refused, and its account suspended (a confirmed denied party).
    Refuse,
}

/// An end customer as staff see it: with its identity and its screening.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaffEndCustomer {
    /// What its reseller sees.
    #[serde(flatten)]
    pub end_customer: EndCustomer,
    /// The identity as registered; `None` once retention withdrew it (its account closed
    /// long enough ago, see `identity_purged_at`).
    pub identity: Option<ApplicationPayload>,
    /// When retention withdrew the identity (docs/retention.md).
    #[serde(with = "time::serde::rfc3339::option")]
    pub identity_purged_at: Option<OffsetDateTime>,
    /// The list version it was screened against (`None`: no list was imported then).
    pub screening_list_version: Option<String>,
    /// The highest score among its parties.
    pub screening_score: Option<f64>,
    /// The end customers of other resellers registered with one of its identity keys (the same
    /// person or company buying through several resellers), oldest first.
    pub same_identity: Vec<SameIdentity>,
}

/// Another reseller's end customer with the same identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SameIdentity {
    /// That end customer.
    pub id: Uuid,
    /// Its reseller.
    pub reseller_id: Uuid,
}

/// What registering an end customer answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    /// The end customer: the new one, or the one the reseller registered with this identity
    /// before (a person or company is one end customer of a reseller, so its metering and
    /// thresholds are never split across ids).
    #[serde(flatten)]
    pub end_customer: EndCustomer,
    /// The reseller had registered this identity already: nothing was written, and the answer is
    /// that end customer as it stands (screening, suspension) — the identity sent is not stored.
    pub already_registered: bool,
}

/// A reseller as staff see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reseller {
    /// The organization.
    pub organization_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its standing.
    pub status: ResellerStatus,
    /// When staff marked it.
    #[serde(with = "time::serde::rfc3339")]
    pub marked_at: OffsetDateTime,
    /// When the pass-through rule last flagged it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub flagged_at: Option<OffsetDateTime>,
    /// The refused share that flagged it.
    pub refused_share: Option<f64>,
    /// When its standing last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub status_at: OffsetDateTime,
}

/// An end customer as its reseller (and staff) see it: never its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndCustomer {
    /// Its id: the value of `X-Computegate-End-Customer`, and its account id in the ledger.
    pub id: Uuid,
    /// The reseller's organization.
    pub reseller_id: Uuid,
    /// Individual or organization.
    pub kind: ApplicantKind,
    /// How its screening came out.
    pub status: EndCustomerScreening,
    /// Its account is suspended (a screening hit, or staff): its jobs are refused.
    pub suspended: bool,
    /// Registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The screening an end customer's registration records.
#[derive(Debug, Clone, PartialEq)]
pub struct EndCustomerScreeningResult {
    /// The list version screened against; `None` when no list was ever imported (the end
    /// customer is then `review`).
    pub list_version: Option<String>,
    /// The worst decision among its parties.
    pub decision: ScreeningDecision,
    /// The highest score among its parties.
    pub score: f64,
}

/// A new end customer.
#[derive(Debug, Clone)]
pub struct NewEndCustomer<'a> {
    /// The reseller's organization.
    pub reseller_id: Uuid,
    /// The identity, validated like a submitted application.
    pub payload: &'a ApplicationPayload,
    /// Its screening.
    pub screening: &'a EndCustomerScreeningResult,
    /// The tier recorded on its account (the reseller's).
    pub tier: &'a Tier,
}

/// What an admission needs to know about a reseller's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCustomerStanding {
    /// Not one of the reseller's end customers.
    Unknown,
    /// Its screening is not cleared or its account is not active.
    NotCleared,
    /// It may run jobs.
    Cleared,
}

/// A reseller's job decisions over a window, for the pass-through rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusalCounts {
    /// Jobs refused for their end customer.
    pub refused: u64,
    /// Every decision: those refusals plus the ledger's decisions for its end customers.
    pub total: u64,
}

/// Why a reseller operation failed. Exhaustive: the API maps each variant.
#[derive(Debug, thiserror::Error)]
pub enum ResellerError {
    /// The end customer's identity has bad fields (all of them listed).
    #[error("invalid end customer ({} field errors)", .0.len())]
    Invalid(Vec<FieldError>),
    /// No such organization, reseller or end customer — or not the caller's.
    #[error("not found")]
    NotFound,
    /// The caller's organization is not a reseller (or the caller is in none).
    #[error("the caller's organization is not a reseller")]
    NotReseller,
    /// Only a KYB-verified organization may be marked as reseller.
    #[error("the organization is not KYB-verified")]
    NotVerified,
    /// The organization is a reseller already.
    #[error("the organization is a reseller already")]
    AlreadyReseller,
    /// The reseller is suspended: it may not register end customers.
    #[error("the reseller is suspended")]
    Suspended,
    /// Only an end customer in the review band can be decided.
    #[error("the end customer's screening is {0}, not under review")]
    NotUnderReview(EndCustomerScreening),
    /// The action does not apply to the reseller's standing (resuming an active one).
    #[error("the reseller is {0}; nothing to change")]
    Unchanged(ResellerStatus),
    /// Refused by the staff guard or the verification store.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// The denied-party list could not be loaded to screen the end customer.
    #[error(transparent)]
    Screening(#[from] crate::screening::ScreeningError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(ResellerError);

// === impl ResellerError ===

impl ResellerError {
    /// Whether the caller is at fault (4xx) rather than us (5xx).
    pub fn is_client_error(&self) -> bool {
        match self {
            ResellerError::Store(_) | ResellerError::Screening(_) => false,
            ResellerError::Verification(e) => e.is_client_error(),
            _ => true,
        }
    }
}

// === impl EndCustomerScreening ===

impl EndCustomerScreening {
    /// The standing a screening gives: a hit refuses, the review band waits for staff, and so
    /// does a registration screened against no list at all.
    pub fn of(result: &EndCustomerScreeningResult) -> EndCustomerScreening {
        match (result.list_version.is_some(), result.decision) {
            (false, _) | (true, ScreeningDecision::Review) => EndCustomerScreening::Review,
            (true, ScreeningDecision::Hit) => EndCustomerScreening::Refused,
            (true, ScreeningDecision::Clear) => EndCustomerScreening::Cleared,
        }
    }
}

// === impl ResellerAction ===

impl ResellerAction {
    /// The standing after the action, or why it does not apply to `from`.
    pub fn apply(self, from: ResellerStatus) -> Result<ResellerStatus, ResellerError> {
        match (self, from) {
            (ResellerAction::Suspend, ResellerStatus::Suspended)
            | (ResellerAction::Resume, ResellerStatus::Active) => {
                Err(ResellerError::Unchanged(from))
            }
            (ResellerAction::Suspend, _) => Ok(ResellerStatus::Suspended),
            (ResellerAction::Resume, _) => Ok(ResellerStatus::Active),
        }
    }

    fn audit_action(self) -> AuditAction {
        match self {
            ResellerAction::Suspend => AuditAction::ResellerSuspended,
            ResellerAction::Resume => AuditAction::ResellerResumed,
        }
    }
}

/// Validates an end customer's identity like a submitted application (every bad field at once),
/// except that it applies for no tier: an end customer runs under its reseller's, so a
/// `requested_tier` is refused rather than ignored.
pub fn validate_identity(
    payload: &ApplicationPayload,
    now: OffsetDateTime,
) -> Result<(), ResellerError> {
    let mut errors: Vec<FieldError> = payload
        .validate(ValidationMode::Submit, now.date())
        .into_iter()
        .filter(|e| e.field != TIER_FIELD)
        .collect();
    if payload.requested_tier.is_some() {
        errors.insert(
            0,
            FieldError {
                field: TIER_FIELD.into(),
                code: "not_allowed",
                problem: "an end customer runs under its reseller's tier".into(),
            },
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ResellerError::Invalid(errors))
    }
}

/// The application field an end customer's identity has no use for.
const TIER_FIELD: &str = "requested_tier";

mod identity;
mod store;

#[cfg(test)]
mod tests;

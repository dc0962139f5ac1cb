//! Verification (KYC / KYB): the path a customer walks to a higher tier, and the tools staff
//! use to decide.
//!
//! Pure parts (no I/O, time passed in):
//! - [`payload`]: the application document and its validation (every bad field at once);
//!   [`countries`]: the ISO 3166-1 alpha-2 list.
//! - [`state`]: the typed state machine; approval needs a [`state::ScreeningCleared`] proof,
//!   the top tier two distinct senior reviewers and a compliance plan.
//! - [`risk`]: explainable risk score and jurisdiction rules (policy data).
//! - [`webhooks`]: IDV provider signature schemes and payload mapping; [`onfido`]: what
//!   Onfido's notices and fetched resources mean (its webhooks carry no result).
//! - [`documents`]: magic-byte sniffing and per-document envelope encryption.
//!
//! Store operations (`impl VerificationStore`, reached as `store.verification()`, in
//! `applications`, `review`, [`documents`], `idv_fetches`, `jurisdictions` and `suspension`) run
//! each transition in one transaction together with its audit record (appended last, see
//! [`crate::audit`]). Personal data — the application payload, screening details, risk factors,
//! staff reasons and documents — is sealed with the master key and bound to the row (AAD =
//! application or document id); only status, kind, tiers, the primary country, risk score and
//! screening decision are clear columns, for queues and filters. Concurrent edits of one
//! application are caught by a version column ([`VerificationError::ConcurrentUpdate`]).
//!
//! Customers only ever see their own applications: any other id is
//! [`VerificationError::NotFound`], never "forbidden". Staff reads of an application or a
//! document are audited.

pub mod countries;
pub mod documents;
pub mod onfido;
pub mod payload;
pub mod risk;
pub mod state;
pub mod webhooks;

mod applications;
mod conflict;
mod idv_fetches;
mod jurisdictions;
mod kyb;
mod linking;
mod records;
mod resellers;
mod review;
mod suspension;

use std::net::IpAddr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{Actor, Tier};
use crate::crypto::CryptoError;
use crate::store::StoreError;

pub use self::applications::{ScreeningRecorded, screening_subjects};
pub use self::documents::{
    ContentType, DocumentError, DocumentLimits, DocumentMeta, DocumentType, DocumentUpload,
    StaffDocument,
};
pub use self::idv_fetches::{IdvFetch, IdvFetchCounts};
pub use self::payload::{ApplicantKind, ApplicationPayload, FieldError, ValidationMode, tier_fits};
pub use self::resellers::{
    EndCustomer, EndCustomerDecision, EndCustomerScreening, EndCustomerScreeningResult,
    EndCustomerStanding, NewEndCustomer, RefusalCounts, Registration, Reseller, ResellerAction,
    ResellerError, ResellerStatus, SameIdentity, StaffEndCustomer, validate_identity,
};
pub use self::review::{
    ApplicationStats, DecisionOutcome, DecisionRequest, MAX_QUEUE_PAGE, QueueFilter, QueueItem,
    StaffDecision,
};
pub use self::risk::{JurisdictionRules, RiskAssessment, RiskFactor};
pub use self::state::{
    ApplicationStatus, Approval, ApprovalEvidence, ManualCheck, ScreeningCleared,
    ScreeningDecision, ScreeningOutcome, TransitionError,
};
pub use self::suspension::{SUSPENDED_ACTION, SuspensionReason};
pub use self::webhooks::{IdvOutcome, IdvProvider};

/// A staff member calling a review operation. Role and email are read from the store; the
/// organizations the staff member is tied to come from the caller (the directory that knows
/// them), for conflict-of-interest checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffCaller {
    /// Staff user id (from the staff token).
    pub staff_id: Uuid,
    /// Organizations the staff member belongs to or is otherwise tied to.
    pub organization_ids: Vec<Uuid>,
    /// Client address.
    pub client_ip: Option<IpAddr>,
}

/// A customer calling an application operation on their own behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerCaller {
    /// The customer (from the access token or API key).
    pub customer_id: Uuid,
    /// Client address.
    pub client_ip: Option<IpAddr>,
}

/// The screening of one party of an application (the applicant, the organization, the
/// representative or a beneficial owner), as the screening engine reported it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartyScreening {
    /// `applicant`, `organization`, `representative`, `beneficial_owner[0]`, …
    pub role: String,
    /// Best score, `[0, 1]`.
    pub score: f64,
    /// The engine's decision for this party.
    pub decision: ScreeningDecision,
    /// The matched entry and per-feature breakdown (the engine's explanation), if any.
    pub best: Option<serde_json::Value>,
}

/// What screening found for a whole application.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScreeningSummary {
    /// The list version screened against.
    pub list_version: String,
    /// Every screened party.
    pub parties: Vec<PartyScreening>,
}

/// A party the screening engine must check, decrypted for it by
/// `VerificationStore::begin_application_screening`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScreeningSubject {
    /// See [`PartyScreening::role`].
    pub role: String,
    /// `person` or `organization`.
    pub entity: &'static str,
    /// Name as entered.
    pub name: String,
    /// `YYYY-MM-DD`, people only.
    pub date_of_birth: Option<String>,
    /// Nationality, residence, jurisdiction or headquarters countries.
    pub countries: Vec<String>,
    /// Document or registration numbers.
    pub identifiers: Vec<String>,
}

/// An application as its owner sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApplicationView {
    /// Id.
    pub id: Uuid,
    /// Individual or organization.
    pub kind: ApplicantKind,
    /// Status.
    pub status: ApplicationStatus,
    /// The tier applied for.
    pub requested_tier: Option<String>,
    /// The tier granted, once approved.
    pub granted_tier: Option<Tier>,
    /// When re-verification is due.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Staff's reason, when more information was requested or the application was rejected.
    pub reason: Option<String>,
    /// The application as entered; `None` once retention withdrew it (see
    /// [`ApplicationView::identity_purged_at`]).
    pub payload: Option<ApplicationPayload>,
    /// When retention withdrew the payload of this ended application (docs/retention.md).
    #[serde(with = "time::serde::rfc3339::option")]
    pub identity_purged_at: Option<OffsetDateTime>,
    /// Uploaded documents (metadata only).
    pub documents: Vec<DocumentMeta>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Last submission.
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
}

/// An application as staff see it: everything, decrypted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StaffApplicationView {
    /// What the owner sees.
    #[serde(flatten)]
    pub application: ApplicationView,
    /// The applicant.
    pub customer_id: Uuid,
    /// The applicant's email.
    pub customer_email: String,
    /// The applicant's organization.
    pub organization_id: Option<Uuid>,
    /// The screening the review rests on.
    pub screening: Option<ScreeningOutcome>,
    /// Per-party screening breakdown.
    pub screening_parties: Vec<PartyScreening>,
    /// Risk score and factors.
    pub risk: Option<RiskAssessment>,
    /// Latest IDV outcome.
    pub idv_outcome: Option<IdvOutcome>,
    /// Approvals recorded so far (top tier: one before the second arrives).
    pub approvals: Vec<Approval>,
    /// Who has claimed the case.
    pub claimed_by: Option<Uuid>,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// Whether an IDV event was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdvRecorded {
    /// Stored and applied to the application.
    Recorded,
    /// Seen before (same provider and event id); nothing stored.
    Duplicate,
}

/// Why a verification operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerificationError {
    /// The application has bad fields (all of them listed).
    #[error("invalid application ({} field errors)", .0.len())]
    Invalid(Vec<FieldError>),
    /// No such application or document — or it belongs to someone else.
    #[error("not found")]
    NotFound,
    /// The state machine refused.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The customer already has an application on its way to a decision: this one.
    #[error("application {id} is already in progress ({status})")]
    ApplicationInProgress {
        /// The open application.
        id: Uuid,
        /// Where it stands.
        status: ApplicationStatus,
    },
    /// Only drafts and applications waiting for more information can be edited.
    #[error("application cannot be edited in status {0}")]
    NotEditable(ApplicationStatus),
    /// The staff user does not exist or is disabled.
    #[error("staff user not found or disabled")]
    StaffUnknown,
    /// The staff role does not allow this.
    #[error("staff role does not allow this")]
    RoleNotPermitted,
    /// Another staff member has claimed the application.
    #[error("application is claimed by another reviewer")]
    ClaimedByOther,
    /// The application changed since it was read; retry.
    #[error("application was changed concurrently; retry")]
    ConcurrentUpdate,
    /// A document was refused.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// Retention withdrew the application's payload (the applicant's form data) on `at`: it
    /// ended long enough ago that there is nothing left to read, screen or edit.
    #[error("the application's identity was purged under retention on {}", .at.date())]
    IdentityPurged {
        /// When the payload was withdrawn.
        at: OffsetDateTime,
    },
    /// Sealing or opening personal data failed (wrong master key or tampered row).
    #[error("encrypted record could not be processed")]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Linking the approved customer with accounts sharing its attributes failed (the store
    /// failures are [`VerificationError::Store`]).
    #[error("linking the approved customer failed")]
    Linking(#[source] crate::ledger::LedgerError),
}

crate::store::from_sqlx!(VerificationError);

// === impl VerificationError ===

impl VerificationError {
    /// Whether the caller is at fault (4xx) rather than us (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            VerificationError::Crypto(_)
                | VerificationError::Store(_)
                | VerificationError::Linking(_)
        )
    }
}

// === impl ApplicationView ===

impl ApplicationView {
    /// The payload, or [`VerificationError::IdentityPurged`] when retention withdrew it.
    pub fn require_payload(&self) -> Result<&ApplicationPayload, VerificationError> {
        self.payload
            .as_ref()
            .ok_or(VerificationError::IdentityPurged {
                // The store sets both at once: a view without a payload always has the date.
                at: self.identity_purged_at.unwrap_or(self.updated_at),
            })
    }
}

// === impl CustomerCaller, StaffCaller ===

impl CustomerCaller {
    /// For the audit record.
    pub fn actor(&self) -> Actor {
        Actor::customer(self.customer_id, self.client_ip)
    }
}

impl StaffCaller {
    /// For the audit record.
    pub fn actor(&self) -> Actor {
        Actor::staff(self.staff_id, self.client_ip)
    }
}

// === impl ScreeningSummary ===

impl ScreeningSummary {
    /// The worst decision among the parties (`clear` when there are none).
    pub fn decision(&self) -> ScreeningDecision {
        let rank = |d: ScreeningDecision| match d {
            ScreeningDecision::Clear => 0,
            ScreeningDecision::Review => 1,
            ScreeningDecision::Hit => 2,
        };
        self.parties
            .iter()
            .map(|p| p.decision)
            .max_by_key(|d| rank(*d))
            .unwrap_or(ScreeningDecision::Clear)
    }

    /// The highest score among the parties (0 when there are none), clamped to `[0, 1]`.
    pub fn score(&self) -> f64 {
        self.parties
            .iter()
            .map(|p| p.score)
            .fold(0.0, f64::max)
            .clamp(0.0, 1.0)
    }
}

//! The ledger's vocabulary shared by its modules: the admission request, decision and verdict,
//! totals and crossings, job status, the ledger's error, limits of accepted input, and the
//! window arithmetic. A leaf: it imports nothing from the other ledger modules, so they can all
//! use it without an import circle (`mod.rs` only declares modules and re-exports).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub(super) use computegate_policy::admission::{Crossing, Denial, DenialReason, Totals};
use computegate_policy::{LedgerLimits, ThresholdPolicy};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::Actor;
use crate::names::stored_enum;
use crate::store::StoreError;

/// Longest accepted run id, in bytes.
pub const MAX_RUN_ID_LEN: usize = 200;

/// Longest accepted usage event id, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// Largest page the list operations return.
pub const MAX_PAGE: u32 = 1000;

/// How many times an admission or usage event starts over when a linked-group change races
/// its locks.
pub(super) const MAX_ATTEMPTS: usize = 3;

/// How close (relative) a resubmitted estimate must be to an approved one to use the approval.
pub const APPROVAL_TOLERANCE: f64 = 0.01;

/// How long a review approval can be used after it was given: a job approved but never
/// resubmitted within it is held again (the circumstances the officer judged may have changed).
pub const APPROVAL_VALIDITY: time::Duration = time::Duration::days(30);

/// One job submission to admit.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    /// The submitting customer.
    pub customer_id: Uuid,
    /// The customer's organization, if any.
    pub organization_id: Option<Uuid>,
    /// The run id (namespaced per customer), 1..=[`MAX_RUN_ID_LEN`] bytes.
    pub run_id: String,
    /// The run this one fine-tunes, if declared.
    pub parent_run_id: Option<String>,
    /// The FLOP reserved: the estimate the gateway chose (hardware or declared).
    pub estimate_flop: f64,
    /// accelerators × peak × time × utilization, when computed.
    pub hardware_flop: Option<f64>,
    /// 6 · parameters · tokens, when declared.
    pub declared_flop: Option<f64>,
    /// How the estimate was made, e.g. `hardware:h100:bf16:u0.4`.
    pub basis: String,
    /// Version of the accelerator table used.
    pub table_version: String,
    /// Accelerators requested.
    pub accelerators: u32,
    /// Accelerator type, when known.
    pub accelerator_type: Option<String>,
    /// FLOP one accelerator delivers per second in the estimate (peak at the job's precision ×
    /// the job's utilization), when computed: measured accelerator-seconds are charged at it
    /// (see [`UsageEvent::flop_per_accelerator_second`]).
    pub flop_per_accelerator_second: Option<f64>,
    /// The run declares biological-sequence data.
    pub bio_sequence: bool,
    /// The customer's tier caps.
    pub limits: LedgerLimits,
    /// Thresholds in force.
    pub thresholds: Arc<ThresholdPolicy>,
    /// What a report needs about the customer (name, jurisdiction, verification); stored only
    /// on reports this admission creates. The caller decides its content (it may be sealed).
    pub identity_snapshot: Option<serde_json::Value>,
    /// Route template the job came through.
    pub route: String,
    /// Request id, for correlating with access logs.
    pub request_id: String,
    /// The client's address, for the audit record.
    pub client_ip: Option<IpAddr>,
    /// How long the job may stay open without a final usage event: its time limit plus the
    /// policy's grace. At `now + lease` the lease sweep closes it, charged at its reservation
    /// ([`LedgerStore::expire_leases`](crate::store::LedgerStore::expire_leases)). `None`: no lease (the job stays
    /// open until usage settles it or it is closed).
    pub lease: Option<Duration>,
    /// Decision time.
    pub now: OffsetDateTime,
}

/// What [`LedgerStore::admit_with`](crate::store::LedgerStore::admit_with) adds to a request;
/// [`LedgerStore::admit`](crate::store::LedgerStore::admit) uses the default (none of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmissionOptions {
    /// FLOP to project the thresholds with when larger than the estimate (e.g. the declared
    /// 6·N·D compute): a projected crossing fires at submission. Caps and the reservation
    /// still use [`AdmissionRequest::estimate_flop`].
    pub projected_flop: Option<f64>,
    /// Hold the job for review with this reason whatever the thresholds say (e.g. the declared
    /// estimate differs from the hardware one by more than the policy's factor). An approval
    /// is consumed like a threshold review's.
    pub hold_for_review: Option<String>,
    /// The client's idempotency key, claimed in the admission's transaction when the job is
    /// admitted (see [`IdempotencyClaim`]); a live claim of the same key by another admission
    /// fails the admission with [`LedgerError::IdempotencyKeyTaken`], recording nothing.
    pub idempotency: Option<IdempotencyClaim>,
}

/// An idempotency key an admission claims for its customer and route
/// ([`AdmissionRequest::route`]): the row exists exactly when an admitted job holds the key
/// (a hold or a denial claims nothing, a released job gives its key back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key as the client sent it (1 to [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII
    /// characters).
    pub key: String,
    /// SHA-256 (hex) of the request's method, path and body.
    pub fingerprint: String,
    /// When the key may be used again for another request.
    pub expires_at: OffsetDateTime,
    /// The account the key belongs to when it is not the metered customer: a reseller's
    /// account submitting for an end customer (its retries look the key up as theirs).
    pub owner: Option<Uuid>,
}

/// Longest idempotency key stored.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The outcome of [`LedgerStore::admit`](crate::store::LedgerStore::admit), committed before it is
/// returned.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdmissionDecision {
    /// The job row recorded for this decision (also for holds and denials).
    pub job_id: Uuid,
    /// The run row and its lineage root.
    pub run: RunRef,
    /// Admitted, held or denied.
    pub verdict: Verdict,
    /// Totals after the decision (unchanged unless admitted).
    pub totals_after: Totals,
    /// Tightest remaining cap after the decision; `None` when no FLOP cap applies.
    pub remaining_flop: Option<f64>,
    /// Thresholds this job crosses (recorded whatever the verdict).
    pub crossings: Vec<Crossing>,
    /// Reports created (admitted jobs crossing `report` or `review` thresholds).
    pub report_ids: Vec<Uuid>,
    /// The approved review this admission consumed, if any.
    pub approved_review: Option<Uuid>,
}

/// A run row and the root of its lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RunRef {
    /// The run row id.
    pub run: Uuid,
    /// The root run's row id (equal to `run` for a root).
    pub lineage_root: Uuid,
}

/// Admission verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Reserved; forward the job.
    Admitted,
    /// Held until staff resolve the review; resubmit after approval.
    HeldForReview {
        /// The review to resolve.
        review_id: Uuid,
    },
    /// Refused.
    Denied(Denial),
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Admitted; estimate reserved.
    Reserved,
    /// Started; usage arriving.
    Running,
    /// Finished; remainder released.
    Finished,
    /// Admitted but never ran (the upstream refused it); reservation released.
    Released,
    /// Closed without a final usage event: by lease expiry, by its customer or by staff
    /// ([`CloseReason`](super::CloseReason)). No longer open; its charge stays counted until a
    /// late `finished` usage event corrects it to the measured amount.
    Closed,
    /// Waiting for a review decision (nothing reserved).
    HeldForReview,
    /// Refused (nothing reserved).
    Denied,
}

/// A usage event from the compute platform (its signature already checked by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    /// The sender's id for the event; replays carry the same id.
    pub event_id: String,
    /// The job it reports on.
    pub job_id: Uuid,
    /// What happened.
    pub kind: UsageKind,
    /// When it happened.
    pub at: OffsetDateTime,
    /// Accelerator type the platform reports (the policy table's key, e.g. `h100`).
    pub accelerator_type: String,
    /// FLOP one accelerator of the reported type delivers per second at the policy's default
    /// precision and utilization, computed by the caller. Used only when the job has no rate of
    /// its own for that type (see [`charge_rate`]).
    pub flop_per_accelerator_second: f64,
}

/// What a usage event reports. Counters are cumulative for the job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UsageKind {
    /// The job started.
    Started,
    /// Accelerator-seconds so far.
    Heartbeat {
        /// Cumulative accelerator-seconds.
        accelerator_seconds_total: f64,
    },
    /// The job ended; the rest of the reservation is released.
    Finished {
        /// Final cumulative accelerator-seconds.
        accelerator_seconds_total: f64,
    },
}

/// What [`LedgerStore::record_usage`](crate::store::LedgerStore::record_usage) did, committed
/// before returning.
#[derive(Debug, Clone, PartialEq)]
pub enum UsageOutcome {
    /// The event id was seen before; nothing changed. Acknowledge it.
    Duplicate,
    /// The event was applied.
    Recorded(UsageRecorded),
}

/// An applied usage event.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecorded {
    /// The job.
    pub job_id: Uuid,
    /// The customer who runs it.
    pub customer_id: Uuid,
    /// Its status now.
    pub status: JobStatus,
    /// Measured FLOP so far.
    pub used_flop: f64,
    /// Measured FLOP this event added (0 for a duplicate-free event that measured nothing new).
    pub measured_flop: f64,
    /// Still reserved.
    pub reserved_flop: f64,
    /// How far the charge now exceeds the admitted estimate (0 when within it).
    pub overrun_flop: f64,
    /// FLOP per accelerator-second the measured usage was charged at.
    pub flop_per_accelerator_second: f64,
    /// Thresholds the growth crossed.
    pub crossings: Vec<Crossing>,
    /// Reports created for them (identity snapshot still to attach, see
    /// [`LedgerStore::attach_report_identity`](crate::store::LedgerStore::attach_report_identity)).
    pub report_ids: Vec<Uuid>,
}

/// Why a ledger operation failed. Client faults first, then the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The request is malformed (the message names the field; no data echoed).
    #[error("invalid ledger request: {0}")]
    Invalid(&'static str),
    /// No customer with that id.
    #[error("customer not found")]
    UnknownCustomer,
    /// A usage event names a job the ledger does not know.
    #[error("unknown job")]
    UnknownJob,
    /// A cumulative counter went down.
    #[error("accelerator-seconds counter decreased from {previous} to {reported}")]
    CounterDecreased {
        /// The stored total.
        previous: f64,
        /// The reported total.
        reported: f64,
    },
    /// Usage for, or a close of, a job that is not open (finished, held, denied, or — for a
    /// close — already closed or released).
    #[error("job is {status:?}, not open for usage")]
    JobNotOpen {
        /// Its status.
        status: JobStatus,
    },
    /// No review with that id.
    #[error("review not found")]
    ReviewNotFound,
    /// The review was already approved or denied.
    #[error("review already resolved")]
    ReviewAlreadyResolved,
    /// No report with that id.
    #[error("report not found")]
    ReportNotFound,
    /// The report was already filed.
    #[error("report already filed")]
    ReportAlreadyFiled,
    /// Linked groups kept changing while the operation waited for its locks; retry later.
    #[error("linked accounts changed concurrently; retry")]
    Contended,
    /// Another admitted job holds the admission's idempotency key (a concurrent attempt of the
    /// same request); nothing was recorded.
    #[error("the idempotency key is held by another job")]
    IdempotencyKeyTaken,
    /// Only staff (or the system) may take this action.
    #[error("only staff may do this")]
    NotStaff,
    /// Writing an export failed.
    #[error("writing the export failed")]
    Export(#[source] std::io::Error),
    /// The export would hold more records than one export may; nothing was written.
    #[error("the export would hold more than {limit} records; use a later --since")]
    ExportTooLarge {
        /// Most records one export holds.
        limit: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(LedgerError);

// === impl JobStatus ===

stored_enum!(JobStatus {
    Reserved => "reserved",
    Running => "running",
    Finished => "finished",
    Released => "released",
    Closed => "closed",
    HeldForReview => "held_for_review",
    Denied => "denied",
});

// === impl Verdict ===

impl Verdict {
    /// Bounded name for metrics: `admitted`, `held_for_review` or `denied`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Admitted => "admitted",
            Verdict::HeldForReview { .. } => "held_for_review",
            Verdict::Denied(_) => "denied",
        }
    }
}

/// `std::time::Duration` as a `time::Duration`, saturating (windows of centuries are fine).
pub(super) fn window(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// `now - window`, never before the Unix epoch (no job is older, and stored text timestamps
/// only sort correctly for four-digit years).
pub(super) fn window_start(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    now.checked_sub(window(d))
        .filter(|t| *t > OffsetDateTime::UNIX_EPOCH)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A FLOP amount the ledger accepts: finite and not negative.
pub(super) fn valid_flop(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Longest accepted free-text field (basis, table version, route, request id, reason).
pub(super) const MAX_TEXT_LEN: usize = 1000;

/// `text` fits [`MAX_TEXT_LEN`]; otherwise the request is invalid, naming `field`.
pub(super) fn check_text(text: &str, field: &'static str) -> Result<(), LedgerError> {
    if text.len() <= MAX_TEXT_LEN {
        Ok(())
    } else {
        Err(LedgerError::Invalid(field))
    }
}

/// Staff (`staff:<uuid>`) or the system (`system:<label>`) only.
pub(super) fn require_staff(actor: &Actor) -> Result<(), LedgerError> {
    if actor.name.starts_with("staff:") || actor.name.starts_with("system:") {
        Ok(())
    } else {
        Err(LedgerError::NotStaff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_status_names_round_trip() {
        for s in [
            JobStatus::Reserved,
            JobStatus::Running,
            JobStatus::Finished,
            JobStatus::Released,
            JobStatus::HeldForReview,
            JobStatus::Denied,
        ] {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}

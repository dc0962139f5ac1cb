//! The compute ledger: training runs and their lineage, admission against budgets and
//! thresholds, measured usage, linked account groups, review holds and training-run reports.
//!
//! # What counts where
//! - **Run lineage** (lifetime): a run id is namespaced per customer; a run that names a
//!   `parent_run_id` joins its parent's lineage, fixed when the run is first seen. The per-run
//!   cap ([`LedgerLimits::max_flop_per_run`]) and [`Scope::Run`] thresholds apply to the
//!   lineage's cumulative FLOP, so neither splitting a run into jobs nor fine-tuning evades them.
//! - **Customer window**: [`LedgerLimits::max_flop_per_customer_window`] applies to the FLOP of
//!   the customer's jobs decided within the rolling [`LedgerLimits::window`].
//! - **Customer, organization, linked group** thresholds apply to the rolling total over
//!   [`ThresholdPolicy::window`]; a customer who is linked to nobody is a group of one.
//! - A job's charge is `used + reserved`: its estimate at admission, replaced by measured usage
//!   as events arrive, grown past the estimate when the job overruns, cut to the measured
//!   amount when it finishes, and zero when it never ran
//!   ([`Store::release_job`](crate::Store::release_job)). Rolling windows count a job at its
//!   decision time.
//! - A threshold fires for a scope the first time the scope's projected total reaches it, and
//!   once only (see [`decision`](evaluate) for the exact rule): also when two accounts are
//!   linked after both ran, and not again when a total dips and grows back.
//!
//! # Atomicity
//! [`Store::admit`](crate::Store::admit) is one transaction on either backend: it locks the
//! budget rows of the customer, group, lineage and organization in one statement (PostgreSQL
//! `SELECT … FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` serializes writers), reads the totals,
//! decides with the pure [`evaluate`], and writes the job, its crossings, review hold or
//! reports and the audit record before committing. Replicas sharing one PostgreSQL therefore
//! never admit past a cap. Every ledger transaction takes budget locks in `(scope, scope_id)`
//! order (group merges lock a sentinel, the moving customers, then the groups), so lock waits
//! never form a cycle; the audit chain's head lock is taken last. On SQLite, admissions that
//! queue for the writer at the same time share one transaction and one commit, in queue order
//! (group commit, `admission::batch`); a decision is returned only once that commit is
//! durable, and a batch in which any admission fails is rolled back and decided one by one.
//!
//! FLOP are IEEE doubles (the totals reach 1e26): sums are exact for integers below 2^53 and
//! otherwise carry a relative rounding error near 1e-16 per addition.
//!
//! # Modules
//! `decision` holds the pure rules; `sql` the queries (one text for both backends); `budgets`
//! finds and locks a job's rows; the `admission`, `review`, `usage`, `groups`, `reads` and
//! `export` modules add `impl Store` blocks; `audit` builds the chain records; `attributes`
//! normalizes and hashes (keyed) linking attributes; `membership` holds the group queries and
//! `link_thresholds` re-checks a group's thresholds when staff link it.

mod admission;
mod attributes;
mod audit;
mod budgets;
mod decision;
mod export;
mod groups;
mod link_thresholds;
mod membership;
mod reads;
mod review;
mod sql;
mod usage;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use computegate_policy::{Action, LedgerLimits, Scope, ThresholdPolicy, ThresholdRule};

use crate::names::stored_enum;
use crate::store::StoreError;

pub use self::attributes::{AttributeHash, AttributeKey, LinkValue};
pub use self::decision::{
    Evaluation, JobFigures, Proposal, Snapshot, evaluate, reached, usage_crossings,
};
pub use self::export::{ExportFormat, ExportKind, quarter_due_date};
pub(crate) use self::groups::link_attributes;
pub use self::groups::{GroupMember, LinkAttribute, LinkOutcome, LinkedGroup, StaffLink};
pub use self::link_thresholds::LinkCheck;
pub(crate) use self::membership::GroupTx;
pub use self::reads::{
    ReportFilter, ReportStatus, ReportsDue, RunFilter, RunSummary, TrainingRunReport,
};
pub use self::review::{JobReview, ReviewResolution, ReviewStatus};
pub use self::usage::{UsageEvent, UsageKind, UsageOutcome, UsageRecorded};

/// Longest accepted run id, in bytes.
pub const MAX_RUN_ID_LEN: usize = 200;

/// Longest accepted usage event id, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// Largest page the list operations return.
pub const MAX_PAGE: u32 = 1000;

/// How many times an admission or usage event starts over when a linked-group change races
/// its locks.
const MAX_ATTEMPTS: usize = 3;

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
    /// Decision time.
    pub now: OffsetDateTime,
}

/// What [`Store::admit_with`](crate::Store::admit_with) adds to a request;
/// [`Store::admit`](crate::Store::admit) uses the default (none of it).
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
}

/// The outcome of [`Store::admit`](crate::Store::admit), committed before it is returned.
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

/// Why a job was refused.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Denial {
    /// The rule that refused it.
    pub reason: DenialReason,
    /// The FLOP limit it would pass (cap or blocking threshold).
    pub limit_flop: Option<f64>,
    /// The blocking threshold's label.
    pub threshold_label: Option<String>,
    /// The blocking threshold's scope.
    pub scope: Option<Scope>,
}

/// The rule behind a denial (bounded, usable as a metric label via [`DenialReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DenialReason {
    /// The lineage total would pass the per-run cap.
    RunCap,
    /// The customer's rolling-window total would pass the customer cap.
    CustomerWindowCap,
    /// The customer already has the most concurrent jobs allowed.
    ConcurrentJobs {
        /// The limit.
        limit: u32,
    },
    /// A `block` threshold would be reached.
    Threshold,
}

/// Cumulative totals around a decision.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Lineage, lifetime.
    pub lineage_flop: f64,
    /// Customer within [`LedgerLimits::window`].
    pub customer_window_flop: f64,
    /// Customer within [`ThresholdPolicy::window`].
    pub customer_flop: f64,
    /// Organization within [`ThresholdPolicy::window`], when the customer has one.
    pub organization_flop: Option<f64>,
    /// Linked group (or the customer alone) within [`ThresholdPolicy::window`].
    pub group_flop: f64,
    /// The customer's reserved or running jobs; counted only when a concurrency cap applies.
    pub open_jobs: Option<u64>,
}

/// A threshold crossed: `previous < threshold_flop <= projected`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Crossing {
    /// The rule's label.
    pub label: String,
    /// The rule's FLOP.
    pub threshold_flop: f64,
    /// The rule's scope.
    pub scope: Scope,
    /// Lineage root, customer, organization or group id.
    pub scope_id: Uuid,
    /// The rule's action.
    pub action: Action,
    /// Total before.
    pub previous_flop: f64,
    /// Total after.
    pub projected_flop: f64,
    /// Days until a report for it is due (from the rule).
    pub report_due_days: u32,
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
    /// Waiting for a review decision (nothing reserved).
    HeldForReview,
    /// Refused (nothing reserved).
    Denied,
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
    /// Usage for a job that is not reserved or running (finished, held or denied).
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

// === impl JobStatus, ReviewStatus ===

stored_enum!(JobStatus {
    Reserved => "reserved",
    Running => "running",
    Finished => "finished",
    Released => "released",
    HeldForReview => "held_for_review",
    Denied => "denied",
});
stored_enum!(ReviewStatus {
    Pending => "pending",
    Approved => "approved",
    Denied => "denied",
});

// === impl DenialReason ===

impl DenialReason {
    /// Bounded name for metrics and problem details.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::RunCap => "run_cap",
            DenialReason::CustomerWindowCap => "customer_window_cap",
            DenialReason::ConcurrentJobs { .. } => "concurrent_jobs",
            DenialReason::Threshold => "threshold",
        }
    }
}

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
fn window(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// `now - window`, never before the Unix epoch (no job is older, and stored text timestamps
/// only sort correctly for four-digit years).
fn window_start(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    now.checked_sub(window(d))
        .filter(|t| *t > OffsetDateTime::UNIX_EPOCH)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A FLOP amount the ledger accepts: finite and not negative.
fn valid_flop(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

#[cfg(test)]
mod tests;

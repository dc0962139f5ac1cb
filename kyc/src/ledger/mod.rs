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
//! - A job's charge is `used + reserved`: its estimate at admission, replaced by measured usage as
//!   events arrive, grown past the estimate when the job overruns, cut to the measured amount when
//!   it finishes, and zero when it never ran
//!   ([`LedgerStore::release_job`](crate::store::LedgerStore::release_job)). Rolling windows count
//!   a job at its decision time.
//! - A threshold fires for a scope the first time the scope's projected total reaches it, and
//!   once only (see [`decision`](evaluate) for the exact rule): also when two accounts are
//!   linked after both ran, and not again when a total dips and grows back.
//!
//! # Atomicity
//! [`LedgerStore::admit`](crate::store::LedgerStore::admit) is one transaction on either backend:
//! it locks the budget rows of the customer, group, lineage and organization in one statement
//! (PostgreSQL `SELECT … FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` serializes writers), reads the
//! totals, decides with the pure [`evaluate`], and writes the job, its crossings, review hold or
//! reports and the audit record before committing. Replicas sharing one PostgreSQL therefore never
//! admit past a cap. Every ledger transaction takes budget locks in `(scope, scope_id)` order
//! (group merges lock a sentinel, the moving customers, then the groups), so lock waits never form
//! a cycle; the audit chain's head lock is taken last. Admissions that queue for their turn at the
//! same time (SQLite: the writer lock; PostgreSQL: one turn per process) share one transaction
//! and one commit, decided in queue order, their audit records appended together at the end
//! (group commit, `admission::batch`); a decision is returned only once that commit is durable,
//! and a batch in which any admission fails is rolled back and decided one by one. A batch on
//! PostgreSQL locks several customers' rows in arrival order, so two replicas' batches can wait
//! for each other; its lock waits are bounded (250 ms) and the loser decides its admissions
//! alone.
//!
//! FLOP are IEEE doubles (the totals reach 1e26): sums are exact for integers below 2^53 and
//! otherwise carry a relative rounding error near 1e-16 per addition.
//!
//! # Modules
//! `model` holds the shared vocabulary (requests, verdicts, totals, crossings, errors) and imports
//! no other ledger module; this file only declares modules and re-exports, so no ledger module
//! imports back from one that imports it (`scripts/import_cycles.py kyc/src --within ledger`).
//! The pure rules are `computegate_policy::admission` (re-exported here); `sql` the queries (one text for both backends); `budgets` finds
//! and locks a job's rows; `admit_tx` is the admission transaction body; the `admission`, `review`,
//! `usage`, `groups`, `reads`, `ownership`, `close`, `jobs`, `customer_usage` and `export` modules
//! add `impl LedgerStore` blocks (the `store.ledger()` handle); `audit` builds the chain records;
//! `attributes` normalizes and hashes (keyed) linking attributes; `membership` holds the group
//! queries and `link_thresholds` re-checks a group's thresholds when staff link it; `close` closes
//! jobs without a final usage event (lease expiry, customer and staff closes), `jobs` reads jobs
//! for staff and customers and `customer_usage` a customer's own totals per scope; `annual` is
//! the annual attestation pack (and quarterly summary) over the year's records.

mod admission;
mod admit_tx;
pub mod annual;
mod attributes;
mod audit;
mod budgets;
mod close;
mod customer_usage;
mod export;
mod groups;
mod idempotency;
mod jobs;
mod link_thresholds;
mod membership;
mod model;
mod ownership;
mod reads;
mod review;
mod sql;
mod usage;

pub use self::admission::AdmissionBatchStats;
pub use self::attributes::{AttributeHash, AttributeKey, LinkAttribute, LinkValue};
pub use self::close::{CloseCharge, CloseReason, ClosedJob, JobClose, LeaseSweep, close_charge};
pub use self::customer_usage::{CustomerUsage, LineageTotal, ScopeCrossing, UsageQuery};
pub use self::export::{ExportFormat, ExportKind, quarter_due_date};
pub(crate) use self::groups::link_attributes;
pub use self::groups::{GroupMember, LinkOutcome, LinkedGroup, StaffLink};
pub use self::idempotency::{IdempotentAnswer, IdempotentRequest};
pub use self::jobs::{JobFilter, JobRecord};
pub use self::link_thresholds::LinkCheck;
pub(crate) use self::membership::GroupTx;
pub use self::model::{
    APPROVAL_TOLERANCE, APPROVAL_VALIDITY, AdmissionDecision, AdmissionOptions, AdmissionRequest,
    IdempotencyClaim, JobStatus, LedgerError, MAX_EVENT_ID_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_PAGE,
    MAX_RUN_ID_LEN, RunRef, UsageEvent, UsageKind, UsageOutcome, UsageRecorded, Verdict,
};
pub use self::ownership::MAX_UPSTREAM_ID_LEN;
pub use self::reads::{
    ReportFilter, ReportStatus, ReportsDue, RunFilter, RunSummary, TrainingRunReport,
};
pub use self::review::{JobReview, ReviewResolution, ReviewStatus};
pub use computegate_policy::admission::{
    Crossing, Denial, DenialReason, Evaluation, JobFigures, Proposal, Snapshot, Totals, evaluate,
    reached, usage_crossings,
};

//! The ledger's transactional queries, written once: [`LedgerTx`] is implemented for a
//! write transaction of either backend by one macro body, so the admission and usage code is
//! generic over it and type-checked against both. The only backend difference is the locking
//! clause: PostgreSQL appends `FOR UPDATE`, SQLite (writers serialized by `BEGIN IMMEDIATE`)
//! appends nothing.

use std::future::Future;

use uuid::Uuid;

use super::model::Crossing;
use crate::store::DbTime;

/// The three non-group budget rows an admission or usage event locks.
#[derive(Debug, Clone, Copy)]
pub(super) struct BudgetKeys {
    pub(super) lineage: Uuid,
    pub(super) customer: Uuid,
    pub(super) organization: Option<Uuid>,
}

/// A run row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RunRow {
    pub(super) id: Uuid,
    pub(super) run_id: String,
    pub(super) lineage_root: Uuid,
}

/// What [`LedgerTx::lock_scopes`] locks: the customer; the lineage, by root (usage events)
/// or by the customer's run id (admission); the organization; and the customer's group.
#[derive(Debug, Clone, Copy)]
pub(super) struct LockQuery<'a> {
    pub(super) customer: Uuid,
    pub(super) run_id: Option<&'a str>,
    pub(super) lineage: Option<Uuid>,
    pub(super) organization: Option<Uuid>,
}

/// A locked budget row, with the run row id when the lineage was found by run id.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct BudgetRow {
    pub(super) scope: String,
    pub(super) scope_id: Uuid,
    pub(super) used_flop: f64,
    pub(super) reserved_flop: f64,
    pub(super) run_row: Option<Uuid>,
}

/// Rolling-window totals and the open-job count.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct WindowRow {
    pub(super) customer_window: f64,
    /// `None` when both windows start together (then it equals `customer_window`).
    pub(super) customer_total: Option<f64>,
    pub(super) organization_total: f64,
    pub(super) group_total: f64,
    pub(super) open_jobs: i64,
    pub(super) group_now: Option<Uuid>,
}

/// What the window query needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowQuery {
    pub(super) customer: Uuid,
    pub(super) organization: Option<Uuid>,
    pub(super) group: Option<Uuid>,
    pub(super) cap_since: DbTime,
    pub(super) threshold_since: DbTime,
    /// Whether to count the customer's open jobs (only a concurrency cap needs it).
    pub(super) count_open_jobs: bool,
}

/// An idempotency key to claim for an admitted job.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyClaim<'a> {
    pub(super) customer: Uuid,
    pub(super) route: &'a str,
    pub(super) key: &'a str,
    pub(super) fingerprint: &'a str,
    pub(super) job: Uuid,
    pub(super) now: DbTime,
    pub(super) expires_at: DbTime,
}

/// A job row as usage events and reports need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct JobRow {
    pub(super) id: Uuid,
    pub(super) customer_id: Uuid,
    pub(super) organization_id: Option<Uuid>,
    pub(super) run_id: String,
    pub(super) lineage_root: Uuid,
    pub(super) status: String,
    pub(super) estimate_flop: f64,
    pub(super) hardware_flop: Option<f64>,
    pub(super) declared_flop: Option<f64>,
    pub(super) basis: String,
    pub(super) table_version: String,
    pub(super) accelerators: i64,
    pub(super) accelerator_type: Option<String>,
    pub(super) bio_sequence: bool,
    pub(super) reserved_flop: f64,
    pub(super) used_flop: f64,
    pub(super) accelerator_seconds: f64,
    pub(super) flop_per_accelerator_second: Option<f64>,
    /// When the job's lease ends (`None`: no lease).
    pub(super) lease_expires_at: Option<time::OffsetDateTime>,
    /// The decision recorded at admission (`admitted_after_review` consumed an approval).
    pub(super) decision: String,
}

/// A job row to insert.
#[derive(Debug)]
pub(super) struct NewJob<'a> {
    pub(super) id: Uuid,
    pub(super) customer_id: Uuid,
    pub(super) organization_id: Option<Uuid>,
    pub(super) run: Uuid,
    pub(super) lineage_root: Uuid,
    pub(super) status: &'static str,
    pub(super) decision: &'static str,
    pub(super) request_id: &'a str,
    pub(super) route: &'a str,
    pub(super) estimate_flop: f64,
    pub(super) hardware_flop: Option<f64>,
    pub(super) declared_flop: Option<f64>,
    pub(super) basis: &'a str,
    pub(super) table_version: &'a str,
    pub(super) accelerators: i64,
    pub(super) accelerator_type: Option<&'a str>,
    pub(super) bio_sequence: bool,
    pub(super) reserved_flop: f64,
    pub(super) flop_per_accelerator_second: Option<f64>,
    pub(super) decided_at: DbTime,
    pub(super) lease_expires_at: Option<DbTime>,
}

/// Measured usage to write back to a job.
#[derive(Debug)]
pub(super) struct JobUsage {
    pub(super) id: Uuid,
    pub(super) status: &'static str,
    pub(super) used_flop: f64,
    pub(super) reserved_flop: f64,
    pub(super) accelerator_seconds: f64,
    pub(super) at: DbTime,
    pub(super) started: bool,
    pub(super) finished: bool,
}

/// A job closed without a final usage event.
#[derive(Debug)]
pub(super) struct JobClosing<'a> {
    pub(super) id: Uuid,
    /// The charge not backed by measured usage that stays counted.
    pub(super) reserved_flop: f64,
    pub(super) at: DbTime,
    pub(super) reason: &'static str,
    pub(super) closed_by: &'a str,
    pub(super) note: Option<&'a str>,
}

/// A usage event row.
#[derive(Debug)]
pub(super) struct NewUsageEvent<'a> {
    pub(super) event_id: &'a str,
    pub(super) job_id: Uuid,
    pub(super) kind: &'static str,
    pub(super) at: DbTime,
    pub(super) accelerator_seconds_total: Option<f64>,
    pub(super) flop_per_accelerator_second: f64,
    pub(super) used_flop_after: f64,
}

/// A training-run report row.
#[derive(Debug)]
pub(super) struct NewReport<'a> {
    pub(super) id: Uuid,
    pub(super) job: &'a JobRow,
    pub(super) crossings: &'a [Crossing],
    pub(super) identity_snapshot: Option<&'a serde_json::Value>,
    pub(super) cumulative_flop: f64,
    pub(super) created_at: DbTime,
    pub(super) due_at: DbTime,
}

/// A review hold row.
#[derive(Debug)]
pub(super) struct NewReview<'a> {
    pub(super) id: Uuid,
    pub(super) job_id: Uuid,
    pub(super) customer_id: Uuid,
    pub(super) run_id: &'a str,
    pub(super) estimate_flop: f64,
    pub(super) crossings: &'a [Crossing],
    pub(super) hold_reason: Option<&'a str>,
    pub(super) created_at: DbTime,
}

/// The ledger's queries inside one write transaction.
pub(super) trait LedgerTx: Send {
    /// The run and (when given) its parent, by run id.
    fn find_runs(
        &mut self,
        customer: Uuid,
        run_id: &str,
        parent: Option<&str>,
    ) -> impl Future<Output = sqlx::Result<Vec<RunRow>>> + Send;

    /// Inserts a run unless one with that id exists. A missing customer is a foreign-key error.
    fn insert_run(
        &mut self,
        run: &RunRow,
        customer: Uuid,
        parent: Option<&str>,
        now: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Locks (PostgreSQL) and reads the customer, lineage, organization and group budget rows,
    /// in `(scope, scope_id)` order, in one statement.
    fn lock_scopes(
        &mut self,
        q: LockQuery<'_>,
    ) -> impl Future<Output = sqlx::Result<Vec<BudgetRow>>> + Send;

    /// Creates missing lineage, customer and organization budget rows.
    fn ensure_budgets(&mut self, keys: BudgetKeys)
    -> impl Future<Output = sqlx::Result<()>> + Send;

    /// `(scope id, label)` of the thresholds admitted jobs already fired for these scopes.
    fn fired(
        &mut self,
        scope_ids: [Option<Uuid>; 4],
    ) -> impl Future<Output = sqlx::Result<Vec<(Uuid, String)>>> + Send;

    /// Rolling-window totals, the customer's open jobs and its group now.
    fn window_totals(
        &mut self,
        q: WindowQuery,
    ) -> impl Future<Output = sqlx::Result<WindowRow>> + Send;

    /// Adds to the used and reserved totals of the three non-group budget rows.
    fn add_to_budgets(
        &mut self,
        keys: BudgetKeys,
        used: f64,
        reserved: f64,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Marks the oldest matching approved review consumed by `job`; its id if there was one.
    fn consume_approval(
        &mut self,
        customer: Uuid,
        run_id: &str,
        estimate: f64,
        job: Uuid,
        now: DbTime,
        approved_since: DbTime,
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;

    /// Inserts a job row.
    fn insert_job(&mut self, job: &NewJob<'_>) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Inserts an admitted job row and adds its `reserved_flop` to the reserved totals of the
    /// three non-group budget rows (one statement on PostgreSQL).
    fn insert_reserved_job(
        &mut self,
        job: &NewJob<'_>,
        keys: BudgetKeys,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// A job with its run id; locked (PostgreSQL) when `lock`.
    fn job(
        &mut self,
        id: Uuid,
        lock: bool,
    ) -> impl Future<Output = sqlx::Result<Option<JobRow>>> + Send;

    /// Writes measured usage back to a job.
    fn update_job_usage(&mut self, u: &JobUsage) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Whether a usage event with this id was recorded.
    fn usage_event_exists(
        &mut self,
        event_id: &str,
    ) -> impl Future<Output = sqlx::Result<bool>> + Send;

    /// Records a usage event; `false` when its id was already recorded.
    fn insert_usage_event(
        &mut self,
        e: &NewUsageEvent<'_>,
    ) -> impl Future<Output = sqlx::Result<bool>> + Send;

    /// Records a crossing.
    fn insert_crossing(
        &mut self,
        job: Uuid,
        phase: &'static str,
        c: &Crossing,
        at: DbTime,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Inserts a report.
    fn insert_report(&mut self, r: &NewReport<'_>)
    -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Inserts a review hold.
    fn insert_review(&mut self, r: &NewReview<'_>)
    -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Marks an open job closed (status `closed`, its remaining charge, who and why).
    fn close_job(&mut self, c: &JobClosing<'_>) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Gives back the approval `job` consumed: the review is approved and unused again. Its
    /// id, when there was one.
    fn restore_approval(
        &mut self,
        job: Uuid,
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;

    /// Withdraws the reports of `job` not withdrawn yet; their ids and whether each had been
    /// filed.
    fn withdraw_reports(
        &mut self,
        job: Uuid,
        reason: &str,
        at: DbTime,
    ) -> impl Future<Output = sqlx::Result<Vec<(Uuid, bool)>>> + Send;

    /// Claims an idempotency key for `job` unless a live claim holds it (an expired one is
    /// replaced); whether it was claimed.
    fn claim_idempotency_key(
        &mut self,
        claim: &KeyClaim<'_>,
    ) -> impl Future<Output = sqlx::Result<bool>> + Send;

    /// Gives back the idempotency keys `job` holds.
    fn free_idempotency_keys(&mut self, job: Uuid)
    -> impl Future<Output = sqlx::Result<()>> + Send;
}

/// The budget rows an admission or usage event locks — customer, lineage (by root `$3`, or by
/// the customer's run id `$2`), organization, group — ordered by `(scope, scope_id)`: the one
/// order every ledger transaction takes budget locks in (group merges too), so lock waits
/// never form a cycle. `run_row` is the run row id when `$2` names an existing run.
macro_rules! lock_scopes_sql {
    () => {
        "SELECT b.scope, b.scope_id, b.used_flop, b.reserved_flop, \
           (SELECT r.id FROM ledger_runs r WHERE r.customer_id = $1 AND r.run_id = $2) AS run_row \
         FROM ledger_budgets b \
         WHERE (b.scope = 'customer' AND b.scope_id = $1) \
            OR (b.scope = 'lineage' AND b.scope_id = COALESCE($3, \
                 (SELECT r.lineage_root FROM ledger_runs r \
                  WHERE r.customer_id = $1 AND r.run_id = $2))) \
            OR (b.scope = 'organization' AND b.scope_id = $4) \
            OR (b.scope = 'group' AND b.scope_id = \
                 (SELECT m.group_id FROM ledger_group_members m WHERE m.customer_id = $1)) \
         ORDER BY b.scope, b.scope_id"
    };
}

/// A job with its run id, in [`JobRow`] order.
macro_rules! job_sql {
    () => {
        "SELECT j.id, j.customer_id, j.organization_id, r.run_id, j.lineage_root, j.status, \
         j.estimate_flop, j.hardware_flop, j.declared_flop, j.basis, j.table_version, \
         j.accelerators, j.accelerator_type, j.bio_sequence, j.reserved_flop, j.used_flop, \
         j.accelerator_seconds, j.flop_per_accelerator_second, j.lease_expires_at, j.decision \
         FROM ledger_jobs j JOIN ledger_runs r ON r.id = j.run WHERE j.id = $1"
    };
}

/// The rolling-window totals' columns, over a customer, the cap window's start, the threshold
/// window's start, an organization, a group and whether to count open jobs (each an SQL
/// expression: parameters for one admission, a `VALUES` row's columns for a batch — one text,
/// so a batch sums exactly what a single admission does). The second customer sum is skipped
/// when both windows start at the same time, and the open-job count when it is not asked for:
/// uncorrelated scalar subqueries are evaluated only when reached, on both backends.
macro_rules! window_totals_columns {
    ($customer:literal, $cap:literal, $threshold:literal, $org:literal, $group:literal, $count_open:literal) => {
        concat!(
            "(SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
               WHERE customer_id = ", $customer, " AND decided_at > ", $cap, ") AS customer_window, \
             CASE WHEN ", $cap, " = ", $threshold, " THEN NULL ELSE \
               (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
                  WHERE customer_id = ", $customer, " AND decided_at > ", $threshold, ") END \
               AS customer_total, \
             (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
               WHERE organization_id = ", $org, " AND decided_at > ", $threshold, ") \
               AS organization_total, \
             (SELECT COALESCE(SUM(j.used_flop + j.reserved_flop), 0.0) FROM ledger_group_members m \
               JOIN ledger_jobs j ON j.customer_id = m.customer_id \
               WHERE m.group_id = ", $group, " AND j.decided_at > ", $threshold, ") AS group_total, \
             CASE WHEN ", $count_open, " THEN (SELECT COUNT(*) FROM ledger_jobs \
               WHERE customer_id = ", $customer, " AND status IN ('reserved', 'running')) \
               ELSE 0 END AS open_jobs, \
             (SELECT group_id FROM ledger_group_members WHERE customer_id = ", $customer, ") \
               AS group_now"
        )
    };
}

/// Rolling-window totals of one admission ([`WindowQuery`] bound as `$1`..`$6`).
const WINDOW_TOTALS: &str = concat!(
    "SELECT ",
    window_totals_columns!("$1", "$2", "$3", "$4", "$5", "$6")
);

const ADD_TO_BUDGETS: &str = "UPDATE ledger_budgets \
     SET used_flop = used_flop + $1, reserved_flop = reserved_flop + $2 \
     WHERE (scope = 'lineage' AND scope_id = $3) OR (scope = 'customer' AND scope_id = $4) \
        OR (scope = 'organization' AND scope_id = $5)";

const CONSUME_APPROVAL: &str = "UPDATE ledger_reviews SET consumed_by = $1, consumed_at = $2 \
     WHERE id = (SELECT id FROM ledger_reviews \
        WHERE customer_id = $3 AND run_id = $4 AND status = 'approved' AND consumed_by IS NULL \
          AND estimate_flop BETWEEN $5 AND $6 AND decided_at >= $7 \
        ORDER BY decided_at, id LIMIT 1) \
     RETURNING id";

/// `INSERT INTO ledger_jobs (…)` with the columns a new job writes, in the order every insert of
/// a job binds them (the one-by-one insert here, the batch inserts in [`bulk`]).
macro_rules! insert_job_columns {
    () => {
        "INSERT INTO ledger_jobs (id, customer_id, organization_id, run, \
         lineage_root, status, decision, request_id, route, estimate_flop, hardware_flop, \
         declared_flop, basis, table_version, accelerators, accelerator_type, bio_sequence, \
         reserved_flop, used_flop, accelerator_seconds, decided_at, flop_per_accelerator_second, \
         lease_expires_at) "
    };
}

/// Inserts a job; its `reserved_flop` is `$18`.
macro_rules! insert_job_sql {
    () => {
        concat!(
            insert_job_columns!(),
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, 0.0, 0.0, $19, $20, $21)"
        )
    };
}

const INSERT_JOB: &str = insert_job_sql!();

/// PostgreSQL: [`INSERT_JOB`] and the reservation on the lineage (`$22`), customer (`$23`) and
/// organization (`$24`) budget rows in one statement (a data-modifying CTE), one round trip
/// less per admission. The rows are already locked by this transaction.
const INSERT_RESERVED_JOB: &str = concat!(
    "WITH reserve AS (UPDATE ledger_budgets SET reserved_flop = reserved_flop + $18 \
     WHERE (scope = 'lineage' AND scope_id = $22) OR (scope = 'customer' AND scope_id = $23) \
        OR (scope = 'organization' AND scope_id = $24)) ",
    insert_job_sql!()
);

const UPDATE_JOB_USAGE: &str = "UPDATE ledger_jobs SET status = $1, used_flop = $2, \
     reserved_flop = $3, accelerator_seconds = $4, last_usage_at = $5, \
     started_at = CASE WHEN $6 THEN COALESCE(started_at, $5) ELSE started_at END, \
     finished_at = CASE WHEN $7 THEN $5 ELSE finished_at END \
     WHERE id = $8";

const INSERT_USAGE_EVENT: &str = "INSERT INTO ledger_usage_events (event_id, job_id, kind, \
     occurred_at, accelerator_seconds_total, flop_per_accelerator_second, used_flop_after) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING";

const INSERT_CROSSING: &str = "INSERT INTO ledger_crossings (id, job_id, phase, label, \
     threshold_flop, scope, scope_id, action, previous_flop, projected_flop, occurred_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const INSERT_REPORT: &str = "INSERT INTO ledger_reports (id, job_id, customer_id, \
     organization_id, run_id, lineage_root, thresholds, identity_snapshot, estimate_flop, \
     hardware_flop, declared_flop, basis, table_version, accelerators, accelerator_type, \
     cumulative_flop, created_at, due_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

const INSERT_REVIEW: &str = "INSERT INTO ledger_reviews (id, job_id, customer_id, run_id, \
     estimate_flop, thresholds, hold_reason, status, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)";

/// Thresholds fired for up to four scopes: crossings recorded for jobs that were admitted (and
/// did not turn out never to have run).
const FIRED: &str = "SELECT DISTINCT c.scope_id, c.label FROM ledger_crossings c \
     JOIN ledger_jobs j ON j.id = c.job_id \
     WHERE c.scope_id IN ($1, $2, $3, $4) \
       AND j.status IN ('reserved', 'running', 'finished', 'closed')";

/// Closes an open job (the caller holds its row lock and checked it is open).
const CLOSE_JOB: &str = "UPDATE ledger_jobs SET status = 'closed', reserved_flop = $1, \
     finished_at = $2, closed_reason = $3, closed_by = $4, close_note = $5 WHERE id = $6";

/// The approval a job consumed, given back.
const RESTORE_APPROVAL: &str = "UPDATE ledger_reviews SET consumed_by = NULL, consumed_at = NULL \
     WHERE consumed_by = $1 AND status = 'approved' RETURNING id";

/// A never-run job's reports, withdrawn.
const WITHDRAW_REPORTS: &str = "UPDATE ledger_reports SET withdrawn_at = $1, withdrawn_reason = $2 \
     WHERE job_id = $3 AND withdrawn_at IS NULL RETURNING id, filed_at IS NOT NULL";

/// An idempotency key claimed for an admitted job, unless a live claim holds it. `$6` is the
/// decision time: a claim that expired by then is replaced.
const CLAIM_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys \
     (customer_id, route, idem_key, fingerprint, job_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (customer_id, route, idem_key) DO UPDATE SET \
       fingerprint = excluded.fingerprint, job_id = excluded.job_id, status = NULL, \
       headers = NULL, body = NULL, body_omitted = FALSE, created_at = excluded.created_at, \
       expires_at = excluded.expires_at \
     WHERE idempotency_keys.expires_at <= excluded.created_at";

/// The idempotency keys a job holds, given back.
const FREE_IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE job_id = $1";

// After the SQL text macros, which `backends` expands.
mod backends;
mod bulk;

pub(super) use bulk::{BulkTx, FoundRun, LockedBudget};

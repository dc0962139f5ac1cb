//! The ledger's transactional queries, written once: [`LedgerTx`] is implemented for a
//! write transaction of either backend by one macro body, so the admission and usage code is
//! generic over it and type-checked against both. The only backend difference is the locking
//! clause: PostgreSQL appends `FOR UPDATE`, SQLite (writers serialized by `BEGIN IMMEDIATE`)
//! appends nothing.

use std::future::Future;

use sqlx::types::Json;
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use super::Crossing;
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

/// A locked budget row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct BudgetRow {
    pub(super) scope: String,
    pub(super) used_flop: f64,
    pub(super) reserved_flop: f64,
}

/// Rolling-window totals and the open-job count.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct WindowRow {
    pub(super) customer_window: f64,
    pub(super) customer_total: f64,
    pub(super) organization_total: f64,
    pub(super) group_total: f64,
    pub(super) open_jobs: i64,
}

/// What the window query needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowQuery {
    pub(super) customer: Uuid,
    pub(super) organization: Option<Uuid>,
    pub(super) group: Option<Uuid>,
    pub(super) cap_since: DbTime,
    pub(super) threshold_since: DbTime,
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
    pub(super) decided_at: DbTime,
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

    /// Locks (PostgreSQL) and reads the lineage, customer and organization budget rows.
    fn lock_budgets(
        &mut self,
        keys: BudgetKeys,
    ) -> impl Future<Output = sqlx::Result<Vec<BudgetRow>>> + Send;

    /// Creates missing budget rows.
    fn ensure_budgets(&mut self, keys: BudgetKeys)
    -> impl Future<Output = sqlx::Result<()>> + Send;

    /// The customer's linked group, with its budget row locked (PostgreSQL).
    fn lock_group_of(
        &mut self,
        customer: Uuid,
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;

    /// Rolling-window totals and the customer's open jobs.
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
    ) -> impl Future<Output = sqlx::Result<Option<Uuid>>> + Send;

    /// Inserts a job row.
    fn insert_job(&mut self, job: &NewJob<'_>) -> impl Future<Output = sqlx::Result<()>> + Send;

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
}

/// Budget rows locked by admission and usage: lineage, customer, organization, ordered by
/// `(scope, scope_id)` — with the group row after them, the order every ledger transaction
/// takes its locks in.
macro_rules! lock_budgets_sql {
    () => {
        "SELECT scope, used_flop, reserved_flop FROM ledger_budgets \
         WHERE (scope = 'lineage' AND scope_id = $1) OR (scope = 'customer' AND scope_id = $2) \
            OR (scope = 'organization' AND scope_id = $3) \
         ORDER BY scope, scope_id"
    };
}

/// The customer's group, joined to its budget row (the row the locking clause locks).
macro_rules! lock_group_sql {
    () => {
        "SELECT m.group_id FROM ledger_group_members m \
         JOIN ledger_budgets b ON b.scope = 'group' AND b.scope_id = m.group_id \
         WHERE m.customer_id = $1"
    };
}

/// A job with its run id, in [`JobRow`] order.
macro_rules! job_sql {
    () => {
        "SELECT j.id, j.customer_id, j.organization_id, r.run_id, j.lineage_root, j.status, \
         j.estimate_flop, j.hardware_flop, j.declared_flop, j.basis, j.table_version, \
         j.accelerators, j.accelerator_type, j.bio_sequence, j.reserved_flop, j.used_flop, \
         j.accelerator_seconds \
         FROM ledger_jobs j JOIN ledger_runs r ON r.id = j.run WHERE j.id = $1"
    };
}

const WINDOW_TOTALS: &str = "SELECT \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE customer_id = $1 AND decided_at > $2) AS customer_window, \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE customer_id = $1 AND decided_at > $3) AS customer_total, \
     (SELECT COALESCE(SUM(used_flop + reserved_flop), 0.0) FROM ledger_jobs \
        WHERE organization_id = $4 AND decided_at > $3) AS organization_total, \
     (SELECT COALESCE(SUM(j.used_flop + j.reserved_flop), 0.0) FROM ledger_group_members m \
        JOIN ledger_jobs j ON j.customer_id = m.customer_id \
        WHERE m.group_id = $5 AND j.decided_at > $3) AS group_total, \
     (SELECT COUNT(*) FROM ledger_jobs \
        WHERE customer_id = $1 AND status IN ('reserved', 'running')) AS open_jobs";

const ADD_TO_BUDGETS: &str = "UPDATE ledger_budgets \
     SET used_flop = used_flop + $1, reserved_flop = reserved_flop + $2 \
     WHERE (scope = 'lineage' AND scope_id = $3) OR (scope = 'customer' AND scope_id = $4) \
        OR (scope = 'organization' AND scope_id = $5)";

const CONSUME_APPROVAL: &str = "UPDATE ledger_reviews SET consumed_by = $1, consumed_at = $2 \
     WHERE id = (SELECT id FROM ledger_reviews \
        WHERE customer_id = $3 AND run_id = $4 AND status = 'approved' AND consumed_by IS NULL \
          AND estimate_flop BETWEEN $5 AND $6 \
        ORDER BY decided_at, id LIMIT 1) \
     RETURNING id";

const INSERT_JOB: &str = "INSERT INTO ledger_jobs (id, customer_id, organization_id, run, \
     lineage_root, status, decision, request_id, route, estimate_flop, hardware_flop, \
     declared_flop, basis, table_version, accelerators, accelerator_type, bio_sequence, \
     reserved_flop, used_flop, accelerator_seconds, decided_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     0.0, 0.0, $19)";

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
     estimate_flop, thresholds, status, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)";

/// One body per backend; `$lock` is the locking clause appended to locking reads.
macro_rules! ledger_tx_for {
    ($db:ty, lock = $lock:literal, lock_group = $lock_group:literal, lock_job = $lock_job:literal) => {
        impl LedgerTx for Transaction<'_, $db> {
            async fn find_runs(
                &mut self,
                customer: Uuid,
                run_id: &str,
                parent: Option<&str>,
            ) -> sqlx::Result<Vec<RunRow>> {
                sqlx::query_as(
                    "SELECT id, run_id, lineage_root FROM ledger_runs \
                     WHERE customer_id = $1 AND (run_id = $2 OR run_id = $3)",
                )
                .bind(customer)
                .bind(run_id)
                .bind(parent)
                .fetch_all(&mut **self)
                .await
            }

            async fn insert_run(
                &mut self,
                run: &RunRow,
                customer: Uuid,
                parent: Option<&str>,
                now: DbTime,
            ) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_runs \
                     (id, customer_id, run_id, parent_run_id, lineage_root, first_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (customer_id, run_id) DO NOTHING",
                )
                .bind(run.id)
                .bind(customer)
                .bind(&run.run_id)
                .bind(parent)
                .bind(run.lineage_root)
                .bind(now)
                .execute(&mut **self)
                .await
                .map(drop)
            }

            async fn lock_budgets(&mut self, keys: BudgetKeys) -> sqlx::Result<Vec<BudgetRow>> {
                sqlx::query_as(concat!(lock_budgets_sql!(), $lock))
                .bind(keys.lineage)
                .bind(keys.customer)
                .bind(keys.organization)
                .fetch_all(&mut **self)
                .await
            }

            async fn ensure_budgets(&mut self, keys: BudgetKeys) -> sqlx::Result<()> {
                sqlx::query(
                    "INSERT INTO ledger_budgets (scope, scope_id) \
                     VALUES ('lineage', $1), ('customer', $2) ON CONFLICT DO NOTHING",
                )
                .bind(keys.lineage)
                .bind(keys.customer)
                .execute(&mut **self)
                .await?;
                if let Some(org) = keys.organization {
                    sqlx::query(
                        "INSERT INTO ledger_budgets (scope, scope_id) \
                         VALUES ('organization', $1) ON CONFLICT DO NOTHING",
                    )
                    .bind(org)
                    .execute(&mut **self)
                    .await?;
                }
                Ok(())
            }

            async fn lock_group_of(&mut self, customer: Uuid) -> sqlx::Result<Option<Uuid>> {
                sqlx::query_scalar(concat!(lock_group_sql!(), $lock_group))
                .bind(customer)
                .fetch_optional(&mut **self)
                .await
            }

            async fn window_totals(&mut self, q: WindowQuery) -> sqlx::Result<WindowRow> {
                sqlx::query_as(WINDOW_TOTALS)
                    .bind(q.customer)
                    .bind(q.cap_since)
                    .bind(q.threshold_since)
                    .bind(q.organization)
                    .bind(q.group)
                    .fetch_one(&mut **self)
                    .await
            }

            async fn add_to_budgets(
                &mut self,
                keys: BudgetKeys,
                used: f64,
                reserved: f64,
            ) -> sqlx::Result<()> {
                sqlx::query(ADD_TO_BUDGETS)
                    .bind(used)
                    .bind(reserved)
                    .bind(keys.lineage)
                    .bind(keys.customer)
                    .bind(keys.organization)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn consume_approval(
                &mut self,
                customer: Uuid,
                run_id: &str,
                estimate: f64,
                job: Uuid,
                now: DbTime,
            ) -> sqlx::Result<Option<Uuid>> {
                // |estimate - approved| <= 1 % of approved.
                let low = estimate / (1.0 + super::APPROVAL_TOLERANCE);
                let high = estimate / (1.0 - super::APPROVAL_TOLERANCE);
                sqlx::query_scalar(CONSUME_APPROVAL)
                    .bind(job)
                    .bind(now)
                    .bind(customer)
                    .bind(run_id)
                    .bind(low)
                    .bind(high)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn insert_job(&mut self, j: &NewJob<'_>) -> sqlx::Result<()> {
                sqlx::query(INSERT_JOB)
                    .bind(j.id)
                    .bind(j.customer_id)
                    .bind(j.organization_id)
                    .bind(j.run)
                    .bind(j.lineage_root)
                    .bind(j.status)
                    .bind(j.decision)
                    .bind(j.request_id)
                    .bind(j.route)
                    .bind(j.estimate_flop)
                    .bind(j.hardware_flop)
                    .bind(j.declared_flop)
                    .bind(j.basis)
                    .bind(j.table_version)
                    .bind(j.accelerators)
                    .bind(j.accelerator_type)
                    .bind(j.bio_sequence)
                    .bind(j.reserved_flop)
                    .bind(j.decided_at)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn job(&mut self, id: Uuid, lock: bool) -> sqlx::Result<Option<JobRow>> {
                let sql = if lock {
                    concat!(job_sql!(), $lock_job)
                } else {
                    job_sql!()
                };
                sqlx::query_as(sql)
                    .bind(id)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn update_job_usage(&mut self, u: &JobUsage) -> sqlx::Result<()> {
                sqlx::query(UPDATE_JOB_USAGE)
                    .bind(u.status)
                    .bind(u.used_flop)
                    .bind(u.reserved_flop)
                    .bind(u.accelerator_seconds)
                    .bind(u.at)
                    .bind(u.started)
                    .bind(u.finished)
                    .bind(u.id)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn usage_event_exists(&mut self, event_id: &str) -> sqlx::Result<bool> {
                let found: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM ledger_usage_events WHERE event_id = $1",
                )
                .bind(event_id)
                .fetch_one(&mut **self)
                .await?;
                Ok(found > 0)
            }

            async fn insert_usage_event(&mut self, e: &NewUsageEvent<'_>) -> sqlx::Result<bool> {
                let done = sqlx::query(INSERT_USAGE_EVENT)
                    .bind(e.event_id)
                    .bind(e.job_id)
                    .bind(e.kind)
                    .bind(e.at)
                    .bind(e.accelerator_seconds_total)
                    .bind(e.flop_per_accelerator_second)
                    .bind(e.used_flop_after)
                    .execute(&mut **self)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_crossing(
                &mut self,
                job: Uuid,
                phase: &'static str,
                c: &Crossing,
                at: DbTime,
            ) -> sqlx::Result<()> {
                sqlx::query(INSERT_CROSSING)
                    .bind(Uuid::now_v7())
                    .bind(job)
                    .bind(phase)
                    .bind(&c.label)
                    .bind(c.threshold_flop)
                    .bind(c.scope.as_str())
                    .bind(c.scope_id)
                    .bind(c.action.as_str())
                    .bind(c.previous_flop)
                    .bind(c.projected_flop)
                    .bind(at)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn insert_report(&mut self, r: &NewReport<'_>) -> sqlx::Result<()> {
                let j = r.job;
                sqlx::query(INSERT_REPORT)
                    .bind(r.id)
                    .bind(j.id)
                    .bind(j.customer_id)
                    .bind(j.organization_id)
                    .bind(&j.run_id)
                    .bind(j.lineage_root)
                    .bind(Json(r.crossings))
                    .bind(r.identity_snapshot.map(Json))
                    .bind(j.estimate_flop)
                    .bind(j.hardware_flop)
                    .bind(j.declared_flop)
                    .bind(&j.basis)
                    .bind(&j.table_version)
                    .bind(j.accelerators)
                    .bind(&j.accelerator_type)
                    .bind(r.cumulative_flop)
                    .bind(r.created_at)
                    .bind(r.due_at)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn insert_review(&mut self, r: &NewReview<'_>) -> sqlx::Result<()> {
                sqlx::query(INSERT_REVIEW)
                    .bind(r.id)
                    .bind(r.job_id)
                    .bind(r.customer_id)
                    .bind(r.run_id)
                    .bind(r.estimate_flop)
                    .bind(Json(r.crossings))
                    .bind(r.created_at)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }
        }
    };
}

ledger_tx_for!(Sqlite, lock = "", lock_group = "", lock_job = "");
ledger_tx_for!(
    Postgres,
    lock = " FOR UPDATE",
    lock_group = " FOR UPDATE OF b",
    lock_job = " FOR UPDATE OF j"
);

//! [`LedgerTx`] for a write transaction of each backend: one body, expanded per backend with
//! its locking clauses.

use sqlx::types::Json;
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use super::*;
use crate::ledger::model::Crossing;
use crate::store::DbTime;

/// Binds `$1`..`$21` of [`INSERT_JOB`] (the same in [`INSERT_RESERVED_JOB`]).
macro_rules! bind_job {
    ($query:expr, $j:expr) => {
        $query
            .bind($j.id)
            .bind($j.customer_id)
            .bind($j.organization_id)
            .bind($j.run)
            .bind($j.lineage_root)
            .bind($j.status)
            .bind($j.decision)
            .bind($j.request_id)
            .bind($j.route)
            .bind($j.estimate_flop)
            .bind($j.hardware_flop)
            .bind($j.declared_flop)
            .bind($j.basis)
            .bind($j.table_version)
            .bind($j.accelerators)
            .bind($j.accelerator_type)
            .bind($j.bio_sequence)
            .bind($j.reserved_flop)
            .bind($j.decided_at)
            .bind($j.flop_per_accelerator_second)
            .bind($j.lease_expires_at)
    };
}

/// One body per backend; `$lock_*` are the locking clauses appended to locking reads, and
/// `$cte` says whether the backend takes data-modifying CTEs (PostgreSQL), which merge two
/// writes into one round trip.
macro_rules! ledger_tx_for {
    (
        $db:ty,
        lock_budgets = $lock_budgets:literal,
        lock_job = $lock_job:literal,
        cte = $cte:literal
    ) => {
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

            async fn lock_scopes(&mut self, q: LockQuery<'_>) -> sqlx::Result<Vec<BudgetRow>> {
                sqlx::query_as(concat!(lock_scopes_sql!(), $lock_budgets))
                    .bind(q.customer)
                    .bind(q.run_id)
                    .bind(q.lineage)
                    .bind(q.organization)
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

            async fn fired(&mut self, ids: [Option<Uuid>; 4]) -> sqlx::Result<Vec<(Uuid, String)>> {
                sqlx::query_as(FIRED)
                    .bind(ids[0])
                    .bind(ids[1])
                    .bind(ids[2])
                    .bind(ids[3])
                    .fetch_all(&mut **self)
                    .await
            }

            async fn window_totals(&mut self, q: WindowQuery) -> sqlx::Result<WindowRow> {
                sqlx::query_as(WINDOW_TOTALS)
                    .bind(q.customer)
                    .bind(q.cap_since)
                    .bind(q.threshold_since)
                    .bind(q.organization)
                    .bind(q.group)
                    .bind(q.count_open_jobs)
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
                approved_since: DbTime,
            ) -> sqlx::Result<Option<Uuid>> {
                // |estimate - approved| <= 1 % of approved.
                let low = estimate / (1.0 + crate::ledger::model::APPROVAL_TOLERANCE);
                let high = estimate / (1.0 - crate::ledger::model::APPROVAL_TOLERANCE);
                sqlx::query_scalar(CONSUME_APPROVAL)
                    .bind(job)
                    .bind(now)
                    .bind(customer)
                    .bind(run_id)
                    .bind(low)
                    .bind(high)
                    .bind(approved_since)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn insert_job(&mut self, j: &NewJob<'_>) -> sqlx::Result<()> {
                bind_job!(sqlx::query(INSERT_JOB), j)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn insert_reserved_job(
                &mut self,
                j: &NewJob<'_>,
                keys: BudgetKeys,
            ) -> sqlx::Result<()> {
                if $cte {
                    bind_job!(sqlx::query(INSERT_RESERVED_JOB), j)
                        .bind(keys.lineage)
                        .bind(keys.customer)
                        .bind(keys.organization)
                        .execute(&mut **self)
                        .await
                        .map(drop)
                } else {
                    self.insert_job(j).await?;
                    self.add_to_budgets(keys, 0.0, j.reserved_flop).await
                }
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
                    .bind(r.hold_reason)
                    .bind(r.created_at)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn close_job(&mut self, c: &JobClosing<'_>) -> sqlx::Result<()> {
                sqlx::query(CLOSE_JOB)
                    .bind(c.reserved_flop)
                    .bind(c.at)
                    .bind(c.reason)
                    .bind(c.closed_by)
                    .bind(c.note)
                    .bind(c.id)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn restore_approval(&mut self, job: Uuid) -> sqlx::Result<Option<Uuid>> {
                sqlx::query_scalar(RESTORE_APPROVAL)
                    .bind(job)
                    .fetch_optional(&mut **self)
                    .await
            }

            async fn withdraw_reports(
                &mut self,
                job: Uuid,
                reason: &str,
                at: DbTime,
            ) -> sqlx::Result<Vec<(Uuid, bool)>> {
                sqlx::query_as(WITHDRAW_REPORTS)
                    .bind(at)
                    .bind(reason)
                    .bind(job)
                    .fetch_all(&mut **self)
                    .await
            }

            async fn claim_idempotency_key(&mut self, c: &KeyClaim<'_>) -> sqlx::Result<bool> {
                let claimed = sqlx::query(CLAIM_IDEMPOTENCY_KEY)
                    .bind(c.customer)
                    .bind(c.route)
                    .bind(c.key)
                    .bind(c.fingerprint)
                    .bind(c.job)
                    .bind(c.now)
                    .bind(c.expires_at)
                    .execute(&mut **self)
                    .await?
                    .rows_affected();
                Ok(claimed == 1)
            }

            async fn free_idempotency_keys(&mut self, job: Uuid) -> sqlx::Result<()> {
                sqlx::query(FREE_IDEMPOTENCY_KEYS)
                    .bind(job)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }
        }
    };
}

ledger_tx_for!(Sqlite, lock_budgets = "", lock_job = "", cte = false);
ledger_tx_for!(
    Postgres,
    lock_budgets = " FOR UPDATE OF b",
    lock_job = " FOR UPDATE OF j",
    cte = true
);

//! The batch admission's queries ([`BulkTx`]): each reads or writes what a whole batch of
//! admissions needs in one statement — their runs with their group memberships, their budget
//! rows (locked), their rolling-window totals, their job rows and their reservations — so a batch
//! of `n` admissions costs a handful of statements instead of a few per admission. SQLite binds
//! the batch as multi-row `VALUES` lists built with [`QueryBuilder`]; PostgreSQL binds one array
//! per column and reads it with `unnest`, so its statements are the same text for every batch
//! size (see its impl), and appends `FOR UPDATE` to the locking read, as
//! [`super::LedgerTx`] does.

use std::future::Future;

use sqlx::postgres::PgBindIterExt as _;
use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use super::{NewJob, WindowQuery, WindowRow};
use crate::store::DbTime;

/// A run found for an admission: `(customer, run id)` → its row id and lineage root, and the
/// linked group its customer is in, if any.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(in crate::ledger) struct FoundRun {
    pub(in crate::ledger) customer_id: Uuid,
    pub(in crate::ledger) run_id: String,
    pub(in crate::ledger) id: Uuid,
    pub(in crate::ledger) lineage_root: Uuid,
    pub(in crate::ledger) group_id: Option<Uuid>,
}

/// A budget row as locked: its scope, id and running totals.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(in crate::ledger) struct LockedBudget {
    pub(in crate::ledger) scope: String,
    pub(in crate::ledger) scope_id: Uuid,
    pub(in crate::ledger) used_flop: f64,
    pub(in crate::ledger) reserved_flop: f64,
}

/// The batch statements of a write transaction (see the module docs).
pub(in crate::ledger) trait BulkTx: Send {
    /// The existing runs among `(customer, run id)` pairs, each with its customer's group
    /// (one statement for both: a batch whose runs all exist needs nothing else of them).
    fn find_runs_many<'a>(
        &'a mut self,
        runs: &'a [(Uuid, &'a str)],
    ) -> impl Future<Output = sqlx::Result<Vec<FoundRun>>> + Send + 'a;

    /// Locks the budget rows `(scope, id)` that exist, in `(scope, scope_id)` order (the one
    /// order every ledger transaction locks in), and returns them.
    fn lock_budgets_many<'a>(
        &'a mut self,
        keys: &'a [(&'static str, Uuid)],
    ) -> impl Future<Output = sqlx::Result<Vec<LockedBudget>>> + Send + 'a;

    /// The rolling-window totals for each query, in the queries' order (the statement of
    /// [`super::LedgerTx::window_totals`], once per query, in one round trip).
    fn window_totals_many<'a>(
        &'a mut self,
        queries: &'a [WindowQuery],
    ) -> impl Future<Output = sqlx::Result<Vec<WindowRow>>> + Send + 'a;

    /// Inserts the job rows and adds `flop` to the reserved FLOP of each budget row
    /// `(scope, id)` in `adds` (each row once, already locked by this transaction).
    fn insert_jobs_reserving<'a>(
        &'a mut self,
        jobs: &'a [NewJob<'a>],
        adds: &'a [(&'static str, Uuid, f64)],
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'a;
}

/// One row of [`BulkTx::window_totals_many`]'s answer, with its query's position.
#[derive(Debug, sqlx::FromRow)]
struct NumberedWindowRow {
    i: i64,
    #[sqlx(flatten)]
    row: WindowRow,
}

/// SQLite: most rows in one `VALUES` list (the widest list, job rows with 21 parameters each,
/// stays far below its limit of 32 766 parameters).
const MAX_ROWS: usize = 256;

/// SQLite: multi-row `VALUES` lists (it has no arrays to bind), one statement text per list
/// length.
impl BulkTx for Transaction<'_, Sqlite> {
    async fn find_runs_many(&mut self, runs: &[(Uuid, &str)]) -> sqlx::Result<Vec<FoundRun>> {
        let mut found = Vec::new();
        for chunk in runs.chunks(MAX_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT r.customer_id, r.run_id, r.id, r.lineage_root, m.group_id \
                 FROM ledger_runs r \
                 LEFT JOIN ledger_group_members m ON m.customer_id = r.customer_id \
                 WHERE (r.customer_id, r.run_id) IN (",
            );
            q.push_values(chunk, |mut row, (customer, run_id)| {
                row.push_bind(*customer).push_bind(*run_id);
            });
            q.push(")");
            found.extend(q.build_query_as().fetch_all(&mut **self).await?);
        }
        Ok(found)
    }

    async fn lock_budgets_many(
        &mut self,
        keys: &[(&'static str, Uuid)],
    ) -> sqlx::Result<Vec<LockedBudget>> {
        let mut found = Vec::new();
        // One statement normally (a batch has at most 4 × 128 keys); more would lock
        // in several sorted runs, still in order within each.
        for chunk in keys.chunks(MAX_ROWS * 2) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT scope, scope_id, used_flop, reserved_flop FROM ledger_budgets \
                 WHERE (scope, scope_id) IN (",
            );
            q.push_values(chunk, |mut row, (scope, id)| {
                row.push_bind(*scope).push_bind(*id);
            });
            q.push(") ORDER BY scope, scope_id");
            found.extend(q.build_query_as().fetch_all(&mut **self).await?);
        }
        Ok(found)
    }

    async fn window_totals_many(
        &mut self,
        queries: &[WindowQuery],
    ) -> sqlx::Result<Vec<WindowRow>> {
        let mut rows = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(MAX_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "WITH q (i, customer, org, grp, cap_since, threshold_since, count_open) \
                 AS (",
            );
            q.push_values(chunk.iter().zip(0_i64..), |mut row, (w, i)| {
                row.push_bind(i)
                    .push_bind(w.customer)
                    .push_bind(w.organization)
                    .push_bind(w.group)
                    .push_bind(w.cap_since)
                    .push_bind(w.threshold_since)
                    .push_bind(w.count_open_jobs);
            });
            q.push(concat!(
                ") SELECT q.i, ",
                window_totals_columns!(
                    "q.customer",
                    "q.cap_since",
                    "q.threshold_since",
                    "q.org",
                    "q.grp",
                    "q.count_open"
                ),
                " FROM q ORDER BY q.i"
            ));
            let numbered = q.build_query_as().fetch_all(&mut **self).await?;
            rows.extend(in_query_order(numbered, chunk.len())?);
        }
        Ok(rows)
    }

    /// Two statements: the job rows, then the reservations.
    async fn insert_jobs_reserving(
        &mut self,
        jobs: &[NewJob<'_>],
        adds: &[(&'static str, Uuid, f64)],
    ) -> sqlx::Result<()> {
        for chunk in jobs.chunks(MAX_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(insert_job_columns!());
            q.push_values(chunk, |mut row, j| {
                row.push_bind(j.id)
                    .push_bind(j.customer_id)
                    .push_bind(j.organization_id)
                    .push_bind(j.run)
                    .push_bind(j.lineage_root)
                    .push_bind(j.status)
                    .push_bind(j.decision)
                    .push_bind(j.request_id)
                    .push_bind(j.route)
                    .push_bind(j.estimate_flop)
                    .push_bind(j.hardware_flop)
                    .push_bind(j.declared_flop)
                    .push_bind(j.basis)
                    .push_bind(j.table_version)
                    .push_bind(j.accelerators)
                    .push_bind(j.accelerator_type)
                    .push_bind(j.bio_sequence)
                    .push_bind(j.reserved_flop)
                    .push("0.0")
                    .push("0.0")
                    .push_bind(j.decided_at)
                    .push_bind(j.flop_per_accelerator_second)
                    .push_bind(j.lease_expires_at);
            });
            q.build().execute(&mut **self).await?;
        }
        for chunk in adds.chunks(MAX_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new("WITH v (scope, scope_id, add_flop) AS (");
            q.push_values(chunk, |mut row, (scope, id, flop)| {
                row.push_bind(*scope).push_bind(*id).push_bind(*flop);
            });
            // A join, not a subquery per updated row (each key is in `v` once).
            q.push(
                ") UPDATE ledger_budgets SET reserved_flop = reserved_flop + v.add_flop \
                 FROM v WHERE ledger_budgets.scope = v.scope \
                   AND ledger_budgets.scope_id = v.scope_id",
            );
            q.build().execute(&mut **self).await?;
        }
        Ok(())
    }
}

/// PostgreSQL: reads the batch's columns from bound arrays (`unnest`), so each statement's text is
/// the same whatever the batch size: one prepared statement and one cached plan each, where
/// `VALUES` lists made a new statement for every batch size (parsed and planned again, and
/// prepared in a round trip of its own, whenever it had fallen out of the statement cache).
impl BulkTx for Transaction<'_, Postgres> {
    async fn find_runs_many(&mut self, runs: &[(Uuid, &str)]) -> sqlx::Result<Vec<FoundRun>> {
        sqlx::query_as(
            "SELECT r.customer_id, r.run_id, r.id, r.lineage_root, m.group_id \
             FROM ledger_runs r \
             LEFT JOIN ledger_group_members m ON m.customer_id = r.customer_id \
             WHERE (r.customer_id, r.run_id) IN \
               (SELECT * FROM unnest($1::uuid[], $2::text[]))",
        )
        .bind(runs.iter().map(|(customer, _)| customer).bind_iter())
        .bind(runs.iter().map(|(_, run_id)| run_id).bind_iter())
        .fetch_all(&mut **self)
        .await
    }

    async fn lock_budgets_many(
        &mut self,
        keys: &[(&'static str, Uuid)],
    ) -> sqlx::Result<Vec<LockedBudget>> {
        sqlx::query_as(
            "SELECT scope, scope_id, used_flop, reserved_flop FROM ledger_budgets \
             WHERE (scope, scope_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[])) \
             ORDER BY scope, scope_id FOR UPDATE",
        )
        .bind(keys.iter().map(|(scope, _)| scope).bind_iter())
        .bind(keys.iter().map(|(_, id)| id).bind_iter())
        .fetch_all(&mut **self)
        .await
    }

    async fn window_totals_many(
        &mut self,
        queries: &[WindowQuery],
    ) -> sqlx::Result<Vec<WindowRow>> {
        let numbered: Vec<NumberedWindowRow> = sqlx::query_as(concat!(
            "SELECT q.i - 1 AS i, ",
            window_totals_columns!(
                "q.customer",
                "q.cap_since",
                "q.threshold_since",
                "q.org",
                "q.grp",
                "q.count_open"
            ),
            " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], \
                $5::timestamptz[], $6::boolean[]) WITH ORDINALITY \
                AS q (customer, org, grp, cap_since, threshold_since, count_open, i) \
             ORDER BY q.i"
        ))
        .bind(queries.iter().map(|w| w.customer).bind_iter())
        .bind(queries.iter().map(|w| w.organization).bind_iter())
        .bind(queries.iter().map(|w| w.group).bind_iter())
        .bind(queries.iter().map(|w| w.cap_since.get()).bind_iter())
        .bind(queries.iter().map(|w| w.threshold_since.get()).bind_iter())
        .bind(queries.iter().map(|w| w.count_open_jobs).bind_iter())
        .fetch_all(&mut **self)
        .await?;
        in_query_order(numbered, queries.len())
    }

    /// One statement: the reservations are a data-modifying `WITH` (run to completion whether
    /// or not the insert reads them), one round trip less per batch.
    async fn insert_jobs_reserving(
        &mut self,
        jobs: &[NewJob<'_>],
        adds: &[(&'static str, Uuid, f64)],
    ) -> sqlx::Result<()> {
        // The reservation is a join, not a subquery per updated row (each key is in the list
        // once).
        sqlx::query(concat!(
            "WITH reserve AS (UPDATE ledger_budgets SET reserved_flop = reserved_flop + v.add_flop \
               FROM unnest($22::text[], $23::uuid[], $24::float8[]) AS v (scope, scope_id, add_flop) \
               WHERE ledger_budgets.scope = v.scope AND ledger_budgets.scope_id = v.scope_id) ",
            insert_job_columns!(),
            "SELECT id, customer_id, organization_id, run, lineage_root, status, decision, \
               request_id, route, estimate_flop, hardware_flop, declared_flop, basis, \
               table_version, accelerators, accelerator_type, bio_sequence, reserved_flop, \
               0.0, 0.0, decided_at, flop_per_accelerator_second, lease_expires_at \
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
               $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[], $11::float8[], \
               $12::float8[], $13::text[], $14::text[], $15::int8[], $16::text[], \
               $17::boolean[], $18::float8[], $19::timestamptz[], $20::float8[], \
               $21::timestamptz[]) \
             AS j (id, customer_id, organization_id, run, lineage_root, status, decision, \
               request_id, route, estimate_flop, hardware_flop, declared_flop, basis, \
               table_version, accelerators, accelerator_type, bio_sequence, reserved_flop, \
               decided_at, flop_per_accelerator_second, lease_expires_at)"
        ))
        .bind(jobs.iter().map(|j| j.id).bind_iter())
        .bind(jobs.iter().map(|j| j.customer_id).bind_iter())
        .bind(jobs.iter().map(|j| j.organization_id).bind_iter())
        .bind(jobs.iter().map(|j| j.run).bind_iter())
        .bind(jobs.iter().map(|j| j.lineage_root).bind_iter())
        .bind(jobs.iter().map(|j| j.status).bind_iter())
        .bind(jobs.iter().map(|j| j.decision).bind_iter())
        .bind(jobs.iter().map(|j| j.request_id).bind_iter())
        .bind(jobs.iter().map(|j| j.route).bind_iter())
        .bind(jobs.iter().map(|j| j.estimate_flop).bind_iter())
        .bind(jobs.iter().map(|j| j.hardware_flop).bind_iter())
        .bind(jobs.iter().map(|j| j.declared_flop).bind_iter())
        .bind(jobs.iter().map(|j| j.basis).bind_iter())
        .bind(jobs.iter().map(|j| j.table_version).bind_iter())
        .bind(jobs.iter().map(|j| j.accelerators).bind_iter())
        .bind(jobs.iter().map(|j| j.accelerator_type).bind_iter())
        .bind(jobs.iter().map(|j| j.bio_sequence).bind_iter())
        .bind(jobs.iter().map(|j| j.reserved_flop).bind_iter())
        .bind(jobs.iter().map(|j| j.decided_at.get()).bind_iter())
        .bind(jobs.iter().map(|j| j.flop_per_accelerator_second).bind_iter())
        .bind(jobs.iter().map(|j| j.lease_expires_at.map(DbTime::get)).bind_iter())
        .bind(adds.iter().map(|(scope, ..)| scope).bind_iter())
        .bind(adds.iter().map(|(_, id, _)| id).bind_iter())
        .bind(adds.iter().map(|(.., flop)| flop).bind_iter())
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

/// The window rows of `expected` queries, in the queries' order: one answer row per query,
/// numbered from 0, or the statement is not what it seems — refuse rather than decide on
/// someone else's totals.
fn in_query_order(
    numbered: Vec<NumberedWindowRow>,
    expected: usize,
) -> sqlx::Result<Vec<WindowRow>> {
    let in_order =
        numbered.len() == expected && numbered.iter().zip(0_i64..).all(|(r, i)| r.i == i);
    if !in_order {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(numbered.into_iter().map(|r| r.row).collect())
}

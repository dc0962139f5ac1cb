//! The batch admission's queries ([`BulkTx`]): each reads or writes what a whole batch of
//! admissions needs in one statement — their runs with their group memberships, their budget
//! rows (locked), their rolling-window totals, their job rows and their reservations — so a batch
//! of `n` admissions costs a handful of statements instead of a few per admission. One body
//! for both backends (multi-row `VALUES` lists built with [`QueryBuilder`]); PostgreSQL appends
//! `FOR UPDATE` to the locking read, as [`super::LedgerTx`] does.

use std::future::Future;

use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use super::{NewJob, WindowQuery, WindowRow};

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

    /// Inserts the job rows in one statement.
    fn insert_jobs<'a>(
        &'a mut self,
        jobs: &'a [NewJob<'a>],
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'a;

    /// Adds `flop` to the reserved FLOP of each budget row `(scope, id)` (each row once).
    fn reserve_many<'a>(
        &'a mut self,
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

/// Most rows in one `VALUES` list: the widest list (job rows, 21 parameters each) stays far
/// below both backends' parameter limits (SQLite 32 766, PostgreSQL 65 535).
const MAX_ROWS: usize = 256;

macro_rules! bulk_tx_for {
    ($db:ty, lock_budgets = $lock_budgets:literal) => {
        impl BulkTx for Transaction<'_, $db> {
            async fn find_runs_many(
                &mut self,
                runs: &[(Uuid, &str)],
            ) -> sqlx::Result<Vec<FoundRun>> {
                let mut found = Vec::new();
                for chunk in runs.chunks(MAX_ROWS) {
                    let mut q = QueryBuilder::<$db>::new(
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
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT scope, scope_id, used_flop, reserved_flop FROM ledger_budgets \
                         WHERE (scope, scope_id) IN (",
                    );
                    q.push_values(chunk, |mut row, (scope, id)| {
                        row.push_bind(*scope).push_bind(*id);
                    });
                    q.push(") ORDER BY scope, scope_id");
                    q.push($lock_budgets);
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
                    let mut q = QueryBuilder::<$db>::new(
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
                    let numbered: Vec<NumberedWindowRow> =
                        q.build_query_as().fetch_all(&mut **self).await?;
                    // One answer row per query, in order, or the statement is not what it
                    // seems: refuse rather than decide on someone else's totals.
                    let in_order = numbered.len() == chunk.len()
                        && numbered.iter().zip(0_i64..).all(|(r, i)| r.i == i);
                    if !in_order {
                        return Err(sqlx::Error::RowNotFound);
                    }
                    rows.extend(numbered.into_iter().map(|r| r.row));
                }
                Ok(rows)
            }

            async fn insert_jobs(&mut self, jobs: &[NewJob<'_>]) -> sqlx::Result<()> {
                for chunk in jobs.chunks(MAX_ROWS) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO ledger_jobs (id, customer_id, organization_id, run, \
                         lineage_root, status, decision, request_id, route, estimate_flop, \
                         hardware_flop, declared_flop, basis, table_version, accelerators, \
                         accelerator_type, bio_sequence, reserved_flop, used_flop, \
                         accelerator_seconds, decided_at, flop_per_accelerator_second, \
                         lease_expires_at) ",
                    );
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
                Ok(())
            }

            async fn reserve_many(
                &mut self,
                adds: &[(&'static str, Uuid, f64)],
            ) -> sqlx::Result<()> {
                for chunk in adds.chunks(MAX_ROWS) {
                    let mut q = QueryBuilder::<$db>::new("WITH v (scope, scope_id, add_flop) AS (");
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
    };
}

bulk_tx_for!(Sqlite, lock_budgets = "");
bulk_tx_for!(Postgres, lock_budgets = " FOR UPDATE");

//! Finding and locking a job's budget rows and reading its totals under the locks — shared by
//! admission and usage events.
//!
//! One statement locks the customer, lineage, organization and group rows in `(scope,
//! scope_id)` order (the order every ledger transaction uses, group merges included), so lock
//! waits never form a cycle. On the hot path (known run, existing rows) it also finds the run,
//! so an admission reads everything it decides on in two statements: the locks, then the
//! rolling-window totals. The group is read from the membership snapshot of the locking
//! statement; the totals statement re-reads it, and a difference (a merge or unlink committed
//! while this transaction waited for the customer lock) makes the caller start over.

use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{AdmissionRequest, LedgerError, RunRef};
use super::sql::{BudgetKeys, BudgetRow, JobRow, LedgerTx, LockQuery, RunRow, WindowQuery};
use crate::store::{DbTime, StoreError};
use computegate_policy::admission::{Snapshot, Totals};

/// What the snapshot reads: the starts of the two rolling windows (the customer cap's and the
/// thresholds') and whether the open-job count is needed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Windows {
    pub(super) cap: OffsetDateTime,
    pub(super) threshold: OffsetDateTime,
    pub(super) count_open_jobs: bool,
}

/// Locks an admission's rows (creating the run and budget rows on first sight) and reads the
/// totals. `None`: the customer's group changed while waiting; start over.
pub(super) async fn lock_for_admission<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    since: Windows,
) -> Result<Option<(RunRef, Snapshot)>, LedgerError> {
    let org = req.organization_id;
    let query = LockQuery {
        customer: req.customer_id,
        run_id: Some(&req.run_id),
        lineage: None,
        organization: org,
    };
    let rows = tx.lock_scopes(query).await?;
    let found = rows.iter().find_map(|r| r.run_row).zip(lineage_of(&rows));
    let (run, rows) = match found {
        Some((run, lineage_root)) if complete(&rows, org) => (RunRef { run, lineage_root }, rows),
        _ => {
            let run = resolve_run(tx, req, DbTime::new(req.now)).await?;
            let keys = keys(req.customer_id, run.lineage_root, org);
            tx.ensure_budgets(keys).await?;
            let query = LockQuery {
                run_id: None,
                lineage: Some(run.lineage_root),
                ..query
            };
            (run, tx.lock_scopes(query).await?)
        }
    };
    let keys = keys(req.customer_id, run.lineage_root, org);
    Ok(read_snapshot(tx, keys, &rows, since)
        .await?
        .map(|s| (run, s)))
}

/// Locks a running job's rows and reads the totals (both windows start at `since`). `None`:
/// the customer's group changed while waiting; start over.
pub(super) async fn lock_for_job<T: LedgerTx>(
    tx: &mut T,
    job: &JobRow,
    since: OffsetDateTime,
) -> Result<Option<Snapshot>, LedgerError> {
    let keys = keys(job.customer_id, job.lineage_root, job.organization_id);
    let query = LockQuery {
        customer: keys.customer,
        run_id: None,
        lineage: Some(keys.lineage),
        organization: keys.organization,
    };
    let mut rows = tx.lock_scopes(query).await?;
    if !complete(&rows, keys.organization) {
        // Admission created them; only a hand-edited database lacks them.
        tx.ensure_budgets(keys).await?;
        rows = tx.lock_scopes(query).await?;
    }
    let windows = Windows {
        cap: since,
        threshold: since,
        count_open_jobs: false,
    };
    read_snapshot(tx, keys, &rows, windows).await
}

/// Reads the rolling-window totals under the locks in `rows`.
async fn read_snapshot<T: LedgerTx>(
    tx: &mut T,
    keys: BudgetKeys,
    rows: &[BudgetRow],
    since: Windows,
) -> Result<Option<Snapshot>, LedgerError> {
    let group = rows.iter().find(|r| r.scope == "group").map(|r| r.scope_id);
    let w = tx
        .window_totals(WindowQuery {
            customer: keys.customer,
            organization: keys.organization,
            group,
            cap_since: DbTime::new(since.cap),
            threshold_since: DbTime::new(since.threshold),
            count_open_jobs: since.count_open_jobs,
        })
        .await?;
    if w.group_now != group {
        return Ok(None);
    }
    let customer_flop = w.customer_total.unwrap_or(w.customer_window);
    let lineage_flop = rows
        .iter()
        .find(|r| r.scope == "lineage")
        .map_or(0.0, |r| r.used_flop + r.reserved_flop);
    Ok(Some(Snapshot {
        lineage_root: keys.lineage,
        customer_id: keys.customer,
        organization_id: keys.organization,
        group_id: group,
        totals: Totals {
            lineage_flop,
            customer_window_flop: w.customer_window,
            customer_flop,
            organization_flop: keys.organization.map(|_| w.organization_total),
            group_flop: if group.is_some() {
                w.group_total
            } else {
                customer_flop
            },
            open_jobs: since
                .count_open_jobs
                .then(|| u64::try_from(w.open_jobs).unwrap_or(0)),
        },
        fired: Vec::new(),
    }))
}

/// Fills [`Snapshot::fired`] when the job's projected totals reach any threshold (`reached`,
/// from [`reached`](computegate_policy::admission::reached)); otherwise nothing fired matters and no query runs.
pub(super) async fn load_fired<T: LedgerTx>(
    tx: &mut T,
    snapshot: &mut Snapshot,
    reached: &[(Uuid, String)],
) -> Result<(), LedgerError> {
    if reached.is_empty() {
        return Ok(());
    }
    let ids = [
        Some(snapshot.lineage_root),
        Some(snapshot.customer_id),
        snapshot.organization_id,
        snapshot.group_id,
    ];
    snapshot.fired = tx
        .fired(ids)
        .await?
        .into_iter()
        .filter(|f| reached.contains(f))
        .collect();
    Ok(())
}

/// The job's run row, created on first sight with its lineage root: a declared parent's root,
/// the parent itself (registered as a root run) when the parent is new, or the run itself.
async fn resolve_run<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    now: DbTime,
) -> Result<RunRef, LedgerError> {
    let customer = req.customer_id;
    let parent = req.parent_run_id.as_deref().filter(|p| *p != req.run_id);
    let rows = tx.find_runs(customer, &req.run_id, parent).await?;
    if let Some(r) = rows.iter().find(|r| r.run_id == req.run_id) {
        return Ok(RunRef {
            run: r.id,
            lineage_root: r.lineage_root,
        });
    }
    let root = match parent {
        None => None,
        Some(p) => match rows.iter().find(|r| r.run_id == p) {
            Some(r) => Some(r.lineage_root),
            None => Some(
                ensure_run(tx, customer, p, None, None, now)
                    .await?
                    .lineage_root,
            ),
        },
    };
    let run = ensure_run(tx, customer, &req.run_id, parent, root, now).await?;
    Ok(RunRef {
        run: run.id,
        lineage_root: run.lineage_root,
    })
}

/// Inserts a run unless it exists (a concurrent admission may have just created it) and
/// returns the stored row.
async fn ensure_run<T: LedgerTx>(
    tx: &mut T,
    customer: Uuid,
    run_id: &str,
    parent: Option<&str>,
    root: Option<Uuid>,
    now: DbTime,
) -> Result<RunRow, LedgerError> {
    let id = Uuid::now_v7();
    let row = RunRow {
        id,
        run_id: run_id.to_owned(),
        lineage_root: root.unwrap_or(id),
    };
    match tx.insert_run(&row, customer, parent, now).await {
        Ok(()) => {}
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            return Err(LedgerError::UnknownCustomer);
        }
        Err(e) => return Err(e.into()),
    }
    let stored = tx.find_runs(customer, run_id, None).await?;
    stored
        .into_iter()
        .find(|r| r.run_id == run_id)
        .ok_or(LedgerError::Store(StoreError::CorruptRow {
            column: "ledger_runs.run_id",
        }))
}

fn keys(customer: Uuid, lineage: Uuid, organization: Option<Uuid>) -> BudgetKeys {
    BudgetKeys {
        lineage,
        customer,
        organization,
    }
}

fn lineage_of(rows: &[BudgetRow]) -> Option<Uuid> {
    rows.iter()
        .find(|r| r.scope == "lineage")
        .map(|r| r.scope_id)
}

/// The customer, lineage and (when there is one) organization rows were all found.
fn complete(rows: &[BudgetRow], organization: Option<Uuid>) -> bool {
    let has = |scope: &str| rows.iter().any(|r| r.scope == scope);
    has("customer") && has("lineage") && (organization.is_none() || has("organization"))
}

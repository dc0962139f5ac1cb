//! Deciding a whole batch of admissions with a handful of statements: the runs (with their
//! customers' group memberships), budget rows (locked) and rolling-window totals of every
//! admission of the batch are read at once ([`BulkTx`]); the admissions are then decided one
//! after the other, in queue order, in memory — each against the totals read plus what the
//! admissions before it in the batch reserved, exactly what it would have read had those been
//! written first — and the job rows and reservations are written at once.
//!
//! This is the common case only: every admission's run and budget rows exist, it claims no
//! idempotency key and asks for no hold, and no threshold is within reach (so there is no
//! crossing, report or review to write). Anything else — a first job of a run, a threshold in
//! reach, a review — makes [`decide_bulk`] answer `None` before it writes anything, and the
//! batch is decided admission by admission in the same transaction
//! ([`crate::ledger::admit_tx::decide_in`]), which handles every case.

use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::ledger::admit_tx::{job_row, new_job};
use crate::ledger::audit;
use crate::ledger::model::{
    AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError, RunRef, Totals, Verdict,
    window_start,
};
use crate::ledger::sql::{BulkTx, FoundRun, JobRow, LockedBudget, NewJob, WindowQuery, WindowRow};
use crate::store::DbTime;
use computegate_policy::admission::{self as decision, JobFigures, Proposal, Snapshot};

/// One admission of a batch: the request, its options, its job id.
pub(super) type Item<'a> = (&'a AdmissionRequest, &'a AdmissionOptions, Uuid);

/// What an admission decided earlier in the batch reserved, for the totals of later ones.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    customer: Uuid,
    organization: Option<Uuid>,
    group: Option<Uuid>,
    lineage: Uuid,
    at: DbTime,
    flop: f64,
}

/// An admission's budget keys and window starts.
#[derive(Debug, Clone, Copy)]
struct Keys {
    customer: Uuid,
    organization: Option<Uuid>,
    group: Option<Uuid>,
    lineage: Uuid,
    cap_since: DbTime,
    threshold_since: DbTime,
    count_open_jobs: bool,
}

/// Decides every admission of `items` in order with the batch statements, writes their jobs
/// and reservations, and returns each decision with its audit entries (not yet appended).
/// `None`: some admission is not the common case (see the module docs); nothing was written.
pub(super) async fn decide_bulk<T: BulkTx>(
    tx: &mut T,
    items: &[Item<'_>],
) -> Result<Option<Vec<(AdmissionDecision, Vec<AuditEntry>)>>, LedgerError> {
    let plain = |o: &AdmissionOptions| o.hold_for_review.is_none() && o.idempotency.is_none();
    if !items.iter().all(|(_, options, _)| plain(options)) {
        return Ok(None);
    }
    let pairs: Vec<(Uuid, &str)> = items
        .iter()
        .map(|(req, ..)| (req.customer_id, req.run_id.as_str()))
        .collect();
    let runs = tx.find_runs_many(&pairs).await?;
    let Some(keys) = keys_of(items, &runs) else {
        return Ok(None);
    };
    let locked = tx.lock_budgets_many(&budget_keys(&keys)).await?;
    let Some(lineage_rows) = lineage_totals(&keys, &locked) else {
        return Ok(None);
    };
    let queries: Vec<WindowQuery> = keys
        .iter()
        .map(|(k, _)| WindowQuery {
            customer: k.customer,
            organization: k.organization,
            group: k.group,
            cap_since: k.cap_since,
            threshold_since: k.threshold_since,
            count_open_jobs: k.count_open_jobs,
        })
        .collect();
    let windows = tx.window_totals_many(&queries).await?;
    // A merge or unlink committed since the memberships were read: the admission-by-admission
    // path starts over as it should.
    if windows
        .iter()
        .zip(&keys)
        .any(|(w, (k, _))| w.group_now != k.group)
    {
        return Ok(None);
    }
    let Some(decided) = decide_in_memory(items, &keys, &windows, &lineage_rows) else {
        return Ok(None);
    };
    write(tx, items, &keys, &decided).await?;
    Ok(Some(
        items
            .iter()
            .zip(decided)
            .map(|((req, ..), d)| {
                let entries = audit::admission(req, &d);
                (d, entries)
            })
            .collect(),
    ))
}

/// Each admission's keys and run, or `None` when some run does not exist yet.
fn keys_of(items: &[Item<'_>], runs: &[FoundRun]) -> Option<Vec<(Keys, RunRef)>> {
    items
        .iter()
        .map(|(req, ..)| {
            let run = runs
                .iter()
                .find(|r| r.customer_id == req.customer_id && r.run_id == req.run_id)?;
            let keys = Keys {
                customer: req.customer_id,
                organization: req.organization_id,
                group: run.group_id,
                lineage: run.lineage_root,
                cap_since: DbTime::new(window_start(req.now, req.limits.window)),
                threshold_since: DbTime::new(window_start(req.now, req.thresholds.window)),
                count_open_jobs: req.limits.max_concurrent_jobs.is_some(),
            };
            let run = RunRef {
                run: run.id,
                lineage_root: run.lineage_root,
            };
            Some((keys, run))
        })
        .collect()
}

/// Every budget row the batch locks, sorted and once each.
fn budget_keys(keys: &[(Keys, RunRef)]) -> Vec<(&'static str, Uuid)> {
    let mut all = Vec::with_capacity(keys.len() * 4);
    for (k, _) in keys {
        all.push(("customer", k.customer));
        all.push(("lineage", k.lineage));
        if let Some(org) = k.organization {
            all.push(("organization", org));
        }
        if let Some(group) = k.group {
            all.push(("group", group));
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// Each admission's lineage total (used + reserved) from the locked rows, or `None` when one
/// of its rows is missing (created by the admission-by-admission path).
fn lineage_totals(keys: &[(Keys, RunRef)], locked: &[LockedBudget]) -> Option<Vec<f64>> {
    let row = |scope: &str, id: Uuid| locked.iter().find(|r| r.scope == scope && r.scope_id == id);
    keys.iter()
        .map(|(k, _)| {
            row("customer", k.customer)?;
            if let Some(org) = k.organization {
                row("organization", org)?;
            }
            if let Some(group) = k.group {
                row("group", group)?;
            }
            row("lineage", k.lineage).map(|r| r.used_flop + r.reserved_flop)
        })
        .collect()
}

/// Decides the admissions in order against the totals read plus the reservations of those
/// before them; `None` when one is not the common case.
fn decide_in_memory(
    items: &[Item<'_>],
    keys: &[(Keys, RunRef)],
    windows: &[WindowRow],
    lineage_rows: &[f64],
) -> Option<Vec<AdmissionDecision>> {
    let mut earlier: Vec<Reserved> = Vec::new();
    let mut decided = Vec::with_capacity(items.len());
    for (((req, options, job_id), (k, run)), (window, lineage)) in
        items.iter().zip(keys).zip(windows.iter().zip(lineage_rows))
    {
        let snapshot = Snapshot {
            lineage_root: k.lineage,
            customer_id: k.customer,
            organization_id: k.organization,
            group_id: k.group,
            totals: totals_with(window, *lineage, k, &earlier),
            fired: Vec::new(),
        };
        let job = JobFigures {
            estimate_flop: req.estimate_flop,
            projected_flop: options.projected_flop.unwrap_or(req.estimate_flop),
            bio_sequence: req.bio_sequence,
            hold_for_review: false,
        };
        let growth = job.projected_flop.max(job.estimate_flop);
        if !decision::reached(&req.thresholds.rules, req.bio_sequence, &snapshot, growth).is_empty()
        {
            return None;
        }
        let evaluation = decision::evaluate(&req.limits, &req.thresholds, &job, &snapshot);
        if !evaluation.crossings.is_empty() {
            return None;
        }
        let verdict = match &evaluation.proposal {
            Proposal::Admit => Verdict::Admitted,
            Proposal::Deny(denial) => Verdict::Denied(denial.clone()),
            Proposal::Review => return None,
        };
        let totals_after = if verdict == Verdict::Admitted {
            earlier.push(Reserved {
                customer: k.customer,
                organization: k.organization,
                group: k.group,
                lineage: k.lineage,
                at: DbTime::new(req.now),
                flop: req.estimate_flop,
            });
            Totals {
                open_jobs: snapshot.totals.open_jobs.map(|n| n + 1),
                ..evaluation.totals_if_admitted
            }
        } else {
            snapshot.totals
        };
        decided.push(AdmissionDecision {
            job_id: *job_id,
            run: *run,
            verdict,
            remaining_flop: decision::remaining_flop(&req.limits, &totals_after),
            totals_after,
            crossings: Vec::new(),
            report_ids: Vec::new(),
            approved_review: None,
        });
    }
    Some(decided)
}

/// The totals an admission with `keys` reads once the `earlier` reservations of its batch are
/// written: `base` (read before the batch) plus each reservation that falls in the same scope
/// and window — what the rolling-window sums and the lineage budget row would then hold.
fn totals_with(base: &WindowRow, lineage: f64, keys: &Keys, earlier: &[Reserved]) -> Totals {
    let mut customer_window = base.customer_window;
    let mut customer_total = base.customer_total;
    let mut organization_total = base.organization_total;
    let mut group_total = base.group_total;
    let mut lineage_flop = lineage;
    let mut open_jobs = u64::try_from(base.open_jobs).unwrap_or(0);
    for r in earlier {
        if r.customer == keys.customer {
            if r.at > keys.cap_since {
                customer_window += r.flop;
            }
            if r.at > keys.threshold_since
                && let Some(total) = customer_total.as_mut()
            {
                *total += r.flop;
            }
            open_jobs += 1;
        }
        if keys.organization.is_some()
            && r.organization == keys.organization
            && r.at > keys.threshold_since
        {
            organization_total += r.flop;
        }
        if keys.group.is_some() && r.group == keys.group && r.at > keys.threshold_since {
            group_total += r.flop;
        }
        if r.lineage == keys.lineage {
            lineage_flop += r.flop;
        }
    }
    let customer_flop = customer_total.unwrap_or(customer_window);
    Totals {
        lineage_flop,
        customer_window_flop: customer_window,
        customer_flop,
        organization_flop: keys.organization.map(|_| organization_total),
        group_flop: if keys.group.is_some() {
            group_total
        } else {
            customer_flop
        },
        open_jobs: keys.count_open_jobs.then_some(open_jobs),
    }
}

/// Inserts every job row and adds the admitted ones' reservations to their lineage, customer
/// and organization rows (as `insert_reserved_job` does one at a time), in one call.
async fn write<T: BulkTx>(
    tx: &mut T,
    items: &[Item<'_>],
    keys: &[(Keys, RunRef)],
    decided: &[AdmissionDecision],
) -> Result<(), LedgerError> {
    let rows: Vec<JobRow> = items
        .iter()
        .zip(decided)
        .map(|((req, ..), d)| job_row(req, d.job_id, d.run))
        .collect();
    let jobs: Vec<NewJob<'_>> = items
        .iter()
        .zip(decided)
        .zip(&rows)
        .map(|(((req, ..), d), row)| {
            new_job(req, row, d.run.run, &d.verdict, false, DbTime::new(req.now))
        })
        .collect();
    let mut adds: Vec<(&'static str, Uuid, f64)> = Vec::new();
    let mut add = |scope: &'static str, id: Uuid, flop: f64| match adds
        .iter_mut()
        .find(|(s, i, _)| *s == scope && *i == id)
    {
        Some((_, _, total)) => *total += flop,
        None => adds.push((scope, id, flop)),
    };
    for (((req, ..), (k, _)), d) in items.iter().zip(keys).zip(decided) {
        if d.verdict != Verdict::Admitted {
            continue;
        }
        add("lineage", k.lineage, req.estimate_flop);
        add("customer", k.customer, req.estimate_flop);
        if let Some(org) = k.organization {
            add("organization", org, req.estimate_flop);
        }
    }
    tx.insert_jobs_reserving(&jobs, &adds).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn keys(customer: Uuid, organization: Option<Uuid>, group: Option<Uuid>) -> Keys {
        Keys {
            customer,
            organization,
            group,
            lineage: customer,
            cap_since: DbTime::new(datetime!(2030-01-01 0:00 UTC)),
            threshold_since: DbTime::new(datetime!(2029-12-01 0:00 UTC)),
            count_open_jobs: true,
        }
    }

    fn base() -> WindowRow {
        WindowRow {
            customer_window: 10.0,
            customer_total: Some(20.0),
            organization_total: 30.0,
            group_total: 40.0,
            open_jobs: 1,
            group_now: None,
        }
    }

    fn reserved(k: &Keys, at: time::OffsetDateTime, flop: f64) -> Reserved {
        Reserved {
            customer: k.customer,
            organization: k.organization,
            group: k.group,
            lineage: k.lineage,
            at: DbTime::new(at),
            flop,
        }
    }

    #[test]
    fn an_earlier_reservation_counts_in_every_scope_it_shares() {
        let (c, org, group) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let me = keys(c, Some(org), Some(group));
        let earlier = [reserved(&me, datetime!(2030-01-02 0:00 UTC), 5.0)];
        let t = totals_with(&base(), 7.0, &me, &earlier);
        assert_eq!(t.customer_window_flop, 15.0);
        assert_eq!(t.customer_flop, 25.0);
        assert_eq!(t.organization_flop, Some(35.0));
        assert_eq!(t.group_flop, 45.0);
        assert_eq!(t.lineage_flop, 12.0);
        assert_eq!(t.open_jobs, Some(2));
    }

    #[test]
    fn another_customer_counts_only_where_it_shares_the_scope() {
        let (org, group) = (Uuid::now_v7(), Uuid::now_v7());
        let me = keys(Uuid::now_v7(), Some(org), Some(group));
        let sibling = keys(Uuid::now_v7(), Some(org), Some(group));
        let stranger = keys(Uuid::now_v7(), None, None);
        let at = datetime!(2030-01-02 0:00 UTC);
        let earlier = [reserved(&sibling, at, 5.0), reserved(&stranger, at, 100.0)];
        let t = totals_with(&base(), 7.0, &me, &earlier);
        assert_eq!(t.customer_window_flop, 10.0);
        assert_eq!(t.customer_flop, 20.0);
        assert_eq!(t.organization_flop, Some(35.0));
        assert_eq!(t.group_flop, 45.0);
        assert_eq!(t.lineage_flop, 7.0);
        assert_eq!(t.open_jobs, Some(1));
    }

    #[test]
    fn a_reservation_before_a_window_counts_only_in_the_wider_one() {
        let me = keys(Uuid::now_v7(), None, None);
        // After the threshold window's start, before the cap window's.
        let earlier = [reserved(&me, datetime!(2029-12-15 0:00 UTC), 5.0)];
        let t = totals_with(&base(), 0.0, &me, &earlier);
        assert_eq!(t.customer_window_flop, 10.0);
        assert_eq!(t.customer_flop, 25.0);
        // No group: the group total is the customer's own.
        assert_eq!(t.group_flop, 25.0);
        assert_eq!(t.organization_flop, None);
    }

    #[test]
    fn one_window_for_both_makes_the_customer_total_the_window_total() {
        let mut me = keys(Uuid::now_v7(), None, None);
        me.threshold_since = me.cap_since;
        me.count_open_jobs = false;
        let base = WindowRow {
            customer_total: None,
            ..base()
        };
        let earlier = [reserved(&me, datetime!(2030-01-02 0:00 UTC), 5.0)];
        let t = totals_with(&base, 0.0, &me, &earlier);
        assert_eq!(t.customer_window_flop, 15.0);
        assert_eq!(t.customer_flop, 15.0);
        assert_eq!(t.open_jobs, None);
    }
}

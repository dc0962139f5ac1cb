//! `LedgerStore::record_usage`: measured usage replaces a job's reservation, an overrun grows the
//! job's charge past its estimate and re-checks the thresholds, and `finished` releases the
//! rest — each event in one transaction with its audit record, idempotent by event id.
//!
//! Concurrent deliveries of one event serialize on the lineage budget row; the duplicate check
//! runs after that lock, so exactly one applies and the others report
//! [`UsageOutcome::Duplicate`].

use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{
    JobStatus, LedgerError, MAX_EVENT_ID_LEN, UsageEvent, UsageKind, UsageOutcome, UsageRecorded,
    valid_flop, window_start,
};
use super::sql::{BudgetKeys, JobRow, JobUsage, LedgerTx, NewUsageEvent};
use super::{audit, budgets};
use crate::accounts::parse_column;
use crate::audit::ChainTx;
use crate::store::{DbTime, LedgerStore, in_transaction};
use computegate_policy::ThresholdPolicy;
use computegate_policy::admission as decision;

/// A job's measured state after an event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Applied {
    status: JobStatus,
    used_flop: f64,
    reserved_flop: f64,
    accelerator_seconds: f64,
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Applies one usage event (see the module docs). `thresholds` are the thresholds in force,
    /// re-checked when measured usage grows the job past its estimate. Errors change nothing:
    /// [`LedgerError::UnknownJob`], [`LedgerError::CounterDecreased`],
    /// [`LedgerError::JobNotOpen`], [`LedgerError::Invalid`].
    pub async fn record_usage(
        &self,
        event: &UsageEvent,
        thresholds: &ThresholdPolicy,
    ) -> Result<UsageOutcome, LedgerError> {
        validate(event)?;
        for _ in 0..super::model::MAX_ATTEMPTS {
            let attempt = in_transaction!(self.store, |tx| usage_in(&mut tx, event, thresholds)
                .await?);
            if let Some(outcome) = attempt {
                return Ok(outcome);
            }
        }
        Err(LedgerError::Contended)
    }

    /// Releases the reservation of an admitted job that never ran (the upstream refused it or
    /// forwarding failed): status `released`, nothing charged, with its audit record. An
    /// approved review the job consumed is given back (`ledger.review.restored`), so the retry
    /// is admitted without a new hold, and the job's reports are withdrawn
    /// (`ledger.report.withdrawn`), and its idempotency key freed, in the same transaction.
    /// Idempotent. A job that already reported usage settles through its usage events instead
    /// ([`LedgerError::JobNotOpen`]); a usage event for a released job reopens it (it ran after
    /// all) and charges what it reports.
    pub async fn release_job(
        &self,
        job_id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), LedgerError> {
        super::model::check_text(reason, "reason")?;
        for _ in 0..super::model::MAX_ATTEMPTS {
            let done = in_transaction!(self.store, |tx| release_in(&mut tx, job_id, reason, now)
                .await?);
            if done {
                return Ok(());
            }
        }
        Err(LedgerError::Contended)
    }
}

/// The release transaction body; `false`: a group change raced the locks, start over.
async fn release_in<T: LedgerTx + ChainTx>(
    tx: &mut T,
    job_id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, LedgerError> {
    let Some(job) = tx.job(job_id, false).await? else {
        return Err(LedgerError::UnknownJob);
    };
    if budgets::lock_for_job(tx, &job, now).await?.is_none() {
        return Ok(false);
    }
    let job = tx.job(job_id, true).await?.ok_or(LedgerError::UnknownJob)?;
    match parse_column::<JobStatus>(&job.status, "ledger_jobs.status")? {
        JobStatus::Released => return Ok(true),
        JobStatus::Reserved => {}
        status => return Err(LedgerError::JobNotOpen { status }),
    }
    let at = DbTime::new(now);
    tx.update_job_usage(&JobUsage {
        id: job.id,
        status: JobStatus::Released.as_str(),
        used_flop: 0.0,
        reserved_flop: 0.0,
        accelerator_seconds: job.accelerator_seconds,
        at,
        started: false,
        finished: true,
    })
    .await?;
    let keys = BudgetKeys {
        lineage: job.lineage_root,
        customer: job.customer_id,
        organization: job.organization_id,
    };
    tx.add_to_budgets(keys, -job.used_flop, -job.reserved_flop)
        .await?;
    // The job never ran: an approval it consumed is given back (the retry is admitted without
    // a new hold), and its reports are withdrawn (a report stays due only for a job that ran).
    let restored = if job.decision == "admitted_after_review" {
        tx.restore_approval(job.id).await?
    } else {
        None
    };
    let withdrawn = tx.withdraw_reports(job.id, reason, at).await?;
    // Its idempotency key too: a retry of a job that never ran is judged anew.
    tx.free_idempotency_keys(job.id).await?;
    let mut entries = vec![audit::released(job.id, reason, job.reserved_flop, now)];
    entries.extend(restored.map(|review| audit::approval_restored(review, job.id, now)));
    entries.extend(
        withdrawn
            .iter()
            .map(|(report, filed)| audit::report_withdrawn(*report, job.id, *filed, reason, now)),
    );
    audit::record(tx, &entries).await?;
    Ok(true)
}

/// The usage transaction body, generic over the backend. `None`: a group change raced the
/// locks; start over.
async fn usage_in<T: LedgerTx + ChainTx>(
    tx: &mut T,
    event: &UsageEvent,
    policy: &ThresholdPolicy,
) -> Result<Option<UsageOutcome>, LedgerError> {
    let Some(job) = tx.job(event.job_id, false).await? else {
        return Err(LedgerError::UnknownJob);
    };
    let keys = BudgetKeys {
        lineage: job.lineage_root,
        customer: job.customer_id,
        organization: job.organization_id,
    };
    let since = window_start(event.at, policy.window);
    let Some(mut snapshot) = budgets::lock_for_job(tx, &job, since).await? else {
        return Ok(None);
    };
    if tx.usage_event_exists(&event.event_id).await? {
        return Ok(Some(UsageOutcome::Duplicate));
    }
    // Re-read under the locks: another event for this job may have committed meanwhile.
    let job = tx
        .job(event.job_id, true)
        .await?
        .ok_or(LedgerError::UnknownJob)?;
    let status: JobStatus = parse_column(&job.status, "ledger_jobs.status")?;
    let applied = apply(&job, status, event)?;
    let before = job.used_flop + job.reserved_flop;
    let growth = applied.used_flop + applied.reserved_flop - before;
    if growth > 0.0 {
        let reached = decision::reached(&policy.rules, job.bio_sequence, &snapshot, growth);
        budgets::load_fired(tx, &mut snapshot, &reached).await?;
    }
    let crossings = decision::usage_crossings(&policy.rules, job.bio_sequence, &snapshot, growth);
    let at = DbTime::new(event.at);
    write_usage(tx, event, &job, &applied, at).await?;
    tx.add_to_budgets(
        keys,
        applied.used_flop - job.used_flop,
        applied.reserved_flop - job.reserved_flop,
    )
    .await?;
    for c in &crossings {
        tx.insert_crossing(job.id, "usage", c, at).await?;
    }
    let cumulative = snapshot.totals.lineage_flop + growth;
    let report_ids =
        super::admit_tx::write_report(tx, &job, &crossings, None, cumulative, event.at).await?;
    let recorded = UsageRecorded {
        job_id: job.id,
        customer_id: job.customer_id,
        status: applied.status,
        used_flop: applied.used_flop,
        measured_flop: (applied.used_flop - job.used_flop).max(0.0),
        reserved_flop: applied.reserved_flop,
        overrun_flop: (applied.used_flop + applied.reserved_flop - job.estimate_flop).max(0.0),
        flop_per_accelerator_second: charge_rate(&job, event),
        crossings,
        report_ids,
    };
    // The chain keeps state changes only: a heartbeat that changes neither the job's status
    // nor crosses a threshold is recorded on the job (its usage event row), not in the chain.
    let entries = audit::usage(event, &recorded, status);
    if !entries.is_empty() {
        audit::record(tx, &entries).await?;
    }
    Ok(Some(UsageOutcome::Recorded(recorded)))
}

/// Records the event and writes the job's new measured state.
async fn write_usage<T: LedgerTx>(
    tx: &mut T,
    event: &UsageEvent,
    job: &JobRow,
    applied: &Applied,
    at: DbTime,
) -> Result<(), LedgerError> {
    let (kind, seconds) = match event.kind {
        UsageKind::Started => ("started", None),
        UsageKind::Heartbeat {
            accelerator_seconds_total,
        } => ("heartbeat", Some(accelerator_seconds_total)),
        UsageKind::Finished {
            accelerator_seconds_total,
        } => ("finished", Some(accelerator_seconds_total)),
    };
    let inserted = tx
        .insert_usage_event(&NewUsageEvent {
            event_id: &event.event_id,
            job_id: job.id,
            kind,
            at,
            accelerator_seconds_total: seconds,
            flop_per_accelerator_second: charge_rate(job, event),
            used_flop_after: applied.used_flop,
        })
        .await?;
    if !inserted {
        // Checked under the lineage lock above; reaching this means the lock discipline broke.
        return Err(LedgerError::Store(crate::StoreError::CorruptRow {
            column: "ledger_usage_events.event_id",
        }));
    }
    tx.update_job_usage(&JobUsage {
        id: job.id,
        status: applied.status.as_str(),
        used_flop: applied.used_flop,
        reserved_flop: applied.reserved_flop,
        accelerator_seconds: applied.accelerator_seconds,
        at,
        started: true,
        finished: applied.status == JobStatus::Finished,
    })
    .await?;
    Ok(())
}

/// The FLOP per accelerator-second measured usage is charged at: the job's own rate (its
/// estimate's peak at the job's precision × the job's utilization) when the platform reports the
/// accelerator type the job was admitted on, so a job that runs exactly its time limit is charged
/// exactly its estimate; when it reports another type, or the job has no stored rate, never less
/// than the reported type's rate at the policy defaults. Pure.
fn charge_rate(job: &JobRow, event: &UsageEvent) -> f64 {
    match job.flop_per_accelerator_second {
        Some(own) if job.accelerator_type.as_deref() == Some(event.accelerator_type.as_str()) => {
            own
        }
        Some(own) => own.max(event.flop_per_accelerator_second),
        None => event.flop_per_accelerator_second,
    }
}

/// The job's state after `event`: used = accelerator-seconds × FLOP per accelerator-second;
/// reserved = what is left of the estimate (nothing once finished). Pure.
fn apply(job: &JobRow, status: JobStatus, event: &UsageEvent) -> Result<Applied, LedgerError> {
    // A released job reported as running did run after all (the gateway released it on an
    // answer that looked like a refusal): its usage counts, and it is open again. A closed job's
    // late events reconcile its charge (see below) without reopening it.
    if !matches!(
        status,
        JobStatus::Reserved | JobStatus::Running | JobStatus::Released | JobStatus::Closed
    ) {
        return Err(LedgerError::JobNotOpen { status });
    }
    let (seconds, finished) = match event.kind {
        UsageKind::Started => (None, false),
        UsageKind::Heartbeat {
            accelerator_seconds_total,
        } => (Some(accelerator_seconds_total), false),
        UsageKind::Finished {
            accelerator_seconds_total,
        } => (Some(accelerator_seconds_total), true),
    };
    let seconds = seconds.unwrap_or(job.accelerator_seconds);
    if seconds < job.accelerator_seconds {
        return Err(LedgerError::CounterDecreased {
            previous: job.accelerator_seconds,
            reported: seconds,
        });
    }
    let used_flop = if matches!(event.kind, UsageKind::Started) {
        job.used_flop
    } else {
        seconds * charge_rate(job, event)
    };
    let (status, reserved_flop) = match status {
        _ if finished => (JobStatus::Finished, 0.0),
        // Closed without a final event: the charge fixed at closing stands (the job may still
        // be running) unless measured usage passes it; only `finished` corrects it down to the
        // measured amount.
        JobStatus::Closed => (
            JobStatus::Closed,
            (job.used_flop + job.reserved_flop - used_flop).max(0.0),
        ),
        _ => (JobStatus::Running, (job.estimate_flop - used_flop).max(0.0)),
    };
    Ok(Applied {
        status,
        used_flop,
        reserved_flop,
        accelerator_seconds: seconds,
    })
}

fn validate(event: &UsageEvent) -> Result<(), LedgerError> {
    let id = &event.event_id;
    if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
        return Err(LedgerError::Invalid("event_id"));
    }
    if !valid_flop(event.flop_per_accelerator_second) {
        return Err(LedgerError::Invalid("flop_per_accelerator_second"));
    }
    let seconds = match event.kind {
        UsageKind::Started => 0.0,
        UsageKind::Heartbeat {
            accelerator_seconds_total,
        }
        | UsageKind::Finished {
            accelerator_seconds_total,
        } => accelerator_seconds_total,
    };
    if !valid_flop(seconds) || !valid_flop(seconds * event.flop_per_accelerator_second) {
        return Err(LedgerError::Invalid("accelerator_seconds_total"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn job(estimate: f64, used: f64, reserved: f64, seconds: f64) -> JobRow {
        JobRow {
            id: Uuid::nil(),
            customer_id: Uuid::nil(),
            organization_id: None,
            run_id: "r".into(),
            lineage_root: Uuid::nil(),
            status: "running".into(),
            estimate_flop: estimate,
            hardware_flop: None,
            declared_flop: None,
            basis: "b".into(),
            table_version: "t".into(),
            accelerators: 1,
            accelerator_type: None,
            bio_sequence: false,
            reserved_flop: reserved,
            used_flop: used,
            accelerator_seconds: seconds,
            flop_per_accelerator_second: None,
            lease_expires_at: None,
            decision: "admitted".into(),
        }
    }

    fn event(kind: UsageKind) -> UsageEvent {
        UsageEvent {
            event_id: "e".into(),
            job_id: Uuid::nil(),
            kind,
            at: datetime!(2030-01-01 1:00 UTC),
            accelerator_type: "h100".into(),
            flop_per_accelerator_second: 10.0,
        }
    }

    #[test]
    fn usage_is_charged_at_the_jobs_own_rate_for_its_accelerator() {
        let mut j = job(1000.0, 0.0, 1000.0, 0.0);
        j.accelerator_type = Some("h100".into());
        j.flop_per_accelerator_second = Some(7.5);
        let beat = event(UsageKind::Heartbeat {
            accelerator_seconds_total: 100.0,
        });
        assert_eq!(charge_rate(&j, &beat), 7.5, "own rate below the default");
        let a = apply(&j, JobStatus::Running, &beat).unwrap();
        assert_eq!(a.used_flop, 750.0);
        // Another type reported: never below that type's default rate.
        let mut other = beat.clone();
        other.accelerator_type = "b200".into();
        other.flop_per_accelerator_second = 20.0;
        assert_eq!(charge_rate(&j, &other), 20.0);
        other.flop_per_accelerator_second = 5.0;
        assert_eq!(charge_rate(&j, &other), 7.5);
        // A job without a stored rate (admitted before rates were kept): the event's.
        j.flop_per_accelerator_second = None;
        assert_eq!(charge_rate(&j, &beat), 10.0);
    }

    #[test]
    fn measured_usage_replaces_the_reservation() {
        let j = job(1000.0, 0.0, 1000.0, 0.0);
        let a = apply(
            &j,
            JobStatus::Reserved,
            &event(UsageKind::Heartbeat {
                accelerator_seconds_total: 30.0,
            }),
        )
        .unwrap();
        assert_eq!((a.used_flop, a.reserved_flop), (300.0, 700.0));
        assert_eq!(a.status, JobStatus::Running);
        // Past the estimate: nothing reserved, the charge is what was used.
        let a = apply(
            &j,
            JobStatus::Running,
            &event(UsageKind::Heartbeat {
                accelerator_seconds_total: 150.0,
            }),
        )
        .unwrap();
        assert_eq!((a.used_flop, a.reserved_flop), (1500.0, 0.0));
        // Finishing releases the remainder.
        let a = apply(
            &j,
            JobStatus::Running,
            &event(UsageKind::Finished {
                accelerator_seconds_total: 20.0,
            }),
        )
        .unwrap();
        assert_eq!((a.used_flop, a.reserved_flop), (200.0, 0.0));
        assert_eq!(a.status, JobStatus::Finished);
    }

    #[test]
    fn a_released_job_that_reports_usage_is_open_again() {
        // Released: nothing used, nothing reserved.
        let j = job(1000.0, 0.0, 0.0, 0.0);
        let a = apply(
            &j,
            JobStatus::Released,
            &event(UsageKind::Heartbeat {
                accelerator_seconds_total: 30.0,
            }),
        )
        .unwrap();
        assert_eq!((a.used_flop, a.reserved_flop), (300.0, 700.0));
        assert_eq!(a.status, JobStatus::Running);
    }

    #[test]
    fn late_usage_of_a_closed_job_reconciles_its_charge() {
        // Closed by lease expiry with nothing measured: charged its estimate.
        let j = job(1000.0, 0.0, 1000.0, 0.0);
        let beat = event(UsageKind::Heartbeat {
            accelerator_seconds_total: 30.0,
        });
        let a = apply(&j, JobStatus::Closed, &beat).unwrap();
        assert_eq!(
            a.status,
            JobStatus::Closed,
            "a heartbeat does not reopen it"
        );
        assert_eq!((a.used_flop, a.reserved_flop), (300.0, 700.0));
        // Measured past the charge: the measured amount.
        let long = event(UsageKind::Heartbeat {
            accelerator_seconds_total: 150.0,
        });
        let a = apply(&j, JobStatus::Closed, &long).unwrap();
        assert_eq!((a.used_flop, a.reserved_flop), (1500.0, 0.0));
        // The final event corrects the charge down to what was measured.
        let done = event(UsageKind::Finished {
            accelerator_seconds_total: 20.0,
        });
        let a = apply(&j, JobStatus::Closed, &done).unwrap();
        assert_eq!(a.status, JobStatus::Finished);
        assert_eq!((a.used_flop, a.reserved_flop), (200.0, 0.0));
    }

    #[test]
    fn counters_never_go_down_and_closed_jobs_take_nothing() {
        let j = job(1000.0, 300.0, 700.0, 30.0);
        let down = apply(
            &j,
            JobStatus::Running,
            &event(UsageKind::Heartbeat {
                accelerator_seconds_total: 29.0,
            }),
        );
        assert!(matches!(down, Err(LedgerError::CounterDecreased { .. })));
        for s in [
            JobStatus::Finished,
            JobStatus::Denied,
            JobStatus::HeldForReview,
        ] {
            let r = apply(&j, s, &event(UsageKind::Started));
            assert!(matches!(r, Err(LedgerError::JobNotOpen { .. })));
        }
        // Started keeps the counters.
        let a = apply(&j, JobStatus::Reserved, &event(UsageKind::Started)).unwrap();
        assert_eq!(
            (a.used_flop, a.reserved_flop, a.accelerator_seconds),
            (300.0, 700.0, 30.0)
        );
    }

    #[test]
    fn bad_events_are_refused() {
        let mut e = event(UsageKind::Heartbeat {
            accelerator_seconds_total: f64::NAN,
        });
        assert!(validate(&e).is_err());
        e.kind = UsageKind::Finished {
            accelerator_seconds_total: -1.0,
        };
        assert!(validate(&e).is_err());
        e.kind = UsageKind::Started;
        e.event_id = String::new();
        assert!(validate(&e).is_err());
        e.event_id = "x".repeat(MAX_EVENT_ID_LEN + 1);
        assert!(validate(&e).is_err());
        e.event_id = "ok".into();
        e.flop_per_accelerator_second = f64::INFINITY;
        assert!(validate(&e).is_err());
        e.flop_per_accelerator_second = 1e15;
        assert!(validate(&e).is_ok());
    }
}

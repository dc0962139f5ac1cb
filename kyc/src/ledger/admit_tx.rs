//! The admission transaction body, generic over the backend: lock the job's budget rows and read
//! its totals ([`super::budgets`]), decide ([`super::decision`]), and write the job, its crossings,
//! its review hold or report, and the audit record — last, as the audit chain requires.
//! [`LedgerStore::admit`](crate::store::LedgerStore::admit) runs it one job per transaction; the
//! group commit (`admission::batch`) runs several in one, their audit records appended together.

use time::OffsetDateTime;
use uuid::Uuid;

use super::audit;
use super::budgets::{self, Windows};
use super::model::{
    AdmissionDecision, AdmissionOptions, AdmissionRequest, Crossing, Denial, DenialReason,
    LedgerError, MAX_RUN_ID_LEN, RunRef, Totals, Verdict, check_text, valid_flop, window_start,
};
use super::sql::{BudgetKeys, JobRow, LedgerTx, NewJob, NewReport, NewReview};
use crate::audit::{AuditEntry, ChainTx};
use crate::store::DbTime;
use computegate_policy::admission::{self as decision, JobFigures, Proposal};

/// The admission transaction body, generic over the backend: lock and read, decide, write,
/// audit last. `None`: a group change raced the locks; start over.
pub(super) async fn admit_in<T: LedgerTx + ChainTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    options: &AdmissionOptions,
    job_id: Uuid,
) -> Result<Option<AdmissionDecision>, LedgerError> {
    let Some((decision, entries)) = decide_in(tx, req, options, job_id).await? else {
        return Ok(None);
    };
    audit::record(tx, &entries).await?;
    Ok(Some(decision))
}

/// [`admit_in`] without the audit append: the decision and the audit entries it calls for,
/// which the caller must append in the same transaction, last — at once ([`admit_in`]) or
/// together with the rest of a batch's (`admission::batch`), so a batch takes the chain's head
/// once. `None`: a group change raced the locks; start over.
pub(super) async fn decide_in<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    options: &AdmissionOptions,
    job_id: Uuid,
) -> Result<Option<(AdmissionDecision, Vec<AuditEntry>)>, LedgerError> {
    let now = DbTime::new(req.now);
    let since = Windows {
        cap: window_start(req.now, req.limits.window),
        threshold: window_start(req.now, req.thresholds.window),
        count_open_jobs: req.limits.max_concurrent_jobs.is_some(),
    };
    let Some((run, mut snapshot)) = budgets::lock_for_admission(tx, req, since).await? else {
        return Ok(None);
    };
    // After the budget locks (which serialize one customer's admissions on either backend),
    // before deciding: a concurrent attempt of the same request is refused as such, not judged
    // against the budget its twin just took.
    if let Some(claim) = &options.idempotency {
        super::idempotency::claim(tx, req, claim, job_id).await?;
    }
    let job = JobFigures {
        estimate_flop: req.estimate_flop,
        projected_flop: options.projected_flop.unwrap_or(req.estimate_flop),
        bio_sequence: req.bio_sequence,
        hold_for_review: options.hold_for_review.is_some(),
    };
    let growth = job.projected_flop.max(job.estimate_flop);
    let reached = decision::reached(&req.thresholds.rules, req.bio_sequence, &snapshot, growth);
    budgets::load_fired(tx, &mut snapshot, &reached).await?;
    let keys = BudgetKeys {
        lineage: run.lineage_root,
        customer: req.customer_id,
        organization: req.organization_id,
    };
    let evaluation = decision::evaluate(&req.limits, &req.thresholds, &job, &snapshot);
    let (verdict, approved_review) = settle(tx, req, &evaluation.proposal, job_id, now).await?;
    let admitted = verdict == Verdict::Admitted;
    let totals_after = if admitted {
        Totals {
            open_jobs: snapshot.totals.open_jobs.map(|n| n + 1),
            ..evaluation.totals_if_admitted
        }
    } else {
        snapshot.totals
    };
    let hold_reason = options.hold_for_review.as_deref();
    let mut decision = AdmissionDecision {
        job_id,
        run,
        verdict,
        remaining_flop: decision::remaining_flop(&req.limits, &totals_after),
        totals_after,
        crossings: evaluation.crossings,
        report_ids: Vec::new(),
        approved_review,
    };
    decision.report_ids = record_decision(tx, req, keys, &decision, hold_reason, now).await?;
    if !admitted && options.idempotency.is_some() {
        // Only an admitted job holds its key: a retry of a held or denied job is judged anew.
        tx.free_idempotency_keys(job_id).await?;
    }
    let entries = audit::admission(req, &decision);
    Ok(Some((decision, entries)))
}

/// Writes the job row, the reservation, the crossings and the review hold or report. Returns
/// the reports created.
async fn record_decision<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    keys: BudgetKeys,
    d: &AdmissionDecision,
    hold_reason: Option<&str>,
    now: DbTime,
) -> Result<Vec<Uuid>, LedgerError> {
    let job = job_row(req, d.job_id, d.run);
    let after_review = d.approved_review.is_some();
    let row = new_job(req, &job, d.run.run, &d.verdict, after_review, now);
    if d.verdict == Verdict::Admitted {
        // Reserves `req.estimate_flop` (the row's `reserved_flop`) on the budget rows.
        tx.insert_reserved_job(&row, keys).await?;
    } else {
        tx.insert_job(&row).await?;
    }
    for c in &d.crossings {
        tx.insert_crossing(d.job_id, "admission", c, now).await?;
    }
    match d.verdict {
        Verdict::Admitted => {
            let snapshot = req.identity_snapshot.as_ref();
            let lineage = d.totals_after.lineage_flop;
            write_report(tx, &job, &d.crossings, snapshot, lineage, req.now).await
        }
        Verdict::HeldForReview { review_id } => {
            hold(tx, req, &job, review_id, &d.crossings, hold_reason, now).await?;
            Ok(Vec::new())
        }
        Verdict::Denied(_) => Ok(Vec::new()),
    }
}

/// Turns the proposal into a verdict: a `review` proposal is admitted when a matching
/// approval is waiting (and consumes it), otherwise held.
async fn settle<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    proposal: &Proposal,
    job_id: Uuid,
    now: DbTime,
) -> Result<(Verdict, Option<Uuid>), LedgerError> {
    Ok(match proposal {
        Proposal::Admit => (Verdict::Admitted, None),
        Proposal::Deny(denial) => (Verdict::Denied(denial.clone()), None),
        Proposal::Review => {
            let approval = tx
                .consume_approval(
                    req.customer_id,
                    &req.run_id,
                    req.estimate_flop,
                    job_id,
                    now,
                    DbTime::new(req.now - super::model::APPROVAL_VALIDITY),
                )
                .await?;
            match approval {
                Some(id) => (Verdict::Admitted, Some(id)),
                None => (
                    Verdict::HeldForReview {
                        review_id: Uuid::now_v7(),
                    },
                    None,
                ),
            }
        }
    })
}

/// Records the review hold for the `review` crossings.
async fn hold<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    job: &JobRow,
    review_id: Uuid,
    crossings: &[Crossing],
    hold_reason: Option<&str>,
    now: DbTime,
) -> Result<(), LedgerError> {
    let held: Vec<Crossing> = crossings
        .iter()
        .filter(|c| c.action.holds_for_review())
        .cloned()
        .collect();
    tx.insert_review(&NewReview {
        id: review_id,
        job_id: job.id,
        customer_id: req.customer_id,
        run_id: &req.run_id,
        estimate_flop: req.estimate_flop,
        crossings: &held,
        hold_reason,
        created_at: now,
    })
    .await?;
    Ok(())
}

/// Writes one report for the crossings that call for one (`report` and above), due at the
/// earliest of their due dates. Returns its id, or nothing when no crossing calls for one.
pub(super) async fn write_report<T: LedgerTx>(
    tx: &mut T,
    job: &JobRow,
    crossings: &[Crossing],
    identity_snapshot: Option<&serde_json::Value>,
    cumulative_flop: f64,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, LedgerError> {
    let reportable: Vec<Crossing> = crossings
        .iter()
        .filter(|c| c.action.files_report())
        .cloned()
        .collect();
    if reportable.is_empty() {
        return Ok(Vec::new());
    }
    let id = Uuid::now_v7();
    tx.insert_report(&NewReport {
        id,
        job,
        crossings: &reportable,
        identity_snapshot,
        cumulative_flop,
        created_at: DbTime::new(now),
        due_at: DbTime::new(now + super::reads::due_after(&reportable)),
    })
    .await?;
    Ok(vec![id])
}

/// The job as a row (for reports written in the same transaction).
pub(super) fn job_row(req: &AdmissionRequest, id: Uuid, run: RunRef) -> JobRow {
    JobRow {
        id,
        customer_id: req.customer_id,
        organization_id: req.organization_id,
        run_id: req.run_id.clone(),
        lineage_root: run.lineage_root,
        status: String::new(),
        estimate_flop: req.estimate_flop,
        hardware_flop: req.hardware_flop,
        declared_flop: req.declared_flop,
        basis: req.basis.clone(),
        table_version: req.table_version.clone(),
        accelerators: i64::from(req.accelerators),
        accelerator_type: req.accelerator_type.clone(),
        bio_sequence: req.bio_sequence,
        reserved_flop: 0.0,
        used_flop: 0.0,
        accelerator_seconds: 0.0,
        flop_per_accelerator_second: req.flop_per_accelerator_second,
        lease_expires_at: None,
        decision: String::new(),
    }
}

/// The job row to insert for `verdict`.
pub(super) fn new_job<'a>(
    req: &'a AdmissionRequest,
    job: &'a JobRow,
    run: Uuid,
    verdict: &Verdict,
    after_review: bool,
    now: DbTime,
) -> NewJob<'a> {
    // Only an admitted job holds a reservation, so only it gets a lease.
    let lease = match verdict {
        Verdict::Admitted => req
            .lease
            .map(|l| DbTime::new(req.now.saturating_add(super::model::window(l)))),
        Verdict::HeldForReview { .. } | Verdict::Denied(_) => None,
    };
    let (status, decision, reserved) = match verdict {
        Verdict::Admitted if after_review => {
            ("reserved", "admitted_after_review", req.estimate_flop)
        }
        Verdict::Admitted => ("reserved", "admitted", req.estimate_flop),
        Verdict::HeldForReview { .. } => ("held_for_review", "held_for_review", 0.0),
        Verdict::Denied(d) => ("denied", denial_code(d), 0.0),
    };
    NewJob {
        id: job.id,
        customer_id: req.customer_id,
        organization_id: req.organization_id,
        run,
        lineage_root: job.lineage_root,
        status,
        decision,
        request_id: &req.request_id,
        route: &req.route,
        estimate_flop: req.estimate_flop,
        hardware_flop: req.hardware_flop,
        declared_flop: req.declared_flop,
        basis: &req.basis,
        table_version: &req.table_version,
        accelerators: job.accelerators,
        accelerator_type: req.accelerator_type.as_deref(),
        bio_sequence: req.bio_sequence,
        reserved_flop: reserved,
        flop_per_accelerator_second: req.flop_per_accelerator_second,
        decided_at: now,
        lease_expires_at: lease,
    }
}

fn denial_code(d: &Denial) -> &'static str {
    match d.reason {
        DenialReason::RunCap => "denied_run_cap",
        DenialReason::CustomerWindowCap => "denied_customer_window_cap",
        DenialReason::ConcurrentJobs { .. } => "denied_concurrent_jobs",
        DenialReason::Threshold => "denied_threshold",
    }
}

/// Rejects malformed requests before any I/O.
pub(super) fn validate(
    req: &AdmissionRequest,
    options: &AdmissionOptions,
) -> Result<(), LedgerError> {
    if !options.projected_flop.is_none_or(valid_flop) {
        return Err(LedgerError::Invalid("projected_flop"));
    }
    if let Some(reason) = &options.hold_for_review {
        check_text(reason, "hold_for_review")?;
    }
    if let Some(claim) = &options.idempotency {
        super::idempotency::validate(claim)?;
    }
    check_run_id(&req.run_id, "run_id")?;
    if let Some(parent) = &req.parent_run_id {
        check_run_id(parent, "parent_run_id")?;
    }
    let flops = [
        Some(req.estimate_flop),
        req.hardware_flop,
        req.declared_flop,
    ];
    if !flops.into_iter().flatten().all(valid_flop) {
        return Err(LedgerError::Invalid("estimate_flop"));
    }
    if !req.flop_per_accelerator_second.is_none_or(valid_flop) {
        return Err(LedgerError::Invalid("flop_per_accelerator_second"));
    }
    let caps = [
        req.limits.max_flop_per_run,
        req.limits.max_flop_per_customer_window,
    ];
    if !caps.into_iter().flatten().all(valid_flop) {
        return Err(LedgerError::Invalid("limits"));
    }
    if !req
        .thresholds
        .rules
        .iter()
        .all(|r| valid_flop(r.flop) && r.flop > 0.0)
    {
        return Err(LedgerError::Invalid("thresholds"));
    }
    check_text(&req.basis, "basis")?;
    check_text(&req.table_version, "table_version")?;
    check_text(&req.route, "route")?;
    check_text(&req.request_id, "request_id")
}

fn check_run_id(id: &str, field: &'static str) -> Result<(), LedgerError> {
    let ok = !id.is_empty() && id.len() <= MAX_RUN_ID_LEN && !id.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid(field))
    }
}

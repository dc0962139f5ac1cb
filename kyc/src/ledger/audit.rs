//! The ledger's audit records: what each decision, usage event, report and group change
//! writes to the chain ([`crate::audit`]), in the same transaction as the change, last.
//!
//! Every ledger transaction calls [`record`] exactly once with all its entries, so the chain
//! append is one place to change. Details carry ids and numbers, never the identity snapshot.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{
    AdmissionDecision, AdmissionRequest, Crossing, UsageEvent, UsageKind, UsageRecorded,
};
use crate::accounts::Actor;
use crate::audit::{self, AuditAction, AuditEntry, ChainTx};
use crate::store::StoreError;

/// Appends `entries` to the audit chain inside the caller's transaction, in one run (a
/// constant number of statements however many there are). Call it last.
pub(super) async fn record<T: ChainTx>(
    tx: &mut T,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    audit::append_all(tx, entries).await.map(drop)
}

/// The admission decision, plus one `ledger.report.created` per report.
pub(super) fn admission(req: &AdmissionRequest, d: &AdmissionDecision) -> Vec<AuditEntry> {
    let actor = Actor::customer(req.customer_id, req.client_ip);
    let action = match d.verdict {
        super::model::Verdict::Admitted => AuditAction::JobAdmitted,
        super::model::Verdict::HeldForReview { .. } => AuditAction::JobHeld,
        super::model::Verdict::Denied(_) => AuditAction::JobDenied,
    };
    let detail = json!({
        "customer_id": req.customer_id,
        "organization_id": req.organization_id,
        "run_id": req.run_id,
        "parent_run_id": req.parent_run_id,
        "lineage_root": d.run.lineage_root,
        "estimate_flop": req.estimate_flop,
        "hardware_flop": req.hardware_flop,
        "declared_flop": req.declared_flop,
        "basis": req.basis,
        "table_version": req.table_version,
        "accelerators": req.accelerators,
        "accelerator_type": req.accelerator_type,
        "bio_sequence": req.bio_sequence,
        "route": req.route,
        "request_id": req.request_id,
        "verdict": d.verdict,
        "approved_review": d.approved_review,
        "crossings": labels(&d.crossings),
        "report_ids": d.report_ids,
        "totals_after": d.totals_after,
    });
    let mut entries =
        vec![AuditEntry::new(req.now, &actor, action, job_subject(d.job_id)).with_detail(detail)];
    entries.extend(
        d.report_ids
            .iter()
            .map(|id| report_created(req.now, &actor, *id, d.job_id, &d.crossings)),
    );
    entries
}

/// A usage event applied, plus one `ledger.report.created` per report.
/// The chain entries of a recorded usage event: none for a heartbeat that leaves the job's
/// status as `before` and crosses nothing (it stays on the job's usage rows); otherwise the
/// state change (started, finished, corrected, crossed) and any report created.
pub(super) fn usage(
    event: &UsageEvent,
    r: &UsageRecorded,
    before: super::model::JobStatus,
) -> Vec<AuditEntry> {
    if matches!(event.kind, UsageKind::Heartbeat { .. })
        && r.status == before
        && r.crossings.is_empty()
        && r.report_ids.is_empty()
    {
        return Vec::new();
    }
    let actor = Actor::system("meter");
    let (kind, seconds) = match event.kind {
        UsageKind::Started => ("started", None),
        UsageKind::Heartbeat {
            accelerator_seconds_total,
        } => ("heartbeat", Some(accelerator_seconds_total)),
        UsageKind::Finished {
            accelerator_seconds_total,
        } => ("finished", Some(accelerator_seconds_total)),
    };
    let detail = json!({
        "event_id": event.event_id,
        "kind": kind,
        "accelerator_seconds_total": seconds,
        "accelerator_type": event.accelerator_type,
        "flop_per_accelerator_second": r.flop_per_accelerator_second,
        "status": r.status,
        "used_flop": r.used_flop,
        "reserved_flop": r.reserved_flop,
        "overrun_flop": r.overrun_flop,
        "crossings": labels(&r.crossings),
        "report_ids": r.report_ids,
    });
    let mut entries = vec![
        AuditEntry::new(
            event.at,
            &actor,
            AuditAction::UsageRecorded,
            job_subject(r.job_id),
        )
        .with_detail(detail),
    ];
    entries.extend(
        r.report_ids
            .iter()
            .map(|id| report_created(event.at, &actor, *id, r.job_id, &r.crossings)),
    );
    entries
}

/// A reservation released because the job never ran.
pub(super) fn released(job: Uuid, reason: &str, flop: f64, at: OffsetDateTime) -> AuditEntry {
    let detail = json!({ "reason": reason, "released_flop": flop });
    AuditEntry::new(
        at,
        &Actor::system("gateway"),
        AuditAction::JobReleased,
        job_subject(job),
    )
    .with_detail(detail)
}

/// The approval a released job had consumed, given back.
pub(super) fn approval_restored(review: Uuid, job: Uuid, at: OffsetDateTime) -> AuditEntry {
    AuditEntry::new(
        at,
        &Actor::system("gateway"),
        AuditAction::ReviewRestored,
        format!("review:{review}"),
    )
    .with_detail(json!({ "job_id": job, "why": "the job never ran (reservation released)" }))
}

/// A report withdrawn because its job never ran.
pub(super) fn report_withdrawn(
    report: Uuid,
    job: Uuid,
    was_filed: bool,
    reason: &str,
    at: OffsetDateTime,
) -> AuditEntry {
    AuditEntry::new(
        at,
        &Actor::system("gateway"),
        AuditAction::ReportWithdrawn,
        format!("report:{report}"),
    )
    .with_detail(json!({ "job_id": job, "was_filed": was_filed, "reason": reason }))
}

/// A job closed without a final usage event: `ledger.job.expired` by the lease sweep,
/// `ledger.job.closed` by its customer or staff.
pub(super) fn closed(
    job: Uuid,
    actor: &Actor,
    action: AuditAction,
    detail: serde_json::Value,
    at: OffsetDateTime,
) -> AuditEntry {
    AuditEntry::new(at, actor, action, job_subject(job)).with_detail(detail)
}

/// A staff action on a ledger object (review, report, group).
pub(super) fn staff_action(
    at: OffsetDateTime,
    actor: &Actor,
    action: AuditAction,
    subject: String,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry::new(at, actor, action, subject).with_detail(detail)
}

/// `job:<uuid>`.
pub(super) fn job_subject(id: Uuid) -> String {
    format!("job:{id}")
}

fn report_created(
    at: OffsetDateTime,
    actor: &Actor,
    report: Uuid,
    job: Uuid,
    crossings: &[Crossing],
) -> AuditEntry {
    AuditEntry::new(
        at,
        actor,
        AuditAction::ReportCreated,
        format!("report:{report}"),
    )
    .with_detail(json!({ "job_id": job, "crossings": labels(crossings) }))
}

fn labels(crossings: &[Crossing]) -> Vec<serde_json::Value> {
    crossings
        .iter()
        .map(|c| {
            json!({
                "label": c.label,
                "scope": c.scope,
                "scope_id": c.scope_id,
                "action": c.action,
                "threshold_flop": c.threshold_flop,
                "projected_flop": c.projected_flop,
            })
        })
        .collect()
}

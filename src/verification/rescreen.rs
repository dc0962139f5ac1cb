//! Re-screening every approved customer against a newly imported list version. A party whose
//! best match is a *new* hit — one not already recorded as a hit for that party (staff may have
//! cleared it as a false positive) — gets its customer suspended pending review: status
//! `suspended` (refresh tokens revoked, access-log row) and a `kyc.rescreen.suspended` audit
//! record. The run ends with a `screening.rescreen.completed` audit record naming the list
//! version and the suspended customers, which running gateways pick up to refresh their
//! credential caches at once.
//!
//! Run by `computegate screening import` (it has the store and the master key).

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerStatus};
use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::screening::{Decision, ScreeningResult};
use computegate_kyc::verification::{
    ApplicationStatus, CustomerCaller, MAX_QUEUE_PAGE, QueueFilter, QueueItem,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::screening::{LoadedList, ScreeningRunError, subject_ref, subjects_of};

/// Audit action of a finished re-screen (subject `screening_list:<version id>`).
pub const RESCREEN_ACTION: AuditAction = AuditAction::RescreenCompleted;

/// Audit action of a suspension for a new hit (subject `customer:<id>`).
const SUSPENDED_ACTION: AuditAction = AuditAction::RescreenSuspended;

/// What a re-screen did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RescreenReport {
    /// Approved applications screened.
    pub screened: u64,
    /// Parties whose best match is a hit (new or known).
    pub hits: u64,
    /// Customers suspended for a new hit.
    pub suspended: Vec<Uuid>,
}

/// A new hit on one party.
struct NewHit {
    role: String,
    score: f64,
    entry_key: String,
}

/// Re-screens every approved application against `list` (see the module docs), then records
/// the `screening.rescreen.completed` audit record.
pub async fn rescreen_approved(
    store: &Store,
    master: &MasterKey,
    list: &LoadedList,
    now: OffsetDateTime,
) -> Result<RescreenReport, ScreeningRunError> {
    let mut report = RescreenReport::default();
    let mut filter = QueueFilter {
        status: Some(ApplicationStatus::Approved),
        limit: MAX_QUEUE_PAGE,
        ..QueueFilter::default()
    };
    // Walk every approved application, page by page (keyset order: submitted_at, id).
    loop {
        let page = store.application_queue(&filter).await?;
        for item in &page {
            let new_hit = rescreen_one(store, master, list, item, now, &mut report).await?;
            if let Some(hit) = new_hit
                && suspend(store, list, item, &hit, now).await?
            {
                report.suspended.push(item.customer_id);
            }
        }
        let last = page
            .last()
            .and_then(|i| i.submitted_at.map(|at| (at, i.id)));
        match last {
            Some(cursor) if page.len() >= MAX_QUEUE_PAGE as usize => filter.after = Some(cursor),
            _ => break,
        }
    }
    let entry = AuditEntry::new(
        now,
        &Actor::system("screening"),
        RESCREEN_ACTION,
        format!("screening_list:{}", list.version.id),
    )
    .with_detail(serde_json::json!({
        "format": list.version.format,
        "screened": report.screened,
        "hits": report.hits,
        "suspended": report.suspended,
    }));
    store
        .record_audit(&entry)
        .await
        .map_err(computegate_kyc::verification::VerificationError::from)?;
    Ok(report)
}

/// Screens one approved application; returns its first new hit, if any.
async fn rescreen_one(
    store: &Store,
    master: &MasterKey,
    list: &LoadedList,
    item: &QueueItem,
    now: OffsetDateTime,
    report: &mut RescreenReport,
) -> Result<Option<NewHit>, ScreeningRunError> {
    // The system reads the payload on the owner's behalf: the store has no system read.
    let owner = CustomerCaller {
        customer_id: item.customer_id,
        client_ip: None,
    };
    let view = store.get_application(master, &owner, item.id).await?;
    report.screened += 1;
    let mut first_new = None;
    for subject in subjects_of(&view.payload) {
        let reference = subject_ref(item.id, &subject.role);
        let result: ScreeningResult = list
            .index
            .screen(&super::screening::engine_subject(&subject));
        let known = store.screening_results_for(&reference).await?;
        store.record_screening(&reference, &result, now).await?;
        if result.decision != Decision::Hit {
            continue;
        }
        report.hits += 1;
        let key = result
            .best
            .as_ref()
            .map(|b| b.entry_key.clone())
            .unwrap_or_default();
        let seen = known.iter().any(|k| {
            k.decision == Decision::Hit && k.best.as_ref().is_some_and(|b| b.entry_key == key)
        });
        if !seen && first_new.is_none() {
            first_new = Some(NewHit {
                role: subject.role.clone(),
                score: result.score,
                entry_key: key,
            });
        }
    }
    Ok(first_new)
}

/// Suspends the customer of `item` for `hit` unless they are no longer active; returns whether
/// it did.
async fn suspend(
    store: &Store,
    list: &LoadedList,
    item: &QueueItem,
    hit: &NewHit,
    now: OffsetDateTime,
) -> Result<bool, ScreeningRunError> {
    let customer = store.customer_by_id(item.customer_id).await?;
    if customer.is_none_or(|c| c.status != CustomerStatus::Active) {
        return Ok(false);
    }
    let actor = Actor::system("screening");
    let reason = format!(
        "screening hit on list version {} ({}): pending review",
        list.version.id, list.version.format
    );
    store
        .set_customer_status(
            item.customer_id,
            CustomerStatus::Suspended,
            &actor,
            &reason,
            now,
        )
        .await?;
    let entry = AuditEntry::new(
        now,
        &actor,
        SUSPENDED_ACTION,
        format!("customer:{}", item.customer_id),
    )
    .with_detail(serde_json::json!({
        "application_id": item.id,
        "list_version": list.version.id,
        "list_format": list.version.format,
        "role": hit.role,
        "score": hit.score,
        "entry_key": hit.entry_key,
    }));
    store
        .record_audit(&entry)
        .await
        .map_err(computegate_kyc::verification::VerificationError::from)?;
    tracing::info!(customer = %item.customer_id, application = %item.id, "customer suspended after a new screening hit");
    Ok(true)
}

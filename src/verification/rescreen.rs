//! Re-screening every screened customer against a newly imported list version: approved ones,
//! and those at the trial tier — applications pending review or back with the applicant,
//! rejected or expired ones (see [`RESCREENED`]), except those whose parties retention withdrew
//! (docs/retention.md) — and every active end customer of a reseller
//! (its parties as registered; a new hit suspends that end customer alone). A party whose best match is a *new* hit — one
//! not already recorded as a hit for that party (staff may have cleared it as a false
//! positive) — gets its customer suspended pending review: status `suspended` with reason code
//! `screening_hit` (refresh tokens revoked, access-log row) and a `kyc.rescreen.suspended`
//! audit record, in one transaction. The run ends with a `screening.rescreen.completed` audit record naming the list
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
    ApplicationStatus, CustomerCaller, MAX_QUEUE_PAGE, QueueFilter, QueueItem, ScreeningSubject,
    SuspensionReason,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::screening::{LoadedList, ScreeningRunError, subject_ref, subjects_of};

/// Audit action of a finished re-screen (subject `screening_list:<version id>`).
pub const RESCREEN_ACTION: AuditAction = AuditAction::RescreenCompleted;

/// Audit action of a suspension for a new hit (subject `customer:<id>`).
const SUSPENDED_ACTION: AuditAction = AuditAction::RescreenSuspended;

/// Application statuses whose parties are re-screened: every one whose customer may hold compute
/// (approved, or at the trial tier while pending, asked for more, rejected or lapsed). Drafts and
/// submissions in flight are screened by the ordinary flow against the newest list.
const RESCREENED: [ApplicationStatus; 5] = [
    ApplicationStatus::Approved,
    ApplicationStatus::PendingReview,
    ApplicationStatus::NeedsInfo,
    ApplicationStatus::Rejected,
    ApplicationStatus::Expired,
];

/// What a re-screen did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RescreenReport {
    /// Applications and end customers screened.
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

/// Re-screens every application of [`RESCREENED`] against `list` (see the module docs), then records
/// the `screening.rescreen.completed` audit record.
pub async fn rescreen_customers(
    store: &Store,
    master: &MasterKey,
    list: &LoadedList,
    now: OffsetDateTime,
) -> Result<RescreenReport, ScreeningRunError> {
    rescreen_customers_reporting(store, master, list, now, &mut |_| {}).await
}

/// [`rescreen_customers`], calling `progress` with the number of applications screened so far
/// after each one (the CLI's progress bar or count lines).
pub async fn rescreen_customers_reporting(
    store: &Store,
    master: &MasterKey,
    list: &LoadedList,
    now: OffsetDateTime,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<RescreenReport, ScreeningRunError> {
    let mut report = RescreenReport::default();
    for status in RESCREENED {
        let mut filter = QueueFilter {
            status: Some(status),
            limit: MAX_QUEUE_PAGE,
            ..QueueFilter::default()
        };
        // Walk every application in `status`, page by page (keyset order: `QueueItem::cursor`).
        loop {
            let page = store.verification().application_queue(&filter).await?;
            for item in &page {
                let new_hit = rescreen_one(store, master, list, item, now, &mut report).await?;
                if let Some(hit) = new_hit
                    && !report.suspended.contains(&item.customer_id)
                    && suspend(store, list, item, &hit, now).await?
                {
                    report.suspended.push(item.customer_id);
                }
                progress(report.screened);
            }
            let last = page.last().map(QueueItem::cursor);
            match last {
                Some(cursor) if page.len() >= MAX_QUEUE_PAGE as usize => {
                    filter.after = Some(cursor)
                }
                _ => break,
            }
        }
    }
    rescreen_end_customers(store, master, list, now, &mut report, progress).await?;
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
        .audit()
        .record_audit(&entry)
        .await
        .map_err(computegate_kyc::verification::VerificationError::from)?;
    Ok(report)
}

/// Screens one application; returns its first new hit, if any.
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
    let view = store
        .verification()
        .get_application(master, &owner, item.id)
        .await?;
    // Retention withdrew the parties of an ended application superseded by a newer one or of
    // a closed customer: nothing is left to screen (the customer's newer application is).
    let Some(payload) = &view.payload else {
        return Ok(None);
    };
    report.screened += 1;
    let parties = subjects_of(payload);
    screen_parties(
        store,
        list,
        &parties,
        |role| subject_ref(item.id, role),
        now,
        report,
    )
    .await
}

/// Screens `parties` (recorded under `reference(role)`); returns the first new hit, if any.
async fn screen_parties(
    store: &Store,
    list: &LoadedList,
    parties: &[ScreeningSubject],
    reference: impl Fn(&str) -> String,
    now: OffsetDateTime,
    report: &mut RescreenReport,
) -> Result<Option<NewHit>, ScreeningRunError> {
    let mut first_new = None;
    for subject in parties {
        let reference = reference(&subject.role);
        let result: ScreeningResult = list
            .index
            .screen(&super::screening::engine_subject(subject));
        let known = store.screening().screening_results_for(&reference).await?;
        store
            .screening()
            .record_screening(&reference, &result, now)
            .await?;
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

/// Re-screens every active end customer (page by page, in id order); a new hit suspends that
/// end customer's account, never its reseller's or another end customer's.
async fn rescreen_end_customers(
    store: &Store,
    master: &MasterKey,
    list: &LoadedList,
    now: OffsetDateTime,
    report: &mut RescreenReport,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), ScreeningRunError> {
    let mut after = None;
    loop {
        let page = store
            .verification()
            .active_end_customers(master, after, MAX_QUEUE_PAGE)
            .await?;
        for (id, payload) in &page {
            report.screened += 1;
            let parties = subjects_of(payload);
            let reference = |role: &str| format!("end_customer:{id}:{role}");
            let new_hit = screen_parties(store, list, &parties, reference, now, report).await?;
            if let Some(hit) = new_hit {
                let detail = hit_detail(list, &hit, serde_json::json!({ "end_customer": id }));
                suspend_for_hit(store, *id, detail, now).await?;
                report.suspended.push(*id);
            }
            progress(report.screened);
        }
        match page.last() {
            Some((id, _)) if page.len() >= MAX_QUEUE_PAGE as usize => after = Some(*id),
            _ => return Ok(()),
        }
    }
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
    let customer = store.accounts().customer_by_id(item.customer_id).await?;
    if customer.is_none_or(|c| c.status != CustomerStatus::Active) {
        return Ok(false);
    }
    let context = serde_json::json!({
        "application_id": item.id,
        "application_status": item.status,
    });
    suspend_for_hit(store, item.customer_id, hit_detail(list, hit, context), now).await?;
    tracing::info!(customer = %item.customer_id, application = %item.id, "customer suspended after a new screening hit");
    Ok(true)
}

/// The audit detail of a suspension for `hit`: `context` (what was screened) with the list
/// version and the hit.
fn hit_detail(
    list: &LoadedList,
    hit: &NewHit,
    mut context: serde_json::Value,
) -> serde_json::Value {
    if let Some(map) = context.as_object_mut() {
        map.insert("list_version".into(), serde_json::json!(list.version.id));
        map.insert("list_format".into(), serde_json::json!(list.version.format));
        map.insert("role".into(), serde_json::json!(hit.role));
        map.insert("score".into(), serde_json::json!(hit.score));
        map.insert("entry_key".into(), serde_json::json!(hit.entry_key));
    }
    context
}

/// Suspends `customer_id` pending review for a new hit (`screening_hit`, audited
/// `kyc.rescreen.suspended`).
async fn suspend_for_hit(
    store: &Store,
    customer_id: Uuid,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), ScreeningRunError> {
    store
        .verification()
        .suspend_for_verification(
            customer_id,
            SuspensionReason::ScreeningHit,
            SUSPENDED_ACTION,
            detail,
            &Actor::system("screening"),
            now,
        )
        .await?;
    Ok(())
}

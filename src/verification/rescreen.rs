//! Re-screening every screened customer against a newly imported list version: approved ones,
//! and those at the trial tier — applications pending review or back with the applicant,
//! rejected or expired ones (see [`RESCREENED`]). A party whose best match is a *new* hit — one
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
    ApplicationStatus, CustomerCaller, MAX_QUEUE_PAGE, QueueFilter, QueueItem, SuspensionReason,
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
    /// Applications screened.
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
    report.screened += 1;
    let mut first_new = None;
    for subject in subjects_of(&view.payload) {
        let reference = subject_ref(item.id, &subject.role);
        let result: ScreeningResult = list
            .index
            .screen(&super::screening::engine_subject(&subject));
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
    let detail = serde_json::json!({
        "application_id": item.id,
        "application_status": item.status,
        "list_version": list.version.id,
        "list_format": list.version.format,
        "role": hit.role,
        "score": hit.score,
        "entry_key": hit.entry_key,
    });
    store
        .verification()
        .suspend_for_verification(
            item.customer_id,
            SuspensionReason::ScreeningHit,
            SUSPENDED_ACTION,
            detail,
            &Actor::system("screening"),
            now,
        )
        .await?;
    tracing::info!(customer = %item.customer_id, application = %item.id, "customer suspended after a new screening hit");
    Ok(true)
}

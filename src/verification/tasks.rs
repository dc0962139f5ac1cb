//! Background work of the verification service, one task per concern, each ending when the
//! gateway stops or the service is dropped:
//!
//! - **sweep**: screens applications left `submitted` (no list imported yet when they were
//!   handed in, or screening failed) and recovers ones stuck in `screening` after a crash;
//! - **expiry**: lets approvals whose re-verification is due lapse (`expire_due`) and announces
//!   the customers whose tier dropped;
//! - **re-screen pick-up**: loads a newly imported list version and, when
//!   `computegate screening import` has re-screened approved customers, announces the ones it
//!   suspended (their cached principals are dropped at once) and counts its hits;
//! - **stats**: refreshes the application gauges periodically and soon after a change;
//! - **Onfido fetches**: the `idv_fetch` worker, started alongside.

use std::sync::Arc;
use std::time::Duration;

use computegate_kyc::audit::AuditFilter;
use computegate_kyc::cluster::Notice;
use computegate_kyc::screening::ListFormat;
use computegate_kyc::verification::{ApplicationStatus, CustomerCaller, QueueFilter};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::Verification;
use super::rescreen::RESCREEN_ACTION;
use super::screening::subjects_of;
use crate::periodic::every;

/// How often left-over submissions are screened.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// An application in `screening` this long after submission is taken to be abandoned.
const STUCK_AFTER: time::Duration = time::Duration::minutes(2);
/// How often due re-verifications are expired (the periods are months; a minute is prompt).
const EXPIRY_EVERY: Duration = Duration::from_secs(60);
/// How often a new list version or a finished re-screen is looked for.
const RESCREEN_POLL: Duration = Duration::from_secs(2);
/// How often the application gauges are refreshed without a change.
const STATS_EVERY: Duration = Duration::from_secs(15);

// === impl Verification ===

impl Verification {
    /// Starts the background tasks; they end when `stop` turns true or the service is dropped.
    pub fn spawn_tasks(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        super::idv_fetch::spawn(self, stop.clone());
        spawn(self, stop);
    }
}

/// Starts every task.
fn spawn(kyc: &Arc<Verification>, stop: watch::Receiver<bool>) {
    every(kyc, stop.clone(), SWEEP_EVERY, |k| async move {
        sweep(&k).await
    });
    every(kyc, stop.clone(), EXPIRY_EVERY, |k| async move {
        expire(&k).await
    });
    let cursor = Arc::new(tokio::sync::Mutex::new(None::<i64>));
    every(kyc, stop.clone(), RESCREEN_POLL, move |k| {
        let cursor = cursor.clone();
        async move { pick_up_rescreens(&k, &cursor).await }
    });
    spawn_stats(kyc, stop);
}

fn spawn_stats(kyc: &Arc<Verification>, mut stop: watch::Receiver<bool>) {
    let weak = Arc::downgrade(kyc);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATS_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let Some(kyc) = weak.upgrade() else { break };
            tokio::select! {
                _ = tick.tick() => {}
                _ = kyc.stats_changed.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            match kyc.store().verification().application_stats().await {
                Ok(stats) => kyc.metrics.set_stats(&stats, OffsetDateTime::now_utc()),
                Err(e) => tracing::warn!(error = %e, "cannot read application counts for metrics"),
            }
        }
    });
}

/// Screens left-over submissions and recovers abandoned screenings.
async fn sweep(kyc: &Verification) {
    let submitted = QueueFilter {
        status: Some(ApplicationStatus::Submitted),
        ..QueueFilter::default()
    };
    match kyc
        .store()
        .verification()
        .application_queue(&submitted)
        .await
    {
        Ok(items) => {
            for item in items {
                if let Err(e) = kyc.screen_submitted(item.id).await {
                    tracing::warn!(error = %e, application = %item.id, "screening failed; retrying later");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list submitted applications"),
    }
    let stuck = QueueFilter {
        status: Some(ApplicationStatus::Screening),
        submitted_before: Some(OffsetDateTime::now_utc() - STUCK_AFTER),
        ..QueueFilter::default()
    };
    match kyc.store().verification().application_queue(&stuck).await {
        Ok(items) => {
            for item in items {
                recover(kyc, item.id, item.customer_id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list applications in screening"),
    }
}

/// Finishes the screening of an application left in `screening` (the process that began it
/// stopped before recording the result).
async fn recover(kyc: &Verification, id: Uuid, customer_id: Uuid) {
    let list = match kyc.lists.current(kyc.store()).await {
        Ok(Some(list)) => list,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the screening list");
            return;
        }
    };
    let owner = CustomerCaller {
        customer_id,
        client_ip: None,
    };
    let result = match kyc
        .store()
        .verification()
        .get_application(kyc.master(), &owner, id)
        .await
    {
        Ok(view) => match view.require_payload() {
            Ok(payload) => {
                let subjects = subjects_of(payload);
                let now = OffsetDateTime::now_utc();
                kyc.finish_screening(&list, id, &subjects, now)
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => tracing::info!(application = %id, "abandoned screening completed"),
        Err(e) => {
            tracing::warn!(error = %e, application = %id, "abandoned screening not completed")
        }
    }
}

/// Expires due approvals and announces the customers whose tier dropped.
async fn expire(kyc: &Verification) {
    match kyc
        .store()
        .verification()
        .expire_due(OffsetDateTime::now_utc())
        .await
    {
        Ok(customers) => {
            for customer_id in customers {
                tracing::info!(customer = %customer_id, "approval expired: re-verification due");
                kyc.customer_changed(customer_id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot expire due approvals"),
    }
}

/// Loads a newer list version, and applies re-screens finished since the last look.
async fn pick_up_rescreens(kyc: &Verification, cursor: &tokio::sync::Mutex<Option<i64>>) {
    if let Err(e) = kyc.lists.current(kyc.store()).await {
        tracing::warn!(error = %e, "cannot load the latest screening list");
    }
    let mut cursor = cursor.lock().await;
    let after = match *cursor {
        Some(seq) => seq,
        None => match kyc.store().audit().audit_head().await {
            // Start from now: the caches of a starting process are loaded from the store, so
            // earlier re-screens are already in force here.
            Ok(head) => {
                *cursor = Some(head.seq);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit head");
                return;
            }
        },
    };
    let filter = AuditFilter {
        action: Some(RESCREEN_ACTION.as_str().into()),
        after_seq: Some(after),
        limit: 100,
        ..AuditFilter::default()
    };
    let records = match kyc.store().audit().audit_page(&filter).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read re-screen records");
            return;
        }
    };
    for record in records {
        *cursor = Some(record.seq);
        apply_rescreen(kyc, &record.detail).await;
    }
}

async fn apply_rescreen(kyc: &Verification, detail: &serde_json::Value) {
    if let (Some(format), Some(hits)) = (
        detail["format"].as_str().and_then(ListFormat::from_name),
        detail["hits"].as_u64(),
    ) {
        kyc.metrics.screening_hits(format, hits);
    }
    match detail["suspended"].as_array() {
        Some(ids) => {
            for id in ids.iter().filter_map(|v| v.as_str()) {
                if let Ok(customer_id) = Uuid::parse_str(id) {
                    kyc.customer_changed(customer_id).await;
                }
            }
        }
        // The list was too long for the record's detail: drop every cached principal.
        None => kyc.identity.announce(Notice::Resync).await,
    }
    kyc.stats_changed();
}

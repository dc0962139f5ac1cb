//! The worker that turns queued Onfido notices into recorded IDV outcomes. The webhook handler only
//! stores the notice (`VerificationStore::queue_idv_fetch`) and wakes this worker, so a slow or
//! failing Onfido never holds a webhook request open. Each pass claims the due rows, fetches each
//! resource from Onfido's API (a report leads to its check), records the outcome on the tagged
//! application (`VerificationStore::record_idv_event`, idempotent) and marks the row done. Failures
//! that may pass (timeouts, transport errors, 408/429/5xx, a check announced complete that does not
//! read complete yet) are retried with doubling delays, at most [`MAX_ATTEMPTS`] times; the rest
//! are given up at once and kept as `failed` rows with their reason.
//!
//! Metrics: `computegate_idv_provider_requests_total{provider,resource,result}`,
//! `computegate_idv_fetch_retries_total{provider}`,
//! `computegate_idv_fetch_given_up_total{provider}` and
//! `computegate_idv_fetch_recorded_total{provider,outcome}`.

use std::sync::Arc;
use std::time::Duration;

use computegate_kyc::verification::onfido::{self, OnfidoResource, Resolved};
use computegate_kyc::verification::webhooks::IdvEvent;
use computegate_kyc::verification::{IdvFetch, IdvProvider, IdvRecorded, VerificationError};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::Verification;
use super::fetcher::{FetchMetrics, ProviderLabel, RequestLabel};
use super::onfido_api::{FetchError, OnfidoApi};

/// Attempts before a row is given up (with the default 5 s first delay, about 50 minutes).
pub(super) const MAX_ATTEMPTS: u32 = 12;
/// Longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the queue is looked at without a wake-up (rows due for retry, other replicas'
/// notices, rows left by a crash).
const POLL: Duration = Duration::from_secs(1);
/// Rows claimed per pass.
const BATCH: u32 = 16;

/// Why one attempt did not finish its row.
#[derive(Debug)]
enum Attempt {
    /// Try again later.
    Retry(String),
    /// Asking again will not help.
    GiveUp(String),
}

/// Starts the worker; it ends when `stop` turns true or the service is dropped. Without an
/// API client there is nothing to run: notices stay queued until one is configured.
pub(super) fn spawn(kyc: &Arc<Verification>, mut stop: watch::Receiver<bool>) {
    if kyc.fetcher().api.is_none() {
        if kyc.secrets().get(IdvProvider::Onfido).is_some() {
            tracing::warn!(
                "Onfido webhooks are accepted but COMPUTEGATE_IDV_ONFIDO_API_TOKEN is not set: \
                 their checks and workflow runs are queued, not fetched"
            );
        }
        return;
    }
    let weak = Arc::downgrade(kyc);
    tokio::spawn(async move {
        loop {
            let Some(kyc) = weak.upgrade() else { break };
            run_once(&kyc).await;
            let fetcher_wake = async { kyc.fetcher().wake.notified().await };
            tokio::select! {
                _ = fetcher_wake => {}
                _ = tokio::time::sleep(POLL) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    });
}

/// The delay before attempt `attempts + 1`: `first` doubled per earlier attempt, at most
/// [`MAX_BACKOFF`].
pub(super) fn backoff(first: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(20));
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

/// One pass over the due rows.
async fn run_once(kyc: &Verification) {
    let Some(api) = kyc.fetcher().api.as_ref() else {
        return;
    };
    // A claim must outlast the slowest pass over one row: two requests (report, then check).
    let lease = time::Duration::try_from(api.config().timeout.saturating_mul(3))
        .unwrap_or(time::Duration::minutes(1))
        .max(time::Duration::seconds(30));
    let claimed = match kyc
        .store()
        .verification()
        .claim_idv_fetches(OffsetDateTime::now_utc(), lease, BATCH)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the IDV fetch queue");
            return;
        }
    };
    for fetch in claimed {
        work(kyc, api, &fetch).await;
    }
}

/// Fetches, records and settles one row.
async fn work(kyc: &Verification, api: &OnfidoApi, fetch: &IdvFetch) {
    let metrics = &kyc.fetcher().metrics;
    let provider = fetch.provider.as_str();
    let attempt = match outcome_of(api, metrics, fetch).await {
        Ok(Some(event)) => match kyc
            .store()
            .verification()
            .record_idv_event(&event, OffsetDateTime::now_utc())
            .await
        {
            Ok(recorded) => {
                if recorded == IdvRecorded::Recorded {
                    metrics.recorded(provider, event.outcome);
                    kyc.stats_changed();
                }
                tracing::info!(provider, resource = %fetch.resource,
                    application = %event.application_id, outcome = event.outcome.as_str(),
                    duplicate = recorded == IdvRecorded::Duplicate, "IDV outcome fetched and recorded");
                Ok(())
            }
            Err(VerificationError::NotFound) => Err(Attempt::GiveUp(
                "the application named in the tags does not exist".into(),
            )),
            Err(e) => Err(Attempt::Retry(format!("recording failed: {e}"))),
        },
        Ok(None) => Ok(()),
        Err(a) => Err(a),
    };
    let now = OffsetDateTime::now_utc();
    let settled = match attempt {
        Ok(()) => kyc.store().verification().idv_fetch_done(fetch, now).await,
        Err(Attempt::Retry(reason)) if fetch.attempts + 1 < MAX_ATTEMPTS => {
            metrics
                .retries
                .get_or_create(&ProviderLabel { provider })
                .inc();
            let delay = backoff(api.config().retry, fetch.attempts);
            let next = now + time::Duration::try_from(delay).unwrap_or(time::Duration::minutes(10));
            tracing::info!(provider, resource = %fetch.resource, attempts = fetch.attempts + 1,
                retry_in_ms = delay.as_millis() as u64, %reason, "IDV provider fetch will be retried");
            kyc.store()
                .verification()
                .idv_fetch_failed(fetch, &reason, Some(next), now)
                .await
        }
        Err(Attempt::Retry(reason) | Attempt::GiveUp(reason)) => {
            metrics
                .given_up
                .get_or_create(&ProviderLabel { provider })
                .inc();
            tracing::warn!(provider, resource = %fetch.resource, resource_id = %fetch.resource_id,
                attempts = fetch.attempts + 1, %reason, "IDV provider fetch given up");
            kyc.store()
                .verification()
                .idv_fetch_failed(fetch, &reason, None, now)
                .await
        }
    };
    if let Err(e) = settled {
        // The claim's lease ends and the row is worked again; recording is idempotent.
        tracing::warn!(error = %e, "cannot settle an IDV fetch row");
    }
}

/// The outcome the row's resource gives, `None` when there is none to record yet.
async fn outcome_of(
    api: &OnfidoApi,
    metrics: &FetchMetrics,
    fetch: &IdvFetch,
) -> Result<Option<IdvEvent>, Attempt> {
    let body = get(api, metrics, fetch.resource, fetch.resource_id).await?;
    let resolved = match resolve(fetch.resource, &body)? {
        Resolved::FollowCheck(check) => {
            let body = get(api, metrics, OnfidoResource::Check, check).await?;
            match resolve(OnfidoResource::Check, &body)? {
                // A report done before its check: the check's own notice will follow.
                Resolved::NotFinal => return Ok(None),
                other => other,
            }
        }
        other => other,
    };
    match resolved {
        Resolved::Outcome {
            key,
            application_id,
            outcome,
        } => Ok(Some(IdvEvent {
            provider: IdvProvider::Onfido,
            event_id: key,
            application_id,
            outcome,
        })),
        // Announced complete but not readable as complete yet: ask again.
        Resolved::NotFinal => Err(Attempt::Retry(format!(
            "the {} is not complete yet",
            fetch.resource
        ))),
        Resolved::FollowCheck(_) => Err(Attempt::GiveUp("a check names another check".into())),
    }
}

fn resolve(resource: OnfidoResource, body: &serde_json::Value) -> Result<Resolved, Attempt> {
    onfido::resolve(resource, body).map_err(|e| Attempt::GiveUp(e.to_string()))
}

/// One counted API request.
async fn get(
    api: &OnfidoApi,
    metrics: &FetchMetrics,
    resource: OnfidoResource,
    id: uuid::Uuid,
) -> Result<serde_json::Value, Attempt> {
    let result = api.get(resource, id).await;
    let label = match &result {
        Ok(_) => "ok",
        Err(FetchError::Timeout) => "timeout",
        Err(FetchError::Transport(_)) => "transport",
        Err(FetchError::Status(s)) if s.is_server_error() => "status_5xx",
        Err(FetchError::Status(_)) => "status_4xx",
        Err(FetchError::NotJson) => "not_json",
    };
    metrics
        .requests
        .get_or_create(&RequestLabel {
            provider: IdvProvider::Onfido.as_str(),
            resource: resource.as_str(),
            result: label,
        })
        .inc();
    result.map_err(|e| {
        if e.retryable() {
            Attempt::Retry(e.to_string())
        } else {
            Attempt::GiveUp(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let first = Duration::from_secs(5);
        assert_eq!(backoff(first, 0), Duration::from_secs(5));
        assert_eq!(backoff(first, 1), Duration::from_secs(10));
        assert_eq!(backoff(first, 3), Duration::from_secs(40));
        assert_eq!(backoff(first, 7), MAX_BACKOFF);
        assert_eq!(backoff(first, u32::MAX), MAX_BACKOFF);
        let total: Duration = (0..MAX_ATTEMPTS - 1).map(|a| backoff(first, a)).sum();
        assert!(total < Duration::from_secs(3600), "{total:?}");
    }
}

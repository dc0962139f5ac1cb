//! Usage events from the compute platform: `POST /computegate/v1/meter/usage`.
//!
//! Each event is signed like a webhook — header `X-Computegate-Signature: t=<unix>,v1=<hex
//! HMAC-SHA256(secret, "t.body")>` with a 5-minute tolerance, secrets from
//! `COMPUTEGATE_USAGE_SECRET` (and `COMPUTEGATE_USAGE_SECRET_PREVIOUS` during rotation) — and is
//! idempotent by `event_id`. Measured accelerator-seconds become FLOP at the job's own rate (the
//! peak × utilization its estimate used; another reported accelerator type is charged at no less
//! than that type's peak × the policy's default utilization), replace the job's reservation, and
//! re-check thresholds. The
//! answer comes only after the event is committed, so a sender that got no answer retries.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use computegate_gateway::policy::PolicyHandle;
use computegate_kyc::Store;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::ledger::{LedgerError, ThresholdPolicy, UsageEvent, UsageKind, UsageOutcome};
use computegate_kyc::verification::webhooks::{WebhookSecret, WebhookSecrets, verify_timestamped};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::{ApiError, unavailable};
use crate::ledger_metrics::LedgerMetrics;

/// Header carrying the event signature.
pub const SIGNATURE_HEADER: &str = "x-computegate-signature";
/// How far an event's signing time may be from ours.
const TOLERANCE: Duration = Duration::from_secs(300);

/// What the usage intake needs.
pub struct UsageIntake {
    store: Store,
    master: MasterKey,
    policy: Arc<PolicyHandle>,
    secrets: Option<WebhookSecrets>,
    metrics: Arc<LedgerMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event_id: String,
    job_id: Uuid,
    kind: String,
    #[serde(default)]
    accelerator_seconds: Option<f64>,
    accelerator_type: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

/// Reads the usage secrets through one function (the process environment in production).
pub fn secrets_from(env: impl Fn(&str) -> Option<String>) -> Option<WebhookSecrets> {
    let current = env("COMPUTEGATE_USAGE_SECRET").filter(|s| !s.is_empty())?;
    Some(WebhookSecrets {
        current: WebhookSecret::new(current),
        previous: env("COMPUTEGATE_USAGE_SECRET_PREVIOUS")
            .filter(|s| !s.is_empty())
            .map(WebhookSecret::new),
    })
}

/// The usage-event router (mounted under the customer API's `/computegate/` prefix).
pub fn router(
    store: Store,
    master: MasterKey,
    policy: Arc<PolicyHandle>,
    secrets: Option<WebhookSecrets>,
    metrics: Arc<LedgerMetrics>,
) -> Router {
    let intake = Arc::new(UsageIntake {
        store,
        master,
        policy,
        secrets,
        metrics,
    });
    Router::new()
        .route("/computegate/v1/meter/usage", post(record))
        .with_state(intake)
}

async fn record(
    State(intake): State<Arc<UsageIntake>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secrets) = &intake.secrets else {
        return Err(ApiError::Unavailable(
            "usage intake has no COMPUTEGATE_USAGE_SECRET".into(),
        ));
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = OffsetDateTime::now_utc();
    let Some(signature) = signature else {
        return Err(ApiError::Unauthenticated("the event is not signed"));
    };
    verify_timestamped(
        signature,
        &body,
        secrets,
        now,
        crate::identity::span(TOLERANCE),
    )
    .map_err(|_| ApiError::Unauthenticated("the event signature is not valid"))?;
    let event: EventBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    let policy = intake.policy.current();
    let accelerator = policy
        .accelerator(&event.accelerator_type)
        .ok_or_else(|| ApiError::field("accelerator_type", "is not in the accelerator table"))?;
    let peak = accelerator
        .peak_flops
        .get(policy.default_precision())
        .ok_or_else(|| {
            ApiError::field("accelerator_type", "has no peak for the default precision")
        })?;
    let seconds = |field: &str| {
        event
            .accelerator_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| ApiError::field(field, "must be a finite, non-negative number"))
    };
    let kind = match event.kind.as_str() {
        "started" => UsageKind::Started,
        "heartbeat" => UsageKind::Heartbeat {
            accelerator_seconds_total: seconds("accelerator_seconds")?,
        },
        "finished" => UsageKind::Finished {
            accelerator_seconds_total: seconds("accelerator_seconds")?,
        },
        _ => {
            return Err(ApiError::field(
                "kind",
                "must be started, heartbeat or finished",
            ));
        }
    };
    let usage = UsageEvent {
        event_id: event.event_id,
        job_id: event.job_id,
        kind,
        at: event.at,
        accelerator_type: accelerator.type_key.clone(),
        flop_per_accelerator_second: peak * policy.utilization_default(),
    };
    let thresholds = ThresholdPolicy {
        rules: crate::ledger_port::threshold_rules(&policy),
        window: Duration::from_secs(30 * 24 * 3600),
    };
    match intake.store.record_usage(&usage, &thresholds).await {
        Ok(UsageOutcome::Duplicate) => {
            Ok(Json(serde_json::json!({"status": "duplicate"})).into_response())
        }
        Ok(UsageOutcome::Recorded(recorded)) => {
            intake.metrics.crossed(&recorded.crossings);
            if !recorded.report_ids.is_empty() {
                let customer = recorded.customer_id;
                crate::report_identity::attach(
                    &intake.store,
                    &intake.master,
                    customer,
                    &recorded.report_ids,
                )
                .await;
            }
            Ok(Json(serde_json::json!({"status": "recorded"})).into_response())
        }
        Err(LedgerError::UnknownJob) => Err(ApiError::NotFound),
        Err(LedgerError::CounterDecreased { .. }) => {
            Err(ApiError::Conflict("accelerator-seconds may not decrease"))
        }
        Err(LedgerError::JobNotOpen { .. }) => Err(ApiError::Conflict("the job is not open")),
        Err(LedgerError::Invalid(why)) => Err(ApiError::field("event", why)),
        Err(e) => Err(unavailable(e)),
    }
}

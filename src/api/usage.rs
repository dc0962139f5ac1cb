//! Usage events from the compute platform: `POST /computegate/v1/meter/usage`.
//!
//! Each event is signed like a webhook — header `X-Computegate-Signature: t=<unix>,v1=<hex
//! HMAC-SHA256(secret, "t.body")>` with a 5-minute tolerance, secrets from
//! `COMPUTEGATE_USAGE_SECRET` (and `COMPUTEGATE_USAGE_SECRET_PREVIOUS` during rotation) — and is
//! idempotent by `event_id`. Measured accelerator-seconds become FLOP at the job's own rate (the
//! peak × utilization its estimate used; another reported accelerator type is charged at no less
//! than that type's peak × the policy's default utilization), replace the job's reservation, and
//! re-check thresholds (the [`Metering`] service does that). The
//! answer comes only after the event is committed, so a sender that got no answer retries.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use computegate_kyc::ledger::{LedgerError, UsageKind, UsageOutcome};
use computegate_kyc::verification::webhooks::{WebhookSecret, WebhookSecrets, verify_timestamped};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::openapi::limited;
use super::state::ApiState;
use crate::metering::{Metering, MeteringError, UsageReport};

/// Header carrying the event signature.
pub const SIGNATURE_HEADER: &str = "x-computegate-signature";
/// Largest usage-event body read, bytes (a real event is a few hundred); a larger one is
/// refused with 413 before the signature is checked, so no MAC runs over megabytes.
pub const MAX_USAGE_BODY: usize = 16 * 1024;
/// How far an event's signing time may be from ours.
const TOLERANCE: Duration = Duration::from_secs(300);

/// A usage event from the compute platform.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EventBody {
    /// The sender's id for the event (idempotency).
    event_id: String,
    /// The ledger job (`X-Computegate-Job`).
    job_id: Uuid,
    /// `started`, `heartbeat` or `finished`.
    kind: String,
    /// Accelerator-seconds so far (heartbeat, finished).
    #[serde(default)]
    accelerator_seconds: Option<f64>,
    accelerator_type: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

/// `recorded` or `duplicate`.
#[derive(Serialize, ToSchema)]
struct EventRecorded {
    status: &'static str,
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

/// The usage-event route (under the customer API's `/computegate/` prefix).
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(limited(routes!(record), MAX_USAGE_BODY))
}

/// Records a usage event, signed with `X-Computegate-Signature: t=<unix>,v1=<hex HMAC>` (no
/// bearer token); idempotent by `event_id`.
#[utoipa::path(
    post,
    path = "/computegate/v1/meter/usage",
    operation_id = "record_usage_event",
    tag = "usage",
    params(("X-Computegate-Signature" = String, Header, description = "`t=<unix>,v1=<hex HMAC-SHA256(secret, \"t.body\")>`")),
    request_body = EventBody,
    responses((status = 200, body = EventRecorded))
)]
async fn record(
    State(metering): State<Arc<Metering>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(secrets) = metering.usage_secrets() else {
        return Err(ApiError::Unavailable(
            "usage intake has no COMPUTEGATE_USAGE_SECRET".into(),
        ));
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = OffsetDateTime::now_utc();
    let Some(signature) = signature else {
        return Err(ApiError::BadSignature("the event is not signed"));
    };
    let body = body.map_err(|r| super::webhooks::body_refused(r, MAX_USAGE_BODY))?;
    verify_timestamped(
        signature,
        &body,
        secrets,
        now,
        crate::identity::span(TOLERANCE),
    )
    .map_err(|_| ApiError::BadSignature("the event signature is not valid"))?;
    let event: EventBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedBody(e.to_string()))?;
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
    let report = UsageReport {
        event_id: event.event_id,
        job_id: event.job_id,
        kind,
        at: event.at,
        accelerator_type: event.accelerator_type,
    };
    let status = match metering.record_usage(report).await {
        Ok(UsageOutcome::Duplicate) => "duplicate",
        Ok(UsageOutcome::Recorded(_)) => "recorded",
        Err(MeteringError::Ledger(LedgerError::Invalid(why))) => {
            return Err(ApiError::field("event", why));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(EventRecorded { status }).into_response())
}

#[cfg(test)]
mod tests;

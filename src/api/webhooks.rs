//! Identity-verification provider webhooks on the public listener:
//! `POST /computegate/v1/kyc/webhooks/{provider}` for `stripe`, `persona` and `onfido`.
//!
//! No bearer token: the sender is authenticated by the provider's signature over the raw body
//! (secrets from `COMPUTEGATE_IDV_<PROVIDER>_SECRET[_PREVIOUS]`). An unknown or unconfigured
//! provider and a missing, stale or wrong signature all answer 401 and store nothing. A
//! verified event is recorded on its application idempotently by event id: a replay answers
//! 200 with `{"duplicate":true}`. Onfido's notices carry no result: they are queued durably
//! (`{"queued":true}`) and the fetch worker reads the outcome from Onfido's API.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use computegate_kyc::verification::webhooks::{
    DEFAULT_TOLERANCE, MAX_WEBHOOK_BODY, ParsedWebhook, parse_event, verify_signature,
};
use computegate_kyc::verification::{IdvProvider, IdvRecorded};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::openapi::limited;
use super::state::ApiState;
use crate::verification::Verification;

/// The webhook route.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(limited(routes!(receive), MAX_WEBHOOK_BODY))
}

/// The answer to a raw body that could not be read: 413 past `limit` bytes, else 400.
pub(super) fn body_refused(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("bodies here are at most {limit} bytes"))
    } else {
        ApiError::MalformedBody(rejection.body_text())
    }
}

/// An identity-verification provider's event, authenticated by the provider's signature over
/// the raw body (no bearer token).
#[utoipa::path(
    post,
    path = "/computegate/v1/kyc/webhooks/{provider}",
    operation_id = "idv_webhook",
    tag = "verification",
    params(("provider" = String, Path, description = "`stripe`, `persona` or `onfido`")),
    request_body(content = Object, description = "The provider's event, as it signed it"),
    responses((
        status = 200,
        description = "Recorded (`duplicate` on a replay), queued for fetching (Onfido) or ignored",
        body = Object
    ))
)]
async fn receive(
    State(kyc): State<Arc<Verification>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let provider: IdvProvider = provider
        .parse()
        .map_err(|_| ApiError::BadSignature("unknown webhook provider"))?;
    let secrets = kyc
        .secrets()
        .get(provider)
        .ok_or(ApiError::BadSignature("webhook provider not configured"))?;
    let body = body.map_err(|r| body_refused(r, MAX_WEBHOOK_BODY))?;
    let header = headers
        .get(provider.signature_header())
        .and_then(|v| v.to_str().ok());
    let now = OffsetDateTime::now_utc();
    verify_signature(provider, header, &body, secrets, now, DEFAULT_TOLERANCE).map_err(|e| {
        tracing::info!(provider = %provider, error = %e, "webhook refused");
        ApiError::from(e)
    })?;
    let event = match parse_event(provider, &body)? {
        Some(ParsedWebhook::Outcome(event)) => event,
        Some(ParsedWebhook::Fetch(notice)) => {
            // Onfido: the outcome is read from its API by the fetch worker; the notice is
            // stored durably before the 200, so nothing is lost and Onfido stops retrying.
            let queued = kyc
                .store()
                .verification()
                .queue_idv_fetch(provider, &notice, now)
                .await?;
            kyc.fetcher().wake();
            let duplicate = queued == IdvRecorded::Duplicate;
            tracing::info!(provider = %provider, resource = %notice.resource, duplicate, "IDV notice queued for fetching");
            return Ok(Json(serde_json::json!({
                "duplicate": duplicate,
                "queued": true,
                "resource": notice.resource.as_str(),
            }))
            .into_response());
        }
        // A verified event type that carries no verification outcome: acknowledged, not stored.
        None => return Ok(Json(serde_json::json!({"ignored": true})).into_response()),
    };
    let recorded = kyc
        .store()
        .verification()
        .record_idv_event(&event, now)
        .await?;
    let duplicate = recorded == IdvRecorded::Duplicate;
    tracing::info!(provider = %provider, application = %event.application_id, duplicate, "IDV event received");
    Ok(Json(serde_json::json!({
        "duplicate": duplicate,
        "application_id": event.application_id,
        "outcome": event.outcome,
    }))
    .into_response())
}

#[cfg(test)]
mod tests;

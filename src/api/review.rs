//! The staff review API on the admin listener (staff bearer token from
//! `POST /staff/v1/auth/token`, audience checked by `Identity::authenticate_staff`): the review
//! queue, case files, claims, decisions, screening overrides, customer suspension, document
//! downloads and the audit chain.
//!
//! Roles: every staff role may read the queue; case files and documents follow the store's
//! rules (reviewers, senior reviewers and auditors not tied to the applicant; every read is
//! audited); decisions need a reviewer or senior reviewer (the top tier two distinct seniors);
//! suspension a reviewer, senior reviewer or admin, resume and close a senior reviewer or admin;
//! the audit chain is for auditors and admins.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use computegate_kyc::audit::{AuditFilter, MAX_AUDIT_PAGE};
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{AuditReaders, JsonBody, PathId, QueryParams, StaffCaller, no_store};
use super::state::ApiState;
use crate::verification::{CustomerAction, Verification, parse_since};

pub(crate) mod requests;

use self::requests::{DecisionBody, QueueQuery, decision_request, queue_filter};
pub(super) use self::requests::{ReasonBody, reason_of};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    subject: Option<String>,
    action: Option<String>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

/// The staff review routes.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/staff/v1/applications", get(queue))
        .route("/staff/v1/applications/{id}", get(detail))
        .route("/staff/v1/applications/{id}/claim", post(claim))
        .route("/staff/v1/applications/{id}/unclaim", post(unclaim))
        .route("/staff/v1/applications/{id}/decision", post(decide))
        .route(
            "/staff/v1/applications/{id}/screening-override",
            post(override_screening),
        )
        .route(
            "/staff/v1/customers/{id}/suspend",
            customer_route(CustomerAction::Suspend),
        )
        .route(
            "/staff/v1/customers/{id}/resume",
            customer_route(CustomerAction::Resume),
        )
        .route(
            "/staff/v1/customers/{id}/close",
            customer_route(CustomerAction::Close),
        )
        .route("/staff/v1/documents/{id}", get(download))
        .route("/staff/v1/audit", get(audit))
}

async fn queue(
    State(kyc): State<Arc<Verification>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<QueueQuery>,
) -> Result<Response, ApiError> {
    let filter = queue_filter(&q, OffsetDateTime::now_utc())?;
    let items = kyc
        .store()
        .verification()
        .application_queue(&filter)
        .await?;
    Ok(no_store(Json(
        serde_json::json!({ "count": items.len(), "applications": items }),
    )))
}

async fn detail(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let view = kyc
        .case_file(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(view)))
}

async fn claim(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    kyc.claim(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(serde_json::json!({"id": id, "claimed_by": caller.user.id})).into_response())
}

async fn unclaim(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    kyc.unclaim(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(serde_json::json!({"id": id, "claimed_by": null})).into_response())
}

/// `{"action":"approve"|"reject"|"request_info","tier","reason"}`; every bad field at once.
async fn decide(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    let request = decision_request(&kyc, &body)?;
    let outcome = kyc
        .decide(&caller.kyc(), id, request, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(serde_json::json!({
        "id": id,
        "status": outcome.status,
        "granted_tier": outcome.granted_tier,
    }))
    .into_response())
}

/// Rules a `review`/`hit` screening match a false positive (`{"reason"}`).
async fn override_screening(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    kyc.override_screening(&caller.kyc(), id, &reason, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(serde_json::json!({"id": id, "screening_overridden": true})).into_response())
}

/// `POST {"reason"}`: suspends, resumes or closes a customer; the data plane hears at once.
fn customer_route(action: CustomerAction) -> MethodRouter<ApiState> {
    post(
        move |State(kyc): State<Arc<Verification>>,
              caller: StaffCaller,
              PathId(customer_id): PathId,
              JsonBody(body): JsonBody<ReasonBody>| async move {
            let reason =
                reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
            let now = OffsetDateTime::now_utc();
            kyc.act_on_customer(&caller.kyc(), customer_id, action, &reason, now)
                .await?;
            let status = action.status();
            Ok::<Response, ApiError>(
                Json(serde_json::json!({"customer_id": customer_id, "status": status}))
                    .into_response(),
            )
        },
    )
}

/// The document's bytes (decrypted), for roles allowed to download; the download is audited
/// before the bytes leave.
async fn download(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let doc = kyc
        .download(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    let content_type = doc.meta.content_type.as_str();
    let ext = content_type.rsplit('/').next().unwrap_or("bin");
    let disposition = format!("attachment; filename=\"{}.{ext}\"", doc.meta.id);
    let mut resp = doc.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&doc.meta.sha256) {
        h.insert("x-document-sha256", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// A page of the audit chain (`since`, `subject`, `action`, `after_seq`, `limit`), for auditors
/// and admins.
async fn audit(
    State(kyc): State<Arc<Verification>>,
    _: StaffCaller<AuditReaders>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    let since = match q.since.as_deref() {
        Some(text) => Some(
            parse_since(text)
                .ok_or_else(|| ApiError::field("since", "an RFC 3339 time or a YYYY-MM-DD date"))?,
        ),
        None => None,
    };
    let filter = AuditFilter {
        since,
        subject: q.subject,
        action: q.action,
        after_seq: q.after_seq,
        limit: q.limit.unwrap_or(100).min(MAX_AUDIT_PAGE),
    };
    let records = kyc
        .store()
        .audit()
        .audit_page(&filter)
        .await
        .map_err(super::error::unavailable)?;
    let next = records.last().map(|r| r.seq);
    Ok(no_store(Json(serde_json::json!({
        "records": records,
        "next_after_seq": next,
    }))))
}

#[cfg(test)]
mod tests;

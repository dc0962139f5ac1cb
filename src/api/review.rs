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

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use computegate_kyc::accounts::Tier;
use computegate_kyc::audit::{AuditFilter, AuditRecord};
use computegate_kyc::verification::{ApplicationStatus, QueueItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AuditReaders, JsonBody, PathId, QueryParams, StaffCaller, no_store};
use super::page::PageRequest;
use super::state::ApiState;
use crate::verification::{CustomerAction, Verification, parse_since};

pub(crate) mod requests;

use self::requests::{DecisionBody, QueueQuery, decision_request, queue_filter};
pub(super) use self::requests::{ReasonBody, reason_of};

/// The audit chain's filters and page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only records at or after this time (RFC 3339 or `YYYY-MM-DD`).
    since: Option<String>,
    /// Only records about exactly this subject (`customer:<uuid>`, …).
    subject: Option<String>,
    /// Only records with exactly this action.
    action: Option<String>,
    /// Items per page, 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of the review queue, oldest submission first.
#[derive(Serialize, ToSchema)]
struct Queue {
    /// Items on this page.
    count: usize,
    applications: Vec<QueueItem>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// A page of the audit chain, oldest first.
#[derive(Serialize, ToSchema)]
struct AuditPage {
    records: Vec<AuditRecord>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// Who holds the claim on an application now.
#[derive(Serialize, ToSchema)]
struct Claim {
    id: Uuid,
    claimed_by: Option<Uuid>,
}

/// A decision's result.
#[derive(Serialize, ToSchema)]
struct Decided {
    id: Uuid,
    #[schema(value_type = String)]
    status: ApplicationStatus,
    #[schema(value_type = Option<String>)]
    granted_tier: Option<Tier>,
}

/// A screening override's result.
#[derive(Serialize, ToSchema)]
struct Overridden {
    id: Uuid,
    screening_overridden: bool,
}

/// A customer's status after a staff action.
#[derive(Serialize, ToSchema)]
struct CustomerStatus {
    customer_id: Uuid,
    /// `active`, `suspended` or `closed`.
    status: &'static str,
}

/// The staff review routes.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(queue))
        .routes(routes!(detail))
        .routes(routes!(claim))
        .routes(routes!(unclaim))
        .routes(routes!(decide))
        .routes(routes!(override_screening))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(close))
        .routes(routes!(download))
        .routes(routes!(audit))
}

/// A page of the review queue, oldest submission first (every staff role).
#[utoipa::path(
    get,
    path = "/staff/v1/applications",
    operation_id = "list_review_queue",
    tag = "review",
    params(QueueQuery),
    responses((status = 200, body = Queue)),
    security(("staff" = []))
)]
async fn queue(
    State(kyc): State<Arc<Verification>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<QueueQuery>,
) -> Result<Response, ApiError> {
    let (filter, page) = queue_filter(&q, OffsetDateTime::now_utc())?;
    let items = kyc
        .store()
        .verification()
        .application_queue(&filter)
        .await?;
    let page = page.page(items, QueueItem::cursor);
    Ok(no_store(Json(Queue {
        count: page.items.len(),
        applications: page.items,
        next: page.next,
    })))
}

/// The case file: fields, documents, screening, risk, IDV outcome, history, four-eyes state
/// (reviewers, senior reviewers and auditors not tied to the applicant; the read is audited).
#[utoipa::path(
    get,
    path = "/staff/v1/applications/{id}",
    operation_id = "get_case_file",
    tag = "review",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The case file", body = Object)),
    security(("staff" = []))
)]
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

/// Claims the application for the caller.
#[utoipa::path(
    post,
    path = "/staff/v1/applications/{id}/claim",
    operation_id = "claim_application",
    tag = "review",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Claim)),
    security(("staff" = []))
)]
async fn claim(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    kyc.claim(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(Claim {
        id,
        claimed_by: Some(caller.user.id),
    })
    .into_response())
}

/// Gives the claim up.
#[utoipa::path(
    post,
    path = "/staff/v1/applications/{id}/unclaim",
    operation_id = "unclaim_application",
    tag = "review",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Claim)),
    security(("staff" = []))
)]
async fn unclaim(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    kyc.unclaim(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(Claim {
        id,
        claimed_by: None,
    })
    .into_response())
}

/// `{"action":"approve"|"reject"|"request_info","tier","reason"}`; every bad field at once.
/// The top tier needs two distinct senior reviewers.
#[utoipa::path(
    post,
    path = "/staff/v1/applications/{id}/decision",
    operation_id = "decide_application",
    tag = "review",
    params(("id" = Uuid, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = Decided)),
    security(("staff" = []))
)]
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
    Ok(Json(Decided {
        id,
        status: outcome.status,
        granted_tier: outcome.granted_tier,
    })
    .into_response())
}

/// Rules a `review`/`hit` screening match a false positive (`{"reason"}`).
#[utoipa::path(
    post,
    path = "/staff/v1/applications/{id}/screening-override",
    tag = "review",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = Overridden)),
    security(("staff" = []))
)]
async fn override_screening(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    kyc.override_screening(&caller.kyc(), id, &reason, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(Overridden {
        id,
        screening_overridden: true,
    })
    .into_response())
}

/// Suspends a customer (reviewer, senior reviewer, admin); the data plane hears at once.
#[utoipa::path(
    post,
    path = "/staff/v1/customers/{id}/suspend",
    operation_id = "suspend_customer",
    tag = "review",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = CustomerStatus)),
    security(("staff" = []))
)]
async fn suspend(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(customer_id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    act_on_customer(&kyc, &caller, customer_id, CustomerAction::Suspend, body).await
}

/// Resumes a suspended customer (senior reviewer, admin).
#[utoipa::path(
    post,
    path = "/staff/v1/customers/{id}/resume",
    operation_id = "resume_customer",
    tag = "review",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = CustomerStatus)),
    security(("staff" = []))
)]
async fn resume(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(customer_id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    act_on_customer(&kyc, &caller, customer_id, CustomerAction::Resume, body).await
}

/// Closes a customer account (senior reviewer, admin).
#[utoipa::path(
    post,
    path = "/staff/v1/customers/{id}/close",
    operation_id = "close_customer",
    tag = "review",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = CustomerStatus)),
    security(("staff" = []))
)]
async fn close(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller,
    PathId(customer_id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    act_on_customer(&kyc, &caller, customer_id, CustomerAction::Close, body).await
}

/// `{"reason"}`: suspends, resumes or closes a customer; the data plane hears at once.
async fn act_on_customer(
    kyc: &Verification,
    caller: &StaffCaller,
    customer_id: Uuid,
    action: CustomerAction,
    body: ReasonBody,
) -> Result<Response, ApiError> {
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    let now = OffsetDateTime::now_utc();
    kyc.act_on_customer(&caller.kyc(), customer_id, action, &reason, now)
        .await?;
    let status = action.status();
    Ok(Json(CustomerStatus {
        customer_id,
        status,
    })
    .into_response())
}

/// The document's bytes (decrypted), for roles allowed to download; the download is audited
/// before the bytes leave.
#[utoipa::path(
    get,
    path = "/staff/v1/documents/{id}",
    operation_id = "download_document",
    tag = "review",
    params(("id" = Uuid, Path)),
    responses((
        status = 200,
        description = "The document (its own media type), with `X-Document-SHA256`",
        content_type = "application/octet-stream"
    )),
    security(("staff" = []))
)]
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

/// A page of the audit chain (`since`, `subject`, `action`, `limit`, `cursor`), oldest first,
/// for auditors and admins.
#[utoipa::path(
    get,
    path = "/staff/v1/audit",
    operation_id = "list_audit_records",
    tag = "review",
    params(AuditQuery),
    responses((status = 200, body = AuditPage)),
    security(("staff" = []))
)]
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
    let page = PageRequest::<i64>::parse(q.limit, q.cursor.as_deref())?;
    let filter = AuditFilter {
        since,
        subject: q.subject,
        action: q.action,
        after_seq: page.after,
        limit: page.fetch(),
    };
    let records = kyc
        .store()
        .audit()
        .audit_page(&filter)
        .await
        .map_err(super::error::unavailable)?;
    let page = page.page(records, |r| r.seq);
    Ok(no_store(Json(AuditPage {
        records: page.items,
        next: page.next,
    })))
}

#[cfg(test)]
mod tests;

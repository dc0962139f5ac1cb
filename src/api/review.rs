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

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use computegate_gateway::auth::bearer;
use computegate_kyc::accounts::{StaffRole, StaffUser};
use computegate_kyc::audit::{AuditEntry, AuditFilter, MAX_AUDIT_PAGE};
use computegate_kyc::verification::{
    ApplicationStatus, StaffCaller, StaffDecision, TransitionError, VerificationError,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Client;
use super::applications::refused;
use super::error::{ApiError, unavailable};
use crate::verification::{Verification, parse_since};

mod requests;

use self::requests::{
    DecisionBody, QueueQuery, ReasonBody, decision_request, queue_filter, reason_of,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    subject: Option<String>,
    action: Option<String>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

/// What a customer-level action does.
#[derive(Debug, Clone, Copy)]
enum CustomerAction {
    Suspend,
    Resume,
    Close,
}

impl CustomerAction {
    fn name(self) -> &'static str {
        match self {
            CustomerAction::Suspend => "suspend",
            CustomerAction::Resume => "resume",
            CustomerAction::Close => "close",
        }
    }
}

/// The staff review routes (merged into the staff API; no fallback of its own).
pub fn router(kyc: Arc<Verification>) -> Router {
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
        .with_state(kyc)
}

async fn queue(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    staff(&kyc, &headers, client).await?;
    let Query(q) = query?;
    let filter = queue_filter(&q, OffsetDateTime::now_utc())?;
    let items = kyc
        .store()
        .application_queue(&filter)
        .await
        .map_err(refused)?;
    Ok(private(Json(
        serde_json::json!({ "count": items.len(), "applications": items }),
    )))
}

async fn detail(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let view = kyc
        .store()
        .application_for_staff(kyc.master(), &caller, id, OffsetDateTime::now_utc())
        .await;
    let view = checked(&kyc, &caller, format!("application:{id}"), "view", view).await?;
    Ok(private(Json(view)))
}

async fn claim(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let done = kyc
        .store()
        .claim_application(&caller, id, OffsetDateTime::now_utc())
        .await;
    checked(&kyc, &caller, format!("application:{id}"), "claim", done).await?;
    Ok(Json(serde_json::json!({"id": id, "claimed_by": caller.staff_id})).into_response())
}

async fn unclaim(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let done = kyc
        .store()
        .unclaim_application(&caller, id, OffsetDateTime::now_utc())
        .await;
    checked(&kyc, &caller, format!("application:{id}"), "unclaim", done).await?;
    Ok(Json(serde_json::json!({"id": id, "claimed_by": null})).into_response())
}

/// `{"action":"approve"|"reject"|"request_info","tier","reason"}`; every bad field at once.
async fn decide(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let Json(body) = body?;
    let request = decision_request(&kyc, &body)?;
    let approving = matches!(request.action, StaffDecision::Approve { .. });
    let outcome = kyc
        .store()
        .decide_application(
            kyc.master(),
            &caller,
            id,
            request,
            OffsetDateTime::now_utc(),
        )
        .await;
    let outcome = checked(
        &kyc,
        &caller,
        format!("application:{id}"),
        "decide",
        outcome,
    )
    .await?;
    match outcome.status {
        ApplicationStatus::Approved => {
            kyc.metrics().decision("approved");
            kyc.metrics().funnel("approved");
        }
        ApplicationStatus::Rejected => {
            kyc.metrics().decision("rejected");
            kyc.metrics().funnel("rejected");
        }
        ApplicationStatus::NeedsInfo => kyc.metrics().decision("info_requested"),
        _ if approving => kyc.metrics().decision("first_approval"),
        _ => {}
    }
    kyc.stats_changed();
    if outcome.granted_tier.is_some() {
        match kyc.owner_of(id).await {
            Some(customer_id) => kyc.customer_changed(customer_id).await,
            // Unknown owner: drop every cached principal rather than serve a stale tier.
            None => {
                kyc.identity()
                    .announce(computegate_kyc::cluster::Notice::Resync)
                    .await
            }
        }
    }
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
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<ReasonBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let Json(body) = body?;
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    let done = kyc
        .store()
        .override_application_screening(&caller, id, &reason, OffsetDateTime::now_utc())
        .await;
    checked(
        &kyc,
        &caller,
        format!("application:{id}"),
        "override_screening",
        done,
    )
    .await?;
    Ok(Json(serde_json::json!({"id": id, "screening_overridden": true})).into_response())
}

/// `POST` of one customer-level action: every one takes the same arguments.
fn customer_route(action: CustomerAction) -> MethodRouter<Arc<Verification>> {
    post(
        move |s: State<Arc<Verification>>,
              c: Extension<Client>,
              h: HeaderMap,
              p: Path<String>,
              b: Result<Json<ReasonBody>, JsonRejection>| {
            customer_action((s, c, h, p, b), action)
        },
    )
}

/// The arguments every customer-level action takes.
type CustomerArgs = (
    State<Arc<Verification>>,
    Extension<Client>,
    HeaderMap,
    Path<String>,
    Result<Json<ReasonBody>, JsonRejection>,
);

/// Suspends, resumes or closes a customer (`{"reason"}`) and tells the data plane at once.
async fn customer_action(args: CustomerArgs, action: CustomerAction) -> Result<Response, ApiError> {
    let (State(kyc), Extension(client), headers, Path(id), body) = args;
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let customer_id = id_of(&id)?;
    let Json(body) = body?;
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    let now = OffsetDateTime::now_utc();
    let store = kyc.store();
    let (done, status) = match action {
        CustomerAction::Suspend => (
            store
                .suspend_customer(&caller, customer_id, &reason, now)
                .await,
            "suspended",
        ),
        CustomerAction::Resume => (
            store
                .resume_customer(&caller, customer_id, &reason, now)
                .await,
            "active",
        ),
        CustomerAction::Close => (
            store
                .close_customer(&caller, customer_id, &reason, now)
                .await,
            "closed",
        ),
    };
    let subject = format!("customer:{customer_id}");
    checked(&kyc, &caller, subject, action.name(), done).await?;
    kyc.customer_changed(customer_id).await;
    Ok(Json(serde_json::json!({"customer_id": customer_id, "status": status})).into_response())
}

/// The document's bytes (decrypted), for roles allowed to download; the download is audited
/// before the bytes leave.
async fn download(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, caller) = staff(&kyc, &headers, client).await?;
    let id = id_of(&id)?;
    let doc = kyc
        .store()
        .document_for_staff(kyc.master(), &caller, id, OffsetDateTime::now_utc())
        .await;
    let doc = checked(&kyc, &caller, format!("document:{id}"), "download", doc).await?;
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

/// A page of the audit chain (`since`, `subject`, `action`, `after_seq`, `limit`).
async fn audit(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (user, _) = staff(&kyc, &headers, client).await?;
    if !matches!(user.role, StaffRole::Auditor | StaffRole::Admin) {
        return Err(ApiError::Forbidden(
            "the audit chain is for auditors and admins",
        ));
    }
    let Query(q) = query?;
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
    let records = kyc.store().audit_page(&filter).await.map_err(unavailable)?;
    let next = records.last().map(|r| r.seq);
    Ok(private(Json(serde_json::json!({
        "records": records,
        "next_after_seq": next,
    }))))
}

/// Maps a store refusal to its answer. A denial — a role that may not, a staff member tied to
/// the applicant, the same reviewer approving twice — is also written to the audit chain
/// (`kyc.staff_action.refused`): attempts beyond one's role matter to auditors.
async fn checked<T>(
    kyc: &Verification,
    caller: &StaffCaller,
    subject: String,
    attempted: &'static str,
    result: Result<T, VerificationError>,
) -> Result<T, ApiError> {
    let e = match result {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let denial = matches!(
        e,
        VerificationError::RoleNotPermitted
            | VerificationError::Transition(
                TransitionError::ConflictOfInterest
                    | TransitionError::NotPermitted { .. }
                    | TransitionError::DuplicateApprover
            )
    );
    if denial {
        let entry = AuditEntry::new(
            OffsetDateTime::now_utc(),
            &caller.actor(),
            "kyc.staff_action.refused",
            subject,
        )
        .with_detail(serde_json::json!({ "attempted": attempted, "why": e.to_string() }));
        if let Err(err) = kyc.store().record_audit(&entry).await {
            tracing::warn!(error = %err, "could not record a refused staff action");
        }
        tracing::info!(staff = %caller.staff_id, attempted, why = %e, "staff action refused");
    }
    Err(refused(e))
}

/// The calling staff user and their caller record.
async fn staff(
    kyc: &Verification,
    headers: &HeaderMap,
    client: Client,
) -> Result<(StaffUser, StaffCaller), ApiError> {
    let token = bearer(headers)
        .map_err(|_| ApiError::Unauthenticated("a staff bearer token is required"))?;
    let user = kyc.identity().authenticate_staff(token).await?;
    let caller = StaffCaller {
        staff_id: user.id,
        // Staff accounts carry no organization ties in the store; conflict checks fall back to
        // the staff member's email against the applicant's.
        organization_ids: Vec::new(),
        client_ip: Some(client.0.ip),
    };
    Ok((user, caller))
}

fn id_of(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound)
}

fn private(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

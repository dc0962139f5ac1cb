//! Resellers over HTTP (docs/resellers.md). Customer API (public listener): a reseller
//! organization's accounts register end customers (`POST`, an identity document like an
//! application's, screened at once), list them and read one (access token, or an API key with
//! `read`; registering needs an access token or a key with `jobs`, the scope that submits the
//! jobs it is for). Staff API (admin listener): mark a KYB-verified organization as reseller,
//! list resellers (the flagged ones are the review queue), read one, suspend and resume one;
//! read an end customer's identity and decide one whose screening is under review.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use computegate_gateway::auth::AuthMethod;
use computegate_gateway::scope::Scope;
use computegate_kyc::verification::{
    ApplicationPayload, EndCustomer, EndCustomerDecision, Reseller, ResellerAction, ResellerStatus,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::applications::{APPLICATION_BODY_LIMIT, body_error};
use super::error::ApiError;
use super::extract::{
    Acting, AnyStaff, CaseReaders, CustomerCaller, JsonBody, PathId, QueryParams, StaffCaller,
    no_store,
};
use super::openapi::limited;
use super::page::{PageQuery, PageRequest};
use super::review::{ReasonBody, reason_of};
use super::state::ApiState;
use crate::verification::Verification;

/// A page of end customers, newest first.
#[derive(Serialize, ToSchema)]
struct EndCustomerList {
    /// Each with `id`, `status` (`cleared`, `review`, `refused`), `kind`, `suspended`,
    /// `reseller_id` and `created_at`.
    #[schema(value_type = Vec<Object>)]
    end_customers: Vec<EndCustomer>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// A page of resellers, longest in their standing first.
#[derive(Serialize, ToSchema)]
struct ResellerList {
    /// Each with `organization_id`, `name`, `status` (`active`, `flagged`, `suspended`),
    /// `marked_at`, `flagged_at`, `refused_share` and `status_at`.
    #[schema(value_type = Vec<Object>)]
    resellers: Vec<Reseller>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// The staff list's filter and page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ResellerQuery {
    /// Only resellers in this standing: `active`, `flagged`, `suspended`.
    status: Option<String>,
    /// Items per page, 1..=500 (default 100).
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A staff decision on an end customer under review.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// `clear` (not the listed party: its jobs may run) or `refuse` (the listed party: its
    /// account is suspended).
    decision: String,
    /// Why (required; kept in the audit record).
    reason: Option<String>,
}

/// The end customer decided.
#[derive(Serialize, ToSchema)]
struct Decided {
    id: Uuid,
    /// `cleared` or `refused`.
    status: &'static str,
}

/// The customer routes; registration bodies are limited like applications.
pub(crate) fn customer_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(limited(routes!(register, list), APPLICATION_BODY_LIMIT))
        .routes(routes!(read))
}

/// The staff routes.
pub(crate) fn staff_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(mark))
        .routes(routes!(staff_list))
        .routes(routes!(staff_read))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(staff_end_customer))
        .routes(routes!(decide))
}

/// Registers an end customer of the caller's reseller: the identity document of an application
/// (`kind` and `individual` or `organization`, every field a submitted application needs),
/// screened at once → 201 `{"id","status",…,"already_registered":false}`; an identity the
/// reseller registered before → 200 with that end customer and `"already_registered":true`.
#[utoipa::path(
    post,
    path = "/computegate/v1/end-customers",
    operation_id = "register_end_customer",
    tag = "resellers",
    request_body(content = Object, description = "The identity document, as an application's"),
    responses(
        (status = 201, body = Object, description = "The end customer: `id`, `status` (`cleared`, `review`, `refused`), `kind`, `suspended`, `reseller_id`, `created_at`, `already_registered` (`false`)", headers(("Location" = String))),
        (status = 200, body = Object, description = "The identity is one of the reseller's end customers already (same person: name, date of birth and nationality, or identity document; same organization: jurisdiction and registration number): that end customer as it stands, `already_registered` `true`; nothing is stored", headers(("Location" = String))),
    ),
    security(("customer" = []))
)]
async fn register(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if caller.principal.method == AuthMethod::ApiKey {
        caller.require(Scope::Jobs)?;
    }
    let payload = ApplicationPayload::from_json(&body.map_err(body_error)?)
        .map_err(ApiError::InvalidFields)?;
    let now = OffsetDateTime::now_utc();
    let registered = kyc
        .register_end_customer(&caller.kyc(), &caller.principal.tier, &payload, now)
        .await?;
    let location = format!(
        "/computegate/v1/end-customers/{}",
        registered.end_customer.id
    );
    // The identity registered already: 200 with that end customer, so a retry or a second
    // registration gets the one id to name (never a second one that splits its totals).
    let status = if registered.already_registered {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(no_store((
        status,
        [(header::LOCATION, location)],
        Json(registered),
    )))
}

/// A page of the caller's reseller's end customers, newest first.
#[utoipa::path(
    get,
    path = "/computegate/v1/end-customers",
    operation_id = "list_end_customers",
    tag = "resellers",
    params(PageQuery),
    responses((status = 200, body = EndCustomerList)),
    security(("customer" = []))
)]
async fn list(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = kyc
        .end_customers(&caller.kyc(), page.after, page.fetch())
        .await?;
    let page = page.page(found, |e| (e.created_at, e.id));
    Ok(no_store(Json(EndCustomerList {
        end_customers: page.items,
        next: page.next,
    })))
}

/// One end customer of the caller's reseller (another reseller's is 404).
#[utoipa::path(
    get,
    path = "/computegate/v1/end-customers/{id}",
    operation_id = "get_end_customer",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Object, description = "The end customer: `id`, `status` (`cleared`, `review`, `refused`), `kind`, `suspended`, `reseller_id`, `created_at`")),
    security(("customer" = []))
)]
async fn read(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let found = kyc.end_customer(&caller.kyc(), id).await?;
    Ok(no_store(Json(found)))
}

/// Marks organization `id` as a reseller (KYB-verified organizations only) → 201.
#[utoipa::path(
    post,
    path = "/staff/v1/organizations/{id}/reseller",
    operation_id = "mark_reseller",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    responses((status = 201, body = Object, description = "The reseller: `organization_id`, `name`, `status`, `marked_at`, `flagged_at`, `refused_share`, `status_at`")),
    security(("staff" = []))
)]
async fn mark(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let reseller = kyc
        .mark_reseller(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok((StatusCode::CREATED, Json(reseller)).into_response())
}

/// A page of resellers, of one standing when `status` is given (`flagged`: the review queue),
/// longest in it first.
#[utoipa::path(
    get,
    path = "/staff/v1/resellers",
    operation_id = "list_resellers",
    tag = "resellers",
    params(ResellerQuery),
    responses((status = 200, body = ResellerList)),
    security(("staff" = []))
)]
async fn staff_list(
    State(kyc): State<Arc<Verification>>,
    _caller: StaffCaller<AnyStaff>,
    QueryParams(q): QueryParams<ResellerQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<ResellerStatus>()
                .map_err(|_| ApiError::field("status", "one of active, flagged, suspended"))?,
        ),
    };
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let found = kyc.resellers(status, page.after, page.fetch()).await?;
    let page = page.page(found, |r| (r.status_at, r.organization_id));
    Ok(no_store(Json(ResellerList {
        resellers: page.items,
        next: page.next,
    })))
}

/// Reseller `id`.
#[utoipa::path(
    get,
    path = "/staff/v1/resellers/{id}",
    operation_id = "get_reseller",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Object, description = "The reseller: `organization_id`, `name`, `status`, `marked_at`, `flagged_at`, `refused_share`, `status_at`")),
    security(("staff" = []))
)]
async fn staff_read(
    State(kyc): State<Arc<Verification>>,
    _caller: StaffCaller<AnyStaff>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let reseller = kyc.reseller(id).await?;
    Ok(no_store(Json(reseller)))
}

/// `{"reason"}`: suspends reseller `id` — none of its jobs run until it is resumed.
#[utoipa::path(
    post,
    path = "/staff/v1/resellers/{id}/suspend",
    operation_id = "suspend_reseller",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = Object, description = "The reseller: `organization_id`, `name`, `status`, `marked_at`, `flagged_at`, `refused_share`, `status_at`")),
    security(("staff" = []))
)]
async fn suspend(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    change(&kyc, &caller, id, ResellerAction::Suspend, &body).await
}

/// `{"reason"}`: resumes reseller `id` (a flagged one after its review, or a suspended one).
#[utoipa::path(
    post,
    path = "/staff/v1/resellers/{id}/resume",
    operation_id = "resume_reseller",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = Object, description = "The reseller: `organization_id`, `name`, `status`, `marked_at`, `flagged_at`, `refused_share`, `status_at`")),
    security(("staff" = []))
)]
async fn resume(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    change(&kyc, &caller, id, ResellerAction::Resume, &body).await
}

/// End customer `id` with its identity and screening (case readers; the read is audited).
#[utoipa::path(
    get,
    path = "/staff/v1/end-customers/{id}",
    operation_id = "get_end_customer",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Object, description = "The end customer with `identity` (`null` once retention withdrew it, with `identity_purged_at`), `screening_list_version` and `screening_score`")),
    security(("staff" = []))
)]
async fn staff_end_customer(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<CaseReaders>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let found = kyc
        .end_customer_for_staff(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(found)))
}

/// `{"decision": "clear" | "refuse", "reason"}`: decides an end customer whose screening is
/// under review.
#[utoipa::path(
    post,
    path = "/staff/v1/end-customers/{id}/decision",
    operation_id = "decide_end_customer",
    tag = "resellers",
    params(("id" = Uuid, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = Decided)),
    security(("staff" = []))
)]
async fn decide(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response, ApiError> {
    let (decision, status) = match body.decision.as_str() {
        "clear" => (EndCustomerDecision::Clear, "cleared"),
        "refuse" => (EndCustomerDecision::Refuse, "refused"),
        _ => return Err(ApiError::field("decision", "one of clear, refuse")),
    };
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    kyc.decide_end_customer(
        &caller.kyc(),
        id,
        decision,
        &reason,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(Decided { id, status }).into_response())
}

/// A staff action on a reseller, with its required reason.
async fn change(
    kyc: &Verification,
    caller: &StaffCaller<Acting>,
    id: Uuid,
    action: ResellerAction,
    body: &ReasonBody,
) -> Result<Response, ApiError> {
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    let reseller = kyc
        .change_reseller(
            &caller.kyc(),
            id,
            action,
            &reason,
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(Json(reseller).into_response())
}

#[cfg(test)]
mod tests;

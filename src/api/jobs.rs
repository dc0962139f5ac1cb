//! The customer's own usage and jobs, and closing metered jobs: `GET /computegate/v1/usage`
//! (totals, caps and thresholds ahead per scope, recent jobs, notices; an API key needs `read`),
//! `GET /computegate/v1/jobs` (every job of the caller, a page at a time; `read`),
//! `POST /computegate/v1/jobs/{id}/close` (a customer closes its own job; any other id answers
//! 404; an API key needs `jobs`), and on the admin listener
//! `POST /staff/v1/jobs/{id}/close` with a reason (acting roles), `GET /staff/v1/jobs` and
//! `GET /staff/v1/jobs/{id}` (every staff role). What a closed job is charged is decided by the
//! ledger (`computegate_kyc::ledger::close_charge`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use computegate_gateway::scope::Scope;
use computegate_kyc::accounts::Actor;
use computegate_kyc::ledger::{CloseReason, JobClose, JobFilter, JobRecord, JobStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{
    Acting, CustomerCaller, JsonBody, PathId, QueryParams, StaffCaller, no_store,
};
use super::page::{PageQuery, PageRequest};
use super::state::ApiState;
use crate::metering::Metering;
use crate::verification::Verification;

/// Why staff close a job.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StaffClose {
    reason: String,
}

/// The staff job list's filters and page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    /// Only this customer's jobs.
    customer_id: Option<Uuid>,
    /// `reserved`, `running`, `finished`, `released`, `closed`, `held_for_review` or `denied`.
    status: Option<String>,
    /// Items per page, 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of jobs, newest decision first.
#[derive(Serialize, ToSchema)]
struct JobList {
    jobs: Vec<JobRecord>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// The customer's job routes (public listener).
pub(crate) fn customer_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(customer_usage))
        .routes(routes!(customer_jobs))
        .routes(routes!(customer_close))
}

/// The staff job routes (admin listener).
pub(crate) fn staff_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(staff_list))
        .routes(routes!(staff_read))
        .routes(routes!(staff_close))
}

/// The caller's usage: totals, caps and thresholds ahead per scope, recent jobs, notices.
#[utoipa::path(
    get,
    path = "/computegate/v1/usage",
    operation_id = "get_usage",
    tag = "usage",
    responses((status = 200, description = "The usage view", body = Object)),
    security(("customer" = []))
)]
async fn customer_usage(
    State(metering): State<Arc<Metering>>,
    caller: CustomerCaller,
) -> Result<Response, ApiError> {
    if !caller.principal.scopes.contains(Scope::Read) {
        return Err(ApiError::ScopeMissing(Scope::Read));
    }
    let organization = caller
        .principal
        .organization_id
        .as_deref()
        .and_then(|o| uuid::Uuid::parse_str(o).ok());
    let view = metering
        .customer_usage(caller.customer_id, organization, &caller.principal.tier)
        .await?;
    Ok(no_store(Json(view)))
}

/// A page of the caller's jobs, newest decision first; with an API key the key needs `read`.
#[utoipa::path(
    get,
    path = "/computegate/v1/jobs",
    operation_id = "list_my_jobs",
    tag = "usage",
    params(PageQuery),
    responses((status = 200, body = JobList)),
    security(("customer" = []))
)]
async fn customer_jobs(
    State(metering): State<Arc<Metering>>,
    caller: CustomerCaller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let query = JobQuery {
        customer_id: Some(caller.customer_id),
        status: None,
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(no_store(Json(job_page(&metering, query).await?)))
}

/// A customer closes its own job; with an API key the key needs the `jobs` scope (a close is a
/// job action).
#[utoipa::path(
    post,
    path = "/computegate/v1/jobs/{id}/close",
    operation_id = "close_my_job",
    tag = "usage",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The closed job and its charge", body = Object)),
    security(("customer" = []))
)]
async fn customer_close(
    State(metering): State<Arc<Metering>>,
    caller: CustomerCaller,
    PathId(job_id): PathId,
) -> Result<Response, ApiError> {
    if !caller.principal.scopes.contains(Scope::Jobs) {
        return Err(ApiError::ScopeMissing(Scope::Jobs));
    }
    let actor = Actor::customer(caller.customer_id, Some(caller.client_ip));
    let close = JobClose {
        reason: CloseReason::Customer,
        actor: &actor,
        note: None,
        owner: Some(caller.customer_id),
    };
    let closed = metering
        .store()
        .ledger()
        .close_job(job_id, &close, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(closed).into_response())
}

/// Staff close any job, with a reason (audited with it) — except a job of a customer account
/// they are tied to (same email or organization): refused 403 and audited, like every staff
/// action on a customer.
#[utoipa::path(
    post,
    path = "/staff/v1/jobs/{id}/close",
    operation_id = "close_job",
    tag = "metering",
    params(("id" = Uuid, Path)),
    request_body = StaffClose,
    responses((status = 200, description = "The closed job and its charge", body = Object)),
    security(("staff" = []))
)]
async fn staff_close(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(job_id): PathId,
    JsonBody(body): JsonBody<StaffClose>,
) -> Result<Response, ApiError> {
    if body.reason.trim().is_empty() {
        return Err(ApiError::field("reason", "is required"));
    }
    let job = metering.store().ledger().job_record(job_id).await?;
    let customer = job.ok_or(ApiError::NotFound)?.customer_id;
    let subject = format!("job:{job_id}");
    kyc.guard_staff_action(&caller.kyc(), &[customer], subject, "job.close")
        .await?;
    let actor = caller.actor();
    let close = JobClose {
        reason: CloseReason::Staff,
        actor: &actor,
        note: Some(&body.reason),
        owner: None,
    };
    let closed = metering
        .store()
        .ledger()
        .close_job(job_id, &close, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(closed).into_response())
}

/// A page of jobs (every customer's, or one's), newest decision first.
#[utoipa::path(
    get,
    path = "/staff/v1/jobs",
    operation_id = "list_jobs",
    tag = "metering",
    params(JobQuery),
    responses((status = 200, body = JobList)),
    security(("staff" = []))
)]
async fn staff_list(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<JobQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(job_page(&metering, q).await?).into_response())
}

/// A page of the ledger's jobs by `q`.
async fn job_page(metering: &Metering, q: JobQuery) -> Result<JobList, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<JobStatus>().map_err(|_| {
            ApiError::field(
                "status",
                "must be reserved, running, finished, released, closed, held_for_review or denied",
            )
        })?),
    };
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = JobFilter {
        customer_id: q.customer_id,
        status,
        limit: page.fetch(),
        after: page.after,
    };
    let jobs = metering.store().ledger().list_jobs(&filter).await?;
    let page = page.page(jobs, |j| (j.decided_at, j.id));
    Ok(JobList {
        jobs: page.items,
        next: page.next,
    })
}

/// One job.
#[utoipa::path(
    get,
    path = "/staff/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "metering",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobRecord)),
    security(("staff" = []))
)]
async fn staff_read(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    PathId(job_id): PathId,
) -> Result<Response, ApiError> {
    let job = metering
        .store()
        .ledger()
        .job_record(job_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(job).into_response())
}

//! The customer's own usage and jobs, and closing metered jobs: `GET /computegate/v1/usage`
//! (totals, caps and thresholds ahead per scope, jobs, notices; an API key needs `read`),
//! `POST /computegate/v1/jobs/{id}/close` (a customer closes its own job; any other id answers
//! 404; an API key needs `jobs`), and on the admin listener
//! `POST /staff/v1/jobs/{id}/close` with a reason (acting roles), `GET /staff/v1/jobs` and
//! `GET /staff/v1/jobs/{id}` (every staff role). What a closed job is charged is decided by the
//! ledger (`computegate_kyc::ledger::close_charge`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use computegate_gateway::scope::Scope;
use computegate_kyc::accounts::Actor;
use computegate_kyc::ledger::{CloseReason, JobClose, JobFilter, JobStatus};
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{
    Acting, CustomerCaller, JsonBody, PathId, QueryParams, StaffCaller, no_store,
};
use super::state::ApiState;
use crate::metering::Metering;
use crate::verification::Verification;

/// Largest page the staff job list answers.
const PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffClose {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    customer_id: Option<uuid::Uuid>,
    status: Option<String>,
    limit: Option<u32>,
}

/// The customer's job routes (public listener).
pub(crate) fn customer_routes() -> Router<ApiState> {
    Router::new()
        .route("/computegate/v1/usage", get(customer_usage))
        .route("/computegate/v1/jobs/{id}/close", post(customer_close))
}

/// The staff job routes (admin listener).
pub(crate) fn staff_routes() -> Router<ApiState> {
    Router::new()
        .route("/staff/v1/jobs", get(staff_list))
        .route("/staff/v1/jobs/{id}", get(staff_read))
        .route("/staff/v1/jobs/{id}/close", post(staff_close))
}

/// The caller's usage view.
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

/// A customer closes its own job; with an API key the key needs the `jobs` scope (a close is a
/// job action).
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

async fn staff_list(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<JobQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<JobStatus>().map_err(|_| {
            ApiError::field(
                "status",
                "must be reserved, running, finished, released, closed, held_for_review or denied",
            )
        })?),
    };
    let filter = JobFilter {
        customer_id: q.customer_id,
        status,
        limit: q.limit.unwrap_or(100).clamp(1, PAGE),
    };
    let jobs = metering.store().ledger().list_jobs(&filter).await?;
    Ok(Json(serde_json::json!({"jobs": jobs})).into_response())
}

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

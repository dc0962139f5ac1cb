//! The staff API for compute metering on the admin listener: training runs, threshold reports
//! (with due dates) and marking them filed, job reviews held by thresholds, and manual linking of
//! accounts into groups. Reading needs any staff role; acting needs reviewer, senior reviewer or
//! admin (auditors read only), and no tie to the customer acted on (the verification service's
//! conflict-of-interest guard: same email or organization → 403, audited).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, ReportFilter, ReportStatus, ReviewResolution, ReviewStatus, RunFilter,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Acting, JsonBody, PathId, QueryParams, StaffCaller};
use super::state::ApiState;
use crate::metering::{ExportRequest, Metering};
use crate::verification::Verification;

/// Largest page a list answers.
const PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    customer_id: Option<Uuid>,
    status: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FiledBody {
    reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewDecision {
    action: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    customer_a: Uuid,
    customer_b: Uuid,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlinkBody {
    customer_id: Uuid,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    kind: String,
    since: String,
    #[serde(default = "json_format")]
    format: String,
    customer_id: Option<Uuid>,
}

/// The metering staff routes.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/staff/v1/runs", get(runs))
        .route("/staff/v1/reports", get(reports))
        .route("/staff/v1/reports/export", get(export))
        .route("/staff/v1/reports/{id}/filed", post(filed))
        .route("/staff/v1/job-reviews", get(reviews))
        .route("/staff/v1/job-reviews/{id}/decision", post(decide_review))
        .route("/staff/v1/groups/link", post(link))
        .route("/staff/v1/groups/unlink", post(unlink))
}

fn limit(q: &ListQuery) -> u32 {
    q.limit.unwrap_or(100).clamp(1, PAGE)
}

fn json_format() -> String {
    "json".into()
}

async fn runs(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = RunFilter {
        customer_id: q.customer_id,
        since: None,
        limit: limit(&q),
    };
    let runs = metering.store().ledger().list_runs(&filter).await?;
    Ok(Json(serde_json::json!({"runs": runs})).into_response())
}

async fn reports(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some("due") => Some(ReportStatus::Due),
        Some("filed") => Some(ReportStatus::Filed),
        Some("withdrawn") => Some(ReportStatus::Withdrawn),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be `due`, `filed` or `withdrawn`",
            ));
        }
    };
    let filter = ReportFilter {
        status,
        due_before: None,
        customer_id: q.customer_id,
        limit: limit(&q),
    };
    let reports = metering.store().ledger().list_reports(&filter).await?;
    Ok(Json(serde_json::json!({"reports": reports})).into_response())
}

/// `GET /staff/v1/reports/export?kind=training-runs|quarterly|eu-art52&since=YYYY-MM-DD
/// [&format=json|csv][&customer_id=…]`: the same documents as `computegate report export`.
/// Any staff role may export; each export is audited (who, what, since when, how many).
async fn export(
    State(metering): State<Arc<Metering>>,
    caller: StaffCaller,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let kind =
        ExportKind::parse(&q.kind, q.customer_id).map_err(|why| ApiError::field("kind", &why))?;
    let format = ExportFormat::parse(&q.format).map_err(|why| ApiError::field("format", &why))?;
    let since = crate::verification::parse_since(&q.since)
        .ok_or_else(|| ApiError::field("since", "must be YYYY-MM-DD or RFC 3339"))?;
    let request = ExportRequest {
        kind,
        kind_name: &q.kind,
        format,
        format_name: &q.format,
        since,
        customer_id: q.customer_id,
    };
    let mut body: Vec<u8> = Vec::new();
    metering
        .export_reports(&caller.actor(), request, &mut body)
        .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.media_type())],
        body,
    )
        .into_response())
}

async fn filed(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(report_id): PathId,
    JsonBody(body): JsonBody<FiledBody>,
) -> Result<Response, ApiError> {
    if let Some(customer) = metering.store().ledger().report_customer(report_id).await? {
        let subject = format!("report:{report_id}");
        kyc.guard_staff_action(&caller.kyc(), &[customer], subject, "report.filed")
            .await?;
    }
    let report = metering
        .store()
        .ledger()
        .mark_report_filed(
            report_id,
            &caller.actor(),
            &body.reference,
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(Json(report).into_response())
}

async fn reviews(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some(ReviewStatus::Pending),
        Some("approved") => Some(ReviewStatus::Approved),
        Some("denied") => Some(ReviewStatus::Denied),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be pending, approved or denied",
            ));
        }
    };
    let reviews = metering
        .store()
        .ledger()
        .list_job_reviews(status, limit(&q))
        .await?;
    Ok(Json(serde_json::json!({"reviews": reviews})).into_response())
}

async fn decide_review(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(review_id): PathId,
    JsonBody(body): JsonBody<ReviewDecision>,
) -> Result<Response, ApiError> {
    let resolution = match body.action.as_str() {
        "approve" => ReviewResolution::Approve,
        "deny" => ReviewResolution::Deny,
        _ => return Err(ApiError::field("action", "must be `approve` or `deny`")),
    };
    if let Some(customer) = metering
        .store()
        .ledger()
        .job_review_customer(review_id)
        .await?
    {
        let subject = format!("job_review:{review_id}");
        kyc.guard_staff_action(&caller.kyc(), &[customer], subject, "job_review.decide")
            .await?;
    }
    let review = metering
        .store()
        .ledger()
        .resolve_job_review(
            review_id,
            resolution,
            &caller.actor(),
            &body.reason,
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(Json(review).into_response())
}

/// Links two accounts; the merged group's rolling total is re-checked against the policy's
/// group thresholds at once. Answers the group with the crossings and report ids it fired.
async fn link(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    JsonBody(body): JsonBody<LinkBody>,
) -> Result<Response, ApiError> {
    let customers = [body.customer_a, body.customer_b];
    let subject = format!("customer:{}", body.customer_a);
    kyc.guard_staff_action(&caller.kyc(), &customers, subject, "group.link")
        .await?;
    let linked = metering
        .link(
            body.customer_a,
            body.customer_b,
            &body.reason,
            &caller.actor(),
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(Json(linked).into_response())
}

async fn unlink(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    JsonBody(body): JsonBody<UnlinkBody>,
) -> Result<Response, ApiError> {
    let subject = format!("customer:{}", body.customer_id);
    kyc.guard_staff_action(&caller.kyc(), &[body.customer_id], subject, "group.unlink")
        .await?;
    let left = metering
        .store()
        .ledger()
        .unlink_customer(
            body.customer_id,
            &body.reason,
            &caller.actor(),
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok(
        Json(serde_json::json!({"customer_id": body.customer_id, "left_group": left}))
            .into_response(),
    )
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

//! The staff API for compute metering on the admin listener: training runs, threshold reports
//! (with due dates) and marking them filed, job reviews held by thresholds, and manual linking of
//! accounts into groups. Reading needs any staff role; acting needs reviewer, senior reviewer or
//! admin (auditors read only), and no tie to the customer acted on (the verification service's
//! conflict-of-interest guard: same email or organization → 403, audited).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, JobReview, ReportFilter, ReportStatus, ReviewResolution,
    ReviewStatus, RunFilter, RunSummary, TrainingRunReport,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Acting, JsonBody, PathId, QueryParams, StaffCaller};
use super::page::PageRequest;
use super::state::ApiState;
use crate::metering::{ExportRequest, Metering};
use crate::verification::Verification;

/// A metering list's filters and page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's items.
    customer_id: Option<Uuid>,
    /// Reports: `due`, `filed`, `withdrawn`; job reviews: `pending`, `approved`, `denied`.
    status: Option<String>,
    /// Items per page, 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// The authority's reference for a filed report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FiledBody {
    reference: String,
}

/// A decision on a held job.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewDecision {
    /// `approve` or `deny`.
    action: String,
    reason: String,
}

/// Two accounts to link into one group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    customer_a: Uuid,
    customer_b: Uuid,
    reason: String,
}

/// An account to take out of its group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UnlinkBody {
    customer_id: Uuid,
    reason: String,
}

/// What to export.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// `training-runs`, `quarterly` or `eu-art52`.
    kind: String,
    /// `YYYY-MM-DD` or RFC 3339.
    since: String,
    /// `json` (default) or `csv`.
    #[serde(default = "json_format")]
    format: String,
    customer_id: Option<Uuid>,
}

/// A page of training runs, newest first.
#[derive(Serialize, ToSchema)]
struct RunList {
    runs: Vec<RunSummary>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// A page of training-run reports, soonest due first.
#[derive(Serialize, ToSchema)]
struct ReportList {
    reports: Vec<TrainingRunReport>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// A page of job reviews, newest first.
#[derive(Serialize, ToSchema)]
struct ReviewList {
    reviews: Vec<JobReview>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// An account taken out of its group.
#[derive(Serialize, ToSchema)]
struct Unlinked {
    customer_id: Uuid,
    /// The group it left, if it was in one.
    left_group: Option<Uuid>,
}

/// The metering staff routes.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(runs))
        .routes(routes!(reports))
        .routes(routes!(export))
        .routes(routes!(filed))
        .routes(routes!(reviews))
        .routes(routes!(decide_review))
        .routes(routes!(link))
        .routes(routes!(unlink))
}

/// The page a list query asks for (sorted by a time and an id).
fn page_of(q: &ListQuery) -> Result<PageRequest<(OffsetDateTime, Uuid)>, ApiError> {
    PageRequest::parse(q.limit, q.cursor.as_deref())
}

fn json_format() -> String {
    "json".into()
}

/// A page of training runs with their own and their lineage's FLOP, newest first.
#[utoipa::path(
    get,
    path = "/staff/v1/runs",
    operation_id = "list_runs",
    tag = "metering",
    params(ListQuery),
    responses((status = 200, body = RunList)),
    security(("staff" = []))
)]
async fn runs(
    State(metering): State<Arc<Metering>>,
    _: StaffCaller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let page = page_of(&q)?;
    let filter = RunFilter {
        customer_id: q.customer_id,
        since: None,
        limit: page.fetch(),
        after: page.after,
    };
    let runs = metering.store().ledger().list_runs(&filter).await?;
    let page = page.page(runs, |r| (r.first_seen_at, r.id));
    Ok(Json(RunList {
        runs: page.items,
        next: page.next,
    })
    .into_response())
}

/// A page of training-run reports (with due dates), soonest due first.
#[utoipa::path(
    get,
    path = "/staff/v1/reports",
    operation_id = "list_reports",
    tag = "metering",
    params(ListQuery),
    responses((status = 200, body = ReportList)),
    security(("staff" = []))
)]
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
    let page = page_of(&q)?;
    let filter = ReportFilter {
        status,
        due_before: None,
        customer_id: q.customer_id,
        limit: page.fetch(),
        after: page.after,
    };
    let reports = metering.store().ledger().list_reports(&filter).await?;
    let page = page.page(reports, |r| (r.due_at, r.id));
    Ok(Json(ReportList {
        reports: page.items,
        next: page.next,
    })
    .into_response())
}

/// `GET /staff/v1/reports/export?kind=training-runs|quarterly|eu-art52&since=YYYY-MM-DD
/// [&format=json|csv][&customer_id=…]`: the same documents as `computegate report export`.
/// Any staff role may export; each export is audited (who, what, since when, how many).
#[utoipa::path(
    get,
    path = "/staff/v1/reports/export",
    operation_id = "export_reports",
    tag = "metering",
    params(ExportQuery),
    responses(
        (status = 200, description = "The export, JSON or CSV", content(
            (Object = "application/json"),
            (String = "text/csv"),
        ))
    ),
    security(("staff" = []))
)]
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

/// Marks a report filed with the authority, with its reference.
#[utoipa::path(
    post,
    path = "/staff/v1/reports/{id}/filed",
    operation_id = "mark_report_filed",
    tag = "metering",
    params(("id" = Uuid, Path)),
    request_body = FiledBody,
    responses((status = 200, body = TrainingRunReport)),
    security(("staff" = []))
)]
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

/// A page of job reviews (jobs held by `review` thresholds), newest first.
#[utoipa::path(
    get,
    path = "/staff/v1/job-reviews",
    operation_id = "list_job_reviews",
    tag = "metering",
    params(ListQuery),
    responses((status = 200, body = ReviewList)),
    security(("staff" = []))
)]
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
    let page = page_of(&q)?;
    let reviews = metering
        .store()
        .ledger()
        .list_job_reviews(status, page.after, page.fetch())
        .await?;
    let page = page.page(reviews, |r| (r.created_at, r.id));
    Ok(Json(ReviewList {
        reviews: page.items,
        next: page.next,
    })
    .into_response())
}

/// Approves or denies a held job (the customer resubmits an approved one).
#[utoipa::path(
    post,
    path = "/staff/v1/job-reviews/{id}/decision",
    operation_id = "decide_job_review",
    tag = "metering",
    params(("id" = Uuid, Path)),
    request_body = ReviewDecision,
    responses((status = 200, body = JobReview)),
    security(("staff" = []))
)]
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
#[utoipa::path(
    post,
    path = "/staff/v1/groups/link",
    operation_id = "link_accounts",
    tag = "metering",
    request_body = LinkBody,
    responses((status = 200, description = "The group, its crossings and reports", body = Object)),
    security(("staff" = []))
)]
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

/// Takes an account out of its group.
#[utoipa::path(
    post,
    path = "/staff/v1/groups/unlink",
    operation_id = "unlink_account",
    tag = "metering",
    request_body = UnlinkBody,
    responses((status = 200, body = Unlinked)),
    security(("staff" = []))
)]
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
    Ok(Json(Unlinked {
        customer_id: body.customer_id,
        left_group: left,
    })
    .into_response())
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

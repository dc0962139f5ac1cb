//! The staff API for compute metering on the admin listener: training runs, threshold reports
//! (with due dates) and marking them filed, job reviews held by thresholds, and manual linking of
//! accounts into groups. Reading needs any staff role; acting needs reviewer, senior reviewer or
//! admin (auditors read only).

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use computegate_gateway::auth::bearer;
use computegate_gateway::policy::{Policy, PolicyHandle};
use computegate_kyc::accounts::{Actor, StaffRole, StaffUser};
use computegate_kyc::audit::AuditEntry;
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, LedgerError, ReportFilter, ReportStatus, ReviewResolution,
    ReviewStatus, RunFilter, ThresholdPolicy,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Client;
use super::error::{ApiError, unavailable};
use crate::identity::Identity;
use crate::ledger_metrics::LedgerMetrics;

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

/// What a staff link needs besides the identity service: the policy, whose group thresholds a
/// link re-checks at once, and the crossing counter.
#[derive(Clone)]
struct LinkContext {
    policy: Arc<PolicyHandle>,
    metrics: Arc<LedgerMetrics>,
}

/// The metering staff router.
pub fn router(
    identity: Arc<Identity>,
    policy: Arc<PolicyHandle>,
    metrics: Arc<LedgerMetrics>,
) -> Router {
    Router::new()
        .route("/staff/v1/runs", get(runs))
        .route("/staff/v1/reports", get(reports))
        .route("/staff/v1/reports/export", get(export))
        .route("/staff/v1/reports/{id}/filed", post(filed))
        .route("/staff/v1/job-reviews", get(reviews))
        .route("/staff/v1/job-reviews/{id}/decision", post(decide_review))
        .route("/staff/v1/groups/link", post(link))
        .route("/staff/v1/groups/unlink", post(unlink))
        .layer(Extension(LinkContext { policy, metrics }))
        .with_state(identity)
}

async fn staff(
    id: &Identity,
    headers: &HeaderMap,
    client: Client,
    acting: bool,
) -> Result<(StaffUser, Actor), ApiError> {
    let token = bearer(headers)
        .map_err(|_| ApiError::Unauthenticated("a staff bearer token is required"))?;
    let user = id.authenticate_staff(token).await?;
    if acting && user.role == StaffRole::Auditor {
        return Err(ApiError::Forbidden("auditors have read-only access"));
    }
    let actor = Actor::staff(user.id, Some(client.0.ip));
    Ok((user, actor))
}

fn limit(q: &ListQuery) -> u32 {
    q.limit.unwrap_or(100).clamp(1, PAGE)
}

async fn runs(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    staff(&id, &headers, client, false).await?;
    let Query(q) = query?;
    let filter = RunFilter {
        customer_id: q.customer_id,
        since: None,
        limit: limit(&q),
    };
    let runs = id.store.list_runs(&filter).await.map_err(ledger_error)?;
    Ok(Json(serde_json::json!({"runs": runs})).into_response())
}

async fn reports(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    staff(&id, &headers, client, false).await?;
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some("due") => Some(ReportStatus::Due),
        Some("filed") => Some(ReportStatus::Filed),
        Some(_) => return Err(ApiError::field("status", "must be `due` or `filed`")),
    };
    let filter = ReportFilter {
        status,
        due_before: None,
        customer_id: q.customer_id,
        limit: limit(&q),
    };
    let reports = id.store.list_reports(&filter).await.map_err(ledger_error)?;
    Ok(Json(serde_json::json!({"reports": reports})).into_response())
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

fn json_format() -> String {
    "json".into()
}

/// `GET /staff/v1/reports/export?kind=training-runs|quarterly|eu-art52&since=YYYY-MM-DD
/// [&format=json|csv][&customer_id=…]`: the same documents as `computegate report export`.
/// Any staff role may export; each export is audited (who, what, since when, how many).
async fn export(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (_, actor) = staff(&id, &headers, client, false).await?;
    let Query(q) = query?;
    let kind =
        ExportKind::parse(&q.kind, q.customer_id).map_err(|why| ApiError::field("kind", &why))?;
    let format = ExportFormat::parse(&q.format).map_err(|why| ApiError::field("format", &why))?;
    let since = crate::verification::parse_since(&q.since)
        .ok_or_else(|| ApiError::field("since", "must be YYYY-MM-DD or RFC 3339"))?;
    let mut body: Vec<u8> = Vec::new();
    let count = match id
        .store
        .export_reports(kind, since, format, &mut body)
        .await
    {
        Ok(count) => count,
        Err(LedgerError::ExportTooLarge { .. }) => {
            return Err(ApiError::field(
                "since",
                "the export is too large; use a later date",
            ));
        }
        Err(e) => return Err(ledger_error(e)),
    };
    let entry = AuditEntry::new(
        OffsetDateTime::now_utc(),
        &actor,
        "ledger.reports.exported",
        "ledger:reports",
    )
    .with_detail(serde_json::json!({
        "kind": q.kind, "since": since.to_string(), "format": q.format,
        "customer_id": q.customer_id, "records": count,
    }));
    id.store.record_audit(&entry).await.map_err(unavailable)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.media_type())],
        body,
    )
        .into_response())
}

async fn filed(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(report_id): Path<Uuid>,
    body: Result<Json<FiledBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, actor) = staff(&id, &headers, client, true).await?;
    let Json(body) = body?;
    let report = id
        .store
        .mark_report_filed(
            report_id,
            &actor,
            &body.reference,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(Json(report).into_response())
}

async fn reviews(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    staff(&id, &headers, client, false).await?;
    let Query(q) = query?;
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
    let reviews = id
        .store
        .list_job_reviews(status, limit(&q))
        .await
        .map_err(ledger_error)?;
    Ok(Json(serde_json::json!({"reviews": reviews})).into_response())
}

async fn decide_review(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(review_id): Path<Uuid>,
    body: Result<Json<ReviewDecision>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, actor) = staff(&id, &headers, client, true).await?;
    let Json(body) = body?;
    let resolution = match body.action.as_str() {
        "approve" => ReviewResolution::Approve,
        "deny" => ReviewResolution::Deny,
        _ => return Err(ApiError::field("action", "must be `approve` or `deny`")),
    };
    let review = id
        .store
        .resolve_job_review(
            review_id,
            resolution,
            &actor,
            &body.reason,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(Json(review).into_response())
}

/// Links two accounts; the merged group's rolling total is re-checked against the policy's
/// group thresholds at once. Answers the group with the crossings and report ids it fired.
async fn link(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    Extension(ctx): Extension<LinkContext>,
    headers: HeaderMap,
    body: Result<Json<LinkBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, actor) = staff(&id, &headers, client, true).await?;
    let Json(body) = body?;
    let thresholds = group_thresholds(&ctx.policy.current());
    let linked = id
        .store
        .link_customers(
            body.customer_a,
            body.customer_b,
            &body.reason,
            &actor,
            &thresholds,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    ctx.metrics.crossed(&linked.check.crossings);
    Ok(Json(linked).into_response())
}

/// The policy's thresholds over the longest tier window: a group's members may hold different
/// tiers, and the widest rolling total is the one a split hides in.
fn group_thresholds(policy: &Policy) -> ThresholdPolicy {
    const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
    ThresholdPolicy {
        rules: crate::ledger_port::threshold_rules(policy),
        window: policy
            .tiers()
            .iter()
            .map(|t| t.window)
            .max()
            .unwrap_or(DEFAULT_WINDOW),
    }
}

async fn unlink(
    State(id): State<Arc<Identity>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Result<Json<UnlinkBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (_, actor) = staff(&id, &headers, client, true).await?;
    let Json(body) = body?;
    let left = id
        .store
        .unlink_customer(
            body.customer_id,
            &body.reason,
            &actor,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(
        Json(serde_json::json!({"customer_id": body.customer_id, "left_group": left}))
            .into_response(),
    )
}

fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::ReviewNotFound | LedgerError::UnknownJob | LedgerError::UnknownCustomer => {
            ApiError::NotFound
        }
        LedgerError::ReviewAlreadyResolved => ApiError::Conflict("the review is already resolved"),
        LedgerError::ReportAlreadyFiled => ApiError::Conflict("the report is already filed"),
        LedgerError::ReportNotFound => ApiError::NotFound,
        LedgerError::NotStaff => ApiError::Forbidden("staff only"),
        LedgerError::Invalid(why) => ApiError::field("request", why),
        other => unavailable(other),
    }
}

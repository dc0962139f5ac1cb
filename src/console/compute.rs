//! The compute pages: training runs (used, reserved and lineage FLOP), job reviews held by a
//! threshold (approve or deny with a reason), and threshold reports with their crossings, basis
//! and due dates (mark filed; export the staff API's documents as CSV or JSON).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, ReportFilter, ReportStatus, ReviewResolution, ReviewStatus, RunFilter,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::records::Table;
use super::{CONSOLE, Staff};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::extract::Acting;
use crate::metering::{ExportRequest, Metering};
use crate::verification::Verification;
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

/// Rows a compute page lists.
const PAGE_ROWS: u32 = 200;

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    chrome: Chrome,
    table: Table,
}

#[derive(Template)]
#[template(path = "console/job_reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    status: String,
    table: Table,
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    chrome: Chrome,
    errors: FormErrors,
    status: String,
    table: Table,
    export: ExportForm,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct StatusQuery {
    #[serde(default)]
    status: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReviewForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct FiledForm {
    #[serde(default)]
    reference: String,
}

/// The export form (also its query: `GET …/reports/export?kind=…&since=…&format=…`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ExportForm {
    #[serde(default = "default_kind")]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default = "default_format")]
    format: String,
}

fn default_kind() -> String {
    "quarterly".into()
}

fn default_format() -> String {
    "csv".into()
}

/// The runs, job-review and report routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/runs", get(runs))
        .route("/job-reviews", get(reviews))
        .route("/job-reviews/{id}/decision", post(decide_review))
        .route("/reports", get(reports))
        .route("/reports/export", get(export))
        .route("/reports/{id}/filed", post(filed))
}

fn ledger_error(e: computegate_kyc::ledger::LedgerError) -> WebError {
    WebError::from(ApiError::from(e))
}

async fn runs(State(metering): State<Arc<Metering>>, staff: Staff) -> Result<Response, WebError> {
    let filter = RunFilter {
        customer_id: None,
        since: None,
        after: None,
        limit: PAGE_ROWS,
    };
    let runs = metering
        .store()
        .ledger()
        .list_runs(&filter)
        .await
        .map_err(ledger_error)?;
    let table = Table::of(
        &runs,
        &[
            ("/run_id", "Run"),
            ("/customer_id", "Customer"),
            ("/jobs", "Jobs"),
            ("/used_flop", "Used FLOP"),
            ("/reserved_flop", "Reserved FLOP"),
            ("/lineage_flop", "Lineage FLOP"),
            ("/lineage_root_run_id", "Lineage root"),
            ("/accelerator_seconds", "Accelerator-seconds"),
            ("/first_seen_at", "First seen"),
        ],
        "/id",
        |_| None,
    );
    Ok(render(&RunsPage {
        chrome: staff.chrome("Training runs", "runs"),
        table,
    }))
}

async fn reviews(
    State(metering): State<Arc<Metering>>,
    staff: Staff,
    Query(q): Query<StatusQuery>,
) -> Result<Response, WebError> {
    let status = match q.status.as_str() {
        "" | "pending" => Some(ReviewStatus::Pending),
        "approved" => Some(ReviewStatus::Approved),
        "denied" => Some(ReviewStatus::Denied),
        "all" => None,
        _ => {
            return Err(WebError::BadRequest(
                "The status must be pending, approved, denied or all.".into(),
            ));
        }
    };
    let reviews = metering
        .store()
        .ledger()
        .list_job_reviews(status, None, PAGE_ROWS)
        .await
        .map_err(ledger_error)?;
    let table = Table::of(
        &reviews,
        &[
            ("/run_id", "Run"),
            ("/customer_id", "Customer"),
            ("/estimate_flop", "Estimate FLOP"),
            ("/crossings", "Threshold crossings"),
            ("/hold_reason", "Held because"),
            ("/status", "Status"),
            ("/created_at", "Held at"),
            ("/decided_by", "Decided by"),
            ("/reason", "Reason"),
        ],
        "/id",
        |_| None,
    );
    Ok(render(&ReviewsPage {
        chrome: staff.chrome("Job reviews", "job-reviews"),
        status: if q.status.is_empty() {
            "pending".into()
        } else {
            q.status
        },
        table,
    }))
}

async fn decide_review(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReviewForm>,
) -> Result<Response, WebError> {
    let resolution = match form.action.as_str() {
        "approve" => ReviewResolution::Approve,
        "deny" => ReviewResolution::Deny,
        _ => return Err(WebError::BadRequest("Choose approve or deny.".into())),
    };
    let reason = super::reason(&form.reason)?;
    if let Some(customer) = metering
        .store()
        .ledger()
        .job_review_customer(id)
        .await
        .map_err(ledger_error)?
    {
        kyc.guard_staff_action(
            &staff.caller.kyc(),
            &[customer],
            format!("job_review:{id}"),
            "job_review.decide",
        )
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    }
    metering
        .store()
        .ledger()
        .resolve_job_review(
            id,
            resolution,
            &staff.caller.actor(),
            &reason,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(Redirect::to(&CONSOLE.path("job-reviews")).into_response())
}

async fn reports(
    State(metering): State<Arc<Metering>>,
    staff: Staff,
    Query(q): Query<StatusQuery>,
) -> Result<Response, WebError> {
    reports_page(&metering, &staff, &q.status, FormErrors::new(), None).await
}

async fn reports_page(
    metering: &Metering,
    staff: &Staff,
    status_name: &str,
    errors: FormErrors,
    export: Option<ExportForm>,
) -> Result<Response, WebError> {
    let status = match status_name {
        "" | "due" => Some(ReportStatus::Due),
        "filed" => Some(ReportStatus::Filed),
        "withdrawn" => Some(ReportStatus::Withdrawn),
        "all" => None,
        _ => {
            return Err(WebError::BadRequest(
                "The status must be due, filed, withdrawn or all.".into(),
            ));
        }
    };
    let filter = ReportFilter {
        status,
        due_before: None,
        customer_id: None,
        after: None,
        limit: PAGE_ROWS,
    };
    let reports = metering
        .store()
        .ledger()
        .list_reports(&filter)
        .await
        .map_err(ledger_error)?;
    let table = Table::of(
        &reports,
        &[
            ("/run_id", "Run"),
            ("/customer_id", "Customer"),
            ("/crossings", "Threshold crossings"),
            ("/cumulative_flop", "Cumulative FLOP"),
            ("/estimate_flop", "Estimate FLOP"),
            ("/basis", "Basis"),
            ("/table_version", "Accelerator table"),
            ("/due_at", "Due"),
            ("/filed_at", "Filed"),
            ("/filing_reference", "Reference"),
        ],
        "/id",
        |_| None,
    );
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ReportsPage {
        chrome: staff.chrome("Threshold reports", "reports"),
        errors,
        status: if status_name.is_empty() {
            "due".into()
        } else {
            status_name.into()
        },
        table,
        export: export.unwrap_or_else(|| ExportForm {
            kind: default_kind(),
            since: format!("{}-01-01", OffsetDateTime::now_utc().year()),
            format: default_format(),
        }),
    };
    Ok((status, render(&page)).into_response())
}

/// The staff API's export, as a download; a bad field shows the reports page with the problem
/// next to it.
async fn export(
    State(metering): State<Arc<Metering>>,
    staff: Staff,
    Query(form): Query<ExportForm>,
) -> Result<Response, WebError> {
    let mut errors = FormErrors::new();
    let kind = ExportKind::parse(&form.kind, None)
        .map_err(|why| errors.add("kind", why))
        .ok();
    let format = ExportFormat::parse(&form.format)
        .map_err(|why| errors.add("format", why))
        .ok();
    let since = crate::verification::parse_since(&form.since);
    if since.is_none() {
        errors.add("since", "Give a date as YYYY-MM-DD.");
    }
    let (Some(kind), Some(format), Some(since)) = (kind, format, since) else {
        return reports_page(&metering, &staff, "", errors, Some(form)).await;
    };
    let request = ExportRequest {
        kind,
        kind_name: &form.kind,
        format,
        format_name: &form.format,
        since,
        customer_id: None,
    };
    let mut body: Vec<u8> = Vec::new();
    metering
        .export_reports(&staff.caller.actor(), request, &mut body)
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    let file = format!(
        "attachment; filename=\"computegate-{}-{}.{}\"",
        form.kind,
        since.date(),
        form.format
    );
    if let Ok(v) = HeaderValue::from_str(&file) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn filed(
    State(metering): State<Arc<Metering>>,
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<FiledForm>,
) -> Result<Response, WebError> {
    if form.reference.trim().is_empty() {
        return Err(WebError::BadRequest(
            "Give the filing's reference (the authority's receipt or case number).".into(),
        ));
    }
    if let Some(customer) = metering
        .store()
        .ledger()
        .report_customer(id)
        .await
        .map_err(ledger_error)?
    {
        kyc.guard_staff_action(
            &staff.caller.kyc(),
            &[customer],
            format!("report:{id}"),
            "report.filed",
        )
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    }
    metering
        .store()
        .ledger()
        .mark_report_filed(
            id,
            &staff.caller.actor(),
            form.reference.trim(),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(Redirect::to(&CONSOLE.path("reports?status=filed")).into_response())
}

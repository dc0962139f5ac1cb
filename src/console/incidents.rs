//! The incident pages: the list of abuse incidents (newest first, cursor pages, no indicator
//! values), one incident (kind, status, description, the customers it concerns linked to their
//! case files, its indicators by type with masked values) with the status moves open →
//! reported → closed, and the jump from a customer id to that customer's newest case file.
//! Every read and move is the staff API's service call with the same roles and checks.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use computegate_kyc::incidents::{Incident, IncidentStatus};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::cases::{case_path, form_errors, minute};
use super::records::{Field, Table};
use super::{CONSOLE, Staff};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::extract::{Acting, CaseReaders, StaffRoles};
use crate::api::page::PageRequest;
use crate::verification::Verification;
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct ListPage {
    chrome: Chrome,
    table: Table,
    /// The next page's cursor, when there is one.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    chrome: Chrome,
    errors: FormErrors,
    id: Uuid,
    summary: Vec<Field>,
    description: String,
    customers: Vec<Uuid>,
    organizations: Vec<Uuid>,
    runs: Vec<Uuid>,
    indicators: Vec<Field>,
    /// The moves open from the current status: `(status, button label)`.
    moves: Vec<(&'static str, &'static str)>,
}

/// `?cursor=` of the list.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    cursor: String,
}

/// The status form: where to move the incident.
#[derive(Debug, Deserialize)]
pub(super) struct StatusForm {
    #[serde(default)]
    status: String,
}

/// The incident routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/status", post(move_status))
        .route("/customers/{id}", get(customer))
}

fn incident_path(id: Uuid) -> String {
    CONSOLE.path(&format!("incidents/{id}"))
}

async fn list(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let cursor = (!q.cursor.is_empty()).then_some(q.cursor.as_str());
    let page = PageRequest::parse(None, cursor)?;
    let items = kyc
        .incident_page(page.after, page.fetch())
        .await
        .map_err(ApiError::from)?;
    let page = page.page(items, |i| (i.created_at, i.id));
    let table = Table::of(
        &page.items,
        &[
            ("/id", "Incident"),
            ("/kind", "Kind"),
            ("/status", "Status"),
            ("/created_at", "Recorded"),
            ("/updated_at", "Last change"),
        ],
        "/id",
        |id| Some(CONSOLE.path(&format!("incidents/{id}"))),
    );
    Ok(render(&ListPage {
        chrome: staff.chrome("Incidents", "incidents"),
        table,
        next: page.next,
    }))
}

async fn incident(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
) -> Result<Response, WebError> {
    let incident = kyc
        .incident_for_staff(&staff.caller.kyc(), id)
        .await
        .map_err(ApiError::from)?;
    Ok(render(&incident_page(&staff, incident, FormErrors::new())))
}

/// Moves the incident one step; a refused move (a step skipped, back, or lost to another
/// staff member's move) is the incident page with the refusal next to the buttons.
async fn move_status(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<StatusForm>,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let moved = match IncidentStatus::from_name(&form.status) {
        Some(to) => kyc
            .move_incident(&staff.caller.kyc(), id, to, now)
            .await
            .map_err(ApiError::from),
        None => Err(ApiError::field("status", "must be reported or closed")),
    };
    match moved {
        Ok(_) => Ok(Redirect::to(&incident_path(id)).into_response()),
        Err(e) => {
            let errors = form_errors(e, "status")?;
            let incident = kyc
                .incident_for_staff(&staff.caller.kyc(), id)
                .await
                .map_err(ApiError::from)?;
            let page = incident_page(&staff, incident, errors);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

/// A customer named on a page (an incident's) → their newest case file; 404 when they never
/// applied.
async fn customer(
    State(kyc): State<Arc<Verification>>,
    _staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
) -> Result<Response, WebError> {
    let application = kyc
        .store()
        .verification()
        .latest_application_of(id)
        .await
        .map_err(ApiError::from)?;
    match application {
        Some(app) => Ok(Redirect::to(&case_path(app)).into_response()),
        None => Err(WebError::NotFound),
    }
}

fn incident_page<R: StaffRoles>(
    staff: &Staff<R>,
    incident: Incident,
    errors: FormErrors,
) -> IncidentPage {
    let label = |l: &str, v: String| Field {
        label: l.to_owned(),
        value: v,
    };
    let summary = vec![
        label("Kind", incident.kind.clone()),
        label("Status", incident.status.as_str().to_owned()),
        label("Recorded", minute(incident.created_at)),
        label("Recorded by", incident.created_by.clone()),
        label("Last change", minute(incident.updated_at)),
    ];
    // Types and masked values only: the values are personal data (the API's incident read
    // and the authority bundle carry them for those who need them).
    let indicators = (incident.indicators.iter())
        .map(|i| label(i.indicator.kind().as_str(), i.indicator.masked()))
        .collect();
    let moves = match incident.status {
        IncidentStatus::Open => vec![("reported", "Mark reported")],
        IncidentStatus::Reported => vec![("closed", "Close")],
        IncidentStatus::Closed => Vec::new(),
    };
    IncidentPage {
        chrome: staff.chrome(format!("{} incident", incident.kind), "incidents"),
        errors,
        id: incident.id,
        summary,
        description: incident.description,
        customers: incident.customers,
        organizations: incident.organizations,
        runs: incident.runs,
        indicators,
        moves,
    }
}

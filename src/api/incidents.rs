//! Abuse incidents over the staff API (admin listener): record one, list them, read one, move
//! its status (open → reported → closed), export it as a STIX 2.1 bundle, import a partner's
//! bundle, and read the review flags partners' bundles raised on a customer. Recording, moving
//! and importing take an acting role;
//! reading indicator values, bundles and flags takes a case-reading role (personal data).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use computegate_kyc::incidents::stix_export::MEDIA_TYPE;
use computegate_kyc::incidents::stix_import::MAX_BUNDLE_BYTES;
use computegate_kyc::incidents::{
    ImportReport, Incident, IncidentFlag, IncidentStatus, IncidentSummary, NewIncident, Sharing,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{
    Acting, AnyStaff, CaseReaders, JsonBody, PathId, QueryParams, StaffCaller, no_store,
};
use super::openapi::limited;
use super::page::{PageQuery, PageRequest};
use super::state::ApiState;
use crate::verification::Verification;

/// `{"status"}`: where to move an incident.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusRequest {
    /// `reported` (from `open`) or `closed` (from `reported`).
    status: IncidentStatus,
}

/// `?sharing=partner|authority` of a bundle.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct BundleQuery {
    /// `partner` (default: personal values as SHA-256, no customer ids) or `authority`
    /// (values in clear, customers, organizations and runs named).
    sharing: Option<String>,
}

/// A page of incidents.
#[derive(Serialize, ToSchema)]
struct IncidentList {
    incidents: Vec<IncidentSummary>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// A customer's review flags.
#[derive(Serialize, ToSchema)]
struct FlagList {
    flags: Vec<IncidentFlag>,
}

/// The staff routes.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(view))
        .routes(routes!(move_status))
        .routes(routes!(stix))
        .routes(limited(routes!(import), MAX_BUNDLE_BYTES))
        .routes(routes!(flags))
}

/// Records an incident → 201 the incident with its id; audited (`incident.incident.created`).
#[utoipa::path(
    post,
    path = "/staff/v1/incidents",
    operation_id = "create_incident",
    tag = "incidents",
    request_body = NewIncident,
    responses((status = 201, description = "The incident", body = Incident)),
    security(("staff" = []))
)]
async fn create(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    JsonBody(req): JsonBody<NewIncident>,
) -> Result<Response, ApiError> {
    let incident = kyc
        .record_incident(&caller.kyc(), req, OffsetDateTime::now_utc())
        .await?;
    Ok((StatusCode::CREATED, no_store(Json(incident))).into_response())
}

/// A page of incidents, newest first, without indicator values.
#[utoipa::path(
    get,
    path = "/staff/v1/incidents",
    operation_id = "list_incidents",
    tag = "incidents",
    params(PageQuery),
    responses((status = 200, body = IncidentList)),
    security(("staff" = []))
)]
async fn list(
    State(kyc): State<Arc<Verification>>,
    _caller: StaffCaller<AnyStaff>,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let items = kyc.incident_page(page.after, page.fetch()).await?;
    let page = page.page(items, |i| (i.created_at, i.id));
    Ok(no_store(Json(IncidentList {
        incidents: page.items,
        next: page.next,
    })))
}

/// One incident with its indicator values.
#[utoipa::path(
    get,
    path = "/staff/v1/incidents/{id}",
    operation_id = "get_incident",
    tag = "incidents",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Incident)),
    security(("staff" = []))
)]
async fn view(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<CaseReaders>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let incident = kyc.incident_for_staff(&caller.kyc(), id).await?;
    Ok(no_store(Json(incident)))
}

/// `{"status"}`: moves an incident open → reported → closed (any other move is 409);
/// audited (`incident.status.changed`).
#[utoipa::path(
    post,
    path = "/staff/v1/incidents/{id}/status",
    operation_id = "set_incident_status",
    tag = "incidents",
    params(("id" = Uuid, Path)),
    request_body = StatusRequest,
    responses((status = 200, body = IncidentSummary)),
    security(("staff" = []))
)]
async fn move_status(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathId(id): PathId,
    JsonBody(req): JsonBody<StatusRequest>,
) -> Result<Response, ApiError> {
    let summary = kyc
        .move_incident(&caller.kyc(), id, req.status, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(summary).into_response())
}

/// The incident as a STIX 2.1 bundle (`application/stix+json;version=2.1`); the export is
/// audited (`incident.bundle.exported`).
#[utoipa::path(
    get,
    path = "/staff/v1/incidents/{id}/stix",
    operation_id = "get_incident_stix",
    tag = "incidents",
    params(("id" = Uuid, Path), BundleQuery),
    responses((status = 200, description = "The STIX bundle", body = Object,
        content_type = "application/stix+json;version=2.1")),
    security(("staff" = []))
)]
async fn stix(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<CaseReaders>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<BundleQuery>,
) -> Result<Response, ApiError> {
    let sharing = match q.sharing.as_deref() {
        None => Sharing::Partner,
        Some(s) => Sharing::from_name(s)
            .ok_or_else(|| ApiError::field("sharing", "partner or authority"))?,
    };
    let bundle = kyc
        .incident_bundle(&caller.kyc(), id, sharing, OffsetDateTime::now_utc())
        .await?;
    let mut resp = no_store(Json(bundle));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    Ok(resp)
}

/// A partner's STIX 2.1 bundle as the body → what the import did; each customer one of its
/// indicators matches gets a review flag (audited: `incident.flag.raised`,
/// `incident.bundle.imported`). Our own bundle is 409.
#[utoipa::path(
    post,
    path = "/staff/v1/incidents/import",
    operation_id = "import_incident_bundle",
    tag = "incidents",
    request_body(content = Object, content_type = "application/stix+json",
        description = "A STIX 2.1 bundle (also accepted as application/json)"),
    responses((status = 200, body = ImportReport)),
    security(("staff" = []))
)]
async fn import(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| super::webhooks::body_refused(r, MAX_BUNDLE_BYTES))?;
    let report = kyc
        .import_incident_bundle(&caller.kyc(), &body, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(report)))
}

/// The review flags partners' incident bundles raised on a customer, newest first.
#[utoipa::path(
    get,
    path = "/staff/v1/customers/{id}/incident-flags",
    operation_id = "list_incident_flags",
    tag = "incidents",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = FlagList)),
    security(("staff" = []))
)]
async fn flags(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<CaseReaders>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let flags = kyc.incident_flags(&caller.kyc(), id).await?;
    Ok(no_store(Json(FlagList { flags })))
}

#[cfg(test)]
pub(crate) mod tests;

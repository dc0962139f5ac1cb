//! The customer's verification API on the public listener (customer bearer token or API key):
//! KYC/KYB applications (`/computegate/v1/kyc/applications…`) and their documents.
//!
//! A customer only ever sees their own applications: any other id answers 404, never 403.
//! Documents are accepted as `multipart/form-data` (a `file` part and a `type` field), checked
//! by magic bytes against the declared type and file extension, and only ever returned to the
//! customer as metadata.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use computegate_kyc::verification::{
    ApplicationPayload, ApplicationStatus, ApplicationView, DocumentType, DocumentUpload,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{CustomerCaller, PathId, QueryParams, no_store};
use super::openapi::limited;
use super::page::{PageQuery, PageRequest};
use super::state::ApiState;
use crate::verification::Verification;

/// Largest application document accepted, in bytes.
pub(super) const APPLICATION_BODY_LIMIT: usize = 256 * 1024;
/// Multipart framing allowed on top of the document size limit.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Longest `type` field of an upload.
const MAX_TYPE_FIELD: usize = 64;

/// A new application: its id and status.
#[derive(Serialize, ToSchema)]
struct Created {
    id: Uuid,
    #[schema(value_type = String)]
    status: ApplicationStatus,
}

/// A page of the caller's applications, newest first.
#[derive(Serialize, ToSchema)]
struct ApplicationList {
    /// Each with its status, granted tier, expiry, reason, payload and document metadata.
    #[schema(value_type = Vec<Object>)]
    applications: Vec<ApplicationView>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// The upload form (`multipart/form-data`).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only; the parts are read one by one")]
struct UploadForm {
    /// The document; its part's `Content-Type` and file name must match its bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `passport`, `national_id`, `compliance_plan`, …
    r#type: String,
}

/// The customer's verification routes; uploads take up to `kyc`'s document size limit.
pub(crate) fn routes(kyc: &Verification) -> OpenApiRouter<ApiState> {
    let upload_limit = kyc.limits().max_bytes + MULTIPART_OVERHEAD;
    OpenApiRouter::new()
        .routes(limited(routes!(create, list), APPLICATION_BODY_LIMIT))
        .routes(limited(routes!(read, patch), APPLICATION_BODY_LIMIT))
        .routes(routes!(submit))
        .routes(limited(routes!(upload, documents), upload_limit))
}

/// Starts an application (a draft; incomplete fields are allowed until submission). A customer
/// has one open application at a time: another is refused 409 naming it.
#[utoipa::path(
    post,
    path = "/computegate/v1/kyc/applications",
    operation_id = "create_application",
    tag = "verification",
    request_body(content = Object, description = "The application document (see docs/api.md)"),
    responses((status = 201, body = Created, headers(("Location" = String)))),
    security(("customer" = []))
)]
async fn create(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let payload = ApplicationPayload::from_json(&body.map_err(body_error)?)
        .map_err(ApiError::InvalidFields)?;
    let view = kyc
        .create_application(&caller.kyc(), &payload, OffsetDateTime::now_utc())
        .await?;
    let location = format!("/computegate/v1/kyc/applications/{}", view.id);
    Ok(no_store((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Created {
            id: view.id,
            status: view.status,
        }),
    )))
}

/// A page of the caller's applications, newest first.
#[utoipa::path(
    get,
    path = "/computegate/v1/kyc/applications",
    operation_id = "list_applications",
    tag = "verification",
    params(PageQuery),
    responses((status = 200, body = ApplicationList)),
    security(("customer" = []))
)]
async fn list(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let apps = kyc
        .store()
        .verification()
        .customer_applications(kyc.master(), &caller.kyc(), page.after, page.fetch())
        .await?;
    let page = page.page(apps, |a| (a.created_at, a.id));
    Ok(no_store(Json(ApplicationList {
        applications: page.items,
        next: page.next,
    })))
}

/// One of the caller's applications, with what is still missing.
#[utoipa::path(
    get,
    path = "/computegate/v1/kyc/applications/{id}",
    operation_id = "get_application",
    tag = "verification",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The application", body = Object)),
    security(("customer" = []))
)]
async fn read(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let view = kyc
        .store()
        .verification()
        .get_application(kyc.master(), &caller.kyc(), id)
        .await?;
    Ok(no_store(Json(view)))
}

/// JSON merge patch (RFC 7396) over the stored application, while it is a draft or waiting for
/// more information.
#[utoipa::path(
    patch,
    path = "/computegate/v1/kyc/applications/{id}",
    operation_id = "patch_application",
    tag = "verification",
    params(("id" = Uuid, Path)),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The application", body = Object)),
    security(("customer" = []))
)]
async fn patch(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let patch: Value = serde_json::from_slice(&body.map_err(body_error)?)
        .map_err(|e| ApiError::MalformedBody(format!("not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::MalformedBody(
            "a JSON merge patch object is required".into(),
        ));
    }
    let view = kyc
        .patch_application(&caller.kyc(), id, &patch, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(view)))
}

/// Hands the application in (screened at once when a list is loaded); the answer is the
/// application as it stands afterwards.
#[utoipa::path(
    post,
    path = "/computegate/v1/kyc/applications/{id}/submit",
    operation_id = "submit_application",
    tag = "verification",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The application", body = Object)),
    security(("customer" = []))
)]
async fn submit(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let view = kyc
        .submit_application(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(view)))
}

/// The application's documents (metadata only).
#[utoipa::path(
    get,
    path = "/computegate/v1/kyc/applications/{id}/documents",
    operation_id = "list_documents",
    tag = "verification",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "`{\"documents\": [...]}`", body = Object)),
    security(("customer" = []))
)]
async fn documents(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let docs = kyc
        .store()
        .verification()
        .list_documents(&caller.kyc(), id)
        .await?;
    Ok(no_store(Json(serde_json::json!({ "documents": docs }))))
}

/// `multipart/form-data` with a `file` part (its `Content-Type` and file name are checked
/// against the bytes) and a `type` field (`passport`, `compliance_plan`, …).
#[utoipa::path(
    post,
    path = "/computegate/v1/kyc/applications/{id}/documents",
    operation_id = "upload_document",
    tag = "verification",
    params(("id" = Uuid, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "The document's metadata", body = Object)),
    security(("customer" = []))
)]
async fn upload(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    PathId(id): PathId,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::UnsupportedMediaType("a multipart/form-data body is required".into())
    })?;
    let max = kyc.limits().max_bytes;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut doc_type: Option<String> = None;
    let mut file: Option<(Option<String>, Option<String>, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "type" if doc_type.is_none() => {
                let bytes = read_part(field, MAX_TYPE_FIELD, "type").await?;
                doc_type = Some(String::from_utf8_lossy(&bytes).trim().to_owned());
            }
            "file" if file.is_none() => {
                let filename = field.file_name().map(str::to_owned);
                let declared = field.content_type().map(str::to_owned);
                let bytes = read_part(field, max, "file").await?;
                file = Some((filename, declared, bytes));
            }
            "type" | "file" => errors.push((name, "given more than once".into())),
            _ => errors.push((
                if name.is_empty() {
                    "(unnamed)".into()
                } else {
                    name
                },
                "unknown part: send a `file` part and a `type` field".into(),
            )),
        }
    }
    let doc_type = match doc_type.as_deref().map(str::parse::<DocumentType>) {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            // Listed from `DocumentType::ALL`, so the message cannot drift from the types.
            let names = DocumentType::ALL.map(DocumentType::as_str).join(", ");
            errors.push(("type".into(), format!("not a document type ({names})")));
            None
        }
        None => {
            errors.push(("type".into(), "required".into()));
            None
        }
    };
    match &file {
        None => errors.push(("file".into(), "required".into())),
        Some((_, None, _)) => errors.push(("file".into(), "the part needs a Content-Type".into())),
        Some(_) => {}
    }
    let (Some(doc_type), Some((filename, Some(declared), bytes)), true) =
        (doc_type, file, errors.is_empty())
    else {
        return Err(ApiError::Invalid(errors));
    };
    let upload = DocumentUpload {
        doc_type,
        declared_content_type: declared,
        filename,
        bytes,
    };
    let meta = kyc
        .store()
        .verification()
        .add_document(
            kyc.master(),
            &caller.kyc(),
            id,
            &upload,
            kyc.limits(),
            OffsetDateTime::now_utc(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(meta)).into_response())
}

/// Reads one multipart part, refusing it past `max` bytes (the portal's upload reads with it too).
pub(crate) async fn read_part(
    mut field: axum::extract::multipart::Field<'_>,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "`{what}` is larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(super) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the body is larger than {APPLICATION_BODY_LIMIT} bytes"
        ))
    } else {
        ApiError::MalformedBody(rejection.body_text())
    }
}

pub(crate) fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the upload is larger than the document size limit".into())
    } else {
        ApiError::MalformedBody(e.body_text())
    }
}

#[cfg(test)]
pub(crate) mod tests;

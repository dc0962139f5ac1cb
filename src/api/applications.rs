//! The customer's verification API on the public listener (customer bearer token or API key):
//! KYC/KYB applications (`/computegate/v1/kyc/applications…`) and their documents.
//!
//! A customer only ever sees their own applications: any other id answers 404, never 403.
//! Documents are accepted as `multipart/form-data` (a `file` part and a `type` field), checked
//! by magic bytes against the declared type and file extension, and only ever returned to the
//! customer as metadata.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use computegate_kyc::verification::{ApplicationPayload, DocumentType, DocumentUpload};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{CustomerCaller, PathId, no_store};
use super::state::ApiState;
use crate::verification::Verification;

/// Largest application document accepted, in bytes.
const APPLICATION_BODY_LIMIT: usize = 256 * 1024;
/// Multipart framing allowed on top of the document size limit.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Longest `type` field of an upload.
const MAX_TYPE_FIELD: usize = 64;

/// The customer's verification routes; uploads take up to `kyc`'s document size limit.
pub(crate) fn routes(kyc: &Verification) -> Router<ApiState> {
    let upload_limit = kyc.limits().max_bytes + MULTIPART_OVERHEAD;
    Router::new()
        .route(
            "/computegate/v1/kyc/applications",
            post(create)
                .get(list)
                .layer(DefaultBodyLimit::max(APPLICATION_BODY_LIMIT)),
        )
        .route(
            "/computegate/v1/kyc/applications/{id}",
            get(read)
                .patch(patch)
                .layer(DefaultBodyLimit::max(APPLICATION_BODY_LIMIT)),
        )
        .route("/computegate/v1/kyc/applications/{id}/submit", post(submit))
        .route(
            "/computegate/v1/kyc/applications/{id}/documents",
            post(upload)
                .get(documents)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
}

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
        Json(serde_json::json!({"id": view.id, "status": view.status})),
    )))
}

async fn list(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
) -> Result<Response, ApiError> {
    let apps = kyc
        .store()
        .verification()
        .customer_applications(kyc.master(), &caller.kyc())
        .await?;
    Ok(no_store(Json(serde_json::json!({ "applications": apps }))))
}

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

fn body_error(rejection: BytesRejection) -> ApiError {
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

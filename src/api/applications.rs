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
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use computegate_kyc::verification::{
    ApplicationPayload, ApplicationStatus, CustomerCaller, DocumentType, DocumentUpload,
    FieldError, ValidationMode,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Client;
use super::error::{ApiError, internal};
use crate::verification::Verification;

mod refusals;

pub(crate) use self::refusals::refused;

/// Largest application document accepted, in bytes.
const APPLICATION_BODY_LIMIT: usize = 256 * 1024;
/// Multipart framing allowed on top of the document size limit.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Longest `type` field of an upload.
const MAX_TYPE_FIELD: usize = 64;

/// The customer's verification routes (merged into the customer API; no fallback of its own).
pub fn router(kyc: Arc<Verification>) -> Router {
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
        .with_state(kyc)
}

async fn create(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let payload = ApplicationPayload::from_json(&body.map_err(body_error)?)
        .map_err(ApiError::InvalidFields)?;
    let now = OffsetDateTime::now_utc();
    prevalidate(&kyc, &payload, now)?;
    let view = kyc
        .store()
        .create_draft(kyc.master(), &caller, &payload, now)
        .await
        .map_err(refused)?;
    kyc.metrics().funnel("draft");
    kyc.stats_changed();
    let location = format!("/computegate/v1/kyc/applications/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Json(serde_json::json!({"id": view.id, "status": view.status})),
    )
        .into_response())
}

async fn list(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let apps = kyc
        .store()
        .customer_applications(kyc.master(), &caller)
        .await
        .map_err(refused)?;
    Ok(private(Json(serde_json::json!({ "applications": apps }))))
}

async fn read(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let view = kyc
        .store()
        .get_application(kyc.master(), &caller, app_id(&id)?)
        .await
        .map_err(refused)?;
    Ok(private(Json(view)))
}

/// JSON merge patch (RFC 7396) over the stored application, while it is a draft or waiting for
/// more information.
async fn patch(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let id = app_id(&id)?;
    let patch: Value = serde_json::from_slice(&body.map_err(body_error)?)
        .map_err(|e| ApiError::MalformedBody(format!("not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::MalformedBody(
            "a JSON merge patch object is required".into(),
        ));
    }
    let store = kyc.store();
    let current = store
        .get_application(kyc.master(), &caller, id)
        .await
        .map_err(refused)?;
    let mut doc = serde_json::to_value(&current.payload).map_err(internal)?;
    merge_patch(&mut doc, &patch);
    let bytes = serde_json::to_vec(&doc).map_err(internal)?;
    let payload = ApplicationPayload::from_json(&bytes).map_err(ApiError::InvalidFields)?;
    prevalidate(&kyc, &payload, OffsetDateTime::now_utc())?;
    let view = store
        .update_draft(
            kyc.master(),
            &caller,
            id,
            &payload,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(refused)?;
    Ok(private(Json(view)))
}

/// Hands the application in and screens it at once when a list is loaded (otherwise the
/// background sweep does); the answer is the application as it stands afterwards.
async fn submit(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let id = app_id(&id)?;
    let store = kyc.store();
    let view = store
        .submit_application(
            kyc.master(),
            &caller,
            id,
            &kyc.jurisdiction(),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(refused)?;
    kyc.metrics().funnel("submitted");
    kyc.stats_changed();
    match view.status {
        ApplicationStatus::Rejected => kyc.metrics().funnel("rejected"),
        ApplicationStatus::Submitted => match kyc.screen_submitted(id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(application = %id, "no screening list imported yet; screening deferred")
            }
            Err(e) => {
                tracing::warn!(error = %e, application = %id, "screening failed; the sweep retries")
            }
        },
        _ => {}
    }
    let view = store
        .get_application(kyc.master(), &caller, id)
        .await
        .map_err(refused)?;
    Ok(private(Json(view)))
}

async fn documents(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let docs = kyc
        .store()
        .list_documents(&caller, app_id(&id)?)
        .await
        .map_err(refused)?;
    Ok(private(Json(serde_json::json!({ "documents": docs }))))
}

/// `multipart/form-data` with a `file` part (its `Content-Type` and file name are checked
/// against the bytes) and a `type` field (`passport`, `compliance_plan`, …).
async fn upload(
    State(kyc): State<Arc<Verification>>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let caller = caller(&kyc, &headers, client).await?;
    let id = app_id(&id)?;
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
            errors.push(("type".into(), "not a document type (passport, national_id, driving_licence, proof_of_address, registration_certificate, ownership_register, compliance_plan, other)".into()));
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
        .add_document(
            kyc.master(),
            &caller,
            id,
            &upload,
            kyc.limits(),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(meta)).into_response())
}

/// The draft checks of the payload plus one the store cannot make: the requested tier must be
/// a tier of the policy in force. Every problem at once.
fn prevalidate(
    kyc: &Verification,
    payload: &ApplicationPayload,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let mut errors = payload.validate(ValidationMode::Draft, now.date());
    if let Some(tier) = payload.requested_tier.as_deref()
        && !kyc.tier_defined(tier)
        && !errors.iter().any(|e| e.field == "requested_tier")
    {
        errors.insert(
            0,
            FieldError {
                field: "requested_tier".into(),
                code: "invalid",
                problem: "not a tier of the policy in force".into(),
            },
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InvalidFields(errors))
    }
}

/// Reads one multipart part, refusing it past `max` bytes.
async fn read_part(
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

/// The calling customer (bearer token or API key, as on the data plane).
async fn caller(
    kyc: &Verification,
    headers: &HeaderMap,
    client: Client,
) -> Result<CustomerCaller, ApiError> {
    let principal = super::customer::authenticate(kyc.identity(), headers, client).await?;
    Ok(CustomerCaller {
        customer_id: super::customer::parse_id(&principal)?,
        client_ip: Some(client.0.ip),
    })
}

/// An application id from the path; anything that is not a UUID is simply not found.
fn app_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound)
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, value) in changes {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A JSON answer with personal data: never cached.
fn private(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
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

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the upload is larger than the document size limit".into())
    } else {
        ApiError::MalformedBody(e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(
            &mut doc,
            &serde_json::json!({"a": {"b": null, "z": 3}, "d": [2, 3], "e": null, "f": {"g": 1}}),
        );
        assert_eq!(
            doc,
            serde_json::json!({"a": {"c": 2, "z": 3}, "d": [2, 3], "f": {"g": 1}})
        );
    }
}

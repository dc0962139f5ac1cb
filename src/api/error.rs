//! The control-plane APIs' error type and its single mapping to RFC 9457 problem documents.
//!
//! Handlers return [`ApiError`]; nothing else in the APIs builds an error response. The services'
//! typed refusals become [`ApiError`]s in `refusals` (one `From` impl each); a refused bearer
//! credential is answered by the gateway's own mapping ([`auth_problem`]), the same for the data
//! plane, customers and staff. Internal failures are logged here once and answered with a
//! generic 500 or 503 body.

mod refusals;

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use computegate_gateway::auth::AuthError;
use computegate_gateway::error::auth_problem;
use computegate_gateway::problem::{Challenge, Problem};
use http::StatusCode;

/// Why an API request failed, named for what happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request body or parameters are invalid; each entry is `(field, problem)`.
    #[error("invalid request")]
    Invalid(Vec<(String, String)>),
    /// The body is not the JSON the endpoint takes.
    #[error("malformed JSON body: {0}")]
    MalformedBody(String),
    /// The bearer credential was refused (answered like the data plane answers it).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Credentials missing or wrong (login), or an invalid bearer token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Authenticated but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The API key lacks the scope this endpoint needs (same problem as the data plane's).
    #[error("API key lacks a scope")]
    ScopeMissing(computegate_gateway::scope::Scope),
    /// The thing does not exist (or is not the caller's to see).
    #[error("not found")]
    NotFound,
    /// Nothing is served at this path (the routers' fallback).
    #[error("no route")]
    NoRoute,
    /// A unique value is taken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Too many attempts; retry later.
    #[error("throttled")]
    Throttled(Duration),
    /// A dependency (store, Redis) is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
    /// A document (e.g. a KYC application) has bad fields, each with a stable code.
    #[error("invalid document ({} field errors)", .0.len())]
    InvalidFields(Vec<computegate_kyc::verification::FieldError>),
    /// The customer already has an open application (named, so they can go on with it).
    #[error("application {id} is in progress")]
    ApplicationInProgress {
        /// The open application.
        id: uuid::Uuid,
        /// Where it stands.
        status: computegate_kyc::verification::ApplicationStatus,
    },
    /// The request is valid but not in the resource's current state (a state-machine refusal).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The request body is over the endpoint's size limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// The body's media type (or a sniffed file type) is not accepted.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A webhook's signature is missing, stale or wrong, or its sender unknown.
    #[error("bad signature: {0}")]
    BadSignature(&'static str),
    /// An approval lacks evidence the tier's policy requires (each kind named).
    #[error("evidence missing for {tier}")]
    EvidenceMissing {
        /// The tier applied for.
        tier: String,
        /// What is missing.
        missing: Vec<computegate_policy::Evidence>,
    },
    /// A list's `cursor` parameter does not decode to a position in the list (cursors are
    /// plain keyset positions, not signed: a made-up one only moves within the caller's own list).
    #[error("bad cursor")]
    BadCursor,
    /// The path exists but not with this method; `allow` lists the methods it takes.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The router's `Allow` header value, when it gave one.
        allow: Option<http::HeaderValue>,
    },
}

impl ApiError {
    /// An invalid-request error for one field.
    pub fn field(field: &str, problem: &str) -> Self {
        Self::Invalid(vec![(field.to_string(), problem.to_string())])
    }

    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::Invalid(fields) => {
                let errors: Vec<serde_json::Value> = fields
                    .iter()
                    .map(|(f, p)| serde_json::json!({"field": f, "detail": p}))
                    .collect();
                let detail = fields
                    .iter()
                    .map(|(f, p)| format!("{f}: {p}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-request",
                    "Invalid request",
                    detail,
                )
                .with("errors", errors)
            }
            Self::BadCursor => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-cursor",
                "Bad cursor",
                "the cursor is not a position in this list; start again without it",
            ),
            Self::MalformedBody(why) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
                why.clone(),
            ),
            Self::Auth(e) => auth_problem(e),
            Self::Unauthenticated(why) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                *why,
            )
            // Every use is a credential that was sent and refused (a password, a refresh token).
            .www_authenticate(Challenge::InvalidToken),
            Self::Forbidden(why) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", *why)
            }
            Self::ScopeMissing(scope) => {
                computegate_gateway::error::GatewayError::ScopeMissing(*scope).to_problem()
            }
            Self::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such resource",
            ),
            Self::NoRoute => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "nothing is served at this path",
            ),
            Self::MethodNotAllowed { .. } => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this resource does not take this method; see the Allow header",
            ),
            Self::Conflict(why) => Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", *why),
            Self::Throttled(after) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many attempts",
                "too many failed attempts; retry later",
            )
            .retry_after(*after),
            Self::Unavailable(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "a dependency is unavailable; retry later",
            )
            .retry_after(Duration::from_secs(5)),
            Self::Internal(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "an unexpected error occurred",
            ),
            Self::InvalidFields(fields) => {
                let errors: Vec<serde_json::Value> = fields
                    .iter()
                    .map(|e| serde_json::json!({"field": e.field, "code": e.code, "detail": e.problem}))
                    .collect();
                let detail = fields
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.problem))
                    .collect::<Vec<_>>()
                    .join("; ");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-request",
                    "Invalid request",
                    detail,
                )
                .with("errors", errors)
            }
            Self::EvidenceMissing { tier, missing } => {
                let detail: Vec<String> = (missing.iter())
                    .map(|e| {
                        let remedy = if e.manual_check_allowed() {
                            "; or document a manual check in manual_checks"
                        } else {
                            ""
                        };
                        format!("{e}: {}{remedy}", e.describe())
                    })
                    .collect();
                let names: Vec<&str> = missing.iter().map(|e| e.as_str()).collect();
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "evidence-missing",
                    "Evidence missing",
                    format!("approval to {tier} needs: {}", detail.join("; ")),
                )
                .with("missing_evidence", names)
            }
            Self::ApplicationInProgress { id, status } => Problem::new(
                StatusCode::CONFLICT,
                "application-in-progress",
                "Application in progress",
                format!(
                    "application {id} is {status}; continue it (or wait for its decision) \
                     instead of starting another"
                ),
            )
            .with("application_id", id.to_string())
            .with("application_status", status.as_str())
            .with(
                "application",
                format!("/computegate/v1/kyc/applications/{id}"),
            ),
            Self::InvalidState(why) => Problem::new(
                StatusCode::CONFLICT,
                "invalid-state",
                "Not allowed in the current state",
                why.clone(),
            ),
            Self::PayloadTooLarge(why) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                why.clone(),
            ),
            Self::UnsupportedMediaType(why) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                why.clone(),
            ),
            Self::BadSignature(why) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                "Bad signature",
                *why,
            )
            .www_authenticate(Challenge::Signature),
        }
    }
}

/// Wraps an unexpected failure (logged once, answered with a generic 500).
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Wraps a dependency failure (logged once, answered 503 with `Retry-After`).
pub fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "control-plane request failed")
            }
            Self::Unavailable(detail) => tracing::warn!(error = %detail, "dependency unavailable"),
            Self::Auth(AuthError::Unavailable) => {
                tracing::warn!("identity verification unavailable")
            }
            _ => tracing::debug!(error = %self, "control-plane request refused"),
        }
        let (mut parts, body) = self.to_problem().into_response().into_parts();
        if let Self::MethodNotAllowed { allow: Some(allow) } = self {
            parts.headers.insert(http::header::ALLOW, allow);
        }
        Response::from_parts(parts, axum::body::Body::from(body))
    }
}

/// A query string that does not parse names itself as the invalid field (422), on every route.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::field("query", &rejection.body_text())
    }
}

/// A JSON body that could not be read: 413 past the route's body limit (axum's
/// `DefaultBodyLimit`, 2 MiB unless the route sets its own), else 400.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge("the body is larger than this endpoint accepts".into())
        } else {
            Self::MalformedBody(rejection.body_text())
        }
    }
}

/// axum answers a known path with another method by an empty 405 of its own; every error of
/// these APIs is a problem document, so that one is replaced (the `Allow` header is kept). A
/// layer over the composed routers (`map_response`), so router tests see it too.
pub(crate) async fn problem_for_bare_405(resp: Response) -> Response {
    let is_problem = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED || is_problem {
        return resp;
    }
    let allow = resp.headers().get(http::header::ALLOW).cloned();
    ApiError::MethodNotAllowed { allow }.into_response()
}

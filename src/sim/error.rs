//! The simulator's errors and their one mapping to HTTP: RFC 9457 `application/problem+json`
//! bodies with stable `type` URIs under `https://computegate.dev/problems/sim-*`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::catalog::CapacityError;
use super::jobs::JobEnded;
use super::spec::InvalidJob;

/// Everything a simulator request can fail with. All are the client's doing (4xx).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SimError {
    /// The job submission is invalid.
    #[error(transparent)]
    InvalidJob(#[from] InvalidJob),
    /// The fleet cannot hold the job.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// No job has the id in the path.
    #[error("no job with id {0:?}")]
    JobNotFound(String),
    /// The job cannot be cancelled: it has ended.
    #[error("job {id} cannot be cancelled: {ended}")]
    JobEnded { id: String, ended: JobEnded },
    /// A query parameter is missing or invalid.
    #[error("{0}")]
    InvalidQuery(String),
    /// The request body could not be read (too large, or the client went away).
    #[error("{detail}")]
    Body { status: StatusCode, detail: String },
    /// `/attach` was requested without a websocket upgrade.
    #[error("{detail}")]
    NotWebSocket { status: StatusCode, detail: String },
    /// No route matches the path.
    #[error("no simulator endpoint at {0}")]
    RouteNotFound(String),
    /// The route exists but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// The request field at fault, when one is (an extension member).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

// === impl SimError ===

impl SimError {
    /// Status, `type` slug and title.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            SimError::InvalidJob(InvalidJob::Malformed(_)) => {
                (S::BAD_REQUEST, "sim-malformed-json", "Malformed JSON body")
            }
            SimError::InvalidJob(InvalidJob::Field { .. }) => {
                (S::UNPROCESSABLE_ENTITY, "sim-invalid-job", "Invalid job")
            }
            SimError::InvalidJob(InvalidJob::UnknownGpuType { .. }) => (
                S::UNPROCESSABLE_ENTITY,
                "sim-unknown-gpu-type",
                "Unknown GPU type",
            ),
            SimError::Capacity(CapacityError::ExceedsFleet { .. }) => {
                (S::UNPROCESSABLE_ENTITY, "sim-invalid-job", "Invalid job")
            }
            SimError::Capacity(CapacityError::NotEnoughFree { .. }) => (
                S::CONFLICT,
                "sim-insufficient-capacity",
                "Not enough free GPUs",
            ),
            SimError::JobNotFound(_) => (S::NOT_FOUND, "sim-job-not-found", "Job not found"),
            SimError::JobEnded { .. } => (S::CONFLICT, "sim-job-ended", "Job already ended"),
            SimError::InvalidQuery(_) => {
                (S::BAD_REQUEST, "sim-invalid-query", "Invalid query string")
            }
            SimError::Body { status, .. } => (*status, "sim-invalid-body", "Unreadable body"),
            SimError::NotWebSocket { status, .. } => (
                *status,
                "sim-websocket-required",
                "WebSocket upgrade required",
            ),
            SimError::RouteNotFound(_) => (S::NOT_FOUND, "sim-not-found", "Not found"),
            SimError::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "sim-method-not-allowed",
                "Method not allowed",
            ),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            SimError::InvalidJob(InvalidJob::Field { field, .. }) => Some(field),
            SimError::InvalidJob(InvalidJob::UnknownGpuType { .. }) => Some("gpu_type"),
            SimError::Capacity(_) => Some("gpu_count"),
            _ => None,
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        tracing::debug!(
            status = status.as_u16(),
            problem = slug,
            "simulator request refused"
        );
        let problem = Problem {
            kind: format!("https://computegate.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            field: self.field(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: SimError) -> (StatusCode, String, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let ctype = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, ctype, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn field_errors_are_422_problems_naming_the_field() {
        let err = SimError::from(InvalidJob::Field {
            field: "gpu_count",
            reason: "expected a positive integer".into(),
        });
        let (status, ctype, body) = render(err).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ctype, "application/problem+json");
        assert_eq!(
            body["type"],
            "https://computegate.dev/problems/sim-invalid-job"
        );
        assert_eq!(body["status"], 422);
        assert_eq!(body["field"], "gpu_count");
        assert_eq!(body["detail"], "gpu_count: expected a positive integer");
    }

    #[tokio::test]
    async fn capacity_is_409_and_not_found_is_404() {
        let err = SimError::from(CapacityError::NotEnoughFree {
            gpu_type: "h100",
            requested: 8,
            free: 2,
        });
        let (status, _, body) = render(err).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["detail"], "8 h100 requested but only 2 free");
        let (status, _, body) = render(SimError::RouteNotFound("/nope".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["type"],
            "https://computegate.dev/problems/sim-not-found"
        );
        assert!(body.get("field").is_none());
    }
}

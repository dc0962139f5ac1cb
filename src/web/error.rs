//! Why a browser request failed, and the one place such a failure becomes a page. Handlers
//! return [`WebError`]; its response carries only the status and an [`ErrorPage`] marker, and
//! [`html_errors`] (a middleware that knows the surface) renders the marker as an HTML page in
//! the surface's layout. The same middleware turns every other 4xx/5xx that is not HTML (an axum
//! rejection, a bare 405, a 413 from a body limit) into a page too, so a browser never sees a
//! problem document, a plain-text rejection or an empty body. 5xx pages say nothing about the
//! cause; it is logged once, here.

use std::time::Duration;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use computegate_gateway::auth::AuthError;

use super::chrome::Chrome;
use super::surface::Surface;
use crate::api::error::ApiError;

/// Why a browser request failed, named for what happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// No such page, or not the caller's to see.
    #[error("not found")]
    NotFound,
    /// The page needs a signed-in session (answered by a redirect to the sign-in page).
    #[error("sign-in required")]
    SignInRequired,
    /// The form's CSRF token is missing or not this session's.
    #[error("CSRF token refused")]
    CsrfRejected,
    /// Signed in, but not allowed (a role refusal); the text says why in plain words.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request cannot be understood (not the page's form).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is over the page's size limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A service refused the request; `status`, `title` and `detail` are shown as they are.
    #[error("{title}: {detail}")]
    Refused {
        /// The HTTP status (4xx).
        status: StatusCode,
        /// Short title.
        title: String,
        /// What happened, in plain words.
        detail: String,
    },
    /// Too many attempts; retry after the duration.
    #[error("throttled")]
    Throttled(Duration),
    /// A dependency (store, Redis) is unavailable (logged, answered 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (logged, answered 500 without detail).
    #[error("internal: {0}")]
    Internal(String),
}

/// The marker a [`WebError`] response carries for [`html_errors`] to render.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    title: String,
    detail: String,
    sign_in: bool,
}

#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorTemplate {
    chrome: Chrome,
    detail: String,
    status: u16,
}

// === impl WebError ===

impl WebError {
    /// The status, title and plain-words detail of the page.
    fn page(&self) -> (StatusCode, String, String) {
        let (status, title, detail): (_, &str, String) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no page at this address, or it is not yours to see.".into(),
            ),
            Self::SignInRequired => (
                StatusCode::UNAUTHORIZED,
                "Please sign in",
                "This page needs you to sign in first.".into(),
            ),
            Self::CsrfRejected => (
                StatusCode::FORBIDDEN,
                "The form has expired",
                "This form was not sent from the current page of your session (it may be \
                 older than your last sign-in, or come from another site). Nothing was \
                 changed. Go back, reload the page and send it again."
                    .into(),
            ),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", why.clone()),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why.clone()),
            Self::TooLarge(why) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large", why.clone()),
            Self::Refused {
                status,
                title,
                detail,
            } => return (*status, title.clone(), detail.clone()),
            Self::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "There were too many attempts. Wait a minute and try again.".into(),
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The service cannot answer right now. Try again in a few seconds.".into(),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An unexpected error stopped this page. It has been logged; try again later."
                    .into(),
            ),
        };
        (status, title.to_owned(), detail)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(error = %detail, "browser request failed"),
            Self::Unavailable(detail) => tracing::warn!(error = %detail, "dependency unavailable"),
            _ => tracing::debug!(error = %self, "browser request refused"),
        }
        let (status, title, detail) = self.page();
        let mut resp = status.into_response();
        let retry_after = match &self {
            Self::Throttled(after) => Some(after.as_secs().max(1)),
            // A dependency outage: come back in a few seconds, as the JSON APIs say.
            Self::Unavailable(_) => Some(5),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.extensions_mut().insert(ErrorPage {
            title,
            detail,
            sign_in: matches!(self, Self::SignInRequired),
        });
        resp
    }
}

/// A service's refusal, as the JSON APIs classify it (one mapping for both): sign-in for a
/// refused credential, 5xx logged and hidden, every client error shown with its plain-words
/// detail.
impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Internal(detail) => Self::Internal(detail),
            ApiError::Unavailable(detail) => Self::Unavailable(detail),
            ApiError::Auth(AuthError::Unavailable | AuthError::Busy) => {
                Self::Unavailable("credential verification".into())
            }
            ApiError::Auth(AuthError::Throttled(after)) | ApiError::Throttled(after) => {
                Self::Throttled(after)
            }
            ApiError::Auth(_) | ApiError::Unauthenticated(_) => Self::SignInRequired,
            ApiError::NotFound => Self::NotFound,
            other => {
                let problem = other.to_problem().to_json();
                let text = |k: &str| problem[k].as_str().unwrap_or_default().to_owned();
                Self::Refused {
                    status: other.to_problem().status(),
                    title: text("title"),
                    detail: text("detail"),
                }
            }
        }
    }
}

/// The middleware of [`super::mount`] that renders error pages (see the module docs). A
/// [`WebError::SignInRequired`] becomes `303 See Other` to the surface's `login` page.
pub(crate) async fn html_errors(
    State(surface): State<&'static Surface>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let marker = resp.extensions().get::<ErrorPage>().cloned();
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let page = match marker {
        Some(page) => page,
        None if status.is_client_error() || status.is_server_error() => {
            if is_html {
                return resp;
            }
            ErrorPage {
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                detail: generic_detail(status).to_owned(),
                sign_in: false,
            }
        }
        None => return resp,
    };
    let (mut parts, _) = resp.into_parts();
    if page.sign_in {
        let (redirect, _) = Redirect::to(&surface.path("login"))
            .into_response()
            .into_parts();
        parts.status = redirect.status;
        parts.headers.extend(redirect.headers);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    let template = ErrorTemplate {
        chrome: Chrome::new(surface, String::new(), page.title),
        detail: page.detail,
        status: status.as_u16(),
    };
    let html = template.render().unwrap_or_else(|e| {
        // The error page itself failed (a bug): say it in the plainest HTML there is.
        tracing::error!(error = %e, "error page template failed");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, axum::body::Body::from(html))
}

/// What a page says about an error the handlers did not describe (a framework rejection).
fn generic_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "This page cannot be used that way.",
        StatusCode::PAYLOAD_TOO_LARGE => "What was sent is larger than this page accepts.",
        StatusCode::NOT_FOUND => "There is no page at this address.",
        s if s.is_server_error() => "The service could not answer. Try again later.",
        _ => "The request could not be understood. Go back and try again.",
    }
}

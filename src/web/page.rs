//! The one way a page is rendered: an askama template as `text/html`; a template failure is
//! an internal-error page, never a panic.

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::WebError;

/// Renders a page as `text/html`; a template failure is an internal error page.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => WebError::Internal(format!("template failed: {e}")).into_response(),
    }
}

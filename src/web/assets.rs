//! The one stylesheet of the browser surfaces, hand-written (`assets/site.css`) and compiled
//! into the binary, served with the same bytes by the portal and the console. Pages link it
//! with `?v=<content hash>`, so it may be cached for a year: a new build changes the link.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

/// The stylesheet's bytes.
pub const STYLESHEET: &str = include_str!("../../assets/site.css");

/// How long a browser may keep the stylesheet: a year, because its link changes with its
/// content.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The stylesheet route, relative to a surface's root.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/site.css", get(stylesheet))
}

/// The first 16 hex digits of the stylesheet's SHA-256: its version in links and its ETag.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| hex::encode(&Sha256::digest(STYLESHEET.as_bytes())[..8]))
}

/// `GET <root>/assets/site.css`: the stylesheet, or 304 when the browser's copy is current.
async fn stylesheet(headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", version());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::ETAG,
            // The version is hex digits: always a valid header value.
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let css = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    )];
    (cache, css, STYLESHEET).into_response()
}

//! Endpoints that exist to test what sits in front of the simulator: `GET /v1/ping` (the
//! benchmark upstream), `GET /v1/slow` (timeouts and graceful drain), `ANY /v1/echo` (reflects
//! exactly what arrived), and the 404/405 fallbacks.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::error::SimError;

/// The body of `GET /v1/ping`; static so the benchmark upstream costs next to nothing.
pub(crate) const PING_BODY: &str = r#"{"status":"ok","service":"computegate-simulator"}"#;
/// Longest wait `GET /v1/slow` grants, milliseconds.
pub(crate) const MAX_SLOW_MS: u64 = 60_000;

/// Header name to values in arrival order.
type HeaderValues = BTreeMap<String, Vec<String>>;

/// What `/v1/echo` received.
#[derive(Debug, Serialize)]
struct Echo {
    method: String,
    path: String,
    /// The raw query string, `null` when there was none.
    query: Option<String>,
    version: &'static str,
    headers: HeaderValues,
    body_bytes: u64,
    /// Trailer fields after a chunked body (empty when none).
    trailers: HeaderValues,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SlowQuery {
    ms: u64,
}

/// `GET /v1/ping`.
pub(crate) async fn ping() -> Response {
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (content_type, PING_BODY).into_response()
}

/// `GET /v1/slow?ms=N`: answers after `min(N, 60000)` ms.
pub(crate) async fn slow(
    query: Result<Query<SlowQuery>, QueryRejection>,
) -> Result<Response, SimError> {
    let Query(SlowQuery { ms }) =
        query.map_err(|rejection| SimError::InvalidQuery(rejection.body_text()))?;
    let ms = ms.min(MAX_SLOW_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Json(serde_json::json!({ "slept_ms": ms })).into_response())
}

/// `ANY /v1/echo[/…]`: the method, path, query, headers and body size it received.
pub(crate) async fn echo(request: Request) -> Result<Response, SimError> {
    let (parts, mut body) = request.into_parts();
    let mut body_bytes: u64 = 0;
    let mut trailers = HeaderValues::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| SimError::Body {
            status: StatusCode::BAD_REQUEST,
            detail: format!("reading the body failed: {e}"),
        })?;
        match frame.into_data() {
            Ok(data) => body_bytes += data.len() as u64,
            Err(frame) => {
                if let Ok(fields) = frame.into_trailers() {
                    trailers.extend(header_values(&fields));
                }
            }
        }
    }
    let echo = Echo {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: version_name(parts.version),
        headers: header_values(&parts.headers),
        body_bytes,
        trailers,
    };
    Ok(Json(echo).into_response())
}

/// Fallback for paths no route matches.
pub(crate) async fn not_found(uri: Uri) -> SimError {
    SimError::RouteNotFound(uri.path().to_owned())
}

/// Fallback for a known path with a method it does not serve.
pub(crate) async fn method_not_allowed(method: Method) -> SimError {
    SimError::MethodNotAllowed(method.to_string())
}

/// Every header, multi-valued ones kept in order; non-UTF-8 bytes replaced.
fn header_values(headers: &HeaderMap) -> HeaderValues {
    let mut out = HeaderValues::new();
    for (name, value) in headers {
        out.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    async fn json(response: Response) -> serde_json::Value {
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("json")
    }

    #[test]
    fn ping_body_is_valid_json_naming_the_simulator() {
        let v: serde_json::Value = serde_json::from_str(PING_BODY).expect("json");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["service"], "computegate-simulator");
    }

    #[test]
    fn header_values_keep_repeats_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.append(
            "x-b",
            HeaderValue::from_bytes(b"\xff").expect("opaque value"),
        );
        let values = header_values(&headers);
        assert_eq!(values["x-a"], ["1", "2"]);
        assert_eq!(values["x-b"], ["\u{fffd}"]);
    }

    #[tokio::test]
    async fn echo_reflects_the_request() {
        let request = axum::http::Request::builder()
            .method("PUT")
            .uri("/v1/echo/a/b?x=1&x=2")
            .header("x-test", "yes")
            .body(Body::from("12345"))
            .expect("request");
        let v = json(echo(request).await.expect("ok")).await;
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["path"], "/v1/echo/a/b");
        assert_eq!(v["query"], "x=1&x=2");
        assert_eq!(v["headers"]["x-test"][0], "yes");
        assert_eq!(v["body_bytes"], 5);
        assert_eq!(v["version"], "HTTP/1.1");
    }

    #[tokio::test]
    async fn echo_reports_trailers() {
        let mut fields = HeaderMap::new();
        fields.append("x-checksum", HeaderValue::from_static("abc"));
        let frames = futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"de"))),
            Ok(Frame::trailers(fields)),
        ]);
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/echo")
            .body(Body::new(StreamBody::new(frames)))
            .expect("request");
        let v = json(echo(request).await.expect("ok")).await;
        assert_eq!(v["body_bytes"], 5);
        assert_eq!(v["trailers"]["x-checksum"][0], "abc");
        assert_eq!(v["query"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn slow_waits_then_reports() {
        let started = std::time::Instant::now();
        let v = json(slow(Ok(Query(SlowQuery { ms: 20 }))).await.expect("ok")).await;
        assert_eq!(v["slept_ms"], 20);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}

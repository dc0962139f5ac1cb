//! RFC 9457 problem documents and the one place where gateway errors become HTTP responses.
//!
//! Every error answer the gateway produces (data plane or admin) is an
//! `application/problem+json` body with a stable `type` URI built from a short slug, so clients
//! and dashboards can key on it. 5xx bodies stay generic; their detail is logged once by the caller.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value};

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://computegate.dev/problems/";

/// Media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The `WWW-Authenticate` challenge of a 401, named in one place for every listener.
///
/// RFC 6750 §3.1: a request that sent no credential gets the bare challenge (no `error`
/// attribute, since nothing was wrong with a credential it did not send); only a credential that
/// was sent and refused gets `error="invalid_token"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credential was sent: `Bearer realm="computegate"`.
    Bearer,
    /// A bearer credential was sent and refused.
    InvalidToken,
    /// A signed request (webhook, usage event) without a valid signature.
    Signature,
}

/// An RFC 9457 problem document under construction.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    retry_after: Option<Duration>,
    www_authenticate: Option<Challenge>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
}

// === impl Problem ===

impl Problem {
    /// A problem with its status, `type` slug, short title and human detail.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
            www_authenticate: None,
            headers: Vec::new(),
        }
    }

    /// Adds an extension member (RFC 9457 §3.2).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_string(), value.into());
        self
    }

    /// Sets `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Sets `WWW-Authenticate` (401 answers).
    pub fn www_authenticate(mut self, challenge: Challenge) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    /// Adds a response header (e.g. `RateLimit-*`).
    pub fn header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` slug.
    pub fn slug(&self) -> &'static str {
        self.slug
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::with_capacity(5 + self.extensions.len());
        doc.insert("type".into(), format!("{PROBLEM_BASE}{}", self.slug).into());
        doc.insert("title".into(), self.title.into());
        doc.insert("status".into(), self.status.as_u16().into());
        doc.insert("detail".into(), self.detail.clone().into());
        for (k, v) in &self.extensions {
            doc.insert(k.clone(), v.clone());
        }
        Value::Object(doc)
    }

    /// Renders the response with body bytes.
    pub fn into_response(self) -> Response<Bytes> {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge.header_value()),
            );
        }
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        resp
    }
}

// === impl Challenge ===

impl Challenge {
    /// The header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Challenge::Bearer => "Bearer realm=\"computegate\"",
            Challenge::InvalidToken => "Bearer realm=\"computegate\", error=\"invalid_token\"",
            Challenge::Signature => "Signature",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_members_and_headers() {
        let resp = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            "slow down",
        )
        .with("limit", 10)
        .retry_after(Duration::from_millis(1500))
        .into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let doc: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(doc["type"], "https://computegate.dev/problems/rate-limited");
        assert_eq!(doc["status"], 429);
        assert_eq!(doc["detail"], "slow down");
        assert_eq!(doc["limit"], 10);
    }
}

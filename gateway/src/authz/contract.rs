//! The three authorization contracts: how each edge proxy names the request it asks about, and
//! how it reads the answer.
//!
//! | contract | asks at | original method / target / host | body |
//! |---|---|---|---|
//! | Envoy `ext_authz` (HTTP service) | `<envoy_path_prefix><original path>` | the ask's own method, path after the prefix, `Host` | with `with_request_body` (a partial one, `x-envoy-auth-partial-body: true`, counts as none) |
//! | nginx `auth_request` | `/nginx` | `X-Original-Method`, `X-Original-URI`, `Host` | never |
//! | Traefik `ForwardAuth` | `/traefik` | `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` | with `forwardBody` |
//!
//! Envoy returns any non-200 answer to the client as it is, and Traefik any non-2xx; nginx
//! passes only 401 and 403 (anything else becomes 500) and drops the body. So an nginx refusal
//! is answered 401 (when it is one) or 403, carrying the real status in `X-Computegate-Status`
//! and the problem document, as one line of ASCII JSON, in `X-Computegate-Problem`; the shipped
//! nginx configuration (`deploy/nginx/computegate-auth.conf`) picks both up with
//! `auth_request_set` and answers them from an `error_page` location.
//!
//! For Envoy, an allowed answer also lists in `x-envoy-auth-headers-to-remove` the identity
//! headers it does not set (and `Authorization` once a credential was verified), so a client
//! cannot hand the upstream one of its own; nginx (`proxy_set_header` from the variables) and
//! Traefik (`authResponseHeaders` replaces each listed header) do the same by configuration.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::refusal;
use crate::auth::header_names;
use crate::body::ResponseBody;
use crate::error::GatewayError;

/// Path of the nginx contract.
pub const NGINX_PATH: &str = "/nginx";
/// Path of the Traefik contract.
pub const TRAEFIK_PATH: &str = "/traefik";

/// `X-Computegate-Status`: the real status of a refusal answered 401/403 to nginx.
pub static STATUS_HEADER: HeaderName = HeaderName::from_static("x-computegate-status");
/// `X-Computegate-Problem`: the problem document of a refusal answered to nginx.
pub static PROBLEM_HEADER: HeaderName = HeaderName::from_static("x-computegate-problem");

static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static ENVOY_PARTIAL_BODY: HeaderName = HeaderName::from_static("x-envoy-auth-partial-body");
static ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// Largest problem document read back for nginx's header (they are far smaller).
const PROBLEM_CAP: usize = 16 * 1024;

/// Which proxy asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// Envoy's `ext_authz` HTTP service.
    Envoy,
    /// nginx `auth_request`.
    Nginx,
    /// Traefik `ForwardAuth`.
    Traefik,
}

/// The request an authorization request asks about.
#[derive(Debug)]
pub struct Asked {
    /// Method, target, host and headers of the original request; its body when the proxy sent
    /// one.
    pub request: Request<Incoming>,
    /// The proxy sent the complete body (job admission needs it).
    pub body_forwarded: bool,
}

// === impl Contract ===

impl Contract {
    /// The contract whose path `path` is, if any.
    pub fn of(path: &str, envoy_prefix: &str) -> Option<Self> {
        match path {
            NGINX_PATH => Some(Self::Nginx),
            TRAEFIK_PATH => Some(Self::Traefik),
            _ => path
                .strip_prefix(envoy_prefix)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|_| Self::Envoy),
        }
    }
}

/// The original request of an authorization request, or the refusal of a malformed ask.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the answer, built once"
)]
pub fn translate(
    req: Request<Incoming>,
    contract: Contract,
    envoy_prefix: &str,
) -> Result<Asked, Response<ResponseBody>> {
    let (mut parts, body) = req.into_parts();
    let named = match contract {
        Contract::Envoy => envoy_target(&parts, envoy_prefix),
        Contract::Nginx => named_target(&mut parts.headers, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI),
        Contract::Traefik => {
            let named = named_target(&mut parts.headers, &X_FORWARDED_METHOD, &X_FORWARDED_URI);
            // The host the client asked for; the ask's own `Host` names Computegate.
            match parts.headers.remove(&X_FORWARDED_HOST) {
                Some(host) => {
                    parts.headers.insert(header::HOST, host);
                    named
                }
                None => Err(GatewayError::AuthzRequestIncomplete("X-Forwarded-Host")),
            }
        }
    };
    let (method, target) = match named {
        Ok(named) => named,
        Err(e) => return Err(refusal(&e, &Request::from_parts(parts, ()))),
    };
    let partial = parts
        .headers
        .remove(&ENVOY_PARTIAL_BODY)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    // Not part of the decision; the proxy's own forwarding header about the ask.
    parts.headers.remove(&X_FORWARDED_PROTO);
    parts.method = method;
    // Over HTTP/2 the host the client asked for is the ask's `:authority` (Envoy's HTTP service
    // on an h2 cluster) and there is no `Host` header: keep it, or the ask would match no
    // host-bound route and a route for any host would decide instead.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = Uri::from(target);
    Ok(Asked {
        body_forwarded: !partial && !body.is_end_stream(),
        request: Request::from_parts(parts, body),
    })
}

/// Envoy: the ask's method, and its path with the configured prefix taken off.
fn envoy_target(
    parts: &http::request::Parts,
    prefix: &str,
) -> Result<(Method, PathAndQuery), GatewayError> {
    let full = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let rest = full.strip_prefix(prefix).unwrap_or(full);
    let rest = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    let target = PathAndQuery::from_str(&rest)
        .map_err(|_| GatewayError::AuthzRequestIncomplete("a valid original path"))?;
    Ok((parts.method.clone(), target))
}

/// nginx and Traefik: method and target from two headers, removed from the request.
fn named_target(
    headers: &mut HeaderMap,
    method: &'static HeaderName,
    uri: &'static HeaderName,
) -> Result<(Method, PathAndQuery), GatewayError> {
    let incomplete = |what| GatewayError::AuthzRequestIncomplete(what);
    let m = headers.remove(method).ok_or(incomplete(method.as_str()))?;
    let u = headers.remove(uri).ok_or(incomplete(uri.as_str()))?;
    let m = Method::from_bytes(m.as_bytes()).map_err(|_| incomplete("a valid original method"))?;
    let u = u
        .to_str()
        .ok()
        .filter(|u| u.starts_with('/'))
        .and_then(|u| PathAndQuery::from_str(u).ok())
        .ok_or(incomplete("a valid original URI (origin form)"))?;
    Ok((m, u))
}

/// The decision's answer as `contract` reads it (see the module docs).
pub async fn shape(contract: Contract, resp: Response<ResponseBody>) -> Response<ResponseBody> {
    match contract {
        Contract::Traefik => resp,
        Contract::Envoy if resp.status() == StatusCode::OK => envoy_allowed(resp),
        Contract::Envoy => resp,
        Contract::Nginx if resp.status().is_success() => resp,
        Contract::Nginx => nginx_refusal(resp).await,
    }
}

/// Identity headers an allowed answer does not set are removed from the upstream request, and
/// so is the credential once verified (as the proxy door does).
fn envoy_allowed(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let headers = resp.headers();
    let mut remove: Vec<&str> = upstream_headers()
        .iter()
        .filter(|name| !headers.contains_key(**name))
        .map(|name| name.as_str())
        .collect();
    if headers.contains_key(&header_names::CUSTOMER) {
        remove.push(header::AUTHORIZATION.as_str());
    }
    if let Ok(value) = HeaderValue::from_str(&remove.join(", ")) {
        resp.headers_mut().insert(&ENVOY_HEADERS_TO_REMOVE, value);
    }
    resp
}

/// The headers Computegate sets on the upstream request, in both modes.
pub fn upstream_headers() -> [&'static HeaderName; 6] {
    [
        &header_names::CUSTOMER,
        &header_names::TIER,
        &header_names::ORGANIZATION,
        &header_names::IDENTITY,
        &crate::admission::JOB_HEADER,
        &crate::forward::X_REQUEST_ID,
    ]
}

/// A refusal as nginx can pass it: 401 stays, anything else becomes 403; the real status and
/// the problem document go in headers, the body stays for clients of other proxies.
async fn nginx_refusal(resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, PROBLEM_CAP)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    parts
        .headers
        .insert(&STATUS_HEADER, HeaderValue::from(parts.status.as_u16()));
    if let Ok(value) = HeaderValue::from_str(&ascii_json(&bytes)) {
        parts.headers.insert(&PROBLEM_HEADER, value);
    }
    if parts.status != StatusCode::UNAUTHORIZED {
        parts.status = StatusCode::FORBIDDEN;
    }
    Response::from_parts(parts, ResponseBody::full(bytes))
}

/// `json` re-encoded on one line of visible ASCII (non-ASCII as JSON `\u` escapes), so it fits a
/// header value; the same document to any JSON reader. Not JSON → empty.
pub fn ascii_json(json: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return String::new();
    };
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

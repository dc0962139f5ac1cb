//! Header hygiene between client and upstream: hop-by-hop removal (RFC 9110 §7.6.1), the
//! `X-Forwarded-*` / `Forwarded` set, request ids, and removal of spoofable identity headers.
//!
//! These functions run on every proxied request, so they avoid allocation where the common case
//! allows (no `Connection` tokens, no client-sent `X-Computegate-*` headers).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header carrying the request id both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Prefix of headers the gateway sets for upstreams; clients may not send them (spoofing).
pub const IDENTITY_HEADER_PREFIX: &str = "x-computegate-";

/// `X-Computegate-*` headers a client may legitimately send (job run id).
const CLIENT_ALLOWED_GATEWAY_HEADERS: &[&str] = &["x-computegate-run"];

/// Facts about the client connection needed to write forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct ClientFacts {
    /// Peer IP address.
    pub ip: IpAddr,
    /// `"http"` or `"https"`.
    pub proto: &'static str,
    /// Whether client-sent forwarding headers are trusted (behind a trusted load balancer).
    pub trust_forwarded: bool,
}

// === impl ClientFacts ===

impl ClientFacts {
    /// The address of the client itself: the peer, or — when forwarding headers are trusted —
    /// the last address in `X-Forwarded-For` (else the last `for=` of `Forwarded`), which is
    /// the one the trusted load balancer appended. Earlier entries were written by the client
    /// and prove nothing. Used for login throttling and access records, never for routing.
    pub fn origin_ip(&self, headers: &HeaderMap) -> IpAddr {
        if !self.trust_forwarded {
            return self.ip;
        }
        last_forwarded_for(headers).unwrap_or(self.ip)
    }
}

/// The last parseable address of `X-Forwarded-For`, else of `Forwarded`'s `for=` parameters.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = |name: &HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .map(str::to_owned)
    };
    if let Some(entry) = last(&X_FORWARDED_FOR) {
        return parse_node(entry.trim());
    }
    let element = last(&FORWARDED)?;
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("for"))
        .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
}

/// `1.2.3.4`, `1.2.3.4:56`, `::1`, `[::1]` or `[::1]:56` → the address.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
}

/// What the request carried that survives hop-by-hop removal in a special way.
#[derive(Debug, Default)]
pub struct HopInfo {
    /// The `Upgrade` header of an HTTP/1.1 upgrade request (websocket), kept for the upstream.
    pub upgrade: Option<HeaderValue>,
    /// The client sent `TE: trailers`; forwarded so the upstream may answer with trailers.
    pub te_trailers: bool,
}

/// Removes hop-by-hop headers (standard ones and those named in `Connection`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> HopInfo {
    let mut info = HopInfo::default();
    // Common case: none of them is present. One pass over the (few) names is cheaper than
    // hashing every hop-by-hop name for a `remove` that finds nothing.
    if !headers.keys().any(is_hop_by_hop) {
        return info;
    }
    let mut wants_upgrade = false;
    let upgrade = headers.remove(header::UPGRADE);
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if name == header::UPGRADE {
                wants_upgrade = true;
            }
            headers.remove(&name);
        }
        headers.remove(header::CONNECTION);
    }
    if let Some(te) = headers.remove(header::TE) {
        info.te_trailers = te.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    }
    if wants_upgrade {
        info.upgrade = upgrade;
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    info
}

/// Prepares a client request's headers for the upstream.
pub fn prepare_request_headers(headers: &mut HeaderMap, client: &ClientFacts) -> HopInfo {
    let info = strip_hop_by_hop(headers);
    // `Expect: 100-continue` was answered by our server side when the body was first polled.
    if headers.contains_key(header::EXPECT) {
        headers.remove(header::EXPECT);
    }
    strip_identity_headers(headers);
    if let Some(upgrade) = &info.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade.clone());
    }
    if info.te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    set_forwarding_headers(headers, client);
    info
}

/// Prepares an upstream response's headers for the client. Headers only the gateway may write
/// in an answer — every `X-Computegate-*` (metering, notices) and `Idempotent-Replayed`, in any
/// case or `_`/`-` spelling — are removed, so an upstream cannot fake a threshold notice, a
/// replay marker or an estimate; the gateway adds its own afterwards.
pub fn prepare_response_headers(headers: &mut HeaderMap, upgraded: bool) {
    let info = strip_hop_by_hop(headers);
    strip_gateway_answer_headers(headers);
    if upgraded && let Some(upgrade) = info.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Removes upstream-sent headers whose name normalizes to one the gateway writes in answers.
fn strip_gateway_answer_headers(headers: &mut HeaderMap) {
    let owned = |name: &HeaderName| {
        let n = name.as_str();
        // Fast path: no `_` means the name is already in its normalized (lower-case) form.
        let check = |n: &str| n.starts_with(IDENTITY_HEADER_PREFIX) || n == "idempotent-replayed";
        if n.contains('_') {
            check(&untrusted::normalize(n))
        } else {
            check(n)
        }
    };
    if !headers.keys().any(owned) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| owned(n)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Removes `X-Computegate-*` headers a client must not set.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let is_reserved = |name: &HeaderName| {
        let n = name.as_str();
        n.starts_with(IDENTITY_HEADER_PREFIX) && !CLIENT_ALLOWED_GATEWAY_HEADERS.contains(&n)
    };
    if !headers.keys().any(is_reserved) {
        return;
    }
    let reserved: Vec<HeaderName> = headers.keys().filter(|n| is_reserved(n)).cloned().collect();
    for name in reserved {
        headers.remove(name);
    }
}

fn set_forwarding_headers(headers: &mut HeaderMap, client: &ClientFacts) {
    // The client address is formatted once, on the stack; each header value is then built with
    // a single allocation (the value's own buffer).
    let mut ip_buf = IpText::new();
    let ip = ip_buf.format(client.ip);
    let host = headers.get(header::HOST).cloned();

    let xff = match joined(headers, &X_FORWARDED_FOR).filter(|_| client.trust_forwarded) {
        Some(prev) => header_value(&format!("{prev}, {ip}")),
        None => header_value(ip),
    };
    headers.insert(&X_FORWARDED_FOR, xff);

    if !(client.trust_forwarded && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    }
    if !(client.trust_forwarded && headers.contains_key(&X_FORWARDED_HOST)) {
        match &host {
            Some(h) => headers.insert(&X_FORWARDED_HOST, h.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }

    let host_text = host.as_ref().and_then(|h| h.to_str().ok());
    let prev = joined(headers, &FORWARDED).filter(|_| client.trust_forwarded);
    let mut forwarded = String::with_capacity(
        prev.as_ref().map_or(0, |p| p.len() + 2)
            + ip.len()
            + client.proto.len()
            + host_text.map_or(0, |h| h.len() + 8)
            + 16,
    );
    if let Some(prev) = &prev {
        forwarded.push_str(prev);
        forwarded.push_str(", ");
    }
    forwarded.push_str("for=");
    match client.ip {
        IpAddr::V4(_) => forwarded.push_str(ip),
        IpAddr::V6(_) => {
            forwarded.push_str("\"[");
            forwarded.push_str(ip);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(client.proto);
    if let Some(h) = host_text {
        forwarded.push_str(";host=\"");
        forwarded.extend(h.chars().filter(|c| *c != '"' && *c != '\\'));
        forwarded.push('"');
    }
    headers.insert(&FORWARDED, owned_header_value(forwarded));
}

/// An IP address formatted without allocating (the longest IPv6 text is 45 bytes).
struct IpText {
    buf: [u8; 48],
    len: usize,
}

// === impl IpText ===

impl IpText {
    fn new() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }

    fn format(&mut self, ip: IpAddr) -> &str {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
        // Cannot fail: every IP address's text fits in 48 bytes.
        let _ = write!(cursor, "{ip}");
        self.len = cursor.position() as usize;
        // `Display` of an address writes ASCII only.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// All field lines of a list header joined with `, ` (RFC 9110 §5.3); `None` when absent or
/// not visible ASCII.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?;
        match &mut out {
            Some(s) => {
                s.push_str(", ");
                s.push_str(text);
            }
            None => out = Some(text.to_string()),
        }
    }
    out
}

/// The request id to use: the client's when it is sane, else a new UUIDv7. Its random bits come
/// from `rand`'s thread-local CSPRNG (uuid's `fast-rng` feature), seeded from the OS once per
/// thread rather than with a `getrandom` syscall per request.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::now_v7();
    header_value(id.hyphenated().encode_lower(&mut buf))
}

/// A header value from text built by this module (always visible ASCII).
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// As [`header_value`], taking ownership of the buffer instead of copying it.
fn owned_header_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Whether `name` is a header [`strip_hop_by_hop`] removes or inspects by itself (names listed
/// in `Connection` are only looked at when `Connection` is present).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

pub mod untrusted;

#[cfg(test)]
mod tests;

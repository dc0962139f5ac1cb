//! Headers a client must not be able to hand to an upstream: names that *normalize* to a header
//! the gateway owns, and client-address / URL-override headers that other upstreams trust.
//!
//! Many upstreams (CGI, PHP-FPM, WSGI, some Go and Java servers) fold header names to upper
//! case and `-` to `_`, so `X_Computegate_Tier` reads as `X-Computegate-Tier` there. A name is
//! therefore compared after normalization (ASCII lower case, `_` → `-`): every name that
//! normalizes to a reserved identity header, to a forwarding header the gateway writes itself,
//! or to a configured client-address header is removed. The client's address then goes into
//! `X-Real-IP` (when configured), so an upstream that reads it sees what the gateway saw.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};

use super::IDENTITY_HEADER_PREFIX;

/// The client-address and URL-override headers removed by default (`server.client_ip_headers`).
pub const DEFAULT_CLIENT_IP_HEADERS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-port",
];

/// `X-Computegate-*` names a client may send exactly as written (the job run id).
const CLIENT_ALLOWED: &[&str] = &["x-computegate-run"];

/// Forwarding headers the gateway writes itself: a client's spelling variant (`X_Forwarded_For`)
/// would sit next to the gateway's value, so variants go.
const GATEWAY_WRITTEN: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
];

static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What to remove from, and add to, a request bound upstream; built once from configuration.
#[derive(Debug, Clone)]
pub struct UntrustedHeaders {
    /// Normalized names of client-address headers to remove.
    client_ip: Vec<String>,
    /// Whether `X-Real-IP` is set to the client address after removal.
    set_real_ip: bool,
}

// === impl UntrustedHeaders ===

impl UntrustedHeaders {
    /// Removes every name in `client_ip` (any case or `_`/`-` spelling); with `set_real_ip`,
    /// writes the client address into `X-Real-IP`.
    pub fn new<S: AsRef<str>>(client_ip: &[S], set_real_ip: bool) -> Self {
        Self {
            client_ip: client_ip.iter().map(|n| normalize(n.as_ref())).collect(),
            set_real_ip,
        }
    }

    /// Applies the rules to a request's headers (after hop-by-hop removal).
    pub fn apply(&self, headers: &mut HeaderMap, client: IpAddr) {
        // Common case: nothing to remove; one pass over the names, no allocation.
        if headers.keys().any(|n| self.is_untrusted(n.as_str())) {
            let doomed: Vec<HeaderName> = headers
                .keys()
                .filter(|n| self.is_untrusted(n.as_str()))
                .cloned()
                .collect();
            for name in doomed {
                headers.remove(name);
            }
        }
        if self.set_real_ip {
            let mut buf = super::IpText::new();
            headers.insert(&X_REAL_IP, super::header_value(buf.format(client)));
        }
    }

    /// Whether a client-sent header `name` (lower case, as `http` stores it) must go.
    fn is_untrusted(&self, name: &str) -> bool {
        if !name.contains('_') {
            // Exact spellings of gateway-written headers are replaced by the forwarding step.
            return (name.starts_with(IDENTITY_HEADER_PREFIX) && !CLIENT_ALLOWED.contains(&name))
                || self.client_ip.iter().any(|c| c == name);
        }
        let normalized = normalize(name);
        normalized.starts_with(IDENTITY_HEADER_PREFIX)
            || GATEWAY_WRITTEN.contains(&normalized.as_str())
            || self.client_ip.contains(&normalized)
    }
}

impl Default for UntrustedHeaders {
    fn default() -> Self {
        Self::new(DEFAULT_CLIENT_IP_HEADERS, true)
    }
}

/// ASCII lower case with `_` read as `-`: how CGI-style servers compare header names.
pub fn normalize(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            other => char::from(other.to_ascii_lowercase()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for n in names {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        h
    }

    #[test]
    fn spelling_variants_of_reserved_names_are_removed() {
        let mut h = headers(&[
            "X_Computegate_Tier",
            "x-computegate_customer",
            "X_COMPUTEGATE_RUN",
            "x-computegate-run",
            "X_Forwarded_For",
            "x_request_id",
            "accept",
            "x_custom_thing",
        ]);
        UntrustedHeaders::default().apply(&mut h, "192.0.2.1".parse().unwrap());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["accept", "x-computegate-run", "x-real-ip", "x_custom_thing"]
        );
    }

    #[test]
    fn client_address_headers_are_replaced_or_removed() {
        let mut h = headers(&[
            "X-Real-IP",
            "true-client-ip",
            "CF_Connecting_IP",
            "x-original-url",
            "X-Rewrite-URL",
            "x-forwarded-port",
        ]);
        UntrustedHeaders::default().apply(&mut h, "192.0.2.9".parse().unwrap());
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-real-ip"], "192.0.2.9");
    }

    #[test]
    fn the_list_is_configurable() {
        let mut h = headers(&["x-real-ip", "true-client-ip", "x-custom-ip"]);
        UntrustedHeaders::new(&["X-Custom-IP"], false).apply(&mut h, "192.0.2.1".parse().unwrap());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["true-client-ip", "x-real-ip"]);
        assert_eq!(h["x-real-ip"], "spoofed", "not replaced when not asked to");
    }
}

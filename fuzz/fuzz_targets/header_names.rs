//! Fuzzes the removal of client headers that an upstream could read as the gateway's own:
//! names that normalize (ASCII case, `_` ↔ `-`) to a reserved identity header, to a forwarding
//! header the gateway writes, or to a client-address header. For any set of header names, no
//! name that normalizes to a reserved one survives — except the exact spellings of the
//! forwarding headers the gateway writes (`Forwarded`, `X-Forwarded-For`, …), which the forwarding
//! step that runs next replaces — ordinary names do, and `X-Real-IP` ends up holding exactly the
//! client address.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use computegate_gateway::forward::untrusted::{UntrustedHeaders, normalize};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Written by the forwarding step after this one, which replaces a client's exact spelling.
const REPLACED_NEXT: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
];

const RESERVED_EXACT: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-port",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for name in data.split(|b| *b == b'\n').take(64) {
        if let Ok(name) = HeaderName::from_bytes(name) {
            headers.append(name, HeaderValue::from_static("spoofed"));
        }
    }
    let before: Vec<HeaderName> = headers.keys().cloned().collect();
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    UntrustedHeaders::default().apply(&mut headers, client);
    for name in headers.keys() {
        let n = normalize(name.as_str());
        if name.as_str() == "x-real-ip"
            || name.as_str() == "x-computegate-run"
            || REPLACED_NEXT.contains(&name.as_str())
        {
            continue;
        }
        assert!(
            !n.starts_with("x-computegate-") && !RESERVED_EXACT.contains(&n.as_str()),
            "{name} survived"
        );
    }
    for name in before {
        let n = normalize(name.as_str());
        let reserved = n.starts_with("x-computegate-") || RESERVED_EXACT.contains(&n.as_str());
        if !reserved {
            assert!(headers.contains_key(&name), "ordinary header {name} was removed");
        }
    }
    let real_ip: Vec<_> = headers.get_all("x-real-ip").iter().collect();
    assert_eq!(real_ip, [HeaderValue::from_static("192.0.2.7")]);
});

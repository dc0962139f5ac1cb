use super::*;

fn facts(trust: bool) -> ClientFacts {
    ClientFacts {
        ip: "192.0.2.7".parse().unwrap(),
        proto: "http",
        trust_forwarded: trust,
    }
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn removes_standard_and_connection_named_hop_by_hop_headers() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret-Hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic x"),
        ("trailer", "x-checksum"),
        ("accept", "*/*"),
    ]);
    let info = prepare_request_headers(&mut h, &facts(false));
    for gone in [
        "connection",
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
    ] {
        assert!(!h.contains_key(gone), "{gone} should be removed");
    }
    assert!(info.upgrade.is_none());
    assert_eq!(h["accept"], "*/*");
    assert_eq!(h["trailer"], "x-checksum", "Trailer is end-to-end");
}

#[test]
fn keeps_upgrade_when_connection_asks_for_it() {
    let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
    let info = prepare_request_headers(&mut h, &facts(false));
    assert_eq!(info.upgrade.as_ref().unwrap(), "websocket");
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["upgrade"], "websocket");
}

#[test]
fn te_trailers_survives() {
    let mut h = map(&[("te", "trailers, deflate")]);
    let info = prepare_request_headers(&mut h, &facts(false));
    assert!(info.te_trailers);
    assert_eq!(h["te"], "trailers");
}

#[test]
fn untrusted_forwarding_headers_are_replaced() {
    let mut h = map(&[
        ("host", "api.example.com:8080"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=10.0.0.1"),
    ]);
    prepare_request_headers(&mut h, &facts(false));
    assert_eq!(h["x-forwarded-for"], "192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example.com:8080");
    assert_eq!(
        h["forwarded"],
        "for=192.0.2.7;proto=http;host=\"api.example.com:8080\""
    );
}

#[test]
fn trusted_forwarding_headers_are_appended() {
    let mut h = map(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("forwarded", "for=10.0.0.1"),
    ]);
    prepare_request_headers(&mut h, &facts(true));
    assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
    assert_eq!(h["forwarded"], "for=10.0.0.1, for=192.0.2.7;proto=http");
}

#[test]
fn ip_text_matches_display_up_to_the_longest_address() {
    for ip in [
        "192.0.2.7",
        "255.255.255.255",
        "::1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::ffff:255.255.255.255",
        "1234:5678:9abc:def0:1234:5678:255.255.255.255",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(IpText::new().format(ip), ip.to_string());
    }
}

#[test]
fn ipv6_forwarded_is_quoted() {
    let mut h = HeaderMap::new();
    let f = ClientFacts {
        ip: "::1".parse().unwrap(),
        ..facts(false)
    };
    prepare_request_headers(&mut h, &f);
    assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
}

#[test]
fn spoofed_identity_headers_are_removed_but_run_id_kept() {
    let mut h = map(&[
        ("x-computegate-customer", "someone-else"),
        ("X-Computegate-Tier", "validated_end_user"),
        ("x-computegate-run", "run-7"),
    ]);
    prepare_request_headers(&mut h, &facts(false));
    assert!(!h.contains_key("x-computegate-customer"));
    assert!(!h.contains_key("x-computegate-tier"));
    assert_eq!(h["x-computegate-run"], "run-7");
}

#[test]
fn request_id_kept_when_sane_else_generated() {
    let h = map(&[("x-request-id", "abc-123")]);
    assert_eq!(request_id(&h), "abc-123");
    let h = map(&[("x-request-id", "has space")]);
    let id = request_id(&h);
    assert_eq!(id.len(), 36);
    assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
}

#[test]
fn response_hop_by_hop_removed() {
    let mut h = map(&[
        ("connection", "close"),
        ("keep-alive", "x"),
        ("content-type", "a/b"),
    ]);
    prepare_response_headers(&mut h, false);
    assert!(!h.contains_key("connection"));
    assert!(!h.contains_key("keep-alive"));
    assert_eq!(h["content-type"], "a/b");
}

#[test]
fn upstreams_cannot_send_headers_only_the_gateway_writes_in_answers() {
    let mut h = map(&[
        (
            "x-computegate-notice",
            "spoofed; scope=organization; threshold_flop=1",
        ),
        ("X_Computegate_Notice", "spoofed"),
        ("x-computegate-tier", "validated_end_user"),
        ("idempotent-replayed", "true"),
        ("Idempotent_Replayed", "true"),
        ("x-custom", "kept"),
        ("location", "/v1/jobs/7"),
    ]);
    prepare_response_headers(&mut h, false);
    let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["location"], "/v1/jobs/7");
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_connection_tokens(tokens in "[ -~]{0,80}") {
        if let Ok(v) = HeaderValue::from_str(&tokens) {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, v);
            let _ = prepare_request_headers(&mut h, &facts(false));
        }
    }
}

#[test]
fn origin_ip_is_the_peer_unless_forwarding_is_trusted() {
    let h = map(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
    assert_eq!(facts(false).origin_ip(&h), facts(false).ip);
    // The last entry is the one the trusted balancer appended; earlier ones are the client's.
    assert_eq!(
        facts(true).origin_ip(&h),
        "203.0.113.9".parse::<IpAddr>().unwrap()
    );
    let h = map(&[(
        "forwarded",
        "for=198.51.100.1, for=\"[2001:db8::7]:443\";proto=https",
    )]);
    assert_eq!(
        facts(true).origin_ip(&h),
        "2001:db8::7".parse::<IpAddr>().unwrap()
    );
    // Garbage falls back to the peer.
    let h = map(&[("x-forwarded-for", "unknown")]);
    assert_eq!(facts(true).origin_ip(&h), facts(true).ip);
}

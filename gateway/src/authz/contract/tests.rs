use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, HeaderValue::from_str(value).expect("value"));
    }
    h
}

#[test]
fn each_contract_has_its_path_and_nothing_else_is_one() {
    assert_eq!(Contract::of("/nginx", "/envoy"), Some(Contract::Nginx));
    assert_eq!(Contract::of("/traefik", "/envoy"), Some(Contract::Traefik));
    assert_eq!(Contract::of("/envoy", "/envoy"), Some(Contract::Envoy));
    assert_eq!(
        Contract::of("/envoy/v1/jobs", "/envoy"),
        Some(Contract::Envoy)
    );
    for other in ["/", "/nginx/x", "/envoyx/v1", "/v1/jobs", "/traefik/"] {
        assert_eq!(Contract::of(other, "/envoy"), None, "{other}");
    }
}

#[test]
fn envoy_names_the_original_path_after_the_prefix() {
    let target = |uri: &str| {
        let (parts, ()) = Request::post(uri).body(()).expect("request").into_parts();
        envoy_target(&parts, "/envoy").map(|(m, t)| (m, t.as_str().to_owned()))
    };
    let (method, path) = target("/envoy/v1/jobs?x=1").expect("target");
    assert_eq!((method, path.as_str()), (Method::POST, "/v1/jobs?x=1"));
    assert_eq!(target("/envoy").expect("root").1, "/");
    assert_eq!(target("/envoy?a=b").expect("query").1, "/?a=b");
}

#[test]
fn nginx_and_traefik_name_method_and_uri_in_headers_removed_after_reading() {
    let mut h = headers(&[
        ("x-original-method", "DELETE"),
        ("x-original-uri", "/v1/jobs/7?force=1"),
    ]);
    let (m, u) = named_target(&mut h, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI).expect("named");
    assert_eq!((m, u.as_str()), (Method::DELETE, "/v1/jobs/7?force=1"));
    assert!(h.is_empty(), "the contract headers are not the client's");

    for (pairs, missing) in [
        (vec![("x-original-uri", "/v1")], "x-original-method"),
        (vec![("x-original-method", "GET")], "x-original-uri"),
        (
            vec![
                ("x-original-method", "GET"),
                ("x-original-uri", "http://evil/v1"),
            ],
            "a valid original URI (origin form)",
        ),
        (
            vec![("x-original-method", "G E T"), ("x-original-uri", "/v1")],
            "a valid original method",
        ),
    ] {
        let mut h = headers(&pairs);
        match named_target(&mut h, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI) {
            Err(GatewayError::AuthzRequestIncomplete(what)) => assert_eq!(what, missing),
            other => panic!("{pairs:?}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_problem_document_fits_one_ascii_header_value_and_reads_back_the_same() {
    let doc = serde_json::json!({
        "type": "https://computegate.dev/problems/tier-denied",
        "status": 403,
        "detail": "Zürich 🚀 \"quoted\"\nnext line",
    });
    let text = ascii_json(doc.to_string().as_bytes());
    assert!(HeaderValue::from_str(&text).is_ok(), "{text}");
    assert!(
        text.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "{text}"
    );
    let back: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
    assert_eq!(back, doc);
    assert_eq!(ascii_json(b"not json"), "");
}

proptest::proptest! {
    /// Any text in a problem document (details echo client input: a route, a header name)
    /// fits one header value and reads back as the same document.
    #[test]
    fn any_problem_text_fits_a_header(detail in ".*", extra in proptest::collection::vec(proptest::char::any(), 0..8)) {
        let doc = serde_json::json!({"detail": detail, "extra": extra.iter().collect::<String>()});
        let text = ascii_json(doc.to_string().as_bytes());
        proptest::prop_assert!(HeaderValue::from_str(&text).is_ok());
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        proptest::prop_assert_eq!(back, doc);
    }
}

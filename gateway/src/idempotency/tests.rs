use http_body_util::BodyExt;

use super::*;

fn key(value: &str) -> Result<IdempotencyKey, KeyError> {
    IdempotencyKey::parse(value.as_bytes())
}

fn answer(body: Option<&'static str>) -> StoredAnswer {
    StoredAnswer {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/v1/jobs/j-1".into()),
        ],
        body: body.map(|b| Bytes::from_static(b.as_bytes())),
    }
}

async fn body_of(resp: Response<ResponseBody>) -> Bytes {
    resp.into_body().collect().await.expect("body").to_bytes()
}

#[test]
fn keys_are_one_to_255_visible_ascii_characters() {
    assert_eq!(key("retry-1").unwrap().as_str(), "retry-1");
    assert_eq!(key(&"k".repeat(255)).unwrap().as_str().len(), 255);
    let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
    assert_eq!(key(uuid).unwrap().as_str(), uuid);
    assert_eq!(
        key(&format!("\"{uuid}\"")).unwrap(),
        key(uuid).unwrap(),
        "the draft's quoted string names the same key"
    );
    assert_eq!(key(""), Err(KeyError::Empty));
    assert_eq!(key("\"\""), Err(KeyError::Empty));
    assert_eq!(key(&"k".repeat(256)), Err(KeyError::TooLong));
    for bad in [
        "with space",
        "tab\tkey",
        "\"unterminated",
        "back\\slash",
        "é",
        "a\"b",
    ] {
        assert_eq!(key(bad), Err(KeyError::NotVisibleAscii), "{bad:?}");
    }
}

#[test]
fn the_header_is_optional_and_single() {
    let mut headers = HeaderMap::new();
    assert_eq!(IdempotencyKey::from_headers(&headers), Ok(None));
    headers.append(&IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
    assert_eq!(
        IdempotencyKey::from_headers(&headers).unwrap(),
        Some(key("a").unwrap())
    );
    headers.append(&IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
    assert_eq!(
        IdempotencyKey::from_headers(&headers),
        Err(KeyError::Repeated)
    );
}

/// The fingerprint of a request without job headers.
fn fp(method: &Method, target: &str, body: &[u8]) -> String {
    fingerprint(method, target, body, &HeaderMap::new(), &[])
}

#[test]
fn the_fingerprint_covers_the_job_headers_sent() {
    let run = HeaderName::from_static("x-computegate-run");
    let end_customer = HeaderName::from_static("x-computegate-end-customer");
    let names = [&run, &end_customer];
    let with = |pairs: &[(&HeaderName, &'static str)]| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append((*name).clone(), HeaderValue::from_static(value));
        }
        fingerprint(&Method::POST, "/v1/jobs", b"{}", &headers, &names)
    };
    let plain = fp(&Method::POST, "/v1/jobs", b"{}");
    assert_eq!(with(&[]), plain, "no job header: as before");
    let other = HeaderName::from_static("x-other");
    let mut unrelated = HeaderMap::new();
    unrelated.insert(other, HeaderValue::from_static("a"));
    assert_eq!(
        fingerprint(&Method::POST, "/v1/jobs", b"{}", &unrelated, &names),
        plain,
        "other headers do not count"
    );
    let alice = with(&[(&end_customer, "alice")]);
    assert_ne!(alice, plain);
    assert_ne!(
        alice,
        with(&[(&end_customer, "bob")]),
        "another end customer"
    );
    assert_ne!(alice, with(&[(&run, "alice")]), "the header's name counts");
    assert_eq!(alice, with(&[(&end_customer, "alice")]));
}

#[test]
fn the_fingerprint_covers_method_target_and_body() {
    let base = fp(&Method::POST, "/v1/jobs", b"{\"gpu_count\":1}");
    assert_eq!(base.len(), 64);
    assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(base, fp(&Method::POST, "/v1/jobs", b"{\"gpu_count\":1}"));
    assert_ne!(base, fp(&Method::POST, "/v1/jobs", b"{\"gpu_count\":2}"));
    assert_ne!(base, fp(&Method::PUT, "/v1/jobs", b"{\"gpu_count\":1}"));
    assert_ne!(base, fp(&Method::POST, "/v1/jobs?x", b"{\"gpu_count\":1}"));
    // Parts are length-prefixed: moving bytes between target and body changes it.
    assert_ne!(fp(&Method::POST, "/a", b"b"), fp(&Method::POST, "/", b"ab"));
}

#[test]
fn a_stored_key_replays_waits_or_refuses() {
    let stored = |answer| StoredKey {
        fingerprint: "f1".into(),
        answer,
    };
    assert_eq!(
        judge(stored(Some(answer(None))), "f1"),
        Judgement::Replay(answer(None))
    );
    assert_eq!(judge(stored(None), "f1"), Judgement::InFlight);
    assert_eq!(judge(stored(Some(answer(None))), "f2"), Judgement::Reused);
    assert_eq!(judge(stored(None), "f2"), Judgement::Reused);
}

#[tokio::test]
async fn a_replay_is_the_stored_answer_marked_replayed() {
    let resp = replay(answer(Some("{\"id\":\"j-1\"}")));
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()[&IDEMPOTENT_REPLAYED], "true");
    assert_eq!(resp.headers()[header::LOCATION], "/v1/jobs/j-1");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert!(!resp.headers().contains_key(&REPLAY_BODY));
    assert_eq!(body_of(resp).await, "{\"id\":\"j-1\"}");

    let resp = replay(answer(None));
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()[&REPLAY_BODY], "omitted");
    assert_eq!(resp.headers()[header::LOCATION], "/v1/jobs/j-1");
    assert!(
        !resp.headers().contains_key(header::CONTENT_TYPE),
        "no body, no type"
    );
    assert!(body_of(resp).await.is_empty());
}

fn upstream_answer(body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = StatusCode::CREATED;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("session=secret"),
    );
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static("9"));
    resp
}

fn content_type_only(name: &HeaderName) -> bool {
    name == header::CONTENT_TYPE
}

#[tokio::test]
async fn the_kept_answer_has_the_chosen_headers_and_a_capped_body() {
    let (resp, kept) = keep(
        upstream_answer("{\"id\":\"j-1\"}".into()),
        content_type_only,
    )
    .await;
    assert_eq!(kept.status, 201);
    assert_eq!(
        kept.headers,
        vec![("content-type".to_string(), "application/json".to_string())]
    );
    assert_eq!(kept.body.as_deref(), Some(&b"{\"id\":\"j-1\"}"[..]));
    assert_eq!(
        body_of(resp).await,
        "{\"id\":\"j-1\"}",
        "the client's body is intact"
    );

    let big = "x".repeat(ANSWER_BODY_CAP + 1);
    let (resp, kept) = keep(upstream_answer(big.clone()), content_type_only).await;
    assert_eq!(kept.status, 201);
    assert_eq!(kept.body, None, "too large to keep");
    assert_eq!(body_of(resp).await, big, "forwarded whole");
}

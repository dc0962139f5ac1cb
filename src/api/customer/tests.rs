//! Router tests of the customer account API: sign-up, logout, `me`, API keys, JWKS, the
//! fallback and the 405 problem; each route's happy path and its refusals.

use http::{Method, header};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::test_support::{Api, Call, PASSWORD, bad_credentials, get, post};

#[tokio::test]
async fn signup_creates_an_account_and_refuses_bad_or_taken_input() {
    let api = Api::start().await;
    let body = json!({"email": "new@router.example", "password": PASSWORD, "kind": "individual"});
    let created = api
        .customer(post("/computegate/v1/auth/signup").json(&body))
        .await;
    assert!(created.ok(201)["customer_id"].is_string());
    api.customer(post("/computegate/v1/auth/signup").json(&body))
        .await
        .problem(409, "conflict");
    let bad = json!({"email": "nope", "password": "short", "kind": "robot"});
    let answer = api
        .customer(post("/computegate/v1/auth/signup").json(&bad))
        .await;
    let doc = answer.problem(422, "invalid-request");
    let fields: Vec<&str> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["kind", "password", "email"], "{doc}");
    api.customer(post("/computegate/v1/auth/signup").raw("text/plain", b"hi".to_vec()))
        .await
        .problem(400, "malformed-body");
}

#[tokio::test]
async fn me_answers_the_callers_record_and_refuses_bad_credentials() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let me = api
        .customer(get("/computegate/v1/me").bearer(&c.token))
        .await;
    let body = me.ok(200);
    assert_eq!(body["customer_id"], c.id.to_string());
    assert_eq!(body["tier"], "unverified");
    let key = api.api_key(&c).await;
    let by_key = api.customer(get("/computegate/v1/me").bearer(&key)).await;
    assert_eq!(by_key.ok(200)["customer_id"], c.id.to_string());
    for (token, what) in bad_credentials() {
        let call = get("/computegate/v1/me");
        let call = match token {
            Some(t) => call.bearer(t),
            None => call,
        };
        let answer = api.customer(call).await;
        answer.problem(401, "unauthenticated");
        // RFC 6750 §3.1: `error=` only when a credential was sent.
        let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        let expected = match token {
            None => "Bearer realm=\"computegate\"",
            Some(_) => "Bearer realm=\"computegate\", error=\"invalid_token\"",
        };
        assert_eq!(challenge, expected, "{what}");
    }
}

#[tokio::test]
async fn logout_revokes_the_token_and_needs_a_session() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let key = api.api_key(&c).await;
    api.customer(post("/computegate/v1/auth/logout").bearer(&key))
        .await
        .problem(403, "forbidden");
    api.customer(post("/computegate/v1/auth/logout"))
        .await
        .problem(401, "unauthenticated");
    let body = json!({"refresh_token": c.refresh});
    let out = api
        .customer(
            post("/computegate/v1/auth/logout")
                .bearer(&c.token)
                .json(&body),
        )
        .await;
    out.ok(204);
    api.customer(get("/computegate/v1/me").bearer(&c.token))
        .await
        .problem(401, "unauthenticated");
    api.customer(post("/computegate/v1/auth/refresh").json(&body))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_by_a_session_only() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let new = json!({"name": "ci", "scopes": ["read"]});
    let created = api
        .customer(post("/computegate/v1/keys").bearer(&c.token).json(&new))
        .await;
    let body = created.ok(201);
    assert!(created.no_store(), "{created:?}");
    let (id, secret) = (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    );
    // A key may not mint keys, and a bad body or name is refused.
    api.customer(post("/computegate/v1/keys").bearer(&secret).json(&new))
        .await
        .problem(403, "forbidden");
    api.customer(post("/computegate/v1/keys").json(&new))
        .await
        .problem(401, "unauthenticated");
    api.customer(
        post("/computegate/v1/keys")
            .bearer(&c.token)
            .json(&json!({"name": ""})),
    )
    .await
    .problem(422, "invalid-request");
    api.customer(
        post("/computegate/v1/keys")
            .bearer(&c.token)
            .json(&json!({"nom": "x"})),
    )
    .await
    .problem(400, "malformed-body");
    // Scopes are named from the defined set: an empty or unknown list is refused.
    for scopes in [json!([]), json!(["keys"])] {
        api.customer(
            post("/computegate/v1/keys")
                .bearer(&c.token)
                .json(&json!({"name": "x", "scopes": scopes})),
        )
        .await
        .problem(422, "invalid-request");
    }

    // Keys are listed with a session only, never with an API key.
    api.customer(get("/computegate/v1/keys").bearer(&secret))
        .await
        .problem(403, "forbidden");
    let list = api
        .customer(get("/computegate/v1/keys").bearer(&c.token))
        .await;
    let keys = list.ok(200)["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["scopes"], json!(["read"]));
    assert!(!String::from_utf8_lossy(&list.bytes).contains(&secret));
    api.customer(get("/computegate/v1/keys"))
        .await
        .problem(401, "unauthenticated");

    let path = format!("/computegate/v1/keys/{id}");
    api.customer(Call::new(Method::DELETE, &path).bearer(&secret))
        .await
        .problem(403, "forbidden");
    api.customer(Call::new(Method::DELETE, &path))
        .await
        .problem(401, "unauthenticated");
    api.customer(Call::new(Method::DELETE, &path).bearer(&c.token))
        .await
        .ok(204);
    api.customer(get("/computegate/v1/me").bearer(&secret))
        .await
        .problem(401, "unauthenticated");
    let unknown = "/computegate/v1/keys/cg_0000000000000000";
    api.customer(Call::new(Method::DELETE, unknown).bearer(&c.token))
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn keys_page_with_a_cursor_and_times_are_rfc_3339() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    for name in ["a", "b", "c"] {
        let new = json!({"name": name, "expires_at": "2099-01-02T03:04:05Z"});
        api.customer(post("/computegate/v1/keys").bearer(&c.token).json(&new))
            .await
            .ok(201);
    }
    let mut names = Vec::new();
    let mut path = "/computegate/v1/keys?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let answer = api.customer(get(&path).bearer(&c.token)).await;
        let body = answer.ok(200).clone();
        pages += 1;
        for key in body["keys"].as_array().unwrap() {
            names.push(key["name"].as_str().unwrap().to_owned());
            let created = key["created_at"].as_str().expect("a string");
            OffsetDateTime::parse(created, &Rfc3339).expect("RFC 3339");
            assert_eq!(key["expires_at"], "2099-01-02T03:04:05Z");
        }
        match body["next"].as_str() {
            Some(next) => path = format!("/computegate/v1/keys?limit=2&cursor={next}"),
            None => break,
        }
    }
    // Two pages (2 + 1): the last has `next: null`, and every key shows once, newest first.
    assert_eq!(pages, 2);
    assert_eq!(names, ["c", "b", "a"]);
    let me = api
        .customer(get("/computegate/v1/me").bearer(&c.token))
        .await;
    let created = me.ok(200)["created_at"].as_str().expect("a string");
    OffsetDateTime::parse(created, &Rfc3339).expect("RFC 3339");

    let bad = api
        .customer(get("/computegate/v1/keys?cursor=bm9wZQ").bearer(&c.token))
        .await;
    bad.problem(400, "bad-cursor");
    let too_many = api
        .customer(get("/computegate/v1/keys?limit=501").bearer(&c.token))
        .await;
    assert_eq!(
        too_many.problem(422, "invalid-request")["errors"][0]["field"],
        "limit"
    );
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let api = Api::start().await;
    let answer = api.customer(get("/.well-known/jwks.json")).await;
    let keys = answer.ok(200)["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(
        answer.headers.get(header::CACHE_CONTROL).unwrap(),
        "public, max-age=60"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problem_documents() {
    let api = Api::start().await;
    api.customer(get("/computegate/v1/nothing-here"))
        .await
        .problem(404, "not-found");
    api.staff(get("/staff/v1/nothing-here"))
        .await
        .problem(404, "not-found");
    let answer = api.customer(get("/computegate/v1/auth/token")).await;
    answer.problem(405, "method-not-allowed");
    assert_eq!(answer.headers.get(header::ALLOW).unwrap(), "POST");
}

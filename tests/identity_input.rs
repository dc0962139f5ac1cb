//! Black-box tests of hostile and malformed input to identity: bearer credentials of every
//! wrong shape (oversized, `alg: none`, HS256 keyed with the public key, unknown `kid`, forged
//! signature, expired, wrong audience or issuer), hostile JSON bodies on sign-up and login, and
//! ten thousand failed logins. Everything must be the right 4xx — never a 5xx.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use http::Request;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use support::identity::{
    IdGateway, Setup, counter, expect_invalid_token, expect_unauthenticated, jwks, login, me,
    metrics, new_account, proxied, refresh, token, tokens_of,
};
use support::raw::h1_exchange;
use support::{Sim, TEST_TIMEOUT, assert_problem_parts, client, expect_problem, within};

/// Claims an attacker would want accepted.
fn forged_claims(sub: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": "computegate", "aud": "computegate-api", "sub": sub, "tier": "validated_end_user",
        "status": "active", "iat": now, "nbf": now, "exp": now + 600, "jti": "forged",
    })
}

/// A random Ed25519 key as jsonwebtoken wants it.
fn random_ed25519() -> EncodingKey {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key.to_pkcs8_der().expect("PKCS#8");
    EncodingKey::from_ed_der(der.as_bytes())
}

/// `header.payload.` with no signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(header), part(claims))
}

/// Sends `bearer` to `/me` and to the proxied route; both must be 401 `invalid_token`.
async fn refused_everywhere(http: &reqwest::Client, gw: &IdGateway, bearer: &str, what: &str) {
    expect_invalid_token(me(http, gw, bearer).await, &format!("{what} on /me")).await;
    expect_invalid_token(proxied(http, gw, bearer).await, &format!("{what} proxied")).await;
}

#[tokio::test]
async fn malformed_and_forged_bearer_tokens_are_refused() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let real = login(&http, &gw, &account).await.access;
        let set = jwks(&http, &gw).await;
        let kid = set["keys"][0]["kid"].as_str().unwrap().to_owned();
        let x = URL_SAFE_NO_PAD
            .decode(set["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let claims = forged_claims(&account.customer_id);

        let none = unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &claims);
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(kid.clone());
        let hs256 = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&x)).unwrap();
        let mut ed = Header::new(Algorithm::EdDSA);
        ed.kid = Some("no-such-kid".into());
        let unknown_kid = jsonwebtoken::encode(&ed, &claims, &random_ed25519()).unwrap();
        ed.kid = Some(kid.clone());
        let wrong_signer = jsonwebtoken::encode(&ed, &claims, &random_ed25519()).unwrap();
        ed.kid = None;
        let no_kid = jsonwebtoken::encode(&ed, &claims, &random_ed25519()).unwrap();
        let mut parts: Vec<&str> = real.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts[1] = &payload;
        let tampered = parts.join(".");

        let cases = [
            ("alg none", none),
            ("HS256 keyed with the public key", hs256),
            ("unknown kid", unknown_kid),
            ("known kid, foreign signature", wrong_signer),
            ("no kid", no_kid),
            ("tampered payload", tampered),
            ("three dots", "a.b.c".into()),
            ("empty parts", "..".into()),
            ("not base64", "eyJ!.eyJ!.sig".into()),
            ("truncated", real[..real.len() / 2].to_owned()),
            ("two tokens", format!("{real} {real}")),
            ("9 KB", "a".repeat(9 * 1024)),
            (
                "9 KB JWT-shaped",
                format!(
                    "{}.{}.{}",
                    "a".repeat(3000),
                    "b".repeat(3000),
                    "c".repeat(3000)
                ),
            ),
        ];
        for (what, bearer) in &cases {
            refused_everywhere(&http, &gw, bearer, what).await;
        }
        // Many unknown kids in a row (each may trigger a key reload) stay 401, never 503.
        for _ in 0..20 {
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some(uuid::Uuid::new_v4().to_string());
            let t = jsonwebtoken::encode(&h, &claims, &random_ed25519()).unwrap();
            expect_invalid_token(proxied(&http, &gw, &t).await, "burst of unknown kids").await;
        }

        // Another scheme, or a token with no scheme, is no bearer credential: the bare
        // challenge (RFC 6750 §3.1: no error code when the client used another method), on the
        // data plane and on the customer API alike.
        for value in ["Basic YWxpY2U6cHc=", "Token abc", real.as_str()] {
            for path in ["/v1/echo", "/computegate/v1/me"] {
                let resp = http
                    .get(gw.url(path))
                    .header("authorization", value)
                    .send()
                    .await
                    .unwrap();
                let challenge = resp.headers().get("www-authenticate").cloned();
                expect_unauthenticated(resp, &format!("{path} authorization {value:?}")).await;
                assert_eq!(
                    challenge.as_ref().and_then(|v| v.to_str().ok()),
                    Some("Bearer realm=\"computegate\""),
                    "{path} authorization {value:?}"
                );
            }
        }
        // The Bearer scheme with nothing after it is a refused credential.
        for value in ["Bearer", "Bearer    "] {
            let resp = http
                .get(gw.url("/v1/echo"))
                .header("authorization", value)
                .send()
                .await;
            expect_invalid_token(resp.unwrap(), &format!("authorization {value:?}")).await;
        }
        let resp = http.get(gw.url("/v1/echo")).send().await.unwrap();
        expect_unauthenticated(resp, "no credential").await;
        // Non-ASCII bytes in the header value (obs-text) are refused, not a 500.
        let value = http::HeaderValue::from_bytes(b"Bearer \xff\xfe\x80abc").unwrap();
        for path in ["/v1/echo", "/computegate/v1/me"] {
            let req = Request::get(path)
                .header("host", gw.public.to_string())
                .header("authorization", value.clone())
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = h1_exchange(gw.public, req).await;
            assert_eq!(resp.head.status, 401, "{path}: {:?}", resp.body);
            let doc: Value = serde_json::from_slice(&resp.body).expect("problem JSON");
            assert_problem_parts(&resp.head.headers, &doc, 401, "unauthenticated");
        }
        // The real token still works: nothing above poisoned a cache.
        assert_eq!(proxied(&http, &gw, &real).await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn expired_access_token_is_refused_and_refresh_still_works() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let setup = Setup::auth("access_token_ttl = \"10s\"\nleeway = \"0s\"");
        let gw = IdGateway::start(sim.addr, &setup).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        // Used (and so cached) while valid.
        assert_eq!(proxied(&http, &gw, &tokens.access).await.status(), 200);
        assert_eq!(me(&http, &gw, &tokens.access).await.status(), 200);
        let exp = support::identity::claims_unverified(&tokens.access)["exp"]
            .as_i64()
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        tokio::time::sleep(Duration::from_secs((exp - now + 1).max(0) as u64)).await;
        refused_everywhere(&http, &gw, &tokens.access, "expired token").await;
        let fresh = tokens_of(refresh(&http, &gw, &tokens.refresh).await).await;
        assert_eq!(proxied(&http, &gw, &fresh.access).await.status(), 200);
    })
    .await;
}

/// Staff tokens (audience `computegate-staff`) and tokens of another issuer, signed with the
/// very same keys, are refused on customer routes.
#[tokio::test]
async fn wrong_audience_and_wrong_issuer_are_refused() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let a = IdGateway::start(sim.addr, &Setup::default()).await;
        // B shares A's store and master key (so its signing keys) but has another issuer.
        let url = format!("sqlite://{}?mode=rwc", a.sqlite_path().display());
        let setup = Setup {
            auth: "issuer = \"someone-else\"".into(),
            database_url: Some(url),
            ..Setup::default()
        };
        let b = IdGateway::start_with_key(sim.addr, &setup, a.master_key.clone()).await;
        let http = client();
        let account = new_account(&http, &a).await;
        let from_b = login(&http, &b, &account).await.access;
        let b_kid = jsonwebtoken::decode_header(&from_b).unwrap().kid;
        let a_kid = jsonwebtoken::decode_header(&login(&http, &a, &account).await.access)
            .unwrap()
            .kid;
        assert_eq!(a_kid, b_kid, "both sign with the shared key");
        refused_everywhere(&http, &a, &from_b, "token of another issuer").await;

        let staff_email = support::identity::unique_email("staff");
        let out = support::run_cli_with_stdin(
            &[
                "staff".as_ref(),
                "create".as_ref(),
                "--email".as_ref(),
                staff_email.as_ref(),
                "--role".as_ref(),
                "reviewer".as_ref(),
                "--password-stdin".as_ref(),
                "--config".as_ref(),
                a.config_path().as_os_str(),
            ],
            &a.env(),
            b"staff password 12345\n",
        );
        assert!(out.status.success(), "staff create: {out:?}");
        let resp = http
            .post(a.admin_url("/staff/v1/auth/token"))
            .json(&json!({"email": staff_email, "password": "staff password 12345"}))
            .send()
            .await
            .unwrap();
        let staff = tokens_of(resp).await.access;
        refused_everywhere(&http, &a, &staff, "staff token").await;
    })
    .await;
}

const SIGNUP: &str = "/computegate/v1/auth/signup";
const LOGIN: &str = "/computegate/v1/auth/token";
const JSON: &str = "application/json";

/// Bodies that are not the JSON an endpoint takes: invalid UTF-8, unknown fields, empty, wrong
/// types, truncated, wrong content type.
const MALFORMED: &[(&str, &str, &[u8])] = &[
    (
        SIGNUP,
        JSON,
        b"{\"email\":\"\xff\xfe@x.io\",\"password\":\"pass word 1234\",\"kind\":\"individual\"}",
    ),
    (
        LOGIN,
        JSON,
        b"{\"email\":\"a@b.c\",\"password\":\"\xc3\x28\xa0\xa1 pass word 12\"}",
    ),
    (
        SIGNUP,
        JSON,
        br#"{"email":"u@x.io","password":"pass word 1234","kind":"individual","role":"admin"}"#,
    ),
    (
        LOGIN,
        JSON,
        br#"{"email":"u@x.io","password":"pw","grant_type":"password"}"#,
    ),
    (SIGNUP, JSON, b""),
    (LOGIN, JSON, b""),
    (LOGIN, JSON, b"null"),
    (LOGIN, JSON, b"[]"),
    (LOGIN, JSON, br#"{"email":"u@x.io"}"#),
    (LOGIN, JSON, br#"{"email":1,"password":true}"#),
    (LOGIN, JSON, b"{\"email\":\"u@x.io\",\"password\":\"p\0w\""),
    (
        LOGIN,
        "text/plain",
        br#"{"email":"u@x.io","password":"pw"}"#,
    ),
    ("/computegate/v1/auth/refresh", JSON, b"{}"),
];

/// `POST path` with `content_type` and `body`.
async fn post(
    http: &reqwest::Client,
    gw: &IdGateway,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let req = http.post(gw.url(path)).header("content-type", content_type);
    req.body(body).send().await.expect("send")
}

#[tokio::test]
async fn sql_metacharacters_are_data() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        // The odd address signs up and logs in; injection attempts log nobody in.
        let sqlish = "robert');DROP_TABLE_customers;--'or'1'='1@example.com";
        let pw = "' OR '1'='1'; --\"; DROP TABLE customers";
        let body = json!({"email": sqlish, "password": pw, "kind": "individual"});
        let resp = post(&http, &gw, SIGNUP, JSON, body.to_string().into()).await;
        assert_eq!(resp.status(), 201, "{resp:?}");
        let ok = token(&http, &gw, &sqlish.to_uppercase(), pw).await;
        assert_eq!(ok.status(), 200, "the odd account logs in: {ok:?}");
        for (email, password) in [
            ("' OR '1'='1", "' OR '1'='1"),
            ("x@example.com' --", "anything at all"),
            (sqlish, "' OR 1=1 --"),
            ("%", "%%%%%%%%%%%%"),
            ("*", "correct horse battery"),
        ] {
            let resp = token(&http, &gw, email, password).await;
            expect_unauthenticated(resp, &format!("login {email:?}")).await;
        }
        // No injected statement ran: the account is still there.
        assert_eq!(token(&http, &gw, sqlish, pw).await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_client_errors_listing_every_bad_field() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let body = json!({"email": "not an email", "password": "short", "kind": "robot"});
        let resp = post(&http, &gw, SIGNUP, JSON, body.to_string().into()).await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        let errors = doc["errors"].as_array().expect("errors");
        let mut fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["email", "kind", "password"], "{doc}");
        let long = json!({
            "email": format!("{}@example.com", "a".repeat(400)),
            "password": "x".repeat(2000),
            "kind": "individual",
        });
        let resp = post(&http, &gw, SIGNUP, JSON, long.to_string().into()).await;
        expect_problem(resp, 422, "invalid-request").await;

        for (path, content_type, body) in MALFORMED {
            let shown = String::from_utf8_lossy(body).into_owned();
            let resp = post(&http, &gw, path, content_type, body.to_vec()).await;
            let status = resp.status().as_u16();
            assert!(
                matches!(status, 400 | 415 | 422),
                "{path} {content_type} {shown:?}: expected 400/415/422, got {resp:?}"
            );
            let slug = if status == 422 {
                "invalid-request"
            } else {
                "malformed-body"
            };
            expect_problem(resp, status, slug).await;
        }
    })
    .await;
}

/// Sends `total` failed logins over `workers` concurrent tasks (97 accounts); returns the
/// numbers of 401 and 429 answers, panicking on anything else.
async fn failed_logins(
    http: &reqwest::Client,
    url: String,
    total: usize,
    workers: usize,
) -> (u32, u32) {
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let (mut unauthorized, mut throttled) = (0u32, 0u32);
                for i in (worker..total).step_by(workers) {
                    let email = format!("user{}@example.com", i % 97);
                    let body = json!({"email": email, "password": format!("guess number {i}")});
                    let resp = http.post(&url).json(&body).send().await.expect("send");
                    match resp.status().as_u16() {
                        401 => unauthorized += 1,
                        429 if resp.headers().contains_key("retry-after") => throttled += 1,
                        status => {
                            let headers = format!("{:?}", resp.headers());
                            panic!(
                                "failed login {i}: {status} {headers} {:?}",
                                resp.text().await
                            )
                        }
                    }
                }
                (unauthorized, throttled)
            })
        })
        .collect();
    let mut sums = (0, 0);
    for task in tasks {
        let (u, t) = task.await.expect("login task");
        sums = (sums.0 + u, sums.1 + t);
    }
    sums
}

#[tokio::test]
async fn ten_thousand_failed_logins_are_throttled_never_5xx() {
    within(Duration::from_secs(300), async {
        let sim = Sim::start().await;
        // No delay on throttled answers here: ten thousand of them, eight at a time, would take
        // 20 minutes (hardening_auth measures the delay).
        let setup = Setup::auth("failed_auth_delay = \"0s\"");
        let gw = IdGateway::start(sim.addr, &setup).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let bystander = login(&http, &gw, &new_account(&http, &gw).await).await;

        // Per account: five failures (in any letter case), then 429 with Retry-After — even
        // for the right password.
        for i in 0..5 {
            let email = match i % 2 {
                0 => account.email.to_lowercase(),
                _ => account.email.to_uppercase(),
            };
            let resp = token(&http, &gw, &email, "wrong password, sorry").await;
            expect_unauthenticated(resp, "wrong password").await;
        }
        for password in ["wrong password, sorry", account.password.as_str()] {
            let resp = token(&http, &gw, &account.email, password).await;
            let after = resp.headers().get("retry-after").cloned();
            expect_problem(resp, 429, "throttled").await;
            let secs: u64 = after
                .expect("Retry-After")
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=900).contains(&secs), "Retry-After {secs}");
        }

        // Ten thousand more from this address over many accounts, eight at a time.
        let total = 10_000;
        let url = gw.url("/computegate/v1/auth/token");
        let (unauthorized, throttled) = failed_logins(&http, url, total, 8).await;
        assert_eq!((unauthorized + throttled) as usize, total);
        assert!(
            throttled >= 9_000,
            "per-address throttle: {throttled} of {total} throttled"
        );

        let m = metrics(&http, &gw).await;
        let logins = "computegate_logins_total";
        let t = counter(&m, logins, &[("kind", "customer"), ("result", "throttled")]);
        assert_eq!(t, f64::from(throttled + 2), "throttled logins counted");
        let inv = counter(&m, logins, &[("kind", "customer"), ("result", "invalid")]);
        assert_eq!(inv, f64::from(unauthorized + 5), "invalid logins counted");
        // Issued tokens keep working; new logins from the flooding address wait out the window.
        assert_eq!(me(&http, &gw, &bystander.access).await.status(), 200);
        assert_eq!(proxied(&http, &gw, &bystander.access).await.status(), 200);
    })
    .await;
}

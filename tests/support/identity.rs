//! Fixtures of the identity black-box tests: gateway configurations with a store (SQLite by
//! default, PostgreSQL and Redis for the cluster tests) and cheap argon2 parameters, a master key
//! per test, the customer-API calls most tests begin with, and checks shared by several files.
//!
//! PostgreSQL and Redis for the cluster tests live in [`super::cluster`].

use std::ffi::OsStr;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::prometheus::{self, Sample};
use super::{Gateway, expect_problem};

/// A password that passes the policy (12+ characters).
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// How a test gateway is set up beyond its upstream and routes.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// Extra `key = value` lines inside `[auth]` (argon2 parameters are set already).
    pub(crate) auth: String,
    /// `database.url`; `None` = SQLite in the gateway's data dir.
    pub(crate) database_url: Option<String>,
    /// `redis.url` and `redis.key_prefix`.
    pub(crate) redis: Option<(String, String)>,
    /// `log.level`.
    pub(crate) log_level: &'static str,
}

/// A gateway started with a store, and the master key it was given.
#[derive(Debug)]
pub(crate) struct IdGateway {
    /// The running gateway.
    pub(crate) gw: Gateway,
    /// Its `COMPUTEGATE_MASTER_KEY`.
    pub(crate) master_key: String,
}

/// A signed-up customer.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// Email as signed up.
    pub(crate) email: String,
    /// Password.
    pub(crate) password: String,
    /// `customer_id` of the sign-up answer.
    pub(crate) customer_id: String,
}

/// A token-endpoint answer.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    /// Access JWT.
    pub(crate) access: String,
    /// Opaque refresh token.
    pub(crate) refresh: String,
}

// === impl Setup ===

impl Default for Setup {
    fn default() -> Self {
        Self {
            auth: String::new(),
            database_url: None,
            redis: None,
            log_level: "info",
        }
    }
}

impl Setup {
    /// The default setup with `lines` added to `[auth]`.
    pub(crate) fn auth(lines: &str) -> Self {
        Self {
            auth: lines.into(),
            ..Self::default()
        }
    }
}

/// A gateway config (everything but `data_dir`) in front of `sim`: `/v1/echo/public` public,
/// every other `/v1` path authenticated.
pub(crate) fn identity_config(sim: SocketAddr, setup: &Setup) -> String {
    let mut text = format!(
        "[server]\npublic_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\n\
         shutdown_grace = \"1s\"\n\n\
         [upstreams.sim]\naddresses = [\"{sim}\"]\n\n\
         [[routes]]\nname = \"open\"\npath_prefix = \"/v1/echo/public\"\nupstream = \"sim\"\n\
         class = \"public\"\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/v1\"\nupstream = \"sim\"\n\
         class = \"authenticated\"\n\n\
         [auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n{}\n\n",
        setup.auth
    );
    if let Some(url) = &setup.database_url {
        text.push_str(&format!("[database]\nurl = {url:?}\n\n"));
    }
    if let Some((url, prefix)) = &setup.redis {
        text.push_str(&format!(
            "[redis]\nurl = {url:?}\nkey_prefix = {prefix:?}\n\n"
        ));
    }
    text.push_str(&format!("[log]\nlevel = {:?}\n", setup.log_level));
    text
}

/// A fresh `COMPUTEGATE_MASTER_KEY` value: 32 random bytes in base64.
pub(crate) fn master_key() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    STANDARD.encode(bytes)
}

/// An email no other test uses, with upper case in it (the store normalizes).
pub(crate) fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@Example.COM", uuid::Uuid::new_v4().simple())
}

// === impl IdGateway ===

impl IdGateway {
    /// Starts a gateway in front of `sim` with `setup` and a new master key.
    pub(crate) async fn start(sim: SocketAddr, setup: &Setup) -> Self {
        Self::start_with_key(sim, setup, master_key()).await
    }

    /// Starts a gateway in front of `sim` with `setup` and `master_key`.
    pub(crate) async fn start_with_key(sim: SocketAddr, setup: &Setup, master_key: String) -> Self {
        let body = identity_config(sim, setup);
        let gw = Gateway::start_with_env(&body, &[("COMPUTEGATE_MASTER_KEY", &master_key)]).await;
        Self { gw, master_key }
    }

    /// The environment operator commands need for this gateway's store.
    pub(crate) fn env(&self) -> [(&str, &str); 1] {
        [("COMPUTEGATE_MASTER_KEY", self.master_key.as_str())]
    }

    /// Runs `computegate ARGS --config <this gateway's file>` with its master key.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        let config = self.config_path();
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.extend([OsStr::new("--config"), config.as_os_str()]);
        super::run_cli(&all, &self.env())
    }
}

impl Deref for IdGateway {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gw
    }
}

impl Gateway {
    /// The configuration file the gateway was started with.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// The SQLite database file of a gateway without `database.url`.
    pub(crate) fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("data").join("computegate.db")
    }
}

// === customer API ===

/// `POST /computegate/v1/auth/signup`.
pub(crate) async fn signup(
    http: &reqwest::Client,
    gw: &Gateway,
    email: &str,
    password: &str,
) -> reqwest::Response {
    http.post(gw.url("/computegate/v1/auth/signup"))
        .json(&json!({"email": email, "password": password, "kind": "individual"}))
        .send()
        .await
        .expect("send signup")
}

/// Signs up a new customer (asserting 201) and returns it.
pub(crate) async fn new_account(http: &reqwest::Client, gw: &Gateway) -> Account {
    let email = unique_email("cust");
    let resp = signup(http, gw, &email, PASSWORD).await;
    assert_eq!(resp.status(), 201, "signup answered {resp:?}");
    let doc: Value = resp.json().await.expect("signup JSON");
    let customer_id = doc["customer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no customer_id in {doc}"))
        .to_owned();
    Account {
        email,
        password: PASSWORD.into(),
        customer_id,
    }
}

/// `POST /computegate/v1/auth/token`.
pub(crate) async fn token(
    http: &reqwest::Client,
    gw: &Gateway,
    email: &str,
    password: &str,
) -> reqwest::Response {
    http.post(gw.url("/computegate/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("send token request")
}

/// Logs `account` in (asserting the RFC 6749 answer) and returns the tokens.
pub(crate) async fn login(http: &reqwest::Client, gw: &Gateway, account: &Account) -> Tokens {
    tokens_of(token(http, gw, &account.email, &account.password).await).await
}

/// Reads a successful token answer, checking its shape.
pub(crate) async fn tokens_of(resp: reqwest::Response) -> Tokens {
    assert_eq!(resp.status(), 200, "token endpoint answered {resp:?}");
    let doc: Value = resp.json().await.expect("token JSON");
    assert_eq!(doc["token_type"], "Bearer", "{doc}");
    assert!(doc["expires_in"].as_u64().is_some_and(|s| s > 0), "{doc}");
    let field = |name: &str| {
        doc[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
            .to_owned()
    };
    Tokens {
        access: field("access_token"),
        refresh: field("refresh_token"),
    }
}

/// Asserts `Cache-Control: no-store` on an answer carrying tokens (RFC 6749 §5.1).
pub(crate) fn assert_no_store(resp: &reqwest::Response, what: &str) {
    assert_eq!(
        resp.headers().get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{what} must carry Cache-Control: no-store: {resp:?}"
    );
}

/// `POST /computegate/v1/auth/refresh`.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    gw: &Gateway,
    token: &str,
) -> reqwest::Response {
    http.post(gw.url("/computegate/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("send refresh")
}

/// `GET url` with `Authorization: Bearer <bearer>`.
pub(crate) async fn get_with(http: &reqwest::Client, url: &str, bearer: &str) -> reqwest::Response {
    http.get(url)
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .expect("send")
}

/// `GET /computegate/v1/me` as `bearer`.
pub(crate) async fn me(http: &reqwest::Client, gw: &Gateway, bearer: &str) -> reqwest::Response {
    get_with(http, &gw.url("/computegate/v1/me"), bearer).await
}

/// `GET /v1/echo` (an authenticated route to the simulator) as `bearer`.
pub(crate) async fn proxied(
    http: &reqwest::Client,
    gw: &Gateway,
    bearer: &str,
) -> reqwest::Response {
    get_with(http, &gw.url("/v1/echo"), bearer).await
}

/// The simulator's echo of an authenticated call as `bearer` (asserting 200).
pub(crate) async fn echo_as(http: &reqwest::Client, gw: &Gateway, bearer: &str) -> Value {
    let resp = proxied(http, gw, bearer).await;
    assert_eq!(resp.status(), 200, "proxied call answered {resp:?}");
    resp.json().await.expect("echo JSON")
}

/// Values of header `name` as the simulator received them (`[]` when absent).
pub(crate) fn seen(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates an API key with `body` as `access`; returns `(id, key)`.
pub(crate) async fn create_key(
    http: &reqwest::Client,
    gw: &Gateway,
    access: &str,
    body: Value,
) -> (String, String) {
    let resp = http
        .post(gw.url("/computegate/v1/keys"))
        .header("authorization", format!("Bearer {access}"))
        .json(&body)
        .send()
        .await
        .expect("send key creation");
    assert_eq!(resp.status(), 201, "key creation answered {resp:?}");
    let doc: Value = resp.json().await.expect("key JSON");
    let id = doc["id"].as_str().expect("key id").to_owned();
    let key = doc["key"].as_str().expect("key").to_owned();
    (id, key)
}

/// `DELETE /computegate/v1/keys/{id}` as `access`.
pub(crate) async fn revoke_key(
    http: &reqwest::Client,
    gw: &Gateway,
    access: &str,
    id: &str,
) -> reqwest::Response {
    http.delete(gw.url(&format!("/computegate/v1/keys/{id}")))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .expect("send key revocation")
}

/// `POST /computegate/v1/auth/logout` as `access`, with an optional refresh token to revoke.
pub(crate) async fn logout(
    http: &reqwest::Client,
    gw: &Gateway,
    access: &str,
    refresh: Option<&str>,
) -> reqwest::Response {
    let mut req = http
        .post(gw.url("/computegate/v1/auth/logout"))
        .header("authorization", format!("Bearer {access}"));
    if let Some(rt) = refresh {
        req = req.json(&json!({"refresh_token": rt}));
    }
    req.send().await.expect("send logout")
}

/// The published JWKS.
pub(crate) async fn jwks(http: &reqwest::Client, gw: &Gateway) -> Value {
    let resp = http
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("send JWKS request");
    assert_eq!(resp.status(), 200, "JWKS answered {resp:?}");
    resp.json().await.expect("JWKS JSON")
}

/// The key ids in a JWKS.
pub(crate) fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS without keys: {jwks}"))
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Verifies `token` against `jwks` with jsonwebtoken (the test's own verifier): EdDSA, `iss`
/// `computegate`, audience `aud`. Returns the claims or why verification failed.
pub(crate) fn verify_with_jwks(token: &str, jwks: &Value, aud: &str) -> Result<Value, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid in the header")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| format!("kid {kid} is not in the JWKS {jwks}"))?;
    let x = jwk["x"].as_str().ok_or("JWK without x")?;
    let key = DecodingKey::from_ed_components(x).map_err(|e| format!("JWK x: {e}"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["computegate"]);
    validation.set_audience(&[aud]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("verification: {e}"))
}

/// The claims of a JWT, decoded without verifying anything.
pub(crate) fn claims_unverified(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Asserts a 401 problem with `WWW-Authenticate: Bearer …`; returns the document.
pub(crate) async fn expect_unauthenticated(resp: reqwest::Response, what: &str) -> Value {
    assert_eq!(resp.status(), 401, "{what}: expected 401, got {resp:?}");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate is {challenge:?}"
    );
    expect_problem(resp, 401, "unauthenticated").await
}

/// Asserts a 401 problem with `WWW-Authenticate: Bearer error="invalid_token"`.
pub(crate) async fn expect_invalid_token(resp: reqwest::Response, what: &str) -> Value {
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let doc = expect_unauthenticated(resp, what).await;
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: WWW-Authenticate is {challenge:?}"
    );
    doc
}

/// Polls `probe` every 50 ms until it returns true; returns how long that took, or panics
/// with `what` after `limit`.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin listener's metrics, parsed strictly.
pub(crate) async fn metrics(http: &reqwest::Client, gw: &Gateway) -> Vec<Sample> {
    let text = http
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body");
    prometheus::parse(&text).unwrap_or_else(|e| panic!("metrics do not parse: {e}\n{text}"))
}

/// A counter sample's value (0 when the series does not exist yet).
pub(crate) fn counter(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::value(samples, name, labels).unwrap_or(0.0)
}

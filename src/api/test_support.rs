//! Fixtures of the router tests beside the handlers: the real services over the embedded
//! store (SQLite in a fresh temporary directory, the default policy, cheap argon2), the
//! customer and staff routers called with `tower::ServiceExt::oneshot` (no sockets), and the
//! accounts and credentials most tests begin with.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use computegate_gateway::config::Config;
use computegate_gateway::forward::ClientFacts;
use computegate_kyc::accounts::{Actor, StaffRole};
use computegate_kyc::login::LoginAttempt;
use computegate_kyc::screening::{ImportRequest, ListFormat, ListInput};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

use super::extract::Client;
use super::{ApiState, customer_router, staff_router};
use crate::identity::{AccountKind, Identity, SignUp};
use crate::metering::Metering;
use crate::verification::Verification;

/// A password that passes the policy.
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The Stripe webhook secret the fixture configures.
pub(crate) const STRIPE_SECRET: &str = "whsec_router_tests";
/// The usage-event secret the fixture configures.
pub(crate) const USAGE_SECRET: &str = "usage_router_tests";

/// The services over a fresh store, and the two routers.
pub(crate) struct Api {
    /// The services the routers share.
    pub(crate) state: ApiState,
    customer: Router,
    staff: Router,
    dir: PathBuf,
}

/// An answer: status, headers and the body (JSON when it parses, else `Value::Null`).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) bytes: Vec<u8>,
}

/// A signed-up customer with an access token.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) token: String,
    pub(crate) refresh: String,
}

// === impl Api ===

impl Api {
    /// Opens the services over SQLite in a new temporary directory.
    pub(crate) async fn start() -> Api {
        let dir = std::env::temp_dir().join(format!("cg-router-{}", Uuid::now_v7().simple()));
        let mut config = Config::default();
        config.data_dir = dir.clone();
        config.auth.argon2_memory_kib = 64;
        config.auth.argon2_iterations = 1;
        let master = computegate_kyc::crypto::MasterKey::generate().expect("random key");
        let mut registry = Registry::default();
        let identity = Identity::open(&config, master.clone(), &mut registry)
            .await
            .expect("open identity");
        let (policy, _) = crate::policy_file::load(None, &mut registry).expect("default policy");
        let secrets = crate::verification::idv_secrets_from_env(|k| {
            (k == "COMPUTEGATE_IDV_STRIPE_SECRET").then(|| STRIPE_SECRET.to_owned())
        });
        let kyc = Verification::new(
            identity.clone(),
            master.clone(),
            policy.clone(),
            secrets,
            None,
            &mut registry,
        );
        let metrics = crate::ledger_metrics::LedgerMetrics::register(&mut registry);
        let usage = super::usage::secrets_from(|k| {
            (k == "COMPUTEGATE_USAGE_SECRET").then(|| USAGE_SECRET.to_owned())
        });
        let metering = Metering::new(identity.store.clone(), master, policy, usage, metrics);
        let state = ApiState {
            identity,
            kyc,
            metering,
        };
        Api {
            customer: customer_router(state.clone()),
            staff: staff_router(state.clone()),
            state,
            dir,
        }
    }

    /// The identity service.
    pub(crate) fn identity(&self) -> &Arc<Identity> {
        &self.state.identity
    }

    /// A request to the customer API.
    pub(crate) async fn customer(&self, req: Call) -> Answer {
        send(&self.customer, req).await
    }

    /// A request to the staff API.
    pub(crate) async fn staff(&self, req: Call) -> Answer {
        send(&self.staff, req).await
    }

    /// A new customer, signed in.
    pub(crate) async fn new_customer(&self) -> Customer {
        let email = format!("c-{}@router.example", Uuid::now_v7().simple());
        let now = OffsetDateTime::now_utc();
        let id = self
            .identity()
            .sign_up(
                SignUp {
                    email: &email,
                    password: PASSWORD,
                    kind: "individual",
                },
                ip(),
                now,
            )
            .await
            .expect("sign up");
        let tokens = self.login(AccountKind::Customer, &email).await;
        Customer {
            id,
            email,
            token: tokens.0,
            refresh: tokens.1,
        }
    }

    /// A new staff user in `role`, signed in: its access token.
    pub(crate) async fn staff_token(&self, role: StaffRole) -> String {
        let email = self.staff_account(role).await;
        self.login(AccountKind::Staff, &email).await.0
    }

    /// A new staff user in `role` with password [`PASSWORD`]: its email.
    pub(crate) async fn staff_account(&self, role: StaffRole) -> String {
        let email = format!("s-{}@router.example", Uuid::now_v7().simple());
        let id = self.identity();
        let hash = id.hasher.hash_async(PASSWORD.to_owned()).await.unwrap();
        id.store
            .accounts()
            .create_staff(
                &email,
                role,
                &hash,
                &Actor::system("test"),
                OffsetDateTime::now_utc(),
            )
            .await
            .expect("create staff");
        email
    }

    /// An API key of `customer` (its secret).
    pub(crate) async fn api_key(&self, customer: &Customer) -> String {
        let new = computegate_kyc::api_keys::NewApiKey {
            name: "router-test".into(),
            expires_at: None,
            scopes: Vec::new(),
        };
        self.identity()
            .create_api_key(customer.id, new, ip(), OffsetDateTime::now_utc())
            .await
            .expect("create key")
            .key
    }

    /// Imports the denied-party list `tests/data/kyc/<name>` (CSL format).
    pub(crate) async fn import_list(&self, name: &str) {
        let bytes = std::fs::read(data(name)).expect("list file");
        let request = ImportRequest {
            format: ListFormat::Csl,
            main: ListInput {
                file_name: name.to_owned(),
                reader: std::io::Cursor::new(bytes),
            },
            aliases: None,
            addresses: None,
            label: None,
        };
        self.identity()
            .store
            .screening()
            .import_screening_list(request, OffsetDateTime::now_utc())
            .await
            .expect("import list");
    }

    async fn login(&self, kind: AccountKind, email: &str) -> (String, String) {
        let attempt = LoginAttempt {
            email,
            password: PASSWORD,
            client_ip: ip(),
        };
        let tokens = self
            .identity()
            .password_grant(kind, attempt, OffsetDateTime::now_utc())
            .await
            .expect("login");
        (tokens.access_token, tokens.refresh_token)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request under construction.
#[derive(Debug)]
pub(crate) struct Call {
    method: Method,
    path: String,
    headers: Vec<(header::HeaderName, String)>,
    body: Vec<u8>,
}

/// `GET path`.
pub(crate) fn get(path: &str) -> Call {
    Call::new(Method::GET, path)
}

/// `POST path` (no body yet).
pub(crate) fn post(path: &str) -> Call {
    Call::new(Method::POST, path)
}

// === impl Call ===

impl Call {
    /// `method path`.
    pub(crate) fn new(method: Method, path: &str) -> Call {
        Call {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same request to another path.
    pub(crate) fn set_path(&mut self, path: &str) {
        self.path = path.to_owned();
    }

    /// With `Authorization: Bearer <token>`.
    pub(crate) fn bearer(self, token: &str) -> Call {
        self.header(header::AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// With a header.
    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Call {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// With a JSON body.
    pub(crate) fn json(self, body: &Value) -> Call {
        self.raw("application/json", body.to_string().into_bytes())
    }

    /// With a body of `content_type`.
    pub(crate) fn raw(mut self, content_type: &str, body: Vec<u8>) -> Call {
        self.body = body;
        self.header(header::CONTENT_TYPE, content_type)
    }
}

/// Sends `call` through `router` without a socket, as the listener would hand it over.
async fn send(router: &Router, call: Call) -> Answer {
    let mut req = Request::builder().method(call.method).uri(call.path);
    for (name, value) in call.headers {
        req = req.header(name, value);
    }
    let mut req = req.body(Body::from(call.body)).expect("request");
    req.extensions_mut().insert(Client(ClientFacts {
        ip: ip(),
        proto: "http",
        trust_forwarded: false,
    }));
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    Answer {
        status: parts.status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers: parts.headers,
        bytes,
    }
}

/// The client address every test request comes from.
pub(crate) fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
}

/// A file under `tests/data/kyc/`.
pub(crate) fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kyc")
        .join(name)
}

// === impl Answer ===

impl Answer {
    /// Asserts a problem document with `status` and `type` slug; returns it.
    #[track_caller]
    pub(crate) fn problem(&self, status: u16, slug: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{self:?}"
        );
        let ty = self.body["type"].as_str().unwrap_or_default();
        assert!(ty.ends_with(&format!("/{slug}")), "{slug}: {self:?}");
        &self.body
    }

    /// Asserts `status`; returns the JSON body.
    #[track_caller]
    pub(crate) fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        &self.body
    }

    /// Whether the answer is marked `Cache-Control: no-store`.
    pub(crate) fn no_store(&self) -> bool {
        self.headers
            .get(header::CACHE_CONTROL)
            .is_some_and(|v| v == "no-store")
    }
}

/// The refusals every authenticated route gives: no credential, a malformed one, a forged one.
pub(crate) fn bad_credentials() -> [(Option<&'static str>, &'static str); 3] {
    [
        (None, "no credential"),
        (Some("not-a-jwt"), "malformed token"),
        (
            Some("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
            "forged token",
        ),
    ]
}

/// A `t=…,v1=…` signature of `body` at `t` under `secret` (Stripe's and the usage intake's
/// scheme: hex HMAC-SHA256 of `"t.body"`).
pub(crate) fn signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

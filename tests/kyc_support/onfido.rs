//! A local HTTP server standing in for Onfido's API (v3.6) in the black-box tests: it serves
//! `GET /v3.6/{checks|reports|workflow_runs}/{id}` from the fixtures of
//! `kyc/tests/data/onfido/` (documented response shapes; sources in that folder's README),
//! checks the `Authorization: Token token=…` header, and can be scripted per resource to fail
//! (any status, with Onfido's error body) or answer slowly before it answers normally.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The API token the fake accepts.
pub(crate) const API_TOKEN: &str = "api_sandbox.computegate_test_token";

/// What the next request for a resource gets before the normal answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// This status, with Onfido's error body.
    Fail(u16),
    /// The normal answer, after this delay.
    Slow(Duration),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    /// `checks/<id>` and so on.
    pub(crate) path: String,
    /// The `Authorization` header.
    pub(crate) authorization: Option<String>,
    /// The status answered (a slow answer's: its client may have given up before).
    pub(crate) status: u16,
    /// Whether the answer was delayed by a [`Step::Slow`].
    pub(crate) slow: bool,
}

#[derive(Default)]
struct Inner {
    resources: HashMap<String, Value>,
    script: HashMap<String, VecDeque<Step>>,
    hits: Vec<Hit>,
}

/// The running fake; stops with the test's runtime.
#[derive(Clone)]
pub(crate) struct FakeOnfido {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// A fixture of `kyc/tests/data/onfido/` with `{{application_id}}` replaced.
pub(crate) fn fixture(name: &str, application_id: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("read Onfido fixture");
    serde_json::from_str(&text.replace("{{application_id}}", application_id)).expect("fixture JSON")
}

/// A notice in Onfido's documented webhook shape (`payload.resource_type`, `action`,
/// `object.id`, `status`, `completed_at_iso8601`, `href`), for resources the fixtures lack.
pub(crate) fn notice(action: &str, id: &str) -> String {
    let (resource, _) = action.split_once('.').expect("resource.event");
    json!({"payload": {"resource_type": resource, "action": action,
        "object": {"id": id, "status": "complete", "completed_at_iso8601": "2024-04-04T09:21:21Z",
            "href": format!("https://api.onfido.com/v3.6/{resource}s/{id}")}}})
    .to_string()
}

/// The exact bytes of a fixture (webhook bodies are signed over them).
pub(crate) fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("read Onfido fixture")
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("kyc/tests/data/onfido")
        .join(name)
}

// === impl FakeOnfido ===

impl FakeOnfido {
    /// Starts the fake on `127.0.0.1:0`.
    pub(crate) async fn start() -> FakeOnfido {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v3.6/{collection}/{id}", get(answer))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Onfido");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOnfido { addr, inner }
    }

    /// The base URL to configure (`COMPUTEGATE_IDV_ONFIDO_API_URL`).
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v3.6", self.addr)
    }

    /// Serves `body` at `collection/<its id>`.
    pub(crate) fn serve(&self, collection: &str, body: Value) {
        let id = body["id"].as_str().expect("resource id").to_owned();
        let mut inner = self.inner.lock().expect("lock");
        inner.resources.insert(format!("{collection}/{id}"), body);
    }

    /// Scripts the next requests of `collection/id`.
    pub(crate) fn script(&self, collection: &str, id: &str, steps: &[Step]) {
        let mut inner = self.inner.lock().expect("lock");
        inner
            .script
            .entry(format!("{collection}/{id}"))
            .or_default()
            .extend(steps.iter().copied());
    }

    /// Every request so far.
    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.inner.lock().expect("lock").hits.clone()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("{collection}/{id}");
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let step = inner
        .lock()
        .expect("lock")
        .script
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    // Logged on arrival: a client that gives up on a slow answer cancels this handler.
    let (status, body) = match step {
        Some(Step::Fail(code)) => (code, error_body(code)),
        _ => normal(&inner, &path, authorization.as_deref()),
    };
    inner.lock().expect("lock").hits.push(Hit {
        path,
        authorization,
        status,
        slow: matches!(step, Some(Step::Slow(_))),
    });
    if let Some(Step::Slow(delay)) = step {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(status).expect("status");
    (status, axum::Json(body)).into_response()
}

fn normal(inner: &Mutex<Inner>, path: &str, authorization: Option<&str>) -> (u16, Value) {
    if authorization != Some(&format!("Token token={API_TOKEN}")) {
        return (401, error_body(401));
    }
    match inner.lock().expect("lock").resources.get(path) {
        Some(body) => (200, body.clone()),
        None => (404, error_body(404)),
    }
}

/// Onfido's error body (API v3.6 `Error`: `{"error":{"type","message","fields"}}`).
fn error_body(status: u16) -> Value {
    json!({"error": {"type": format!("status_{status}"), "message": "scripted failure", "fields": {}}})
}

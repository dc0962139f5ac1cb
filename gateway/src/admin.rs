//! The admin listener: `/metrics` (OpenMetrics text), `/healthz` (process alive), `/readyz`
//! (upstreams and stores reachable, not draining), and the staff API mounted by the root crate.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::auth::BoxFuture;
use crate::body::ResponseBody;
use crate::client_body::ClientBody;
use crate::error::GatewayError;
use crate::forward::ClientFacts;
use crate::problem::Problem;
use crate::proxy::{ConnFacts, ControlPlane, Gateway};
use crate::server::Handler;

/// Content type of the metrics endpoint.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A dependency `/readyz` must reach (a store, Redis).
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short name shown in the readiness document.
    fn name(&self) -> &'static str;
    /// Ok when reachable; the error text is shown to operators, so it must hold no secret.
    fn check(&self) -> BoxFuture<Result<(), String>>;
    /// Whether the gateway can serve without it. A failing optional check shows as
    /// `degraded: …` in the readiness document but keeps the replica ready (Redis: the
    /// gateway runs on local fallbacks meanwhile). Default: required.
    fn optional(&self) -> bool {
        false
    }
}

/// The admin listener's handler.
pub struct Admin {
    registry: Arc<Registry>,
    gateway: Arc<Gateway>,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    staff: Option<Arc<dyn ControlPlane>>,
    draining: watch::Receiver<bool>,
}

// === impl Admin ===

impl Admin {
    /// Builds the admin handler.
    pub fn new(
        registry: Arc<Registry>,
        gateway: Arc<Gateway>,
        checks: Vec<Arc<dyn ReadinessCheck>>,
        staff: Option<Arc<dyn ControlPlane>>,
        draining: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            gateway,
            checks,
            staff,
            draining,
        }
    }

    async fn answer(&self, req: Request<Incoming>, conn: ConnFacts) -> Response<ResponseBody> {
        let request_id = crate::forward::request_id(req.headers());
        let mut resp = self.route(req, conn).await;
        resp.headers_mut()
            .insert(&crate::forward::X_REQUEST_ID, request_id);
        resp
    }

    async fn route(&self, req: Request<Incoming>, conn: ConnFacts) -> Response<ResponseBody> {
        let path = req.uri().path();
        match (req.method(), path) {
            (&Method::GET, "/metrics") => self.metrics(),
            (&Method::GET, "/healthz") => {
                json(StatusCode::OK, serde_json::json!({"status": "alive"}))
            }
            (&Method::GET, "/readyz") => self.readiness().await,
            _ => match &self.staff {
                Some(staff) if staff.prefixes().iter().any(|p| path.starts_with(p)) => {
                    let client = ClientFacts {
                        ip: conn.ip,
                        proto: "http",
                        trust_forwarded: self.gateway.admin_trusts_forwarded_headers(),
                    };
                    let (parts, incoming) = req.into_parts();
                    let (body, clock) = ClientBody::new(incoming, self.gateway.body_pace());
                    let resp = staff.handle(Request::from_parts(parts, body), client).await;
                    if !clock.expired() {
                        return resp;
                    }
                    // As on the public listener: a body slower than its allowance is a 408,
                    // and the rest of it is still on the connection.
                    let mut resp = GatewayError::BodyTimeout
                        .to_problem()
                        .into_response()
                        .map(ResponseBody::full);
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    resp
                }
                _ => Problem::new(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    "Not found",
                    "the admin listener serves /metrics, /healthz, /readyz and /staff/v1/",
                )
                .into_response()
                .map(ResponseBody::full),
            },
        }
    }

    fn metrics(&self) -> Response<ResponseBody> {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"status": "error"}),
            );
        }
        let mut resp = Response::new(ResponseBody::full(out));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        );
        resp
    }

    async fn readiness(&self) -> Response<ResponseBody> {
        let mut checks = serde_json::Map::new();
        let mut ready = !*self.draining.borrow();
        if !ready {
            checks.insert("shutdown".into(), "draining".into());
        }
        for pool in self.gateway.pools() {
            let result = probe_pool(pool).await;
            ready &= result.is_ok();
            checks.insert(
                format!("upstream:{}", pool.name),
                result.err().unwrap_or_else(|| "ok".into()).into(),
            );
        }
        for check in &self.checks {
            let result = tokio::time::timeout(Duration::from_secs(2), check.check())
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            let detail = match result {
                Ok(()) => "ok".to_string(),
                Err(e) if check.optional() => format!("degraded: {e}"),
                Err(e) => {
                    ready = false;
                    e
                }
            };
            checks.insert(check.name().into(), detail.into());
        }
        let (status, word) = if ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        };
        json(
            status,
            serde_json::json!({"status": word, "checks": checks}),
        )
    }
}

impl Handler for Admin {
    async fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnFacts,
    ) -> Response<ResponseBody> {
        self.answer(req, conn).await
    }
}

/// A pool is ready when any of its addresses accepts a TCP connection.
async fn probe_pool(pool: &crate::upstream::UpstreamPool) -> Result<(), String> {
    let limit = pool.connect_timeout.min(Duration::from_secs(1));
    for target in pool.targets() {
        let addr = target.authority.as_str();
        if let Ok(Ok(_)) = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
            return Ok(());
        }
    }
    Err("no address reachable".into())
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

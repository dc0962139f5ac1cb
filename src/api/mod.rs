//! The gateway's own HTTP APIs, built with axum and mounted into the data plane through the
//! gateway's [`ControlPlane`] port: the customer API on the public listener (`/computegate/v1/…`,
//! `/.well-known/jwks.json`) and the staff API on the admin listener (`/staff/v1/…`).

pub mod applications;
pub mod customer;
pub mod error;
pub mod metering;
pub mod review;
pub mod staff;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use computegate_gateway::auth::BoxFuture;
use computegate_gateway::body::ResponseBody;
use computegate_gateway::forward::ClientFacts;
use computegate_gateway::proxy::ControlPlane;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower_service::Service;

/// Whether `resp` already carries a problem document.
fn is_problem<B>(resp: &Response<B>) -> bool {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// An axum router served as a [`ControlPlane`] for a fixed set of path prefixes.
pub struct RouterPlane {
    prefixes: &'static [&'static str],
    router: Router,
}

/// The connecting client as seen by the listener, for handlers (access log, throttling).
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientFacts);

// === impl RouterPlane ===

impl RouterPlane {
    /// Serves `router` for requests under `prefixes`.
    pub fn new(prefixes: &'static [&'static str], router: Router) -> Arc<Self> {
        Arc::new(Self { prefixes, router })
    }
}

impl ControlPlane for RouterPlane {
    fn prefixes(&self) -> &[&'static str] {
        self.prefixes
    }

    fn handle(
        &self,
        mut req: Request<Incoming>,
        client: ClientFacts,
    ) -> BoxFuture<Response<ResponseBody>> {
        req.extensions_mut().insert(Client(client));
        let mut router = self.router.clone();
        Box::pin(async move {
            let resp = match router.call(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // axum answers a known path with another method by an empty 405 of its own; every
            // error of these APIs is a problem document, so that one is replaced here.
            let resp =
                if resp.status() == http::StatusCode::METHOD_NOT_ALLOWED && !is_problem(&resp) {
                    let allow = resp.headers().get(http::header::ALLOW).cloned();
                    axum::response::IntoResponse::into_response(error::ApiError::MethodNotAllowed {
                        allow,
                    })
                } else {
                    resp
                };
            resp.map(|body| ResponseBody::Boxed(body.map_err(Into::into).boxed_unsync()))
        })
    }
}

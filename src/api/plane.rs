//! The control-plane routers served through the gateway's [`ControlPlane`] port: a request
//! under one of the plane's path prefixes is handed to its axum router with the client facts the
//! listener saw, and the answer's body is boxed for the data plane's response type.

use std::sync::Arc;

use axum::Router;
use computegate_gateway::auth::BoxFuture;
use computegate_gateway::body::ResponseBody;
use computegate_gateway::client_body::ClientBody;
use computegate_gateway::forward::ClientFacts;
use computegate_gateway::proxy::ControlPlane;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower_service::Service;

use super::extract::Client;

/// An axum router served as a [`ControlPlane`] for a fixed set of path prefixes.
pub struct RouterPlane {
    prefixes: &'static [&'static str],
    router: Router,
}

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
        mut req: Request<ClientBody>,
        client: ClientFacts,
    ) -> BoxFuture<Response<ResponseBody>> {
        // Handlers throttle and record by the client's own address: behind a trusted load
        // balancer that is the forwarded one, not the balancer's.
        let client = ClientFacts {
            ip: client.origin_ip(req.headers()),
            ..client
        };
        req.extensions_mut().insert(Client(client));
        let mut router = self.router.clone();
        Box::pin(async move {
            let resp = match router.call(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            resp.map(|body| ResponseBody::Boxed(body.map_err(Into::into).boxed_unsync()))
        })
    }
}

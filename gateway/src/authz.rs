//! External-authorization mode: the data plane's decision offered to an edge proxy that keeps
//! forwarding traffic itself — Envoy's `ext_authz` HTTP service, nginx `auth_request` and
//! Traefik `ForwardAuth` — on a listener of its own (`[authz]`).
//!
//! The proxy asks about a request; this module turns the ask into that request (method, target,
//! host, headers and — when sent — body; [`contract`]), hands it to the same decision the
//! reverse proxy runs ([`crate::proxy::Gateway`], door `Authz`), and answers:
//!
//! - allowed → `200` with the headers the proxy adds upstream: `X-Request-Id`, the identity
//!   headers (`X-Computegate-Customer`, `-Tier`, `-Organization`, `-Identity`) and, for an
//!   admitted job, `X-Computegate-Job` — plus what the client hears (`RateLimit-*`, the job's
//!   metering headers);
//! - refused → the problem document and status the proxy mode gives, reshaped only where a
//!   proxy cannot carry it (nginx passes 401/403 alone; see [`contract`]).
//!
//! Only peers in `authz.trusted_proxies` are answered (anyone else gets 403), so the
//! `X-Original-*` / `X-Forwarded-*` headers that name the request are believed only from them.
//! The listener answers nothing but the three contract paths.
//!
//! What the edge proxy keeps to itself limits what can be decided: a job is admitted only with
//! its complete body (else 501 `job-body-not-forwarded`), an `Idempotency-Key` is refused on
//! job submissions (its answer is kept from the upstream's reply, which the proxy never shows
//! Computegate), and neither a release of the reservation when the upstream refuses a job nor
//! the binding of the upstream's job id to its owner can happen — the upstream's usage reports
//! (naming `X-Computegate-Job`) settle the job as in proxy mode.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::config::{AuthzConfig, ConfigError};
use crate::error::GatewayError;
use crate::forward::{self, X_REQUEST_ID};
use crate::proxy::{Allowed, ConnFacts, Door, Gateway, Verdict, client_facing, upstream_identity};
use crate::server::Handler;

pub mod contract;

pub use contract::Contract;

/// Paths of the nginx and Traefik contracts on the authorization listener (Envoy's prefix is
/// configured, `authz.envoy_path_prefix`).
pub const FIXED_PATHS: &[&str] = &[contract::NGINX_PATH, contract::TRAEFIK_PATH];

/// The authorization listener's handler.
pub struct Authz {
    gateway: Arc<Gateway>,
    trusted: Vec<ipnet::IpNet>,
    envoy_prefix: String,
}

// === impl Authz ===

impl Authz {
    /// Answers authorization requests from `config.trusted_proxies` with `gateway`'s decision.
    pub fn new(gateway: Arc<Gateway>, config: &AuthzConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            gateway,
            trusted: config.trusted_networks()?,
            envoy_prefix: config.envoy_path_prefix.clone(),
        })
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4 proxy on a dual-stack socket shows up as `::ffff:a.b.c.d`.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    async fn answer(&self, req: Request<Incoming>, conn: ConnFacts) -> Response<ResponseBody> {
        if !self.trusts(conn.ip) {
            tracing::info!(peer = %conn.ip, "authorization request from an untrusted peer refused");
            return refusal(&GatewayError::AuthzPeerNotTrusted, &req);
        }
        let Some(contract) = Contract::of(req.uri().path(), &self.envoy_prefix) else {
            return refusal(&GatewayError::NoRoute, &req);
        };
        let asked = match contract::translate(req, contract, &self.envoy_prefix) {
            Ok(asked) => asked,
            // Shaped like any refusal: nginx turns a bare 400 into a 500 of its own.
            Err(refused) => return contract::shape(contract, refused).await,
        };
        let door = Door::Authz {
            body_forwarded: asked.body_forwarded,
        };
        let resp = self.gateway.handle_at(asked.request, conn, door).await;
        contract::shape(contract, resp).await
    }
}

impl Handler for Authz {
    async fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnFacts,
    ) -> Response<ResponseBody> {
        self.answer(req, conn).await
    }
}

/// The authorization listener's answer to a decision (see the module docs): `200` with the
/// upstream identity and client-facing headers when allowed, else the decision's own answer.
pub(crate) fn answer(
    verdict: Verdict<'_>,
    request_id: &http::HeaderValue,
) -> Response<ResponseBody> {
    let allowed: Allowed<'_> = match verdict {
        Verdict::Allowed(allowed) => allowed,
        Verdict::Answered(resp) => return resp,
    };
    let mut resp = Response::new(ResponseBody::empty());
    upstream_identity(
        allowed.principal.as_ref(),
        allowed.job.as_ref(),
        request_id,
        resp.headers_mut(),
    );
    client_facing(
        allowed.rate.as_ref(),
        allowed.job.as_ref(),
        resp.headers_mut(),
    );
    if let Some(job) = &allowed.job {
        tracing::info!(route = %allowed.route.name, job = %job.id, "job admitted for an edge proxy");
    }
    resp
}

/// A refusal made before any decision (untrusted peer, unknown path, malformed ask), with the
/// request id every answer carries.
pub(crate) fn refusal<B>(err: &GatewayError, req: &Request<B>) -> Response<ResponseBody> {
    let mut resp = err.to_problem().into_response().map(ResponseBody::full);
    resp.headers_mut()
        .insert(&X_REQUEST_ID, forward::request_id(req.headers()));
    resp
}

//! The one decision of the data plane, shared by its two front doors: the reverse proxy
//! ([`Gateway::handle`]) and the external-authorization listener ([`crate::authz`]).
//!
//! Route match, credential, key scopes, jurisdiction and tier rules, rate limit, job ownership,
//! body limit and job admission run here and nowhere else, so a request an edge proxy asks
//! about is judged — and refused with the same problem document and status — exactly as the
//! same request sent through Computegate would be. What differs between the doors is only what
//! follows an allowed request: the proxy forwards it, the authorization listener answers 200
//! with the headers the edge proxy adds upstream.

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};

use super::{Gateway, Seen, check_host, content_length, problem, request_host};
use crate::admission::Submission;
use crate::auth::Principal;
use crate::body::{ResponseBody, UpstreamBody};
use crate::client_body::ClientBody;
use crate::config::RouteClass;
use crate::enforce::{Cleared, Refusal};
use crate::error::GatewayError;
use crate::forward::ClientFacts;
use crate::idempotency::IDEMPOTENCY_KEY;
use crate::metrics::RouteMetrics;
use crate::ratelimit::Decision;
use crate::route::Route;

/// Which front door asks for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    /// The reverse proxy: an allowed request is forwarded by Computegate itself.
    Proxy,
    /// An edge proxy's authorization request: an allowed request is forwarded by that proxy,
    /// which never shows Computegate the upstream's answer.
    Authz {
        /// The edge proxy sent the request body (complete), so a job can be metered.
        body_forwarded: bool,
    },
}

/// What the decision comes to.
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value once per request and taken apart at once, never stored; boxing \
              the allowed request would allocate on the hot path"
)]
pub(crate) enum Verdict<'g> {
    /// The request may go on to its upstream.
    Allowed(Allowed<'g>),
    /// Computegate answers it itself: a refusal (problem document), a control-plane answer or
    /// the replay of an idempotent submission.
    Answered(Response<ResponseBody>),
}

/// A request the decision let through, with everything forwarding it needs.
pub(crate) struct Allowed<'g> {
    /// The matched route.
    pub(crate) route: &'g Route,
    /// The verified caller (none on public routes).
    pub(crate) principal: Option<Principal>,
    /// The rate decision to report in `RateLimit-*` headers.
    pub(crate) rate: Option<Decision>,
    /// The request head.
    pub(crate) parts: http::request::Parts,
    /// The body to forward (the admitted job's bytes, or the client's stream).
    pub(crate) body: UpstreamBody,
    /// The job admitted on a `job_submit` route.
    pub(crate) job: Option<AdmittedJob>,
}

/// A job the ledger admitted (its reservation is recorded).
pub(crate) struct AdmittedJob {
    /// The ledger's job id.
    pub(crate) id: String,
    /// It claimed an idempotency key (proxy door only).
    pub(crate) keyed: bool,
    /// Headers for the upstream request (`X-Computegate-Job`).
    pub(crate) upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers for the client's response (estimate, remaining budget, run, notices).
    pub(crate) response_headers: Vec<(HeaderName, HeaderValue)>,
}

// === impl Gateway ===

impl Gateway {
    /// Decides `req` (already checked for size by nothing else): the route it matches, who sends
    /// it, whether policy allows it, and — on a `job_submit` route — whether the job is admitted.
    pub(super) async fn decide(
        &self,
        req: Request<ClientBody>,
        client: ClientFacts,
        request_id: &HeaderValue,
        seen: &mut Seen,
        door: Door,
    ) -> (Verdict<'_>, &RouteMetrics) {
        let refuse = |e: &GatewayError| Verdict::Answered(problem(e));
        if let Err(e) = self
            .check_head_size(&req)
            .and_then(|()| check_host(&req))
            .and_then(|()| check_target(&req))
        {
            return (refuse(&e), self.metrics.unmatched());
        }
        if let Some(control) = &self.control {
            let path = req.uri().path();
            if control.prefixes().iter().any(|p| path.starts_with(p)) {
                seen.route = Some(Arc::from("control"));
                let answer = match door {
                    Door::Proxy => control.handle(req, client).await,
                    // Sign-up, tokens and keys are Computegate's own pages: an edge proxy
                    // sends them to the public listener, never to an upstream.
                    Door::Authz { .. } => problem(&GatewayError::NoRoute),
                };
                return (Verdict::Answered(answer), self.metrics.control());
            }
        }
        let host = request_host(&req);
        let Some(route) = self.routes.find(host, req.uri().path(), req.method()) else {
            return (refuse(&GatewayError::NoRoute), self.metrics.unmatched());
        };
        let metrics = self.metrics.route(route.index);
        seen.route = Some(route.name.clone());
        seen.job_submission = route.class == RouteClass::JobSubmit;
        match self.judge(req, route, client, request_id, seen, door).await {
            Ok(verdict) => (verdict, metrics),
            Err(e) => (refuse(&e), metrics),
        }
    }

    /// The checks of a matched route, in order; `Err` is the refusal to answer.
    async fn judge<'g>(
        &'g self,
        req: Request<ClientBody>,
        route: &'g Route,
        client: ClientFacts,
        request_id: &HeaderValue,
        seen: &mut Seen,
        door: Door,
    ) -> Result<Verdict<'g>, GatewayError> {
        let principal = match route.class {
            RouteClass::Public => None,
            // The failed-authentication throttle counts per client, not per load balancer:
            // behind a trusted balancer that is the address it appended.
            RouteClass::Authenticated | RouteClass::JobSubmit => Some(
                self.authenticate(&req, client.origin_ip(req.headers()))
                    .await
                    .map_err(GatewayError::Auth)?,
            ),
        };
        if let Some(p) = &principal {
            seen.customer = Some(p.customer_id.clone());
            seen.credential = p.credential_id.clone();
            // Key scopes, from the cached principal (no store round trip).
            p.scopes
                .allow(route.class, req.method())
                .map_err(GatewayError::ScopeMissing)?;
        }
        let mut cleared = Cleared::default();
        if let (Some(enforcer), Some(p)) = (&self.enforcer, &principal) {
            cleared = enforcer
                .check(p, route, req.method(), Instant::now())
                .await
                .map_err(refusal_error)?;
        }
        if let (Some(template), Some(p)) = (&route.owner_path, &principal) {
            self.ownership
                .check(template, &route.upstream_name, req.uri().path(), p)
                .await?;
        }
        if let Some(len) = content_length(&req)
            && len > route.max_body
        {
            return Err(GatewayError::BodyTooLarge {
                limit: route.max_body,
            });
        }
        let (parts, incoming) = req.into_parts();
        let (RouteClass::JobSubmit, Some(p)) = (route.class, &principal) else {
            return Ok(Verdict::Allowed(Allowed {
                route,
                principal,
                rate: cleared.rate,
                parts,
                body: UpstreamBody::streaming(incoming, route.max_body),
                job: None,
            }));
        };
        if let Door::Authz { body_forwarded } = door {
            authz_can_admit(&parts, body_forwarded)?;
        }
        let caller = (p, cleared.standing.frontier_restricted);
        let admitted = match self
            .meter_job(route, caller, client, request_id, &parts, incoming)
            .await?
        {
            Submission::Admitted(admitted) => admitted,
            Submission::Replay(answer) => {
                return Ok(Verdict::Answered(crate::idempotency::replay(answer)));
            }
        };
        Ok(Verdict::Allowed(Allowed {
            route,
            principal,
            rate: cleared.rate,
            parts,
            body: UpstreamBody::Buffered(http_body_util::Full::new(admitted.body)),
            job: Some(AdmittedJob {
                id: admitted.job_id,
                keyed: admitted.keyed,
                upstream_headers: admitted.upstream_headers,
                response_headers: admitted.response_headers,
            }),
        }))
    }
}

/// The error answering an enforcer's refusal.
fn refusal_error(refusal: Refusal) -> GatewayError {
    match refusal {
        Refusal::Denied(d) => GatewayError::TierDenied(d),
        Refusal::RateLimited(d) => GatewayError::RateLimited(d),
        Refusal::RateLimitStoreDown => GatewayError::Unavailable {
            reason: "rate limits cannot be checked right now",
            retry_after: crate::ratelimit::cluster::PROBE_INTERVAL,
        },
    }
}

/// What job admission needs that only the proxy door can give. A job is metered from its body,
/// so without the complete body nothing is admitted (an edge proxy that cannot send it, like
/// nginx's `auth_request`, gets a refusal, never an unmetered job). An idempotency key's answer
/// is kept from the upstream's reply, which an edge proxy never shows Computegate, so a keyed
/// submission is refused rather than left in flight until the key expires.
fn authz_can_admit(parts: &http::request::Parts, body_forwarded: bool) -> Result<(), GatewayError> {
    if !body_forwarded {
        return Err(GatewayError::JobBodyNotForwarded);
    }
    if parts.headers.contains_key(&IDEMPOTENCY_KEY) {
        return Err(GatewayError::IdempotencyNeedsProxy);
    }
    Ok(())
}

/// Writes an allowed request's upstream identity into `headers`: the request id, the verified
/// identity headers of `principal` and the admitted `job`'s id — what both doors hand the
/// upstream (the proxy on the forwarded request, the authorization listener on its 200).
pub(crate) fn upstream_identity(
    principal: Option<&Principal>,
    job: Option<&AdmittedJob>,
    request_id: &HeaderValue,
    headers: &mut http::HeaderMap,
) {
    headers.insert(&crate::forward::X_REQUEST_ID, request_id.clone());
    if let Some(p) = principal {
        p.headers.apply(headers);
    }
    if let Some(job) = job {
        for (name, value) in &job.upstream_headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Writes what the client hears of an allowed request into `headers`: the rate decision
/// (`RateLimit-*`) and the admitted job's metering headers, replacing any of the same name (a
/// notice name may repeat, one per crossing).
pub(crate) fn client_facing(
    rate: Option<&Decision>,
    job: Option<&AdmittedJob>,
    headers: &mut http::HeaderMap,
) {
    if let Some(decision) = rate {
        for (name, value) in decision.headers() {
            headers.insert(name.clone(), value);
        }
    }
    if let Some(job) = job {
        for (name, _) in &job.response_headers {
            headers.remove(name);
        }
        for (name, value) in &job.response_headers {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Refuses what routing must not guess at: a path an upstream could normalize into another
/// route's path (routes match the raw path, so `/v1/ping/../jobs` would pass as the public ping
/// route), and a method in lower case (methods are case-sensitive and routes list them in upper
/// case, so `post /v1/jobs` would miss the metered job route and reach an upstream that may
/// upper-case it).
fn check_target<B>(req: &Request<B>) -> Result<(), GatewayError> {
    crate::ownership::check_canonical(req.uri().path())
        .map_err(|refused| GatewayError::BadRequest(refused.to_string()))?;
    if req
        .method()
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
    {
        return Err(GatewayError::BadRequest(
            "the method is not in upper case (methods are case-sensitive)".into(),
        ));
    }
    Ok(())
}

//! The data-plane request handler: limits, routing, authentication, forwarding and upgrades.
//!
//! [`Gateway::handle`] answers one request. It never fails: every error becomes a problem
//! document through [`GatewayError::to_problem`], and every answer carries `X-Request-Id`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::access_log::{AccessLog, AccessRecord, rfc3339_millis};
use crate::admission::{ComputeLedger, Submission, admit_job, describes_the_job};
use crate::auth::{AuthError, AuthOutcome, Authenticator, Principal, bearer};
use crate::body::{BodyLimitExceeded, ClientBodyError, ResponseBody, UpstreamBody, find_in_chain};
use crate::client_body::{BodyPace, ClientBody};
use crate::config::Config;
use crate::enforce::Enforcer;
use crate::error::GatewayError;
use crate::forward::{self, ClientFacts, X_REQUEST_ID};
use crate::metering::Profile;
use crate::metrics::{GatewayMetrics, RouteMetrics};
use crate::ownership::{JobOwners, Ownership};
use crate::policy::PolicyHandle;
use crate::route::{Route, RouteTable};
use crate::upstream::UpstreamPool;

mod decision;

pub(crate) use decision::{AdmittedJob, Allowed, Door, Verdict, client_facing, upstream_identity};

/// A handler for the gateway's own endpoints on the public listener (sign-up, tokens, JWKS).
pub trait ControlPlane: Send + Sync + 'static {
    /// Path prefixes this handler owns, e.g. `/computegate/` and `/.well-known/`.
    fn prefixes(&self) -> &[&'static str];
    /// Answers a request whose path starts with one of [`ControlPlane::prefixes`].
    fn handle(
        &self,
        req: Request<ClientBody>,
        client: ClientFacts,
    ) -> crate::auth::BoxFuture<Response<ResponseBody>>;
}

/// Everything the data plane needs to answer requests.
pub struct Gateway {
    routes: RouteTable,
    pools: Vec<UpstreamPool>,
    metrics: GatewayMetrics,
    max_header_bytes: u64,
    /// Read deadline and minimum rate of request bodies.
    body_pace: BodyPace,
    trust_forwarded: bool,
    /// `server.admin_trust_forwarded_headers`, for the admin listener.
    admin_trust_forwarded: bool,
    untrusted: forward::untrusted::UntrustedHeaders,
    authenticator: Option<Arc<dyn Authenticator>>,
    control: Option<Arc<dyn ControlPlane>>,
    enforcer: Option<Enforcer>,
    ledger: Option<Arc<dyn ComputeLedger>>,
    ownership: Ownership,
    access_log: Option<AccessLog>,
    /// How long an idempotency key answers retries (`server.idempotency_key_ttl`).
    idempotency_key_ttl: std::time::Duration,
}

/// What dispatch learned about a request, for its access-log line.
#[derive(Debug, Default)]
struct Seen {
    route: Option<Arc<str>>,
    customer: Option<Arc<str>>,
    credential: Option<Arc<str>>,
    job_submission: bool,
}

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnFacts {
    /// Peer IP.
    pub ip: IpAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Decrements the in-flight gauge even when the client goes away mid-request.
struct InFlight<'a>(&'a GatewayMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

// === impl Gateway ===

impl Gateway {
    /// Builds the data plane from validated configuration, registering its metrics.
    pub fn new(
        config: &Config,
        registry: &mut prometheus_client::registry::Registry,
        authenticator: Option<Arc<dyn Authenticator>>,
        control: Option<Arc<dyn ControlPlane>>,
    ) -> Result<Self, String> {
        let names: Vec<&String> = config.upstreams.keys().collect();
        let pools = config
            .upstreams
            .iter()
            .map(|(name, c)| UpstreamPool::new(name, c, config.server.listener_threads()))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = RouteTable::new(&config.routes, |name| {
            names.iter().position(|n| *n == name).unwrap_or(0)
        });
        let route_names: Vec<Arc<str>> = routes.routes().iter().map(|r| r.name.clone()).collect();
        let upstream_names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let metrics = GatewayMetrics::register(registry, &route_names, &upstream_names);
        Ok(Self {
            routes,
            pools,
            metrics,
            max_header_bytes: config.server.max_header_bytes.as_u64(),
            body_pace: BodyPace {
                timeout: config.server.body_read_timeout,
                min_rate: config.server.body_min_rate.as_u64(),
            },
            trust_forwarded: config.server.trust_forwarded_headers,
            admin_trust_forwarded: config.server.admin_trust_forwarded_headers,
            untrusted: forward::untrusted::UntrustedHeaders::new(
                &config.server.client_ip_headers,
                config.server.set_x_real_ip,
            ),
            authenticator,
            control,
            enforcer: None,
            ledger: None,
            ownership: Ownership::new(None),
            access_log: None,
            idempotency_key_ttl: config.server.idempotency_key_ttl,
        })
    }

    /// Writes one access-log line per request to `log` (see [`crate::access_log`]).
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access_log = log;
        self
    }

    /// Admits jobs on `job_submit` routes through `ledger`.
    pub fn with_ledger(mut self, ledger: Arc<dyn ComputeLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Checks job ownership on `owner_path` routes through `owners` (without it, those routes
    /// answer 503).
    pub fn with_job_owners(mut self, owners: Arc<dyn JobOwners>) -> Self {
        self.ownership = Ownership::new(Some(owners));
        self
    }

    /// Enforces the tier policy (routes, methods, rate limits) on authenticated routes.
    pub fn with_policy(mut self, policy: Arc<PolicyHandle>) -> Self {
        self.enforcer = Some(Enforcer::new(policy));
        self
    }

    /// Counts tier rate limits cluster-wide through `leaser` (call after
    /// [`Gateway::with_policy`]); see [`crate::ratelimit::cluster`].
    pub fn with_token_leaser(
        mut self,
        leaser: Arc<dyn crate::ratelimit::TokenLeaser>,
        replicas: u32,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let metrics = crate::ratelimit::cluster::LeaseMetrics::register(registry);
        self.enforcer = self
            .enforcer
            .map(|e| e.with_leaser(leaser, replicas, metrics));
        self
    }

    /// Read deadline and minimum rate of request bodies (`server.body_read_timeout`).
    pub fn body_pace(&self) -> BodyPace {
        self.body_pace
    }

    /// Whether the admin listener trusts client-sent forwarding headers
    /// (`server.admin_trust_forwarded_headers`).
    pub fn admin_trusts_forwarded_headers(&self) -> bool {
        self.admin_trust_forwarded
    }

    /// The upstream pools (for readiness probes).
    pub fn pools(&self) -> &[UpstreamPool] {
        &self.pools
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnFacts) -> Response<ResponseBody> {
        self.handle_at(req, conn, Door::Proxy).await
    }

    /// Answers one request that came in at `door`: the same limits, decision, access record,
    /// metrics and `X-Request-Id` for both; an authorization request (already translated to the
    /// request it asks about, from a trusted proxy) is answered by [`crate::authz::answer`].
    pub(crate) async fn handle_at(
        &self,
        req: Request<Incoming>,
        conn: ConnFacts,
        door: Door,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        self.metrics.in_flight.inc();
        let _in_flight = InFlight(&self.metrics);
        let method = req.method().clone();
        let request_id = forward::request_id(req.headers());
        // HTTP/1.x only: HTTP/2 has no `Connection` header, a stream is reset instead.
        let body_pending = req.version() < Version::HTTP_2 && !req.body().is_end_stream();
        let client = ClientFacts {
            ip: conn.ip,
            proto: if conn.tls { "https" } else { "http" },
            // An edge proxy's authorization request comes from a configured trusted proxy,
            // whose forwarding headers name the client.
            trust_forwarded: self.trust_forwarded || door != Door::Proxy,
        };
        // Read before the request is consumed; only when there is a log to write.
        let logged = self.access_log.as_ref().map(|_| {
            (
                std::time::SystemTime::now(),
                client.origin_ip(req.headers()),
                content_length(&req),
            )
        });
        let (parts, incoming) = req.into_parts();
        let (body, body_clock) = ClientBody::new(incoming, self.body_pace);
        let req = Request::from_parts(parts, body);
        let mut seen = Seen::default();
        let (mut resp, route_metrics) = match door {
            Door::Proxy => self.dispatch(req, client, &request_id, &mut seen).await,
            Door::Authz { .. } => {
                let (verdict, metrics) =
                    self.decide(req, client, &request_id, &mut seen, door).await;
                (crate::authz::answer(verdict, &request_id), metrics)
            }
        };
        if body_clock.expired() {
            // Whoever read the body (admission, the upstream stream, a control-plane handler)
            // made its own error of it; the cause is the client's pace, so it is a 408.
            resp = problem(&GatewayError::BodyTimeout);
        }
        let elapsed = start.elapsed();
        if let (Some(log), Some((at, origin, request_bytes))) = (&self.access_log, logged) {
            let record = AccessRecord {
                time: rfc3339_millis(at),
                request_id: request_id.to_str().unwrap_or_default(),
                customer: seen.customer.as_deref(),
                credential_id: seen.credential.as_deref(),
                route: seen.route.as_deref(),
                method: method.as_str(),
                status: resp.status().as_u16(),
                request_bytes,
                response_bytes: resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
                latency_ms: elapsed.as_secs_f64() * 1e3,
                client: origin,
                job_submission: seen.job_submission,
            };
            log.record(&record).await;
        }
        resp.headers_mut().insert(&X_REQUEST_ID, request_id);
        if body_pending && !body_clock.finished() {
            // Answered before the whole body was read (the gateway refused early, a handler or
            // an upstream answered first): the rest of it is still on the connection, which
            // cannot carry another request. Say so, so the client opens a new connection
            // instead of failing its next request on this one.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        route_metrics.observe(&method, resp.status().as_u16(), elapsed.as_secs_f64());
        resp
    }

    async fn dispatch(
        &self,
        mut req: Request<ClientBody>,
        client: ClientFacts,
        request_id: &HeaderValue,
        seen: &mut Seen,
    ) -> (Response<ResponseBody>, &RouteMetrics) {
        let client_upgrade = req
            .headers()
            .contains_key(header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let (verdict, metrics) = self
            .decide(req, client, request_id, seen, Door::Proxy)
            .await;
        let Allowed {
            route,
            principal,
            rate,
            parts,
            body,
            job,
        } = match verdict {
            Verdict::Allowed(allowed) => allowed,
            Verdict::Answered(resp) => return (resp, metrics),
        };
        let resp = self
            .forward(
                parts,
                body,
                (route, client),
                (principal.as_ref(), job.as_ref()),
                request_id,
                client_upgrade,
            )
            .await;
        let mut released = false;
        if let (Some(job), Some(reason)) = (&job, not_taken(&resp)) {
            self.release_job(job.id.clone(), reason).await;
            released = true;
        }
        let resp = match resp {
            Ok(mut resp) => {
                if let (Some(job), Some(pointer), Some(p)) =
                    (&job, &route.job_id_pointer, &principal)
                    && resp.status().is_success()
                {
                    resp = self
                        .ownership
                        .learn(&route.upstream_name, pointer, job.id.clone(), p, resp)
                        .await;
                }
                // The gateway's metering headers replace any the upstream sent.
                decision::client_facing(rate.as_ref(), job.as_ref(), resp.headers_mut());
                resp
            }
            Err(e) => problem(&e),
        };
        match job {
            // The job may exist upstream (accepted, or the outcome is unknown): what the client
            // hears now is what a retry with its key hears (see `crate::idempotency`).
            Some(job) if job.keyed && !released => (self.keep_answer(job.id, resp).await, metrics),
            _ => (resp, metrics),
        }
    }

    /// Stores `resp` as the answer to the keyed submission of `job_id`, awaited before
    /// answering so a retry that follows at once finds it, and returns it unchanged.
    async fn keep_answer(
        &self,
        job_id: String,
        resp: Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let Some(ledger) = &self.ledger else {
            return resp;
        };
        let (resp, answer) = crate::idempotency::keep(resp, describes_the_job).await;
        ledger.record_answer(job_id, answer).await;
        resp
    }

    /// Returns the reservation of an admitted job the upstream did not take (see [`not_taken`]).
    /// Awaited before answering, so a client that retries at once is judged without it.
    async fn release_job(&self, job_id: String, reason: String) {
        if let Some(ledger) = &self.ledger {
            ledger.release(job_id, reason).await;
        }
    }

    /// Meters and admits a job submission (see [`crate::admission`]) of `caller` (the principal
    /// and whether jurisdiction rules restrict it to below the frontier FLOP).
    async fn meter_job(
        &self,
        route: &Route,
        (principal, frontier_restricted): (&Principal, bool),
        client: ClientFacts,
        request_id: &HeaderValue,
        request: &http::request::Parts,
        body: ClientBody,
    ) -> Result<Submission, GatewayError> {
        let unavailable = || GatewayError::Unavailable {
            reason: "job admission is not configured",
            retry_after: std::time::Duration::from_secs(5),
        };
        let (Some(ledger), Some(enforcer)) = (&self.ledger, &self.enforcer) else {
            return Err(unavailable());
        };
        let profile = route
            .profile
            .as_deref()
            .and_then(Profile::parse)
            .ok_or_else(unavailable)?;
        let admission = (
            principal.clone(),
            route.name.clone(),
            request_id.to_str().unwrap_or_default().to_string(),
            client.origin_ip(&request.headers),
            frontier_restricted,
        );
        admit_job(
            ledger.as_ref(),
            enforcer.policy().current(),
            profile,
            body,
            request,
            admission,
            self.idempotency_key_ttl,
        )
        .await
    }

    async fn authenticate(
        &self,
        req: &Request<ClientBody>,
        ip: IpAddr,
    ) -> Result<Principal, AuthError> {
        let Some(auth) = &self.authenticator else {
            return Err(AuthError::Unavailable);
        };
        let cred = bearer(req.headers())?;
        match auth.authenticate(cred, ip) {
            AuthOutcome::Ready(r) => r,
            AuthOutcome::Pending(f) => f.await,
        }
    }

    fn check_head_size(&self, req: &Request<ClientBody>) -> Result<(), GatewayError> {
        // Request line plus `name: value\r\n` for every field, as on the wire in HTTP/1.1.
        let mut size = req.method().as_str().len() as u64
            + req.uri().path_and_query().map_or(1, |p| p.as_str().len()) as u64
            + 12;
        for (name, value) in req.headers() {
            size += (name.as_str().len() + value.len() + 4) as u64;
        }
        if size > self.max_header_bytes {
            return Err(GatewayError::HeadersTooLarge {
                size,
                limit: self.max_header_bytes,
            });
        }
        Ok(())
    }

    async fn forward(
        &self,
        mut parts: http::request::Parts,
        body: UpstreamBody,
        (route, client): (&Route, ClientFacts),
        (principal, job): (Option<&Principal>, Option<&AdmittedJob>),
        request_id: &HeaderValue,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let pool = &self.pools[route.upstream];
        let now = Instant::now();
        let target = pool.pick(now);

        // HTTP/2 carries the host in `:authority`; HTTP/1.1 upstreams need `Host`, and the
        // forwarding headers are derived from it, so it goes in first.
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, h);
        }
        let hop = forward::prepare_request_headers(&mut parts.headers, &client);
        self.untrusted.apply(&mut parts.headers, client.ip);
        if principal.is_some() {
            // The caller's secret stays here; upstreams get the verified identity instead.
            parts.headers.remove(header::AUTHORIZATION);
        }
        // Set by the gateway (after client-sent `X-Computegate-*` headers were removed).
        decision::upstream_identity(principal, job, request_id, &mut parts.headers);
        parts.uri = upstream_uri(&target.authority, &parts.uri)?;
        parts.version = Version::HTTP_11;
        let upgrading = hop.upgrade.is_some();
        let up_req = Request::from_parts(parts, body);

        let sent = tokio::time::timeout(pool.response_timeout, pool.client().request(up_req)).await;
        let mut resp = match sent {
            Err(_elapsed) => {
                self.metrics.upstream_error(&pool.name, "timeout");
                return Err(GatewayError::UpstreamTimeout {
                    upstream: pool.name.clone(),
                    after: pool.response_timeout,
                });
            }
            Ok(Err(err)) => return Err(self.classify(pool, target, err, now)),
            Ok(Ok(resp)) => resp,
        };
        pool.mark_healthy(target);

        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        forward::prepare_response_headers(resp.headers_mut(), switching && upgrading);
        if switching {
            match client_upgrade {
                Some(client_side) if upgrading => {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(splice_upgraded(client_side, upstream_side));
                }
                _ => {
                    self.metrics.upstream_error(&pool.name, "protocol");
                    return Err(GatewayError::UpstreamProtocol {
                        upstream: pool.name.clone(),
                    });
                }
            }
        }
        Ok(resp.map(ResponseBody::Upstream))
    }

    fn classify(
        &self,
        pool: &UpstreamPool,
        target: &crate::upstream::Target,
        err: hyper_util::client::legacy::Error,
        now: Instant,
    ) -> GatewayError {
        if let Some(exceeded) = find_in_chain::<BodyLimitExceeded>(&err) {
            return GatewayError::BodyTooLarge {
                limit: exceeded.limit,
            };
        }
        if err.is_connect() {
            pool.eject(target, now);
            self.metrics.upstream_error(&pool.name, "connect");
            tracing::warn!(upstream = %pool.name, address = %target.authority, "upstream connect failed; ejected");
            return GatewayError::UpstreamConnect {
                upstream: pool.name.clone(),
            };
        }
        if find_in_chain::<ClientBodyError>(&err).is_some() {
            return GatewayError::ClientBody;
        }
        self.metrics.upstream_error(&pool.name, "protocol");
        tracing::warn!(upstream = %pool.name, error = %err, "upstream exchange failed");
        GatewayError::UpstreamProtocol {
            upstream: pool.name.clone(),
        }
    }
}

/// Copies bytes both ways between an upgraded client and upstream connection until either closes.
async fn splice_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((c, u)) => {
            let mut c = TokioIo::new(c);
            let mut u = TokioIo::new(u);
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
    }
}

fn problem(err: &GatewayError) -> Response<ResponseBody> {
    err.to_problem().into_response().map(ResponseBody::full)
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any request with more than one, is
/// refused (two hosts would let routing and the upstream read different ones).
fn check_host(req: &Request<ClientBody>) -> Result<(), GatewayError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(GatewayError::BadRequest(
            "the request has more than one Host header".into(),
        )),
        (None, None) if req.version() == Version::HTTP_11 => Err(GatewayError::BadRequest(
            "an HTTP/1.1 request needs a Host header".into(),
        )),
        _ => Ok(()),
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the `Host` header.
fn request_host(req: &Request<ClientBody>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

fn upstream_uri(authority: &http::uri::Authority, original: &Uri) -> Result<Uri, GatewayError> {
    let path = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|_| GatewayError::BadRequest("request target cannot be forwarded".into()))
}

/// Why the upstream certainly did not take a forwarded job, if it certainly did not: no
/// connection could be made, or it refused the job (any 4xx, or 503). Any other outcome — a
/// timeout, a broken exchange, another 5xx — may hide a job that runs, so its reservation
/// stays (usage events settle it; otherwise it only over-counts until it leaves the windows).
fn not_taken(resp: &Result<Response<ResponseBody>, GatewayError>) -> Option<String> {
    match resp {
        Ok(r) if r.status().is_client_error() || r.status() == StatusCode::SERVICE_UNAVAILABLE => {
            Some(format!("upstream answered {}", r.status().as_u16()))
        }
        Ok(_) => None,
        Err(e @ GatewayError::UpstreamConnect { .. }) => Some(format!("forwarding failed: {e}")),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answered(status: u16) -> Result<Response<ResponseBody>, GatewayError> {
        let mut resp = Response::new(ResponseBody::empty());
        *resp.status_mut() = StatusCode::from_u16(status).expect("status");
        Ok(resp)
    }

    #[test]
    fn only_a_certain_refusal_releases_a_job() {
        for status in [400, 404, 409, 422, 429, 503] {
            assert!(not_taken(&answered(status)).is_some(), "{status} refuses");
        }
        for status in [200, 201, 202, 302, 500, 502, 504] {
            assert!(
                not_taken(&answered(status)).is_none(),
                "{status} may hide a job"
            );
        }
        let upstream = "sim".to_string();
        let refused = Err(GatewayError::UpstreamConnect {
            upstream: upstream.clone(),
        });
        assert!(not_taken(&refused).is_some(), "never reached the upstream");
        let late = Err(GatewayError::UpstreamTimeout {
            upstream,
            after: Duration::from_secs(60),
        });
        assert!(not_taken(&late).is_none(), "it may be running");
    }
}

//! Computegate's data plane: listeners, the reverse proxy, routing to upstream pools,
//! credential verification through ports, and metrics.
//!
//! This crate knows nothing of stores or verification workflows; it declares small ports that
//! the root crate implements: [`auth::Authenticator`] (via [`credentials::IdentityDirectory`]),
//! [`proxy::ControlPlane`], [`admin::ReadinessCheck`], [`admission::ComputeLedger`] (job
//! admission against the compute ledger), [`ownership::JobOwners`] (which customer owns which
//! upstream job) and [`ratelimit::TokenLeaser`] (cluster-wide rate-limit tokens). The policy
//! model and its pure decisions come from the `computegate-policy` crate (re-exported as
//! [`policy`]). Request lifecycle on the public listener:
//!
//! ```text
//! accept ─▶ TLS (ALPN h2 | http/1.1) ─▶ HTTP/1.1 | HTTP/2 ─▶ head timeout (408) / size (431)
//!   ─▶ request id ─▶ control-plane prefix? ──yes──▶ ControlPlane (sign-up, tokens, JWKS)
//!   ─▶ route match: host + longest path prefix + method ──none──▶ 404
//!   ─▶ class public | authenticated | job_submit ─▶ Authenticator (bearer JWT or API key) ─▶ 401/403
//!   ─▶ Enforcer: principal's verified jurisdictions ─▶ 403 jurisdiction-denied;
//!      tier allows route + method ─▶ 403 tier-denied; tier rate ─▶ 429
//!      (policy decisions: computegate-policy; cluster-wide tokens: TokenLeaser port)
//!   ─▶ owner_path route naming a job: JobOwners port (cached) ─▶ 404 unless the caller owns it
//!   ─▶ body limit (Content-Length now, streamed count later) ─▶ 413
//!   ─▶ job_submit: body read ─▶ Idempotency-Key? stored answer replayed / 409 in flight /
//!      422 reused (idempotency, via the ComputeLedger port)
//!   ─▶ JobSpec + FLOP estimate (metering) ─▶ ComputeLedger port ─▶ typed Outcome
//!      (computegate-policy admission) ─▶ GatewayError: 403 job-denied / 409 held for review /
//!      503 ledger unavailable; admitted ─▶ forward (release on an upstream refusal)
//!   ─▶ forward: hop-by-hop removed, X-Forwarded-*/Forwarded set, identity headers added,
//!      pick address round-robin (passive health) ─▶ 502 connect / 504 timeout
//!   ─▶ accepted job: its upstream id read from the answer, bound to the owner (JobOwners)
//!   ─▶ keyed job not released: the answer kept for the key's retries (ComputeLedger)
//!   ─▶ response streamed back (+ X-Request-Id); 101 ─▶ bytes spliced both ways
//!   ─▶ metrics: requests by route/method/status class, latency histogram, in-flight
//! ```
//!
//! The authorization listener ([`authz`], `[authz]`) is a second front door to the same
//! decision: an edge proxy's ask becomes the request it names, runs every step above up to and
//! including job admission, and is answered 200 with the upstream identity headers instead of
//! being forwarded, or refused with the same problem document.

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod authz;
pub mod body;
pub mod client_body;
pub mod config;
pub mod conn_io;
pub mod credentials;
pub mod enforce;
pub mod error;
pub mod forward;
pub mod h2_headers;
pub mod idempotency;
pub mod listeners;
pub mod metering;
pub mod metrics;
pub mod ownership;
pub mod policy;
pub mod problem;
pub mod proxy;
pub mod ratelimit;
pub mod route;
pub mod scope;
pub mod server;
pub mod tls;
pub mod upstream;

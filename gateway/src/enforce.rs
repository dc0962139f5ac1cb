//! Tier enforcement on the data plane: whether the caller's verification tier may use this route
//! and method, and the per-customer request rate of that tier, both read from the policy in force.
//!
//! Runs after authentication on every `authenticated` and `job_submit` request, from memory: the
//! policy is an `Arc` swapped on reload and the rate limiter is an in-process GCRA per customer.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use crate::auth::Principal;
use crate::policy::{Denial, PolicyHandle, authorize_route};
use crate::ratelimit::{Decision, Quota, RateLimiter};
use crate::route::Route;

/// Most customers whose rate state is kept; idle ones are dropped first.
const RATE_KEYS: usize = 100_000;

/// Why a request was refused before forwarding.
#[derive(Debug)]
pub enum Refusal {
    /// The tier may not use this route or method.
    Denied(Denial),
    /// The customer sent too many requests.
    RateLimited(Decision),
}

/// Route, method and rate checks against the policy in force.
pub struct Enforcer {
    policy: Arc<PolicyHandle>,
    limiter: RateLimiter,
}

// === impl Enforcer ===

impl Enforcer {
    /// Checks against `policy` (reloadable).
    pub fn new(policy: Arc<PolicyHandle>) -> Self {
        Self {
            policy,
            limiter: RateLimiter::new(RATE_KEYS, Instant::now()),
        }
    }

    /// The policy handle (job admission reads it too).
    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.policy
    }

    /// Ok with the rate decision to report in `RateLimit-*` headers (when the tier has a rate
    /// limit), or the refusal.
    pub fn check(
        &self,
        principal: &Principal,
        route: &Route,
        method: &Method,
        now: Instant,
    ) -> Result<Option<Decision>, Refusal> {
        let policy = self.policy.current();
        authorize_route(&policy, &principal.tier, &route.name, route.class, method)
            .map_err(Refusal::Denied)?;
        let quota = policy
            .tier(&principal.tier)
            .and_then(|t| t.rate_limit.as_ref())
            .and_then(Quota::from_spec);
        let Some(quota) = quota else {
            return Ok(None);
        };
        let decision = self.limiter.check(&principal.customer_id, quota, now);
        if decision.allowed {
            Ok(Some(decision))
        } else {
            Err(Refusal::RateLimited(decision))
        }
    }
}

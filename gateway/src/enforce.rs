//! Tier enforcement on the data plane: whether the caller may be served at all from where it is
//! verified to be (jurisdiction rules), whether its verification tier may use this route and
//! method, and the per-customer request rate of that tier, all read from the policy in force.
//!
//! Runs after authentication on every `authenticated` and `job_submit` request, from memory: the
//! policy is an `Arc` swapped on reload, the principal carries its verified jurisdictions (cached
//! with its tier, refreshed on the same change notices) and the rate limiter is an in-process
//! GCRA per customer, or — with Redis — tokens leased from a cluster-wide bucket
//! ([`crate::ratelimit::cluster`]), which waits for Redis only when this replica holds no token
//! for the customer. The quota is read from the policy at every request, so a reload applies at
//! the customer's next request in both modes.
//!
//! Jurisdictions are checked first: a party in a denied country group is refused whatever its
//! tier (telling it which tier to reach would mislead). A principal with no verified
//! jurisdiction yet (an unverified account) is not refused here: nothing is known against it,
//! and the tier rules already hold it to the trial. Its standing (frontier restriction) goes
//! with the request to job admission.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use crate::auth::Principal;
use crate::policy::{
    Denial, JurisdictionStanding, PolicyHandle, authorize_jurisdiction, authorize_route,
};
use crate::ratelimit::cluster::{Checked, ClusterLimiter, LeaseMetrics};
use crate::ratelimit::{Decision, Quota, RateLimiter, TokenLeaser};
use crate::route::Route;

/// Most customers whose rate state is kept; idle ones are dropped first.
const RATE_KEYS: usize = 100_000;

/// Why a request was refused before forwarding.
#[derive(Debug)]
pub enum Refusal {
    /// The caller's jurisdiction is denied, or its tier may not use this route or method.
    Denied(Denial),
    /// The customer sent too many requests.
    RateLimited(Decision),
    /// The cluster's rate-limit store is unreachable and the route fails closed.
    RateLimitStoreDown,
}

/// What a request that passed the checks carries on with.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Cleared {
    /// The rate decision to report in `RateLimit-*` headers, when the tier has a rate limit.
    pub rate: Option<Decision>,
    /// What jurisdiction rules say about the caller (job admission reads
    /// `frontier_restricted`).
    pub standing: JurisdictionStanding,
}

/// Jurisdiction, route, method and rate checks against the policy in force.
pub struct Enforcer {
    policy: Arc<PolicyHandle>,
    limiter: Limiter,
}

/// Where request rates are counted.
enum Limiter {
    /// In this process (single node).
    Local(RateLimiter),
    /// Leased from a bucket shared by every replica.
    Cluster(ClusterLimiter),
}

// === impl Enforcer ===

impl Enforcer {
    /// Checks against `policy` (reloadable).
    pub fn new(policy: Arc<PolicyHandle>) -> Self {
        Self {
            policy,
            limiter: Limiter::Local(RateLimiter::new(RATE_KEYS, Instant::now())),
        }
    }

    /// Counts request rates cluster-wide through `leaser`, sizing lease batches for about
    /// `replicas` replicas, instead of in process.
    pub fn with_leaser(
        mut self,
        leaser: Arc<dyn TokenLeaser>,
        replicas: u32,
        metrics: LeaseMetrics,
    ) -> Self {
        let limiter = ClusterLimiter::new(leaser, replicas, RATE_KEYS, Instant::now(), metrics);
        self.limiter = Limiter::Cluster(limiter);
        self
    }

    /// The policy handle (job admission reads it too).
    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.policy
    }

    /// Ok with the rate decision and the caller's jurisdiction standing, or the refusal.
    pub async fn check(
        &self,
        principal: &Principal,
        route: &Route,
        method: &Method,
        now: Instant,
    ) -> Result<Cleared, Refusal> {
        let policy = self.policy.current();
        let standing =
            authorize_jurisdiction(&policy, &principal.jurisdictions).map_err(|mut d| {
                d.tier = Some(principal.tier.to_string());
                Refusal::Denied(d)
            })?;
        authorize_route(&policy, &principal.tier, &route.name, route.class, method)
            .map_err(Refusal::Denied)?;
        let quota = policy
            .tier(&principal.tier)
            .and_then(|t| t.rate_limit.as_ref())
            .and_then(Quota::from_spec);
        let Some(quota) = quota else {
            return Ok(Cleared {
                rate: None,
                standing,
            });
        };
        let key = &principal.customer_id;
        let decision = match &self.limiter {
            Limiter::Local(l) => l.check(key, quota, now),
            Limiter::Cluster(l) => {
                match l.check(key, quota, now, route.rate_limit_fallback).await {
                    Checked::Decided(d) => d,
                    Checked::StoreDown => return Err(Refusal::RateLimitStoreDown),
                }
            }
        };
        if decision.allowed {
            Ok(Cleared {
                rate: Some(decision),
                standing,
            })
        } else {
            Err(Refusal::RateLimited(decision))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, IdentityHeaders};
    use crate::config::RouteConfig;
    use crate::error::GatewayError;
    use crate::policy::{DenialRule, Policy};
    use crate::route::RouteTable;

    const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");

    fn enforcer() -> Enforcer {
        let policy = Policy::from_toml(DEFAULT).expect("the shipped policy is valid");
        Enforcer::new(Arc::new(PolicyHandle::new(policy)))
    }

    fn routes() -> RouteTable {
        let text = "name = \"jobs\"\npath_prefix = \"/v1/jobs\"\nupstream = \"u\"\n\
                    class = \"job_submit\"\nprofile = \"generic\"\n";
        let jobs: RouteConfig = toml::from_str(text).expect("route");
        let api: RouteConfig =
            toml::from_str("name = \"api\"\npath_prefix = \"/v1\"\nupstream = \"u\"\n")
                .expect("route");
        RouteTable::new(&[jobs, api], |_| 0)
    }

    fn principal(tier: &str, countries: &[&str]) -> Principal {
        Principal {
            customer_id: Arc::from("c1"),
            tier: Arc::from(tier),
            organization_id: None,
            jurisdictions: countries.iter().map(|c| c.to_string()).collect(),
            method: AuthMethod::Jwt,
            scopes: crate::scope::Scopes::ALL,
            credential_id: None,
            headers: IdentityHeaders::new("c1", tier, None).expect("header-safe"),
        }
    }

    #[tokio::test]
    async fn a_denied_jurisdiction_refuses_every_route_whatever_the_tier() {
        let (e, routes) = (enforcer(), routes());
        let now = Instant::now();
        for route in routes.routes() {
            let p = principal("validated_end_user", &["SE", "IR"]);
            let Err(Refusal::Denied(d)) = e.check(&p, route, &Method::GET, now).await else {
                panic!("IR must be refused on {}", route.name);
            };
            assert_eq!(d.rule, DenialRule::DeniedJurisdiction);
            assert_eq!(d.tier.as_deref(), Some("validated_end_user"));
            assert_eq!(d.required_tier, None);
            let problem = GatewayError::TierDenied(d).to_problem();
            assert_eq!(problem.slug(), "jurisdiction-denied");
            let body = problem.to_json();
            assert_eq!(body["status"], 403);
            assert_eq!(body["rule"], "jurisdiction_denied");
            assert_eq!(body["tier"], "validated_end_user");
            assert_eq!(body["required_tier"], serde_json::Value::Null);
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("IR"), "{detail}");
            assert!(!detail.contains("SE"), "only the code that hit: {detail}");
        }
        // Jurisdiction comes before the tier rules: an unverified caller is not told to upgrade.
        let api = &routes.routes()[1];
        let unknown = principal("unverified", &[]);
        match e.check(&unknown, api, &Method::DELETE, now).await {
            Err(Refusal::Denied(d)) => assert_eq!(d.rule, DenialRule::MethodNotAllowed),
            other => panic!("expected a tier denial, got {other:?}"),
        }
        let p = principal("unverified", &["KP"]);
        match e.check(&p, api, &Method::DELETE, now).await {
            Err(Refusal::Denied(d)) => assert_eq!(d.rule, DenialRule::DeniedJurisdiction),
            other => panic!("expected a jurisdiction denial, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_and_allowed_jurisdictions_pass_with_their_standing() {
        let (e, routes) = (enforcer(), routes());
        let jobs = &routes.routes()[0];
        let now = Instant::now();
        let unknown = e
            .check(&principal("unverified", &[]), jobs, &Method::POST, now)
            .await
            .expect("no verified country yet is not refused");
        assert_eq!(unknown.standing, JurisdictionStanding::default());
        assert!(
            unknown.rate.is_some(),
            "the tier's rate limit still applies"
        );
        let se = e
            .check(
                &principal("identity_verified", &["SE"]),
                jobs,
                &Method::POST,
                now,
            )
            .await
            .expect("SE is served");
        assert!(!se.standing.frontier_restricted);
        let cn = e
            .check(
                &principal("organization_verified", &["US", "CN"]),
                jobs,
                &Method::POST,
                now,
            )
            .await
            .expect("CN is served, under the frontier restriction");
        assert!(cn.standing.frontier_restricted);
        // The tier rules still apply to an allowed jurisdiction.
        let api = &routes.routes()[1];
        match e
            .check(&principal("unverified", &["SE"]), api, &Method::DELETE, now)
            .await
        {
            Err(Refusal::Denied(d)) => assert_eq!(d.rule, DenialRule::MethodNotAllowed),
            other => panic!("expected a tier denial, got {other:?}"),
        }
    }
}

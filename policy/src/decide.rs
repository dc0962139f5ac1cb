//! Pure access decisions over a [`Policy`]: may this tier call this route with this method, and
//! may a party located in these jurisdictions be served at all.

use std::fmt;

use http::Method;

use super::Policy;
use super::RouteClass;
use super::model::Tier;

/// Why a request was refused, with what the 403 problem document needs: the rule, the caller's
/// tier and the lowest tier that would have been allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Denial {
    /// The rule that refused.
    pub rule: DenialRule,
    /// The caller's tier, when the rule is about tiers.
    pub tier: Option<String>,
    /// The lowest tier that would allow the request; `None` when no tier would.
    pub required_tier: Option<String>,
    /// Human explanation, safe to show the caller.
    pub detail: String,
}

/// Rules that refuse requests before any job is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialRule {
    /// The principal's tier is not in the policy (e.g. removed on reload): fail closed.
    UnknownTier,
    /// The tier may not call this route.
    RouteNotAllowed,
    /// The tier may call the route, but not with this method.
    MethodNotAllowed,
    /// The party is located in a denied country group.
    DeniedJurisdiction,
}

/// What jurisdiction rules say about a party that is not refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JurisdictionStanding {
    /// Review groups the party is located in (verification routes it to manual review).
    pub review_groups: Vec<String>,
    /// The party is in a frontier-restricted group: jobs bringing a run lineage or group to
    /// the frontier FLOP are blocked (pass to the admission evaluator).
    pub frontier_restricted: bool,
}

/// Whether `tier` may call `route` (a route name from the gateway configuration, of `class`)
/// with `method`.
///
/// A tier may call a route listed in its `allowed_routes` (or `"*"`) with a method in its
/// `allowed_methods` (or `"*"`); on a `job_submit` route a tier with `job_submit = true` may also
/// submit with the route's own method, the job then being held to the tier's caps.
pub fn authorize_route(
    policy: &Policy,
    tier: &str,
    route: &str,
    class: RouteClass,
    method: &Method,
) -> Result<(), Denial> {
    let Some(t) = policy.tier(tier) else {
        return Err(Denial {
            rule: DenialRule::UnknownTier,
            tier: Some(tier.to_string()),
            required_tier: policy
                .required_tier_for_route(route, class, method)
                .map(|t| t.name.clone()),
            detail: format!("tier `{tier}` is not defined by the policy in force"),
        });
    };
    tier_allows_route(t, route, class, method).map_err(|rule| {
        let required = policy.required_tier_for_route(route, class, method);
        let what = match rule {
            DenialRule::RouteNotAllowed => format!("route `{route}`"),
            DenialRule::MethodNotAllowed
            | DenialRule::UnknownTier
            | DenialRule::DeniedJurisdiction => format!("{method} on route `{route}`"),
        };
        let detail = match required {
            Some(r) => format!(
                "tier `{tier}` may not use {what}; it needs tier `{}` or higher",
                r.name
            ),
            None => format!("tier `{tier}` may not use {what}; no tier may"),
        };
        Denial {
            rule,
            tier: Some(tier.to_string()),
            required_tier: required.map(|r| r.name.clone()),
            detail,
        }
    })
}

/// Checks the jurisdictions a party is located in (ISO 3166-1 alpha-2 codes, or ISO 3166-2
/// subdivisions such as `UA-43`: nationality, address, headquarters, ultimate parent — the
/// caller passes all it knows). Any code in a `deny_groups` group refuses.
///
/// No codes (nothing verified yet) is no finding: the party is neither refused nor
/// restricted here, and its tier's caps are what limit it.
pub fn authorize_jurisdiction<S: AsRef<str>>(
    policy: &Policy,
    countries: &[S],
) -> Result<JurisdictionStanding, Denial> {
    if countries.is_empty() {
        return Ok(JurisdictionStanding::default());
    }
    let rules = policy.jurisdiction();
    let in_group = |group: &str| -> Option<&str> {
        let g = policy.country_group(group)?;
        countries.iter().map(AsRef::as_ref).find(|c| g.contains(c))
    };
    for group in &rules.deny_groups {
        if let Some(code) = in_group(group) {
            return Err(Denial {
                rule: DenialRule::DeniedJurisdiction,
                tier: None,
                required_tier: None,
                detail: format!(
                    "service is not available to parties located in {} (country group `{group}`)",
                    code.trim().to_ascii_uppercase()
                ),
            });
        }
    }
    let review_groups = rules
        .review_groups
        .iter()
        .filter(|g| in_group(g).is_some())
        .cloned()
        .collect();
    let frontier_restricted = rules
        .frontier
        .as_ref()
        .is_some_and(|f| f.groups.iter().any(|g| in_group(g).is_some()));
    Ok(JurisdictionStanding {
        review_groups,
        frontier_restricted,
    })
}

/// The route rule of one tier.
pub(super) fn tier_allows_route(
    tier: &Tier,
    route: &str,
    class: RouteClass,
    method: &Method,
) -> Result<(), DenialRule> {
    let listed = |list: &[String], item: &str| list.iter().any(|x| x == "*" || x == item);
    if !listed(&tier.allowed_routes, route) {
        return Err(DenialRule::RouteNotAllowed);
    }
    let method_ok = listed(&tier.allowed_methods, method.as_str())
        || (class == RouteClass::JobSubmit && tier.job_submit);
    if !method_ok {
        return Err(DenialRule::MethodNotAllowed);
    }
    Ok(())
}

// === impl DenialRule ===

impl DenialRule {
    /// Stable name for problem documents and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialRule::UnknownTier => "tier_unknown",
            DenialRule::RouteNotAllowed => "tier_route",
            DenialRule::MethodNotAllowed => "tier_method",
            DenialRule::DeniedJurisdiction => "jurisdiction_denied",
        }
    }
}

impl fmt::Display for DenialRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Denial {}

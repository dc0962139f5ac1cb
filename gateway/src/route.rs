//! Route matching: host and longest path prefix (at a segment boundary), then method.
//!
//! The table is built once from configuration and matched without allocation on every request.

use std::sync::Arc;

use http::Method;

use crate::config::{RouteClass, RouteConfig};
use crate::ownership::{OwnerPath, default_job_id_pointer};

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Index in the table (stable; used to find per-route metrics).
    pub index: usize,
    /// Route name (metrics label).
    pub name: Arc<str>,
    /// Exact host to match (lowercase, no port).
    host: Option<String>,
    /// Path prefix without a trailing slash (except the root `/`).
    prefix: String,
    /// Allowed methods; empty = all.
    methods: Vec<Method>,
    /// Index of the upstream pool.
    pub upstream: usize,
    /// Route class.
    pub class: RouteClass,
    /// Job-spec profile of `job_submit` routes.
    pub profile: Option<String>,
    /// Body limit in bytes.
    pub max_body: u64,
    /// Rate limiting while the shared rate-limit store is down.
    pub rate_limit_fallback: crate::config::RateLimitFallback,
    /// The upstream pool's name (the id space of its jobs, for ownership).
    pub upstream_name: Arc<str>,
    /// Ownership rule of an object route (see [`crate::ownership`]).
    pub owner_path: Option<OwnerPath>,
    /// `job_submit` routes whose upstream has an ownership rule: where the accepted job's id is
    /// in the upstream's answer (JSON pointer); `None` when no id needs learning.
    pub job_id_pointer: Option<String>,
}

/// All routes, ordered for matching.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Indices into `routes`, most specific first.
    order: Vec<usize>,
}

// === impl RouteTable ===

impl RouteTable {
    /// Compiles routes; `upstream_index` resolves a pool name (validated beforehand, as are
    /// owner paths: one that does not parse is left out).
    pub fn new(configs: &[RouteConfig], upstream_index: impl Fn(&str) -> usize) -> Self {
        let owned = |upstream: &str| {
            configs
                .iter()
                .any(|c| c.owner_path.is_some() && c.upstream == upstream)
        };
        let routes: Vec<Route> = configs
            .iter()
            .enumerate()
            .map(|(index, c)| Route {
                index,
                name: Arc::from(c.name.as_str()),
                host: c.host.as_ref().map(|h| h.to_ascii_lowercase()),
                prefix: normalize_prefix(&c.path_prefix),
                methods: c
                    .methods
                    .iter()
                    .flatten()
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect(),
                upstream: upstream_index(&c.upstream),
                class: c.class,
                profile: c.profile.clone(),
                max_body: c.max_body.as_u64(),
                rate_limit_fallback: c.rate_limit_fallback,
                upstream_name: Arc::from(c.upstream.as_str()),
                owner_path: c
                    .owner_path
                    .as_deref()
                    .and_then(|t| OwnerPath::parse(t).ok()),
                job_id_pointer: (c.class == RouteClass::JobSubmit && owned(&c.upstream))
                    .then(|| {
                        c.job_id_pointer.clone().or_else(|| {
                            c.profile
                                .as_deref()
                                .and_then(default_job_id_pointer)
                                .map(str::to_owned)
                        })
                    })
                    .flatten(),
            })
            .collect();
        let mut order: Vec<usize> = (0..routes.len()).collect();
        // Host-specific routes before any-host ones, then longer prefixes first; stable for ties.
        order.sort_by_key(|&i| {
            let r = &routes[i];
            (r.host.is_none(), std::cmp::Reverse(r.prefix.len()))
        });
        Self { routes, order }
    }

    /// All routes in configuration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for this host (may carry a port), path and method.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<&Route> {
        let host = host.map(strip_port);
        self.order.iter().map(|&i| &self.routes[i]).find(|r| {
            r.host
                .as_deref()
                .is_none_or(|h| host.is_some_and(|got| got.eq_ignore_ascii_case(h)))
                && prefix_matches(&r.prefix, path)
                && (r.methods.is_empty() || r.methods.contains(method))
        })
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

/// True when `path` equals `prefix` or continues it at a `/` boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// `host:port` → `host`, keeping bracketed IPv6 literals whole.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host[..end + 2];
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        name: &str,
        host: Option<&str>,
        prefix: &str,
        methods: Option<&[&str]>,
    ) -> RouteConfig {
        let text = format!(
            "name = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"u\"\n{}{}",
            host.map(|h| format!("host = \"{h}\"\n"))
                .unwrap_or_default(),
            methods
                .map(|m| format!("methods = {m:?}\n"))
                .unwrap_or_default(),
        );
        toml::from_str(&text).unwrap()
    }

    fn table(routes: Vec<RouteConfig>) -> RouteTable {
        RouteTable::new(&routes, |_| 0)
    }

    #[test]
    fn longest_prefix_wins_at_segment_boundary() {
        let t = table(vec![
            route("root", None, "/", None),
            route("jobs", None, "/v1/jobs", None),
            route("v1", None, "/v1/", None),
        ]);
        let find = |p: &str| t.find(None, p, &Method::GET).map(|r| &*r.name);
        assert_eq!(find("/v1/jobs"), Some("jobs"));
        assert_eq!(find("/v1/jobs/7/logs"), Some("jobs"));
        assert_eq!(find("/v1/jobsx"), Some("v1"));
        assert_eq!(find("/v2"), Some("root"));
    }

    #[test]
    fn host_specific_routes_first_and_port_ignored() {
        let t = table(vec![
            route("any", None, "/", None),
            route("api", Some("API.example.com"), "/", None),
        ]);
        let name = |h| t.find(h, "/x", &Method::GET).map(|r| r.name.to_string());
        assert_eq!(name(Some("api.example.com:8443")).as_deref(), Some("api"));
        assert_eq!(name(Some("other.example.com")).as_deref(), Some("any"));
        assert_eq!(name(None).as_deref(), Some("any"));
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }

    #[test]
    fn methods_filter() {
        let t = table(vec![route("ping", None, "/v1/ping", Some(&["GET"]))]);
        assert!(t.find(None, "/v1/ping", &Method::GET).is_some());
        assert!(t.find(None, "/v1/ping", &Method::POST).is_none());
        assert!(t.find(None, "/nothing", &Method::GET).is_none());
    }

    proptest::proptest! {
        #[test]
        fn prefix_match_never_panics(prefix in "/[a-z/]{0,12}", path in "[ -~]{0,40}") {
            let _ = prefix_matches(&normalize_prefix(&prefix), &path);
        }
    }
}

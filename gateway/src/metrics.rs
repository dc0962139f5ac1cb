//! Data-plane Prometheus metrics on an explicit registry.
//!
//! Labels are bounded: route *names* from configuration (plus `unmatched` and `control`), a fixed
//! set of method names, status classes, upstream pool names and error kinds. Per-route handles are
//! resolved once at start so the hot path only touches atomics.

use std::sync::Arc;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Request latency buckets in seconds: from 100 µs (an in-memory answer) to 60 s (the default
/// upstream response timeout), dense where proxying overhead lives.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    15.0, 60.0,
];

/// Route label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Route label of the gateway's own control-plane endpoints on the public listener.
pub const CONTROL_ROUTE: &str = "control";

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Kinds of failed upstream exchange.
const UPSTREAM_ERROR_KINDS: [&str; 3] = ["connect", "timeout", "protocol"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    upstream: String,
    kind: &'static str,
}

/// Handles for one route.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    requests: Vec<Counter>,
    duration: Histogram,
}

/// All data-plane metrics.
#[derive(Debug)]
pub struct GatewayMetrics {
    routes: Vec<RouteMetrics>,
    unmatched: RouteMetrics,
    control: RouteMetrics,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Requests being served right now.
    pub in_flight: Gauge,
}

// === impl GatewayMetrics ===

impl GatewayMetrics {
    /// Registers the metrics for `route_names` and the pools `upstream_names` into `registry`.
    ///
    /// Every upstream error series starts at 0, so that a rate or an alert on it has a series
    /// to read before the first failure (an absent series reads as "no data", not as zero).
    pub fn register(
        registry: &mut Registry,
        route_names: &[Arc<str>],
        upstream_names: &[&str],
    ) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "computegate_http_requests",
            "HTTP requests answered, by route, method and status class",
            requests.clone(),
        );
        registry.register(
            "computegate_http_request_duration_seconds",
            "Time from request head to response head, by route",
            duration.clone(),
        );
        registry.register(
            "computegate_upstream_errors",
            "Failed exchanges with upstreams, by pool and kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        registry.register(
            "computegate_http_in_flight",
            "Requests being served",
            in_flight.clone(),
        );
        registry.register(
            "computegate_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        for upstream in upstream_names {
            for kind in UPSTREAM_ERROR_KINDS {
                let _ = upstream_errors.get_or_create(&UpstreamErrorLabels {
                    upstream: (*upstream).to_string(),
                    kind,
                });
            }
        }
        let resolve = |route: &Arc<str>| RouteMetrics {
            requests: METHODS
                .iter()
                .flat_map(|m| {
                    STATUS_CLASSES.iter().map(|s| {
                        requests
                            .get_or_create(&RequestLabels {
                                route: route.clone(),
                                method: m,
                                status_class: s,
                            })
                            .clone()
                    })
                })
                .collect(),
            duration: duration
                .get_or_create(&RouteLabel {
                    route: route.clone(),
                })
                .clone(),
        };
        Self {
            routes: route_names.iter().map(resolve).collect(),
            unmatched: resolve(&Arc::from(UNMATCHED_ROUTE)),
            control: resolve(&Arc::from(CONTROL_ROUTE)),
            upstream_errors,
            in_flight,
        }
    }

    /// Handles of route `index` (configuration order).
    pub fn route(&self, index: usize) -> &RouteMetrics {
        self.routes.get(index).unwrap_or(&self.unmatched)
    }

    /// Handles of unmatched requests.
    pub fn unmatched(&self) -> &RouteMetrics {
        &self.unmatched
    }

    /// Handles of control-plane requests.
    pub fn control(&self) -> &RouteMetrics {
        &self.control
    }

    /// Counts a failed exchange with `upstream`.
    pub fn upstream_error(&self, upstream: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: upstream.to_string(),
                kind,
            })
            .inc();
    }
}

// === impl RouteMetrics ===

impl RouteMetrics {
    /// Records one answered request.
    pub fn observe(&self, method: &Method, status: u16, seconds: f64) {
        let m = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        let s = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[m * STATUS_CLASSES.len() + s].inc();
        self.duration.observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn encodes_bounded_labels() {
        let mut registry = Registry::default();
        let m = GatewayMetrics::register(&mut registry, &[Arc::from("jobs")], &["sim"]);
        m.route(0).observe(&Method::POST, 201, 0.002);
        m.route(9)
            .observe(&Method::from_bytes(b"BREW").unwrap(), 404, 0.0);
        m.upstream_error("sim", "connect");
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(out.contains(
            "computegate_http_requests_total{route=\"jobs\",method=\"POST\",status_class=\"2xx\"} 1"
        ), "{out}");
        assert!(out.contains(
            "computegate_http_requests_total{route=\"unmatched\",method=\"OTHER\",status_class=\"4xx\"} 1"
        ));
        assert!(
            out.contains("computegate_upstream_errors_total{upstream=\"sim\",kind=\"connect\"} 1")
        );
        // Series that have not seen an error yet are there at 0.
        assert!(
            out.contains("computegate_upstream_errors_total{upstream=\"sim\",kind=\"timeout\"} 0")
        );
        assert!(out.contains(
            "computegate_http_request_duration_seconds_bucket{le=\"0.0025\",route=\"jobs\"} 1"
        ));
        assert!(out.contains("computegate_build_info{version="));
        assert!(out.contains("computegate_http_in_flight 0"));
    }
}

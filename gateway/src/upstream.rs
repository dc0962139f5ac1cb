//! Upstream pools: round-robin over healthy addresses with passive health checks, and the pooled
//! HTTP client that carries requests to them.
//!
//! An address that fails to connect is ejected for `eject_for`; after that it is tried again and
//! stays in if it answers. When every address is ejected the one whose ejection ends first is
//! tried anyway, so a pool never refuses outright because of stale health data.
//!
//! A pool holds one client per serving thread ([`crate::listeners`]): a client's pooled
//! connections are driven by the runtime of the thread that opened them, so with
//! `thread_per_core` each thread reuses only its own, and none is woken for another's requests.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::UpstreamBody;
use crate::config::{UpstreamConfig, parse_upstream_address};

/// The HTTP client used for one pool.
pub type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// A named pool of interchangeable addresses.
#[derive(Debug)]
pub struct UpstreamPool {
    /// Pool name (metrics label).
    pub name: String,
    targets: Vec<Target>,
    next: AtomicUsize,
    epoch: Instant,
    eject_for: Duration,
    /// Time allowed until the response head arrives.
    pub response_timeout: Duration,
    /// Connect timeout (used by readiness probes too).
    pub connect_timeout: Duration,
    /// One pooled client per serving thread.
    clients: Box<[UpstreamClient]>,
}

/// One address of a pool.
#[derive(Debug)]
pub struct Target {
    /// `host:port`.
    pub authority: Authority,
    /// Milliseconds since the pool's epoch until which the address is ejected (0 = healthy).
    ejected_until_ms: AtomicU64,
}

// === impl UpstreamPool ===

impl UpstreamPool {
    /// Builds a pool from validated configuration, for `serving_threads` serving threads.
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        serving_threads: usize,
    ) -> Result<Self, String> {
        let targets = config
            .addresses
            .iter()
            .map(|a| {
                parse_upstream_address(a).map(|authority| Target {
                    authority,
                    ejected_until_ms: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let clients = (0..serving_threads.max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(config.pool_idle_timeout)
                    .pool_max_idle_per_host(config.pool_max_idle_per_host)
                    .build(connector.clone())
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            targets,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            eject_for: config.eject_for,
            response_timeout: config.response_timeout,
            connect_timeout: config.connect_timeout,
            clients,
        })
    }

    /// The calling serving thread's client.
    pub fn client(&self) -> &UpstreamClient {
        &self.clients[crate::listeners::serving_thread() % self.clients.len()]
    }

    /// All addresses.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The next address to use at `now`.
    pub fn pick(&self, now: Instant) -> &Target {
        let now_ms = self.millis(now);
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let t = &self.targets[(start + i) % n];
            if t.ejected_until_ms.load(Ordering::Relaxed) <= now_ms {
                return t;
            }
        }
        // Everything is ejected: try the one that comes back first.
        self.targets
            .iter()
            .min_by_key(|t| t.ejected_until_ms.load(Ordering::Relaxed))
            .unwrap_or(&self.targets[start % n])
    }

    /// Records that `target` failed to connect at `now`; it sits out `eject_for`.
    pub fn eject(&self, target: &Target, now: Instant) {
        let until = self.millis(now) + self.eject_for.as_millis() as u64;
        target
            .ejected_until_ms
            .store(until.max(1), Ordering::Relaxed);
    }

    /// Records that `target` answered; it is healthy again.
    pub fn mark_healthy(&self, target: &Target) {
        if target.ejected_until_ms.load(Ordering::Relaxed) != 0 {
            target.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Whether `target` is ejected at `now`.
    pub fn is_ejected(&self, target: &Target, now: Instant) -> bool {
        target.ejected_until_ms.load(Ordering::Relaxed) > self.millis(now)
    }

    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addrs: &[&str]) -> UpstreamPool {
        let text = format!("addresses = {addrs:?}\neject_for = \"10s\"\n");
        let cfg: UpstreamConfig = toml::from_str(&text).unwrap();
        UpstreamPool::new("p", &cfg, 1).unwrap()
    }

    #[tokio::test]
    async fn round_robin_skips_ejected_until_cool_down_ends() {
        let p = pool(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let t0 = p.epoch;
        let picks: Vec<_> = (0..3).map(|_| p.pick(t0).authority.port_u16()).collect();
        assert_eq!(picks, vec![Some(1), Some(2), Some(3)]);

        p.eject(&p.targets[1], t0);
        let picks: Vec<_> = (0..4)
            .map(|_| p.pick(t0).authority.port_u16().unwrap())
            .collect();
        assert!(!picks.contains(&2), "{picks:?}");

        let later = t0 + Duration::from_secs(11);
        assert!(!p.is_ejected(&p.targets[1], later));
        let picks: Vec<_> = (0..3)
            .map(|_| p.pick(later).authority.port_u16().unwrap())
            .collect();
        assert!(picks.contains(&2), "{picks:?}");
    }

    #[tokio::test]
    async fn all_ejected_still_picks_the_earliest_back() {
        let p = pool(&["127.0.0.1:1", "127.0.0.1:2"]);
        let t0 = p.epoch;
        p.eject(&p.targets[0], t0 + Duration::from_secs(5));
        p.eject(&p.targets[1], t0);
        assert_eq!(
            p.pick(t0 + Duration::from_secs(1)).authority.port_u16(),
            Some(2)
        );
        p.mark_healthy(&p.targets[0]);
        assert!(!p.is_ejected(&p.targets[0], t0));
    }
}

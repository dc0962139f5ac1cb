//! Cluster-wide rate limiting: per key a [`LaneState`] of tokens leased from the shared bucket
//! through a [`TokenLeaser`] (Redis), refilled in the background when low.
//!
//! **Where Redis is waited for.** A request spends a local token with no I/O. It waits for
//! Redis only when this replica holds no token for the key and Redis has not said "empty until
//! …": a key's first request on this replica, the first after an idle spell longer than the
//! lease TTL, or a customer spending faster than the background refill. Waiting (bounded by
//! [`LEASE_TIMEOUT`]) instead of denying keeps those requests from being refused while the
//! global bucket still has tokens; a customer over its rate is denied from memory until the
//! time Redis gave.
//!
//! **Redis down.** A lease that fails or times out puts the limiter in degraded mode, a warning
//! is logged once, and `computegate_ratelimit_degraded` is 1. Each route then does what its
//! [`RateLimitFallback`] says: `local` (default) checks every key with the in-process GCRA at
//! the full per-tier quota (the cluster admits up to `replicas ×` the tier's rate), `open` lets
//! requests through unlimited, `closed` refuses them ([`Checked::StoreDown`], a 503). While
//! degraded, one request per [`PROBE_INTERVAL`] also starts a background lease; the first that
//! succeeds ends degraded mode.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use super::lane::{LaneState, Step};
use super::{Decision, LeaseError, Quota, RateLimiter, TokenLeaser};
pub use crate::config::RateLimitFallback;

/// The cluster limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Allowed or denied, with the headers' figures.
    Decided(Decision),
    /// The store is unreachable and the route's fallback is `closed`.
    StoreDown,
}

/// Longest a request waits for a lease before the limiter counts Redis as down.
pub const LEASE_TIMEOUT: Duration = Duration::from_millis(250);
/// While degraded, how often a request also tries Redis again (in the background).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Shards of the lane map (a power of two).
const SHARDS: usize = 16;

/// The cluster-wide limiter of one replica. Cheap to share; spawns its leases on the current
/// tokio runtime.
pub struct ClusterLimiter {
    inner: Arc<Inner>,
}

/// Lease outcomes and degraded-mode state.
#[derive(Debug, Clone)]
pub struct LeaseMetrics {
    leases: Family<LeaseLabels, Counter>,
    degraded: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    /// `granted`, `empty` or `error`.
    result: &'static str,
}

struct Inner {
    leaser: Arc<dyn TokenLeaser>,
    /// Decides while degraded, at the full per-tier quota.
    local: RateLimiter,
    lanes: Box<[LaneShard]>,
    per_shard: usize,
    hasher: RandomState,
    replicas: u32,
    epoch: Instant,
    degraded: AtomicBool,
    next_probe_ns: AtomicU64,
    metrics: LeaseMetrics,
}

/// One shard of the lane map: key → lane.
type LaneShard = Mutex<HashMap<Arc<str>, Arc<Lane>>>;

/// One key: its state, and a signal for requests waiting on its lease in flight.
struct Lane {
    key: Arc<str>,
    state: Mutex<LaneState>,
    leased: Notify,
}

// === impl LeaseMetrics ===

impl LeaseMetrics {
    /// Registers `computegate_ratelimit_leases_total{result}` and
    /// `computegate_ratelimit_degraded`.
    pub fn register(registry: &mut Registry) -> Self {
        let leases = Family::<LeaseLabels, Counter>::default();
        registry.register(
            "computegate_ratelimit_leases",
            "Token leases from the cluster-wide rate-limit store by result (granted, empty, error)",
            leases.clone(),
        );
        let degraded = Gauge::default();
        registry.register(
            "computegate_ratelimit_degraded",
            "1 while the rate-limit store is unreachable and limits are enforced per replica",
            degraded.clone(),
        );
        Self { leases, degraded }
    }

    fn lease(&self, result: &'static str) {
        self.leases.get_or_create(&LeaseLabels { result }).inc();
    }
}

// === impl ClusterLimiter ===

impl ClusterLimiter {
    /// A limiter leasing through `leaser`, sizing batches for about `replicas` replicas,
    /// keeping about `max_keys` keys, measuring time from `epoch`.
    pub fn new(
        leaser: Arc<dyn TokenLeaser>,
        replicas: u32,
        max_keys: usize,
        epoch: Instant,
        metrics: LeaseMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                leaser,
                local: RateLimiter::new(max_keys, epoch),
                lanes: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                per_shard: max_keys.div_ceil(SHARDS).max(1),
                hasher: RandomState::new(),
                replicas: replicas.max(1),
                epoch,
                degraded: AtomicBool::new(false),
                next_probe_ns: AtomicU64::new(0),
                metrics,
            }),
        }
    }

    /// Checks one request for `key` under `quota` at `now`; `fallback` applies while the store
    /// is unreachable.
    pub async fn check(
        &self,
        key: &str,
        quota: Quota,
        now: Instant,
        fallback: RateLimitFallback,
    ) -> Checked {
        let inner = &self.inner;
        let now_ns = inner.nanos(now);
        if inner.degraded.load(Ordering::Acquire) {
            if inner.probe_due(now_ns) {
                let lane = inner.lane(key, quota, now_ns);
                let n = super::LeasedBucket::batch_for(quota, inner.replicas);
                spawn_lease(inner, &lane, quota, n);
            }
            return inner.degraded_check(key, quota, now, fallback);
        }
        let lane = inner.lane(key, quota, now_ns);
        let leased = lane.leased.notified();
        tokio::pin!(leased);
        // Registered before the state is read, so a lease recorded in between still wakes us.
        leased.as_mut().enable();
        let step = lock(&lane.state).decide(quota, inner.replicas, now_ns);
        match step {
            Step::Allow { decision, lease } | Step::Deny { decision, lease } => {
                if let Some(n) = lease {
                    spawn_lease(inner, &lane, quota, n);
                }
                Checked::Decided(decision)
            }
            Step::Wait { lease } => {
                // The lease runs in a task of its own even when this request asked for it: a
                // request dropped mid-wait (client gone) must not leave the lane's lease "in
                // flight" forever, which would deny the customer on this replica from then on.
                // The lease records its outcome and wakes us within LEASE_TIMEOUT; the bound
                // here only matters if its task is lost.
                let bound = match lease {
                    Some(n) => {
                        spawn_lease(inner, &lane, quota, n);
                        LEASE_TIMEOUT * 2
                    }
                    None => LEASE_TIMEOUT,
                };
                let _ = tokio::time::timeout(bound, leased).await;
                inner.after_wait(&lane, key, quota, now, fallback)
            }
        }
    }

    /// Whether the limiter is enforcing per replica because the store is unreachable.
    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Acquire)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.inner.lanes.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts a lease of `n` tokens for `lane` in the background.
fn spawn_lease(inner: &Arc<Inner>, lane: &Arc<Lane>, quota: Quota, n: u64) {
    let inner = inner.clone();
    let lane = lane.clone();
    tokio::spawn(async move { inner.run_lease(&lane, quota, n).await });
}

// === impl Inner ===

impl Inner {
    /// Leases `n` tokens for `lane` (bounded by [`LEASE_TIMEOUT`]), records the answer and
    /// wakes the requests waiting for it.
    async fn run_lease(&self, lane: &Lane, quota: Quota, n: u64) {
        let asked = self.leaser.lease(lane.key.clone(), quota, n);
        let answer = match tokio::time::timeout(LEASE_TIMEOUT, asked).await {
            Ok(answer) => answer,
            Err(_) => Err(LeaseError::Unavailable(format!(
                "no answer within {LEASE_TIMEOUT:?}"
            ))),
        };
        let now_ns = self.nanos(tokio::time::Instant::now().into_std());
        match answer {
            Ok(lease) => {
                lock(&lane.state).on_lease(lease, now_ns);
                self.metrics.lease(if lease.granted > 0 {
                    "granted"
                } else {
                    "empty"
                });
                self.recovered();
            }
            Err(e) => {
                lock(&lane.state).on_lease_failed();
                self.metrics.lease("error");
                self.failed(&e, now_ns);
            }
        }
        lane.leased.notify_waiters();
    }

    /// Decides a request that waited for a lease; the route's fallback decides if the lease
    /// failed meanwhile.
    fn after_wait(
        self: &Arc<Self>,
        lane: &Arc<Lane>,
        key: &str,
        quota: Quota,
        now: Instant,
        fallback: RateLimitFallback,
    ) -> Checked {
        if self.degraded.load(Ordering::Acquire) {
            return self.degraded_check(key, quota, now, fallback);
        }
        let now_ns = self.nanos(tokio::time::Instant::now().into_std().max(now));
        let step = lock(&lane.state).after_wait(now_ns);
        match step {
            Step::Allow { decision, lease } | Step::Deny { decision, lease } => {
                if let Some(n) = lease {
                    spawn_lease(self, lane, quota, n);
                }
                Checked::Decided(decision)
            }
            // `after_wait` never asks to wait again; should it, the local GCRA decides.
            Step::Wait { .. } => Checked::Decided(self.local.check(key, quota, now)),
        }
    }

    /// One request while the store is unreachable, as the route's fallback says.
    fn degraded_check(
        &self,
        key: &str,
        quota: Quota,
        now: Instant,
        fallback: RateLimitFallback,
    ) -> Checked {
        match fallback {
            RateLimitFallback::Open => Checked::Decided(Decision::unlimited(quota)),
            RateLimitFallback::Closed => Checked::StoreDown,
            _ => Checked::Decided(self.local.check(key, quota, now)),
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            self.metrics.degraded.set(0);
            tracing::info!("rate-limit store reachable again; cluster-wide limits restored");
        }
    }

    fn failed(&self, error: &LeaseError, now_ns: u64) {
        let probe = now_ns.saturating_add(nanos(PROBE_INTERVAL));
        self.next_probe_ns.store(probe, Ordering::Release);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            self.metrics.degraded.set(1);
            tracing::warn!(
                error = %error,
                "rate-limit store unreachable; enforcing limits per replica at the full tier quota"
            );
        }
    }

    /// Whether this request should also probe the store (at most one per interval).
    fn probe_due(&self, now_ns: u64) -> bool {
        let due = self.next_probe_ns.load(Ordering::Acquire);
        now_ns >= due
            && self
                .next_probe_ns
                .compare_exchange(
                    due,
                    now_ns.saturating_add(nanos(PROBE_INTERVAL)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// The lane of `key`, created if absent. When the shard is full, idle lanes go first
    /// (nothing lost), then an arbitrary one (its unspent tokens are lost: under-admission).
    fn lane(&self, key: &str, quota: Quota, now_ns: u64) -> Arc<Lane> {
        let i = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        let mut shard = lock(&self.lanes[i]);
        if let Some(lane) = shard.get(key) {
            return lane.clone();
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, l| !lock(&l.state).is_idle(now_ns));
        }
        if shard.len() >= self.per_shard
            && let Some(victim) = shard.keys().next().cloned()
        {
            shard.remove(&victim);
        }
        let key: Arc<str> = key.into();
        let lane = Arc::new(Lane {
            key: key.clone(),
            state: Mutex::new(LaneState::new(quota, self.replicas)),
            leased: Notify::new(),
        });
        shard.insert(key, lane.clone());
        lane
    }

    fn nanos(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A poisoned lock only means a panic mid-update of plain integers; keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;

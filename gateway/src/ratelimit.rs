//! Per-customer request rate limiting: GCRA in process, and the lease accounting for the
//! cluster-wide mode.
//!
//! **Single node.** [`RateLimiter`] keeps one [`Gcra`] state (a theoretical arrival time and
//! the interval it counts in) per key in a sharded map. A quota of `r` requests per second with burst `b` admits at most
//! `b + r·t` requests in any interval of length `t`. Memory is bounded: each shard holds at most
//! its share of `max_keys`; a key whose arrival time has passed is indistinguishable from a new
//! key, so idle keys are dropped first (losslessly); only when a shard is full of active keys is
//! the key nearest to idle evicted, which can give that one key its burst back early.
//!
//! **Cluster-wide (several replicas sharing Redis)**, without a Redis round-trip per request
//! ([`cluster::ClusterLimiter`] does the I/O around the pure [`LeasedBucket`]):
//!
//! ```text
//!   request ─▶ LeasedBucket::take (local, no I/O) ─┬─ token ─▶ allow
//!                                                  └─ empty ─▶ wait for a lease, or deny (429)
//!              tokens ≤ low water and no lease in flight ─▶ spawn TokenLeaser::lease(key, batch)
//!   Redis (one Lua script): one GCRA bucket per key, rate r, burst b; `lease(n)` atomically
//!   takes min(n, available) tokens and returns how many ─▶ LeasedBucket::on_lease(granted)
//! ```
//!
//! Each replica spends only tokens Redis already granted it, so replicas together never exceed
//! the global bucket by more than what they hold locally. Leased tokens expire after a TTL, so
//! hoarded tokens cannot be spent much later. Accuracy bound: a replica holds at most `batch +
//! low_water` tokens (leased or in flight), so over any window of length `t` the cluster admits
//! at most `b + r·t + replicas × (batch + low_water)` (tokens leased before the window and spent
//! in it); tokens leased but left unspent only under-admit. [`LeasedBucket::batch_for`] picks a
//! batch that keeps `replicas × batch` at half the burst, so with `low_water = batch / 2` the
//! excess is at most `3/4 b` (at least one token per replica when the burst is tiny).
//!
//! Headers follow `draft-ietf-httpapi-ratelimit-headers-06`: `RateLimit-Limit`,
//! `RateLimit-Remaining`, `RateLimit-Reset` (and `RateLimit-Policy`); 429 answers also carry
//! `Retry-After`. Time is always passed in.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};

use crate::auth::BoxFuture;
use crate::policy::RateLimitSpec;

pub mod cluster;
mod lane;

/// `RateLimit-Limit`.
pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`.
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// One shard of the in-process map: key → GCRA state.
type Shard = Mutex<HashMap<Box<str>, Gcra>>;

/// Shards of the in-process map (a power of two): enough that two cores rarely contend.
const SHARDS: usize = 16;

/// A rate: one request per `interval`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    interval_ns: u64,
    burst: u32,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that may still be sent at once (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When denied, how long until a request would be allowed; zero when allowed.
    pub retry_after: Duration,
    /// How long until the full burst is available again (`RateLimit-Reset`).
    pub reset: Duration,
}

/// GCRA state of one key: its theoretical arrival time, in nanoseconds since the limiter's
/// epoch, and the emission interval it was counted in (0 before the first request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    tat_ns: u64,
    interval_ns: u64,
}

/// In-process limiter: GCRA per key in a sharded, bounded map.
#[derive(Debug)]
pub struct RateLimiter {
    epoch: Instant,
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
}

/// One replica's leased tokens for one key (cluster-wide mode). Pure accounting; the caller
/// does the leasing through a [`TokenLeaser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedBucket {
    tokens: u64,
    expires_ns: u64,
    batch: u64,
    low_water: u64,
    lease_in_flight: bool,
}

/// Result of [`LeasedBucket::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Take {
    /// A local token was spent: allow the request.
    Granted {
        /// Start a lease of this many tokens in the background, if set.
        lease: Option<u64>,
    },
    /// No local token: deny (or fail open if the route says so).
    Empty {
        /// Start a lease of this many tokens in the background, if set.
        lease: Option<u64>,
    },
}

/// Why a lease failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The shared store could not be reached or answered wrongly.
    #[error("token store unavailable: {0}")]
    Unavailable(String),
}

/// What the global bucket answered to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Tokens taken, from 0 to the number asked.
    pub granted: u64,
    /// Tokens still available in the global bucket after the take.
    pub available: u64,
    /// When nothing was granted, how long until one token is available; zero otherwise.
    pub retry_after: Duration,
}

/// Leases tokens for a key from the cluster-wide bucket (implemented over Redis by the root
/// crate).
pub trait TokenLeaser: Send + Sync + 'static {
    /// Takes up to `n` tokens of `key`'s global bucket under `quota`.
    fn lease(&self, key: Arc<str>, quota: Quota, n: u64) -> BoxFuture<Result<Lease, LeaseError>>;
}

// === impl Quota ===

impl Quota {
    /// `requests_per_second` (> 0, finite) with `burst` (≥ 1). The emission interval is
    /// rounded up to whole nanoseconds, so the limiter never allows more than asked.
    pub fn new(requests_per_second: f64, burst: u32) -> Option<Quota> {
        if !(requests_per_second.is_finite() && requests_per_second > 0.0) || burst == 0 {
            return None;
        }
        let interval = (1e9 / requests_per_second).ceil();
        if !(1.0..=u64::MAX as f64).contains(&interval) {
            return None;
        }
        Some(Quota {
            interval_ns: interval as u64,
            burst,
        })
    }

    /// The quota of a policy tier's `rate_limit`.
    pub fn from_spec(spec: &RateLimitSpec) -> Option<Quota> {
        Quota::new(spec.requests_per_second, spec.burst)
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Burst × interval: how far ahead of now the arrival time may run.
    fn horizon_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }

    /// `RateLimit-Policy` value: the burst per window in which it refills (`10;w=5`).
    pub fn policy_header(&self) -> HeaderValue {
        let window = Duration::from_nanos(self.horizon_ns());
        // Digits, ';', 'w' and '=' only: always a valid header value.
        HeaderValue::from_str(&format!("{};w={}", self.burst, ceil_secs(window)))
            .unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

// === impl Lease ===

impl Lease {
    /// `granted` tokens taken, `available` left, and (when none was granted) the wait until
    /// the next one.
    pub fn new(granted: u64, available: u64, retry_after: Duration) -> Self {
        Self {
            granted,
            available,
            retry_after,
        }
    }
}

// === impl Gcra ===

impl Gcra {
    /// Checks one request at `now_ns` and, if allowed, records it.
    pub fn check(&mut self, quota: Quota, now_ns: u64) -> Decision {
        self.rescale(quota, now_ns);
        let t = quota.interval_ns;
        let horizon = quota.horizon_ns();
        let tat = self.tat_ns.max(now_ns);
        let new_tat = tat.saturating_add(t);
        let ahead = new_tat - now_ns;
        if ahead > horizon {
            return Decision {
                allowed: false,
                limit: quota.burst,
                remaining: 0,
                retry_after: Duration::from_nanos(ahead - horizon),
                reset: Duration::from_nanos(tat - now_ns),
            };
        }
        self.tat_ns = new_tat;
        Decision {
            allowed: true,
            limit: quota.burst,
            remaining: u32::try_from((horizon - ahead) / t).unwrap_or(u32::MAX),
            retry_after: Duration::ZERO,
            reset: Duration::from_nanos(ahead),
        }
    }

    /// Whether the key is back at a full burst (its state can be forgotten).
    pub fn is_idle(&self, now_ns: u64) -> bool {
        self.tat_ns <= now_ns
    }

    /// Carries the key's debt over to `quota` when its rate changed (a tier change, a policy
    /// reload). The arrival time runs ahead of now by the requests not yet paid back, counted in
    /// the old interval; left as time, 20 requests owed at 5/s (4 s) would block a customer
    /// just promoted to 500/s for 2,000 requests' worth. So the debt is kept in requests —
    /// re-timed at the new interval — and capped at one full bucket of the new quota.
    fn rescale(&mut self, quota: Quota, now_ns: u64) {
        let was = self.interval_ns;
        self.interval_ns = quota.interval_ns;
        if was == 0 || was == quota.interval_ns || self.tat_ns <= now_ns {
            return;
        }
        let owed = (self.tat_ns - now_ns).div_ceil(was);
        let debt = owed
            .saturating_mul(quota.interval_ns)
            .min(quota.horizon_ns());
        self.tat_ns = now_ns.saturating_add(debt);
    }
}

// === impl Decision ===

impl Decision {
    /// An allowed request under `quota` that spent nothing (the limit is not being enforced,
    /// e.g. a route failing open while the shared store is down): the full burst remains.
    pub fn unlimited(quota: Quota) -> Self {
        Self {
            allowed: true,
            limit: quota.burst,
            remaining: quota.burst,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
        }
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds, rounded up).
    pub fn headers(&self) -> [(&'static HeaderName, HeaderValue); 3] {
        [
            (&RATELIMIT_LIMIT, HeaderValue::from(self.limit)),
            (&RATELIMIT_REMAINING, HeaderValue::from(self.remaining)),
            (&RATELIMIT_RESET, HeaderValue::from(ceil_secs(self.reset))),
        ]
    }

    /// `Retry-After` in whole seconds (at least 1) for a denied request.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

// === impl RateLimiter ===

impl RateLimiter {
    /// A limiter holding at most about `max_keys` keys, measuring time from `epoch`.
    pub fn new(max_keys: usize, epoch: Instant) -> Self {
        let per_shard = max_keys.div_ceil(SHARDS).max(1);
        Self {
            epoch,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    /// Checks one request for `key` under `quota` at `now`.
    pub fn check(&self, key: &str, quota: Quota, now: Instant) -> Decision {
        let now_ns = self.nanos(now);
        let mut shard = self.shard(key);
        if let Some(state) = shard.get_mut(key) {
            return state.check(quota, now_ns);
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, g| !g.is_idle(now_ns));
        }
        if shard.len() >= self.per_shard {
            // Full of active keys: forget the one closest to idle (least debt forgiven).
            let victim = shard
                .iter()
                .min_by_key(|(_, g)| g.tat_ns)
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                shard.remove(&k);
            }
        }
        let mut state = Gcra::default();
        let decision = state.check(quota, now_ns);
        shard.insert(key.into(), state);
        decision
    }

    /// Drops keys that are back at a full burst; returns how many were dropped. Call it
    /// periodically so memory follows active keys.
    pub fn sweep(&self, now: Instant) -> usize {
        let now_ns = self.nanos(now);
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = map.len();
            map.retain(|_, g| !g.is_idle(now_ns));
            dropped += before - map.len();
        }
        dropped
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most keys held at once.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Gcra>> {
        let i = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        // A poisoned shard only means a panic mid-update of plain integers; keep serving.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

// === impl LeasedBucket ===

impl LeasedBucket {
    /// A bucket leasing `batch` tokens at a time, asking for more when at most `low_water`
    /// remain. Starts empty: the first request triggers a lease.
    pub fn new(batch: u64, low_water: u64) -> Self {
        let batch = batch.max(1);
        Self {
            tokens: 0,
            expires_ns: 0,
            batch,
            low_water: low_water.min(batch - 1),
            lease_in_flight: false,
        }
    }

    /// A batch size keeping the cluster error (`replicas × batch`) at most half the burst.
    pub fn batch_for(quota: Quota, replicas: u32) -> u64 {
        let replicas = u64::from(replicas.max(1));
        (u64::from(quota.burst) / (2 * replicas)).max(1)
    }

    /// Spends one local token at `now_ns` if there is one; says whether to start a lease.
    pub fn take(&mut self, now_ns: u64) -> Take {
        if now_ns >= self.expires_ns {
            self.tokens = 0;
        }
        let granted = self.tokens > 0;
        if granted {
            self.tokens -= 1;
        }
        let lease = (!self.lease_in_flight && self.tokens <= self.low_water).then(|| {
            self.lease_in_flight = true;
            self.batch
        });
        if granted {
            Take::Granted { lease }
        } else {
            Take::Empty { lease }
        }
    }

    /// Records a lease of `granted` tokens; the bucket's tokens now expire at `now_ns + ttl`.
    /// A bucket never holds more than `batch + low_water` tokens, all granted by the global
    /// bucket.
    pub fn on_lease(&mut self, granted: u64, now_ns: u64, ttl: Duration) {
        self.lease_in_flight = false;
        if now_ns >= self.expires_ns {
            self.tokens = 0;
        }
        // Excess over the bound (an unsolicited or duplicate lease) is dropped: spending less
        // than Redis granted only under-admits.
        self.tokens = self
            .tokens
            .saturating_add(granted.min(self.batch))
            .min(self.batch + self.low_water);
        let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        self.expires_ns = now_ns.saturating_add(ttl_ns);
    }

    /// Records a failed lease; the next [`LeasedBucket::take`] asks again.
    pub fn on_lease_failed(&mut self) {
        self.lease_in_flight = false;
    }

    /// Whether a lease was started and has not been recorded yet.
    pub fn lease_in_flight(&self) -> bool {
        self.lease_in_flight
    }

    /// Local tokens left at `now_ns`.
    pub fn tokens(&self, now_ns: u64) -> u64 {
        if now_ns >= self.expires_ns {
            0
        } else {
            self.tokens
        }
    }
}

#[cfg(test)]
mod tests;

//! Login throttling: fixed-window counters of failed logins per account and per client
//! address. When either counter has reached its limit, further attempts are refused with
//! [`ThrottleError::Throttled`] until that window ends, whether or not the password is right,
//! so guessing cannot continue by trying the right password later in the window.
//!
//! Accounts are keyed by a SHA-256 of the normalized email (no addresses in Redis); IPv6
//! clients by their /64, since one host usually controls a whole /64. The Redis variant
//! counts with `INCR` + `PEXPIRE` in one Lua script per key (single-key scripts keep it valid
//! on Redis Cluster) and uses Redis's clock; the in-process variant uses the `now` it is given.
//!
//! A Redis outage never blocks logins: every replica also counts its own failures in process,
//! and while Redis does not answer (and for [`REDIS_RETRY_DELAY`] after each failed command, so
//! a hung server costs one timeout, not one per login) the decision uses those local counters.
//! While Redis answers, each counter is the larger of the shared and the local one, so the
//! fallback is always the stricter side: a replica never forgets failures it saw itself, even
//! when Redis restarted empty.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::ClusterError;
use crate::accounts::normalize_email;

/// In-process counters kept before expired ones are swept.
const SWEEP_THRESHOLD: usize = 10_000;

/// After a failed Redis command, how long the throttle decides on local counters alone before
/// trying Redis again (bounds the cost of a hung Redis to one timeout per this period).
pub const REDIS_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Counts one failure and starts the window on the first one; returns `{count, ttl_ms}`.
const HIT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
";

/// Reads one counter; returns `{count, ttl_ms}` (`{0, -2}` when absent).
const READ_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
return {n, redis.call('PTTL', KEYS[1])}
";

/// Limits on failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThrottleLimits {
    /// Failures allowed per account per window. Default 5.
    pub per_account: u32,
    /// Failures allowed per client address (IPv6: per /64) per window. Default 50.
    pub per_ip: u32,
    /// Window length. Default 15 minutes.
    #[serde(with = "secs")]
    pub window: Duration,
}

/// Why an attempt may not proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// Too many recent failures; try again after `retry_after`.
    #[error("too many failed attempts; retry after {retry_after:?}")]
    Throttled {
        /// Time until the exhausted window ends.
        retry_after: Duration,
    },
    /// The counters could not be read or written. Not returned by the throttles built here
    /// (a Redis failure falls back to the local counters); kept for other implementations and
    /// so callers' matches stay stable.
    #[error(transparent)]
    Unavailable(#[from] ClusterError),
}

/// Failed-login counters, in Redis or in process. Cheap to clone.
///
/// Customer and staff logins count apart ([`LoginThrottle::for_staff`]): failed customer logins
/// naming a staff member's email, or coming from a staff member's address, never lock that
/// staff member out of the admin listener.
#[derive(Clone)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    /// Key namespace, in the local counters and in Redis alike: empty for customers, `staff:`
    /// for staff.
    scope: &'static str,
    /// This process's own counters: the whole state on a single node, the fallback (and the
    /// stricter floor) beside Redis.
    local: Arc<Mutex<HashMap<String, Window>>>,
    redis: Option<RedisSide>,
}

#[derive(Clone)]
struct RedisSide {
    conn: ConnectionManager,
    prefix: String,
    hit: Arc<redis::Script>,
    read: Arc<redis::Script>,
    /// Until when Redis is skipped after a failed command.
    skip_until: Arc<Mutex<Option<Instant>>>,
}

/// One counter: failures so far and when its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    count: u32,
    ends_at: OffsetDateTime,
}

/// A counter's state as seen by the decision: failures and time left in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    count: u32,
    remaining: Duration,
}

// === impl ThrottleLimits ===

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            per_account: 5,
            per_ip: 50,
            window: Duration::from_secs(15 * 60),
        }
    }
}

// === impl LoginThrottle ===

impl LoginThrottle {
    /// Counters in this process (single node).
    pub fn in_process(limits: ThrottleLimits) -> LoginThrottle {
        LoginThrottle {
            limits,
            scope: "",
            local: Arc::default(),
            redis: None,
        }
    }

    /// Counters in Redis under `<prefix>throttle:…`, shared by every replica; fails when Redis
    /// cannot be reached now (tools that need it). See [`LoginThrottle::redis_lazy`] for the
    /// gateway, which must start during an outage.
    pub async fn redis(
        client: redis::Client,
        prefix: &str,
        limits: ThrottleLimits,
    ) -> Result<LoginThrottle, ClusterError> {
        let conn = client
            .get_connection_manager_with_config(super::manager_config())
            .await?;
        Ok(Self::over(conn, prefix, limits))
    }

    /// As [`LoginThrottle::redis`], connecting on first use: Redis being down now is no error
    /// (the local counters decide until it answers; reconnection is automatic).
    pub fn redis_lazy(
        client: redis::Client,
        prefix: &str,
        limits: ThrottleLimits,
    ) -> Result<LoginThrottle, ClusterError> {
        let conn = ConnectionManager::new_lazy_with_config(client, super::manager_config())?;
        Ok(Self::over(conn, prefix, limits))
    }

    fn over(conn: ConnectionManager, prefix: &str, limits: ThrottleLimits) -> LoginThrottle {
        LoginThrottle {
            limits,
            scope: "",
            local: Arc::default(),
            redis: Some(RedisSide {
                conn,
                prefix: prefix.to_owned(),
                hit: Arc::new(redis::Script::new(HIT_SCRIPT)),
                read: Arc::new(redis::Script::new(READ_SCRIPT)),
                skip_until: Arc::default(),
            }),
        }
    }

    /// The same counters' stores (local and Redis), with keys of their own for staff logins.
    pub fn for_staff(&self) -> LoginThrottle {
        LoginThrottle {
            scope: "staff:",
            ..self.clone()
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> ThrottleLimits {
        self.limits
    }

    /// Refuses with [`ThrottleError::Throttled`] when the account or the address has used up
    /// its failures for the current window. Call before verifying the password.
    pub async fn check(
        &self,
        account: &str,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), ThrottleError> {
        let (account_key, ip_key) = self.keys("", account, ip);
        let mut account_count = self.read_local(&account_key, now);
        let mut ip_count = self.read_local(&ip_key, now);
        if let Some(redis) = self.available_redis() {
            let (shared_account, shared_ip) = self.keys(&redis.prefix, account, ip);
            match redis.read_both(&shared_account, &shared_ip).await {
                Ok((a, i)) => {
                    account_count = account_count.stricter(a);
                    ip_count = ip_count.stricter(i);
                }
                Err(e) => redis.failed(&e),
            }
        }
        decide(account_count, ip_count, self.limits)
    }

    /// Counts a failed attempt against the account and the address.
    pub async fn record_failure(
        &self,
        account: &str,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), ThrottleError> {
        let (account_key, ip_key) = self.keys("", account, ip);
        self.hit_local(&account_key, now);
        self.hit_local(&ip_key, now);
        if let Some(redis) = self.available_redis() {
            let (shared_account, shared_ip) = self.keys(&redis.prefix, account, ip);
            let window_ms = u64::try_from(self.limits.window.as_millis()).unwrap_or(u64::MAX);
            for key in [&shared_account, &shared_ip] {
                if let Err(e) = redis.hit(key, window_ms).await {
                    redis.failed(&e);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Clears the account's counter after a successful login (the address counter stays:
    /// one valid account must not unlock guessing at others).
    pub async fn record_success(&self, account: &str) -> Result<(), ThrottleError> {
        lock(&self.local).remove(&account_key(self.scope, account));
        if let Some(redis) = self.available_redis() {
            let mut conn = redis.conn.clone();
            let deleted: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(account_key(
                    &format!("{}{}", redis.prefix, self.scope),
                    account,
                ))
                .query_async(&mut conn)
                .await;
            if let Err(e) = deleted {
                // The shared counter stays until its window ends: stricter, never looser.
                redis.failed(&ClusterError::from(e));
            }
        }
        Ok(())
    }

    /// The account and address keys under `prefix` (empty for the local counters) and this
    /// throttle's scope.
    fn keys(&self, prefix: &str, account: &str, ip: IpAddr) -> (String, String) {
        let prefix = format!("{prefix}{}", self.scope);
        (account_key(&prefix, account), ip_key(&prefix, ip))
    }

    /// Whether the last Redis command failed less than [`REDIS_RETRY_DELAY`] ago (the
    /// throttle is deciding on local counters).
    pub fn degraded(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.skipping())
    }

    /// Redis, unless there is none or it failed within [`REDIS_RETRY_DELAY`].
    fn available_redis(&self) -> Option<&RedisSide> {
        self.redis.as_ref().filter(|r| !r.skipping())
    }

    fn read_local(&self, key: &str, now: OffsetDateTime) -> Counter {
        match lock(&self.local).get(key) {
            Some(w) if w.ends_at > now => Counter {
                count: w.count,
                remaining: to_std(w.ends_at - now),
            },
            _ => Counter::ZERO,
        }
    }

    fn hit_local(&self, key: &str, now: OffsetDateTime) {
        let mut map = lock(&self.local);
        if map.len() >= SWEEP_THRESHOLD {
            map.retain(|_, w| w.ends_at > now);
        }
        let window = map.entry(key.to_owned()).or_insert(Window {
            count: 0,
            ends_at: now,
        });
        *window = window.hit(now, self.limits.window);
    }
}

// === impl RedisSide ===

impl RedisSide {
    fn skipping(&self) -> bool {
        lock_skip(&self.skip_until).is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, e: &ClusterError) {
        tracing::warn!(error = %e, "login throttle: Redis unavailable; using local counters");
        *lock_skip(&self.skip_until) = Some(Instant::now() + REDIS_RETRY_DELAY);
    }

    async fn read_both(&self, a: &str, b: &str) -> Result<(Counter, Counter), ClusterError> {
        Ok((self.read(a).await?, self.read(b).await?))
    }

    async fn read(&self, key: &str) -> Result<Counter, ClusterError> {
        let mut conn = self.conn.clone();
        let (count, ttl_ms): (i64, i64) = self.read.key(key).invoke_async(&mut conn).await?;
        Ok(Counter::from_redis(count, ttl_ms))
    }

    async fn hit(&self, key: &str, window_ms: u64) -> Result<Counter, ClusterError> {
        let mut conn = self.conn.clone();
        let (count, ttl_ms): (i64, i64) = self
            .hit
            .key(key)
            .arg(window_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(Counter::from_redis(count, ttl_ms))
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.redis {
            None => "in-process",
            Some(_) => "redis",
        };
        f.debug_struct("LoginThrottle")
            .field("limits", &self.limits)
            .field("backend", &backend)
            .field("scope", &self.scope)
            .finish()
    }
}

// === impl Window ===

impl Window {
    /// The window after one more failure at `now`: a fresh window if the old one ended.
    fn hit(self, now: OffsetDateTime, length: Duration) -> Window {
        if self.ends_at > now {
            Window {
                count: self.count.saturating_add(1),
                ends_at: self.ends_at,
            }
        } else {
            Window {
                count: 1,
                ends_at: now + length,
            }
        }
    }
}

// === impl Counter ===

impl Counter {
    const ZERO: Counter = Counter {
        count: 0,
        remaining: Duration::ZERO,
    };

    /// The stricter of two views of one counter: more failures, and the longer wait.
    fn stricter(self, other: Counter) -> Counter {
        Counter {
            count: self.count.max(other.count),
            remaining: self.remaining.max(other.remaining),
        }
    }

    fn from_redis(count: i64, ttl_ms: i64) -> Counter {
        Counter {
            count: u32::try_from(count.max(0)).unwrap_or(u32::MAX),
            // PTTL is -2 for a missing key and -1 for one without expiry.
            remaining: Duration::from_millis(u64::try_from(ttl_ms.max(0)).unwrap_or(0)),
        }
    }
}

/// The decision: throttled while any counter is at or over its limit, until the latest of
/// the exhausted windows ends.
fn decide(account: Counter, ip: Counter, limits: ThrottleLimits) -> Result<(), ThrottleError> {
    let exhausted = [(account, limits.per_account), (ip, limits.per_ip)]
        .into_iter()
        .filter(|(c, limit)| c.count >= *limit)
        .map(|(c, _)| c.remaining)
        .max();
    match exhausted {
        Some(remaining) => Err(ThrottleError::Throttled {
            retry_after: whole_seconds_up(remaining),
        }),
        None => Ok(()),
    }
}

/// Rounds up to whole seconds (what `Retry-After` can say), at least one.
fn whole_seconds_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

fn account_key(prefix: &str, account: &str) -> String {
    let digest = Sha256::digest(normalize_email(account).as_bytes());
    format!("{prefix}throttle:acct:{}", hex::encode(digest))
}

fn ip_key(prefix: &str, ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{prefix}throttle:ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{prefix}throttle:ip:{v4}"),
            None => {
                let s = v6.segments();
                format!(
                    "{prefix}throttle:ip:{:x}:{:x}:{:x}:{:x}::/64",
                    s[0], s[1], s[2], s[3]
                )
            }
        },
    }
}

/// Locks the skip deadline; a poisoned lock still holds a valid `Option`.
fn lock_skip(m: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn to_std(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Locks the in-process map. A panic while holding the lock cannot leave a counter
/// half-updated (each update is one assignment), so a poisoned lock is still usable.
fn lock(
    map: &Mutex<HashMap<String, Window>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Duration` as whole seconds in configuration files.
mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let secs = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests;

//! Login throttling: fixed-window counters of failed logins per account and per client
//! address. When either counter has reached its limit, further attempts are refused with
//! [`ThrottleError::Throttled`] until that window ends, whether or not the password is right,
//! so guessing cannot continue by trying the right password later in the window.
//!
//! Accounts are keyed by a SHA-256 of the normalized email (no addresses in Redis); IPv6
//! clients by their /64, since one host usually controls a whole /64. The Redis variant
//! counts with `INCR` + `PEXPIRE` in one Lua script per key (single-key scripts keep it valid
//! on Redis Cluster) and uses Redis's clock; the in-process variant uses the `now` it is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::ClusterError;
use crate::accounts::normalize_email;

/// In-process counters kept before expired ones are swept.
const SWEEP_THRESHOLD: usize = 10_000;

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
    /// The counters could not be read or written (Redis down). Callers choose to fail closed
    /// (refuse logins) or open.
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
    backend: Backend,
    /// Key namespace: empty for customers, `staff:` for staff.
    scope: &'static str,
}

#[derive(Clone)]
enum Backend {
    InProcess(Arc<Mutex<HashMap<String, Window>>>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
        hit: Arc<redis::Script>,
        read: Arc<redis::Script>,
    },
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
            backend: Backend::InProcess(Arc::default()),
            scope: "",
        }
    }

    /// Counters in Redis under `<prefix>throttle:…`, shared by every replica.
    pub async fn redis(
        client: redis::Client,
        prefix: &str,
        limits: ThrottleLimits,
    ) -> Result<LoginThrottle, ClusterError> {
        let conn = client
            .get_connection_manager_with_config(super::manager_config())
            .await?;
        Ok(LoginThrottle {
            limits,
            backend: Backend::Redis {
                conn,
                prefix: prefix.to_owned(),
                hit: Arc::new(redis::Script::new(HIT_SCRIPT)),
                read: Arc::new(redis::Script::new(READ_SCRIPT)),
            },
            scope: "",
        })
    }

    /// The same counters' store, with keys of their own for staff logins.
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
        let (account_key, ip_key) = self.keys(account, ip);
        let account = self.read(&account_key, now).await?;
        let ip = self.read(&ip_key, now).await?;
        decide(account, ip, self.limits)
    }

    /// Counts a failed attempt against the account and the address.
    pub async fn record_failure(
        &self,
        account: &str,
        ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), ThrottleError> {
        let (account_key, ip_key) = self.keys(account, ip);
        self.hit(&account_key, now).await?;
        self.hit(&ip_key, now).await?;
        Ok(())
    }

    /// Clears the account's counter after a successful login (the address counter stays:
    /// one valid account must not unlock guessing at others).
    pub async fn record_success(&self, account: &str) -> Result<(), ThrottleError> {
        let key = account_key(&self.prefix(), account);
        match &self.backend {
            Backend::InProcess(map) => {
                lock(map).remove(&key);
            }
            Backend::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(ClusterError::from)?;
            }
        }
        Ok(())
    }

    fn prefix(&self) -> String {
        match &self.backend {
            Backend::InProcess(_) => self.scope.to_owned(),
            Backend::Redis { prefix, .. } => format!("{prefix}{}", self.scope),
        }
    }

    fn keys(&self, account: &str, ip: IpAddr) -> (String, String) {
        let prefix = self.prefix();
        (account_key(&prefix, account), ip_key(&prefix, ip))
    }

    async fn read(&self, key: &str, now: OffsetDateTime) -> Result<Counter, ThrottleError> {
        match &self.backend {
            Backend::InProcess(map) => Ok(match lock(map).get(key) {
                Some(w) if w.ends_at > now => Counter {
                    count: w.count,
                    remaining: to_std(w.ends_at - now),
                },
                _ => Counter::ZERO,
            }),
            Backend::Redis { conn, read, .. } => {
                let mut conn = conn.clone();
                let (count, ttl_ms): (i64, i64) = read
                    .key(key)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(ClusterError::from)?;
                Ok(Counter::from_redis(count, ttl_ms))
            }
        }
    }

    async fn hit(&self, key: &str, now: OffsetDateTime) -> Result<Counter, ThrottleError> {
        match &self.backend {
            Backend::InProcess(map) => {
                let mut map = lock(map);
                if map.len() >= SWEEP_THRESHOLD {
                    map.retain(|_, w| w.ends_at > now);
                }
                let window = map.entry(key.to_owned()).or_insert(Window {
                    count: 0,
                    ends_at: now,
                });
                *window = window.hit(now, self.limits.window);
                Ok(Counter {
                    count: window.count,
                    remaining: to_std(window.ends_at - now),
                })
            }
            Backend::Redis { conn, hit, .. } => {
                let mut conn = conn.clone();
                let window_ms = u64::try_from(self.limits.window.as_millis()).unwrap_or(u64::MAX);
                let (count, ttl_ms): (i64, i64) = hit
                    .key(key)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(ClusterError::from)?;
                Ok(Counter::from_redis(count, ttl_ms))
            }
        }
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::InProcess(_) => "in-process",
            Backend::Redis { .. } => "redis",
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

//! The cluster-wide rate-limit store: a [`TokenLeaser`] over Redis, and the wiring that gives
//! the gateway cluster-wide tier rate limits when `redis.url` is set.
//!
//! One GCRA bucket per customer under `<key_prefix>ratelimit:<customer id>`, holding its
//! theoretical arrival time in microseconds of Redis's clock (so replica clocks never matter)
//! and the emission interval it was counted in (so a tier change carries the debt over in
//! requests, see [`LEASE_SCRIPT`]).
//! One Lua script per lease takes `min(n, available)` tokens atomically; a single key per
//! script keeps it valid on Redis Cluster. Each write sets `PEXPIRE` to the moment the bucket
//! is full again, when an absent key means the same thing, so idle customers vanish.
//!
//! The connection fails fast (short reply timeout, few reconnect retries): the gateway's
//! [`computegate_gateway::ratelimit::cluster`] falls back to per-replica limits while Redis is
//! unreachable, and a lease that hangs would only delay that.

use std::sync::Arc;
use std::time::Duration;

use computegate_gateway::auth::BoxFuture;
use computegate_gateway::config::Config;
use computegate_gateway::proxy::Gateway;
use computegate_gateway::ratelimit::{Lease, LeaseError, Quota, TokenLeaser};
use computegate_kyc::cluster::{ClusterError, redis_client};
use prometheus_client::registry::Registry;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// GCRA lease. KEYS[1]: the bucket, `<theoretical arrival time, µs>:<emission interval it was
/// counted in, µs>` (a bare arrival time, as written before the interval was kept, counts in
/// the interval asked). ARGV: emission interval (µs, ≥ 1), burst (≥ 1), tokens wanted. Returns
/// `{granted, available after the take, µs until the next token when none is available}`.
///
/// When the interval asked differs from the stored one (the customer's tier or the policy
/// changed), the debt is carried over in requests, not in time, and capped at a full bucket of
/// the new quota — as [`computegate_gateway::ratelimit::Gcra`] does in process — so a customer
/// promoted from 5/s to 500/s is not blocked for the seconds its old-tier requests cost.
/// Numbers stay below 2^53 (µs since 1970), exact in Lua's doubles; they are written with
/// `%.0f` so no digit is lost to `%.14g`.
const LEASE_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local horizon = interval * burst
local stored = redis.call('GET', KEYS[1])
local tat, was = 0, interval
if stored then
  local t, i = string.match(stored, '^(%d+):(%d+)$')
  if t then
    tat, was = tonumber(t), tonumber(i)
  else
    tat = tonumber(stored) or 0
  end
end
if tat < now then tat = now end
local rescaled = false
if was ~= interval and was > 0 and tat > now then
  tat = now + math.min(math.ceil((tat - now) / was) * interval, horizon)
  rescaled = true
end
local available = math.floor((now + horizon - tat) / interval)
if available < 0 then available = 0 end
local granted = math.min(wanted, available)
if granted > 0 or rescaled then
  tat = tat + granted * interval
  local ttl_ms = math.ceil((tat - now) / 1000) + 1
  local value = string.format('%.0f:%.0f', tat, interval)
  redis.call('SET', KEYS[1], value, 'PX', string.format('%.0f', ttl_ms))
end
local wait = 0
if available == 0 then wait = tat + interval - horizon - now end
return {granted, available - granted, wait}
";

/// Reply timeout of the lease connection: a healthy Redis answers in well under a millisecond.
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);
/// Connect timeout of the lease connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Leases tokens from per-customer GCRA buckets in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisLeaser {
    conn: ConnectionManager,
    prefix: String,
    script: Arc<redis::Script>,
}

// === impl RedisLeaser ===

impl RedisLeaser {
    /// Connects to `url` on first use (Redis may be down at start: the limiter then runs on
    /// its configured fallback until it answers); keys live under `<prefix>ratelimit:`.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(REPLY_TIMEOUT));
        let conn = ConnectionManager::new_lazy_with_config(redis_client(url)?, config)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            script: Arc::new(redis::Script::new(LEASE_SCRIPT)),
        })
    }

    /// The Redis key of `key`'s bucket.
    pub fn bucket_key(&self, key: &str) -> String {
        format!("{}ratelimit:{key}", self.prefix)
    }
}

impl TokenLeaser for RedisLeaser {
    fn lease(&self, key: Arc<str>, quota: Quota, n: u64) -> BoxFuture<Result<Lease, LeaseError>> {
        let mut conn = self.conn.clone();
        let script = self.script.clone();
        let key = self.bucket_key(&key);
        let interval = interval_micros(quota);
        Box::pin(async move {
            let reply: Vec<i64> = script
                .key(key)
                .arg(interval)
                .arg(quota.burst())
                .arg(n)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| LeaseError::Unavailable(e.to_string()))?;
            lease_from_reply(&reply, n)
        })
    }
}

/// The emission interval in whole microseconds, rounded up (never more than the quota).
fn interval_micros(quota: Quota) -> u64 {
    let nanos = u64::try_from(quota.interval().as_nanos()).unwrap_or(u64::MAX);
    nanos.div_ceil(1000).max(1)
}

/// Reads the script's `{granted, available, wait_us}` for a lease of `asked` tokens.
fn lease_from_reply(reply: &[i64], asked: u64) -> Result<Lease, LeaseError> {
    let malformed = || LeaseError::Unavailable(format!("unexpected lease reply {reply:?}"));
    let [granted, available, wait] = reply else {
        return Err(malformed());
    };
    let (Ok(granted), Ok(available), Ok(wait)) = (
        u64::try_from(*granted),
        u64::try_from(*available),
        u64::try_from(*wait),
    ) else {
        return Err(malformed());
    };
    if granted > asked {
        return Err(malformed());
    }
    let retry_after = if granted == 0 {
        Duration::from_micros(wait)
    } else {
        Duration::ZERO
    };
    Ok(Lease::new(granted, available, retry_after))
}

/// `gateway` with cluster-wide tier rate limits when `redis.url` is set; unchanged (in-process
/// limits) otherwise.
pub async fn with_cluster_rate_limit(
    gateway: Gateway,
    config: &Config,
    registry: &mut Registry,
) -> Result<Gateway, ClusterError> {
    let Some(url) = &config.redis.url else {
        return Ok(gateway);
    };
    let leaser = RedisLeaser::connect(url, &config.redis.key_prefix)?;
    Ok(gateway.with_token_leaser(Arc::new(leaser), config.redis.rate_limit_replicas, registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_up_to_whole_microseconds() {
        let q = |rps, burst| Quota::new(rps, burst).expect("quota");
        assert_eq!(interval_micros(q(10.0, 5)), 100_000);
        assert_eq!(interval_micros(q(3.0, 5)), 333_334);
        assert_eq!(interval_micros(q(5e6, 5)), 1, "never zero");
    }

    #[test]
    fn replies_are_checked() {
        let lease = lease_from_reply(&[2, 3, 0], 5).expect("valid");
        assert_eq!((lease.granted, lease.available), (2, 3));
        assert_eq!(lease.retry_after, Duration::ZERO);
        let empty = lease_from_reply(&[0, 0, 250_000], 5).expect("valid");
        assert_eq!(empty.retry_after, Duration::from_millis(250));
        for bad in [
            &[1, 2][..],
            &[-1, 0, 0],
            &[6, 0, 0],
            &[1, 0, 0, 0],
            &[0, -3, 5],
        ] {
            assert!(
                matches!(lease_from_reply(bad, 5), Err(LeaseError::Unavailable(_))),
                "{bad:?}"
            );
        }
    }
}

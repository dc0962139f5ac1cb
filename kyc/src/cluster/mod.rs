//! State shared between replicas: [`Notices`] (revocations and account changes, published so
//! every replica drops its cached view within a second) and [`LoginThrottle`] (failed-login
//! counters per account and per client address).
//!
//! Each has a Redis implementation for several replicas and an in-process one for a single
//! node, behind one type, so callers never branch on the deployment. Redis keys and the notice
//! channel live under a configurable prefix, which also lets tests isolate themselves on a
//! shared server.

mod notices;
mod throttle;

pub use self::notices::{Notice, Notices, Subscription};
pub use self::throttle::{LoginThrottle, REDIS_RETRY_DELAY, ThrottleError, ThrottleLimits};

/// Failures talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The Redis URL did not parse. The URL itself is not repeated: it may hold a password.
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis refused or the connection failed.
    #[error("Redis operation failed")]
    Redis(#[from] redis::RedisError),
    /// A notice could not be encoded.
    #[error("notice encoding failed")]
    Encode(#[from] serde_json::Error),
}

/// Connection settings for the shared command connection: redis-rs's timeouts (1 s to
/// connect, 500 ms per reply) with few, short retries, so a command during an outage fails
/// within about a second (callers fail open or closed) instead of stalling a login, and start-up
/// against an unreachable Redis fails fast.
pub(crate) fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(std::time::Duration::from_millis(500))
}

/// Opens a Redis client for `url` (`redis://…` or `rediss://…`).
pub fn redis_client(url: &str) -> Result<redis::Client, ClusterError> {
    redis::Client::open(url).map_err(ClusterError::InvalidUrl)
}

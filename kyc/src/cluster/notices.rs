//! Notices between replicas: small JSON messages saying "this key was revoked", "this
//! customer changed", so every replica drops cached state at once instead of at cache expiry.
//!
//! With Redis, notices go over pub/sub on channel `<prefix>notices`. Pub/sub is fire-and-
//! forget: a replica that was disconnected missed whatever was published meanwhile, so after
//! every reconnect the subscriber emits [`Notice::Resync`] and callers re-check their cached
//! principals against the store. A receiver that falls behind the local buffer gets `Resync`
//! for the same reason. The publishing replica receives its own notices back through Redis;
//! callers apply a change locally before publishing, and handling a notice twice is harmless.
//!
//! Without Redis, a `tokio::sync::broadcast` channel gives the same interface in process.
//!
//! [`Notices::redis_degradable`] (the gateway's choice) also starts while Redis is down: it
//! reports the subscription's state through [`Notices::connected`], so the caller can re-check
//! its caches against the store while notices cannot arrive, and keeps reconnecting.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ClusterError;

/// Notices buffered per receiver before a slow one is told to resync.
const LOCAL_BUFFER: usize = 1024;

/// First reconnect delay after the subscription drops; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often the subscriber pings Redis to notice a dead connection that never closed.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may take before the connection is treated as dead.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`Notices::redis_degradable`] waits for the first subscription before carrying on
/// degraded.
const FIRST_SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Something other replicas must act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notice {
    /// An API key was revoked: drop it from the verified-key cache.
    KeyRevoked {
        /// The key id.
        key_id: String,
    },
    /// A customer's status, tier or organization changed: drop cached principals.
    CustomerChanged {
        /// The customer.
        customer_id: Uuid,
    },
    /// A refresh family was revoked (logout or reuse).
    RefreshFamilyRevoked {
        /// The family.
        family_id: Uuid,
    },
    /// An access token was revoked before its expiry (logout): refuse it everywhere.
    AccessTokenRevoked {
        /// The token's `jti`.
        jti: String,
        /// The token's `exp` (Unix seconds); the revocation matters only until then.
        exp: i64,
    },
    /// The signing key was rotated: reload the keyring.
    SigningKeyRotated {
        /// The new active kid.
        kid: String,
    },
    /// Notices may have been missed (reconnect, slow receiver): re-check everything cached.
    /// Generated locally; never needs publishing.
    Resync,
}

/// Publishes and fans out notices. Cheap to clone; the Redis subscriber task stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Notices {
    inner: Arc<Inner>,
}

/// One receiver of notices.
pub struct Subscription {
    rx: broadcast::Receiver<Notice>,
}

struct Inner {
    local: broadcast::Sender<Notice>,
    redis: Option<RedisSide>,
    /// Whether notices from other replicas can arrive now (always true in process).
    connected: watch::Receiver<bool>,
}

struct RedisSide {
    publisher: ConnectionManager,
    channel: String,
    subscriber: JoinHandle<()>,
}

// === impl Notices ===

impl Notices {
    /// Single-node notices, delivered in process only.
    pub fn in_process() -> Notices {
        let (local, _) = broadcast::channel(LOCAL_BUFFER);
        let (_, connected) = watch::channel(true);
        Notices {
            inner: Arc::new(Inner {
                local,
                redis: None,
                connected,
            }),
        }
    }

    /// Notices over Redis pub/sub on `<prefix>notices`. Returns once the subscription is
    /// active, so a notice published after this returns is received; fails if Redis cannot be
    /// reached at all. Later disconnects are retried in the background (with `Resync`).
    pub async fn redis(client: redis::Client, prefix: &str) -> Result<Notices, ClusterError> {
        let publisher = client
            .get_connection_manager_with_config(super::manager_config())
            .await?;
        let (notices, first) = Self::over(client, publisher, prefix);
        match first.await {
            Ok(Ok(())) => Ok(notices),
            Ok(Err(e)) => Err(e.into()),
            // The task ended without reporting; only possible if it panicked.
            Err(_) => Err(ClusterError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "notice subscriber stopped",
            )))),
        }
    }

    /// As [`Notices::redis`], but Redis being down is no error: waits up to two seconds for
    /// the first subscription, then carries on with [`Notices::connected`] false, reconnecting
    /// in the background (and sending `Resync` once subscribed). Fails only on a bad client.
    pub async fn redis_degradable(
        client: redis::Client,
        prefix: &str,
    ) -> Result<Notices, ClusterError> {
        let publisher =
            ConnectionManager::new_lazy_with_config(client.clone(), super::manager_config())?;
        let (notices, first) = Self::over(client, publisher, prefix);
        match tokio::time::timeout(FIRST_SUBSCRIBE_WAIT, first).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "Redis notices unavailable at start; running degraded");
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("Redis notices not subscribed yet; running degraded");
            }
        }
        Ok(notices)
    }

    /// Starts the subscriber; the receiver reports its first attempt.
    fn over(
        client: redis::Client,
        publisher: ConnectionManager,
        prefix: &str,
    ) -> (Notices, oneshot::Receiver<redis::RedisResult<()>>) {
        let channel = format!("{prefix}notices");
        let (local, _) = broadcast::channel(LOCAL_BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (state, connected) = watch::channel(false);
        let subscriber = tokio::spawn(subscribe_loop(
            client,
            channel.clone(),
            local.clone(),
            ready_tx,
            state,
        ));
        let notices = Notices {
            inner: Arc::new(Inner {
                local,
                redis: Some(RedisSide {
                    publisher,
                    channel,
                    subscriber,
                }),
                connected,
            }),
        };
        (notices, ready_rx)
    }

    /// Whether notices from other replicas can arrive now: always true in process; over Redis,
    /// true while the subscription is active. Watch it to learn of outages and recoveries.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.inner.connected.clone()
    }

    /// Sends `notice` to every subscriber on every replica (this one included).
    pub async fn publish(&self, notice: &Notice) -> Result<(), ClusterError> {
        match &self.inner.redis {
            Some(redis) => {
                let payload = serde_json::to_string(notice)?;
                let mut conn = redis.publisher.clone();
                let first: redis::RedisResult<i64> =
                    conn.publish(&redis.channel, payload.as_str()).await;
                if first.is_err() {
                    // A connection that failed earlier (an outage since recovered) reports that
                    // old failure once while it reconnects: one retry waits for the new one.
                    let _receivers: i64 = conn.publish(&redis.channel, payload).await?;
                }
            }
            None => {
                // No receivers is not an error: nothing is cached yet.
                let _ = self.inner.local.send(notice.clone());
            }
        }
        Ok(())
    }

    /// A new receiver of every notice published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.inner.local.subscribe(),
        }
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.inner.redis {
            Some(r) => r.channel.as_str(),
            None => "in-process",
        };
        f.debug_tuple("Notices").field(&mode).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(redis) = &self.redis {
            redis.subscriber.abort();
        }
    }
}

// === impl Subscription ===

impl Subscription {
    /// The next notice; [`Notice::Resync`] if this receiver fell behind. `None` once the
    /// [`Notices`] it came from is gone.
    pub async fn recv(&mut self) -> Option<Notice> {
        match self.rx.recv().await {
            Ok(notice) => Some(notice),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Notice::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Keeps one pub/sub connection subscribed, forwarding notices into `local`. Reports the
/// first connection attempt through `ready` (a strict caller then drops the task); after that,
/// reconnects with backoff and emits `Resync` after each (re)subscription that follows a
/// failure. `state` says whether the subscription is active.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    local: broadcast::Sender<Notice>,
    ready: oneshot::Sender<redis::RedisResult<()>>,
    state: watch::Sender<bool>,
) {
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe(&client, &channel).await {
            Ok(pubsub) => {
                backoff = MIN_BACKOFF;
                state.send_replace(true);
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok(()));
                    }
                    None => {
                        tracing::info!(channel = %channel, "notice subscription restored");
                        let _ = local.send(Notice::Resync);
                    }
                }
                forward(pubsub, &local, PING_INTERVAL).await;
                state.send_replace(false);
                tracing::warn!(channel = %channel, "notice subscription lost; reconnecting");
            }
            Err(e) => {
                state.send_replace(false);
                match ready.take() {
                    Some(ready) => {
                        tracing::warn!(error = %e, "notice subscription failed; retrying");
                        let _ = ready.send(Err(e));
                    }
                    None => tracing::warn!(error = %e, "notice subscription failed; retrying"),
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens a pub/sub connection and subscribes, within [`PING_TIMEOUT`] (a hung server must not
/// stall the loop: it would never report the outage).
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(PING_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "subscribing timed out",
            )))
        })
}

/// Forwards messages until the connection ends or stops answering pings.
async fn forward(
    pubsub: redis::aio::PubSub,
    local: &broadcast::Sender<Notice>,
    ping_every: Duration,
) {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(ping_every);
    ping.reset();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return };
                match serde_json::from_slice::<Notice>(msg.get_payload_bytes()) {
                    Ok(notice) => {
                        let _ = local.send(notice);
                    }
                    Err(e) => tracing::debug!(error = %e, "ignoring malformed notice"),
                }
            }
            _ = ping.tick() => {
                // In subscribed mode the reply is `["pong", ""]`, not `PONG`: accept any value.
                let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_wire_format() {
        let id = Uuid::nil();
        let json = serde_json::to_value(Notice::CustomerChanged { customer_id: id }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "customer_changed", "customer_id": id})
        );
        let back: Notice =
            serde_json::from_str(r#"{"type":"key_revoked","key_id":"AbCdEfGh12345678"}"#).unwrap();
        assert_eq!(
            back,
            Notice::KeyRevoked {
                key_id: "AbCdEfGh12345678".into()
            }
        );
        assert!(serde_json::from_str::<Notice>(r#"{"type":"drop_tables"}"#).is_err());
    }

    #[tokio::test]
    async fn in_process_fan_out() {
        let notices = Notices::in_process();
        let mut a = notices.subscribe();
        let mut b = notices.subscribe();
        let n = Notice::KeyRevoked { key_id: "k".into() };
        notices.publish(&n).await.unwrap();
        assert_eq!(a.recv().await, Some(n.clone()));
        assert_eq!(b.recv().await, Some(n));
    }

    #[tokio::test]
    async fn slow_receiver_is_told_to_resync() {
        let notices = Notices::in_process();
        let mut slow = notices.subscribe();
        for _ in 0..LOCAL_BUFFER + 5 {
            notices
                .publish(&Notice::KeyRevoked { key_id: "k".into() })
                .await
                .unwrap();
        }
        notices
            .publish(&Notice::SigningKeyRotated { kid: "k".into() })
            .await
            .unwrap();
        assert_eq!(slow.recv().await, Some(Notice::Resync));
    }

    /// Regression: a subscribed-mode ping reply once failed to parse, which dropped the
    /// connection (and sent `Resync`) at every ping.
    #[tokio::test]
    #[ignore = "needs Redis (scripts/test.sh)"]
    async fn pings_keep_a_healthy_subscription() {
        let url = std::env::var("COMPUTEGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let client = redis::Client::open(url).unwrap();
        let channel = format!("cgtest:{}:notices", Uuid::new_v4().simple());
        let pubsub = subscribe(&client, &channel).await.unwrap();
        let (local, _) = broadcast::channel(4);
        let forwarding = forward(pubsub, &local, Duration::from_millis(50));
        let ended = tokio::time::timeout(Duration::from_millis(500), forwarding).await;
        assert!(ended.is_err(), "forward() gave up on a healthy connection");
    }

    #[tokio::test]
    async fn subscription_ends_with_its_source() {
        let notices = Notices::in_process();
        let mut sub = notices.subscribe();
        drop(notices);
        assert_eq!(sub.recv().await, None);
    }
}

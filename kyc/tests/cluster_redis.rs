//! Notices and login throttling against a real Redis: round trips between two "replicas",
//! prefix isolation, resync after a dropped connection, shared throttle counters. Each test
//! uses its own key prefix and deletes its keys afterwards. Ignored by default; run with
//! `cargo test -p computegate-kyc -- --include-ignored` when Redis is available.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use computegate_kyc::cluster::{
    LoginThrottle, Notice, Notices, Subscription, ThrottleError, ThrottleLimits, redis_client,
};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The bound for a notice to reach every replica.
const DELIVERY_BOUND: Duration = Duration::from_secs(1);

fn redis_url() -> String {
    std::env::var("COMPUTEGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

fn unique_prefix() -> String {
    format!("cgtest:{}:", Uuid::new_v4().simple())
}

/// Deletes every key under `prefix`.
async fn cleanup(prefix: &str) {
    let client = redis_client(&redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// The next notice other than `Resync` (which a reconnect may interleave), within the bound.
async fn next_notice(sub: &mut Subscription) -> Notice {
    loop {
        let n = tokio::time::timeout(DELIVERY_BOUND, sub.recv())
            .await
            .expect("notice within 1 s")
            .expect("subscription open");
        if n != Notice::Resync {
            return n;
        }
    }
}

#[tokio::test]
#[ignore = "needs Redis (scripts/test.sh)"]
async fn notices_reach_every_replica() {
    let prefix = unique_prefix();
    let client = redis_client(&redis_url()).unwrap();
    let replica_a = Notices::redis(client.clone(), &prefix).await.unwrap();
    let replica_b = Notices::redis(client, &prefix).await.unwrap();
    let mut a = replica_a.subscribe();
    let mut b1 = replica_b.subscribe();
    let mut b2 = replica_b.subscribe();

    let sent = [
        Notice::KeyRevoked {
            key_id: "AbCdEfGh12345678".into(),
        },
        Notice::CustomerChanged {
            customer_id: Uuid::now_v7(),
        },
        Notice::RefreshFamilyRevoked {
            family_id: Uuid::now_v7(),
        },
    ];
    for n in &sent {
        replica_a.publish(n).await.unwrap();
    }
    for sub in [&mut a, &mut b1, &mut b2] {
        for n in &sent {
            assert_eq!(&next_notice(sub).await, n);
        }
    }
    // And the other direction.
    let back = Notice::SigningKeyRotated { kid: "k1".into() };
    replica_b.publish(&back).await.unwrap();
    assert_eq!(next_notice(&mut a).await, back);
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs Redis (scripts/test.sh)"]
async fn prefixes_isolate_deployments() {
    let (p1, p2) = (unique_prefix(), unique_prefix());
    let client = redis_client(&redis_url()).unwrap();
    let one = Notices::redis(client.clone(), &p1).await.unwrap();
    let two = Notices::redis(client, &p2).await.unwrap();
    let mut sub_two = two.subscribe();
    one.publish(&Notice::KeyRevoked { key_id: "x".into() })
        .await
        .unwrap();
    let marker = Notice::KeyRevoked { key_id: "y".into() };
    two.publish(&marker).await.unwrap();
    // The first notice `two` sees is its own marker, not `one`'s.
    assert_eq!(next_notice(&mut sub_two).await, marker);
}

#[tokio::test]
#[ignore = "needs Redis (scripts/test.sh)"]
async fn subscriber_resyncs_after_reconnect() {
    let prefix = unique_prefix();
    let proxy = Proxy::start(&redis_url()).await;
    let via_proxy = redis_client(&format!("redis://{}", proxy.addr)).unwrap();
    let direct = redis_client(&redis_url()).unwrap();
    let subscriber = Notices::redis(via_proxy, &prefix).await.unwrap();
    let publisher = Notices::redis(direct, &prefix).await.unwrap();
    let mut sub = subscriber.subscribe();

    proxy.cut();
    // The subscriber reconnects (through the still-listening proxy) and says what it may
    // have missed: everything.
    let n = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("resync after reconnect")
        .unwrap();
    assert_eq!(n, Notice::Resync);

    let after = Notice::CustomerChanged {
        customer_id: Uuid::now_v7(),
    };
    publisher.publish(&after).await.unwrap();
    assert_eq!(next_notice(&mut sub).await, after);
    cleanup(&prefix).await;
}

#[tokio::test]
#[ignore = "needs Redis (scripts/test.sh)"]
async fn unreachable_redis_is_an_error() {
    // Nothing listens on port 1.
    let client = redis_client("redis://127.0.0.1:1").unwrap();
    assert!(Notices::redis(client.clone(), "x:").await.is_err());
    assert!(
        LoginThrottle::redis(client, "x:", ThrottleLimits::default())
            .await
            .is_err()
    );
}

#[tokio::test]
#[ignore = "needs Redis (scripts/test.sh)"]
async fn throttle_counters_are_shared_and_expire() {
    let prefix = unique_prefix();
    let limits = ThrottleLimits {
        per_account: 3,
        per_ip: 5,
        window: Duration::from_millis(600),
    };
    let client = redis_client(&redis_url()).unwrap();
    let replica_a = LoginThrottle::redis(client.clone(), &prefix, limits)
        .await
        .unwrap();
    let replica_b = LoginThrottle::redis(client, &prefix, limits).await.unwrap();
    let ip: IpAddr = "198.51.100.30".parse().unwrap();
    // Redis keeps its own clock; `now` only matters in process.
    let now = OffsetDateTime::now_utc();

    for _ in 0..3 {
        replica_a.check("g@example.com", ip, now).await.unwrap();
        replica_a
            .record_failure("G@example.com", ip, now)
            .await
            .unwrap();
    }
    // The other replica sees the same counter.
    match replica_b.check("g@example.com", ip, now).await {
        Err(ThrottleError::Throttled { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(1));
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    replica_b.check("h@example.com", ip, now).await.unwrap();
    // Keys live under the prefix and hold no email address.
    let mut conn = redis_client(&redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("example.com")));

    // Two more failures from the address, on other accounts, exhaust the per-IP limit.
    replica_b
        .record_failure("i@example.com", ip, now)
        .await
        .unwrap();
    replica_b
        .record_failure("j@example.com", ip, now)
        .await
        .unwrap();
    assert!(replica_a.check("k@example.com", ip, now).await.is_err());
    let elsewhere: IpAddr = "198.51.100.31".parse().unwrap();
    replica_a
        .check("k@example.com", elsewhere, now)
        .await
        .unwrap();

    // Success clears the account, not the address.
    replica_a.record_success("g@example.com").await.unwrap();
    replica_a
        .check("g@example.com", elsewhere, now)
        .await
        .unwrap();

    // Windows end with the Redis TTL (real time: Redis has its own clock).
    tokio::time::sleep(Duration::from_millis(700)).await;
    replica_a.check("k@example.com", ip, now).await.unwrap();
    cleanup(&prefix).await;
}

/// A TCP proxy in front of Redis whose live connections can be cut, to simulate a network
/// failure without touching other clients of the shared server.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(redis_url: &str) -> Proxy {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept_conns = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_conns.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            conns,
            accept,
        }
    }

    /// Drops every live connection; new ones are still accepted.
    fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

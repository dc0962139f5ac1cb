//! Cluster-wide tier rate limits through Redis token leasing: the Lua script on its own
//! (grants never exceed what the bucket holds, the bucket refills at the rate, idle keys
//! vanish), and two gateway processes on one PostgreSQL database and one Redis prefix hammered
//! by one customer, whose admissions over the window stay within the documented bound
//! `burst + rate·t + replicas × (batch + low_water)` — far below the `2 × (burst + rate·t)` two
//! independent in-process limiters would allow.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use computegate::ratelimit_redis::RedisLeaser;
use computegate_gateway::ratelimit::{Quota, TokenLeaser};
use futures_util::future::join_all;

use support::cluster::{redis_prefix, redis_url};
use support::identity::IdGateway;
use support::metering::{Backend, Cust, Meter, policy, tiers};
use support::{TEST_TIMEOUT, expect_problem, within};

/// The trial tier's limit in the cluster test: 5 requests a second, burst 10.
const RATE: f64 = 5.0;
const BURST: u32 = 10;
/// Lease batch for 2 replicas (`burst / (2 × replicas)`) and its low water (`batch / 2`).
const BATCH: f64 = 2.0;
const LOW_WATER: f64 = 1.0;
/// How long the customer hammers.
const HAMMER: Duration = Duration::from_secs(3);
/// Concurrent request loops.
const WORKERS: usize = 8;

async fn leaser() -> RedisLeaser {
    RedisLeaser::connect(&redis_url(), &redis_prefix()).expect("Redis client")
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn the_lease_script_grants_at_most_what_the_bucket_holds_and_refills_at_the_rate() {
    within(TEST_TIMEOUT, async {
        let leaser = leaser().await;
        // 10/s (100 ms interval), burst 5.
        let q = Quota::new(10.0, 5).expect("quota");
        let key: Arc<str> = Arc::from("cust-a");
        let start = Instant::now();
        let first = leaser.lease(key.clone(), q, 3).await.expect("lease");
        assert_eq!((first.granted, first.available), (3, 2), "{first:?}");
        let second = leaser.lease(key.clone(), q, 3).await.expect("lease");
        let refilled = (start.elapsed().as_millis() / 100) as u64;
        assert!(
            second.granted <= 2 + refilled,
            "granted beyond the bucket: {second:?}"
        );
        // Drain it; an empty bucket says how long until the next token.
        let mut empty = None;
        for _ in 0..20 {
            let lease = leaser.lease(key.clone(), q, 5).await.expect("lease");
            assert!(lease.granted <= 5);
            if lease.granted == 0 {
                empty = Some(lease);
                break;
            }
        }
        let empty = empty.expect("the bucket empties");
        assert_eq!(empty.available, 0);
        assert!(
            empty.retry_after > Duration::ZERO && empty.retry_after <= Duration::from_millis(100),
            "{empty:?}"
        );
        // Another key is untouched.
        let other = leaser
            .lease(Arc::from("cust-b"), q, 5)
            .await
            .expect("lease");
        assert_eq!(other.granted, 5);
        // The key expires when the bucket would be full again (≤ 500 ms from now).
        let mut conn = redis_conn().await;
        let pttl: i64 = redis::cmd("PTTL")
            .arg(leaser.bucket_key("cust-a"))
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!((1..=501).contains(&pttl), "PTTL {pttl}");
        // Refill over time: after 300 ms, about 3 tokens; never more than the burst.
        tokio::time::sleep(empty.retry_after + Duration::from_millis(300)).await;
        let later = leaser.lease(key.clone(), q, 5).await.expect("lease");
        assert!((3..=5).contains(&later.granted), "{later:?}");
        // Idle, it vanishes.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let exists: i64 = redis::cmd("EXISTS")
            .arg(leaser.bucket_key("cust-a"))
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert_eq!(exists, 0, "an idle bucket's key expires");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_tier_change_carries_the_spent_requests_over_not_the_time_they_cost() {
    within(TEST_TIMEOUT, async {
        let leaser = leaser().await;
        let slow = Quota::new(5.0, 20).expect("quota"); // 200 ms interval, 4 s window
        let fast = Quota::new(500.0, 2000).expect("quota"); // 2 ms interval, 4 s window
        // Promotion: the whole slow burst spent, then the fast quota asked.
        let promoted: Arc<str> = Arc::from("promoted");
        let spent = leaser
            .lease(promoted.clone(), slow, 20)
            .await
            .expect("lease");
        assert_eq!(spent.granted, 20);
        assert_eq!(
            leaser
                .lease(promoted.clone(), slow, 1)
                .await
                .expect("lease")
                .granted,
            0
        );
        let after = leaser
            .lease(promoted.clone(), fast, 2000)
            .await
            .expect("lease");
        // 20 requests owed at 2 ms: 1,980 left (a few more as time passes), not ~0.
        assert!(
            (1980..=2000).contains(&after.granted),
            "a promotion keeps 20 requests of debt, not 4 s: {after:?}"
        );
        // Demotion: 1,500 fast requests spent (3 s at 2 ms) leave at most an empty slow bucket.
        let demoted: Arc<str> = Arc::from("demoted");
        let spent = leaser
            .lease(demoted.clone(), fast, 1500)
            .await
            .expect("lease");
        assert_eq!(spent.granted, 1500);
        let after = leaser.lease(demoted.clone(), slow, 1).await.expect("lease");
        assert_eq!(
            after.granted, 0,
            "1,500 requests owed fill the slow bucket: {after:?}"
        );
        assert!(
            after.retry_after > Duration::ZERO && after.retry_after <= Duration::from_millis(200),
            "{after:?}"
        );
        // It refills at the slow rate from there.
        tokio::time::sleep(after.retry_after + Duration::from_millis(20)).await;
        let later = leaser.lease(demoted.clone(), slow, 5).await.expect("lease");
        assert_eq!(later.granted, 1, "{later:?}");
        // A bucket written before the interval was kept (a bare arrival time) still counts.
        let mut conn = redis_conn().await;
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .expect("TIME");
        let ahead = secs * 1_000_000 + micros + 10_000_000;
        let () = redis::cmd("SET")
            .arg(leaser.bucket_key("bare"))
            .arg(ahead.to_string())
            .arg("PX")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .expect("SET");
        let bare = leaser
            .lease(Arc::from("bare"), slow, 1)
            .await
            .expect("lease");
        assert_eq!(
            bare.granted, 0,
            "10 s ahead is beyond the 4 s window: {bare:?}"
        );
    })
    .await;
}

/// Sends GETs as `c`, alternating between `a` and `b`, from `WORKERS` loops until `HAMMER` has
/// passed; returns (admitted, denied, window length). Every answer must be a 200 or a 429 with
/// its headers.
async fn hammer(m: &Meter, a: &IdGateway, b: &IdGateway, c: &Cust) -> (u64, u64, Duration) {
    let admitted = AtomicU64::new(0);
    let denied = AtomicU64::new(0);
    let start = Instant::now();
    let workers = (0..WORKERS).map(|w| {
        let (admitted, denied) = (&admitted, &denied);
        async move {
            let mut i = w;
            while start.elapsed() < HAMMER {
                let gw = if i % 2 == 0 { a } else { b };
                i += 1;
                let resp = m
                    .http
                    .get(gw.url("/v1/echo/hammer"))
                    .header("authorization", format!("Bearer {}", c.access))
                    .send()
                    .await
                    .expect("send");
                let headers = resp.headers().clone();
                let limit = headers
                    .get("ratelimit-limit")
                    .map(|v| v.as_bytes().to_vec());
                assert_eq!(limit.as_deref(), Some(&b"10"[..]), "{headers:?}");
                if resp.status() == 200 {
                    admitted.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                expect_problem(resp, 429, "rate-limited").await;
                for name in ["retry-after", "ratelimit-remaining", "ratelimit-reset"] {
                    assert!(
                        headers.contains_key(name),
                        "429 without {name}: {headers:?}"
                    );
                }
                denied.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    join_all(workers).await;
    let window = start.elapsed();
    (
        admitted.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed),
        window,
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn two_replicas_share_one_customer_rate_within_the_documented_bound() {
    within(TEST_TIMEOUT, async {
        let caps = format!("rate_limit = {{ requests_per_second = {RATE:?}, burst = {BURST} }}");
        let text = policy("rate.cluster", &tiers(&[("unverified", &caps)]), "");
        let m = Meter::start(Backend::Postgres, Some(&text)).await;
        let b = m.replica().await;
        let c = m.customer().await;

        let (admitted, denied, window) = hammer(&m, &m.gw, &b, &c).await;
        let t = window.as_secs_f64();
        let exact = f64::from(BURST) + RATE * t;
        let bound = exact + 2.0 * (BATCH + LOW_WATER);
        let independent = 2.0 * exact;
        let admitted = admitted as f64;
        eprintln!(
            "admitted {admitted}, denied {denied} in {t:.2} s: bound {bound:.1}, \
             independent limiters {independent:.1}"
        );
        assert!(denied > 0, "the customer was never limited");
        assert!(
            admitted <= bound,
            "admitted {admitted} > burst + rate·t + replicas × (batch + low water) = {bound:.1}"
        );
        assert!(
            admitted < 0.7 * independent,
            "admitted {admitted}: not far below two independent limiters ({independent:.1})"
        );
        assert!(
            admitted >= f64::from(BURST) + RATE * t / 2.0,
            "admitted {admitted}: the shared bucket under-admits badly"
        );
    })
    .await;
}

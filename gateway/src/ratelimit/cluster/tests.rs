use std::sync::atomic::AtomicUsize;

use prometheus_client::encoding::text::encode;

use super::*;
use crate::auth::BoxFuture;
use crate::ratelimit::{Gcra, Lease};

/// A check on a route with the default fallback (`local`), which always decides.
async fn local(l: &ClusterLimiter, key: &str, q: Quota) -> Decision {
    match l.check(key, q, now(), RateLimitFallback::Local).await {
        Checked::Decided(d) => d,
        Checked::StoreDown => panic!("the local fallback always decides"),
    }
}

/// The shared bucket of the tests: the same GCRA per key as the Redis script, on tokio's
/// (paused) clock.
#[derive(Default)]
struct FakeStore {
    epoch: Mutex<Option<tokio::time::Instant>>,
    keys: Mutex<HashMap<Arc<str>, Gcra>>,
    quotas: Mutex<Vec<Quota>>,
    down: AtomicBool,
    hang: AtomicBool,
    slow: AtomicBool,
    calls: AtomicUsize,
}

#[derive(Clone, Default)]
struct Fake(Arc<FakeStore>);

impl TokenLeaser for Fake {
    fn lease(&self, key: Arc<str>, quota: Quota, n: u64) -> BoxFuture<Result<Lease, LeaseError>> {
        let store = self.0.clone();
        Box::pin(async move {
            store.calls.fetch_add(1, Ordering::Relaxed);
            if store.hang.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            if store.slow.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if store.down.load(Ordering::Relaxed) {
                return Err(LeaseError::Unavailable("connection refused".into()));
            }
            lock(&store.quotas).push(quota);
            let now = tokio::time::Instant::now();
            let epoch = *lock(&store.epoch).get_or_insert(now);
            let now_ns = nanos(now - epoch) + 1_000_000_000;
            let mut keys = lock(&store.keys);
            let gcra = keys.entry(key).or_default();
            let mut granted = 0;
            let mut last = None;
            while granted < n {
                let d = gcra.check(quota, now_ns);
                last = Some(d);
                if !d.allowed {
                    break;
                }
                granted += 1;
            }
            let retry = last.map_or(Duration::ZERO, |d| d.retry_after);
            let available = last.map_or(0, |d| u64::from(d.remaining));
            Ok(Lease::new(
                granted,
                if granted == 0 { 0 } else { available },
                if granted == 0 { retry } else { Duration::ZERO },
            ))
        })
    }
}

fn limiter(fake: &Fake, replicas: u32, registry: &mut Registry) -> ClusterLimiter {
    ClusterLimiter::new(
        Arc::new(fake.clone()),
        replicas,
        1000,
        tokio::time::Instant::now().into_std(),
        LeaseMetrics::register(registry),
    )
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Lets spawned leases run (the test runtime is single-threaded).
async fn settle() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

fn metrics(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).expect("encode");
    out
}

#[tokio::test(start_paused = true)]
async fn two_replicas_admit_within_the_bound_of_one_global_bucket() {
    let fake = Fake::default();
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let b = limiter(&fake, 2, &mut registry);
    // 10/s, burst 20: batch 5, low water 2, so at most 2 × 7 tokens over the exact GCRA.
    let q = Quota::new(10.0, 20).expect("quota");
    let start = tokio::time::Instant::now();
    let mut admitted = 0u64;
    // Both replicas hammered, 1000 requests a second each, for 3 s.
    for _ in 0..3000 {
        for l in [&a, &b] {
            if local(l, "cust", q).await.allowed {
                admitted += 1;
            }
        }
        settle().await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    let t = (tokio::time::Instant::now() - start).as_secs_f64();
    let exact = 20.0 + 10.0 * t;
    let bound = exact + 2.0 * 7.0;
    let admitted = admitted as f64;
    assert!(admitted <= bound, "admitted {admitted} > bound {bound}");
    assert!(
        admitted >= exact - 2.0 * 7.0,
        "admitted {admitted}: under-admits by more than the bound"
    );
    assert!(!a.is_degraded() && !b.is_degraded());
    // Far fewer store calls than requests.
    let calls = fake.0.calls.load(Ordering::Relaxed);
    assert!(calls < 600, "{calls} leases for 6000 requests");
}

#[tokio::test(start_paused = true)]
async fn a_compliant_customer_is_never_denied() {
    let fake = Fake::default();
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let b = limiter(&fake, 2, &mut registry);
    let q = Quota::new(2.0, 4).expect("quota");
    // One request every 600 ms (under 2/s), alternating replicas, for a minute.
    for i in 0..100 {
        let l = if i % 2 == 0 { &a } else { &b };
        let d = local(l, "slow", q).await;
        assert!(d.allowed, "request {i} denied: {d:?}");
        assert_eq!(d.limit, 4);
        settle().await;
        tokio::time::advance(Duration::from_millis(600)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_denial_carries_the_wait_and_is_answered_from_memory() {
    let fake = Fake::default();
    let mut registry = Registry::default();
    let a = limiter(&fake, 1, &mut registry);
    let q = Quota::new(1.0, 2).expect("quota");
    let mut denied = None;
    for _ in 0..5 {
        let d = local(&a, "c", q).await;
        settle().await;
        if !d.allowed {
            denied = Some(d);
            break;
        }
    }
    let d = denied.expect("burst of 2 is exhausted");
    assert_eq!((d.limit, d.remaining), (2, 0));
    assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_secs(1));
    assert_eq!(d.retry_after_secs(), 1);
    let calls = fake.0.calls.load(Ordering::Relaxed);
    for _ in 0..50 {
        assert!(!local(&a, "c", q).await.allowed);
    }
    assert_eq!(fake.0.calls.load(Ordering::Relaxed), calls, "no store call");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(local(&a, "c", q).await.allowed, "a token is back");
}

#[tokio::test(start_paused = true)]
async fn store_down_falls_back_to_the_local_limit_and_recovers() {
    let fake = Fake::default();
    fake.0.down.store(true, Ordering::Relaxed);
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let q = Quota::new(1.0, 3).expect("quota");
    // The full per-tier quota applies locally: the burst, then denials with a wait.
    for i in 0..3 {
        assert!(local(&a, "c", q).await.allowed, "request {i}");
    }
    let d = local(&a, "c", q).await;
    assert!(!d.allowed);
    assert_eq!(d.retry_after_secs(), 1);
    assert!(a.is_degraded());
    let text = metrics(&registry);
    assert!(text.contains("computegate_ratelimit_degraded 1"), "{text}");
    assert!(
        text.contains("computegate_ratelimit_leases_total{result=\"error\"} 1"),
        "one failed lease, no retry storm: {text}"
    );
    // The store is back: a probe within PROBE_INTERVAL restores cluster mode.
    fake.0.down.store(false, Ordering::Relaxed);
    tokio::time::advance(PROBE_INTERVAL).await;
    let _ = local(&a, "c", q).await;
    settle().await;
    assert!(!a.is_degraded());
    assert!(metrics(&registry).contains("computegate_ratelimit_degraded 0"));
}

#[tokio::test(start_paused = true)]
async fn a_store_that_hangs_costs_one_timeout_then_the_local_limit_decides() {
    let fake = Fake::default();
    fake.0.hang.store(true, Ordering::Relaxed);
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let q = Quota::new(10.0, 5).expect("quota");
    let before = tokio::time::Instant::now();
    assert!(local(&a, "c", q).await.allowed);
    assert_eq!(tokio::time::Instant::now() - before, LEASE_TIMEOUT);
    assert!(a.is_degraded());
    let before = tokio::time::Instant::now();
    assert!(local(&a, "c", q).await.allowed);
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "no wait while degraded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quota_change_reaches_the_store_at_the_next_lease() {
    let fake = Fake::default();
    let mut registry = Registry::default();
    let a = limiter(&fake, 1, &mut registry);
    let old = Quota::new(100.0, 100).expect("quota");
    let new = Quota::new(1.0, 2).expect("quota");
    assert!(local(&a, "c", old).await.allowed);
    settle().await;
    let d = local(&a, "c", new).await;
    assert_eq!(d.limit, 2, "headers follow the new quota at once");
    assert_eq!(lock(&fake.0.quotas).last(), Some(&new));
    assert_eq!(a.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn routes_choose_open_or_closed_while_the_store_is_down() {
    let fake = Fake::default();
    fake.0.down.store(true, Ordering::Relaxed);
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let q = Quota::new(1.0, 2).expect("quota");
    // The first request finds the store down (on a closed route: refused, not decided).
    assert_eq!(
        a.check("c", q, now(), RateLimitFallback::Closed).await,
        Checked::StoreDown
    );
    assert!(a.is_degraded());
    // Open: far past the burst, everything passes, and nothing is spent from the local limit.
    for i in 0..10 {
        match a.check("c", q, now(), RateLimitFallback::Open).await {
            Checked::Decided(d) => {
                assert!(d.allowed, "request {i}");
                assert_eq!((d.limit, d.remaining), (2, 2));
            }
            Checked::StoreDown => panic!("an open route is never refused"),
        }
    }
    assert!(local(&a, "c", q).await.allowed, "the local burst is intact");
    // Closed stays closed while degraded; the store coming back reopens it.
    assert_eq!(
        a.check("c", q, now(), RateLimitFallback::Closed).await,
        Checked::StoreDown
    );
    fake.0.down.store(false, Ordering::Relaxed);
    tokio::time::advance(PROBE_INTERVAL).await;
    let _ = a.check("c", q, now(), RateLimitFallback::Closed).await;
    settle().await;
    assert!(!a.is_degraded());
    assert!(matches!(
        a.check("c", q, now(), RateLimitFallback::Closed).await,
        Checked::Decided(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_while_its_lease_is_in_flight_does_not_lock_the_customer_out() {
    let fake = Fake::default();
    fake.0.slow.store(true, Ordering::Relaxed);
    let mut registry = Registry::default();
    let a = limiter(&fake, 2, &mut registry);
    let q = Quota::new(10.0, 20).expect("quota");
    // The first request waits for the first lease (100 ms here); its client goes away at 10 ms.
    let gone = tokio::time::timeout(Duration::from_millis(10), local(&a, "c", q)).await;
    assert!(gone.is_err(), "the request was dropped mid-wait");
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    // The lease still landed: the customer's next requests are served from it.
    for i in 0..3 {
        assert!(
            local(&a, "c", q).await.allowed,
            "request {i} after the drop"
        );
    }
    assert!(!a.is_degraded());
}

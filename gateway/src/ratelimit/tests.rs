use proptest::prelude::*;

use super::*;

const SEC: u64 = 1_000_000_000;

fn quota(rps: f64, burst: u32) -> Quota {
    Quota::new(rps, burst).expect("valid quota")
}

#[test]
fn quotas_validate_and_round_up() {
    assert!(Quota::new(0.0, 1).is_none());
    assert!(Quota::new(f64::NAN, 1).is_none());
    assert!(Quota::new(-1.0, 1).is_none());
    assert!(Quota::new(10.0, 0).is_none());
    assert_eq!(quota(3.0, 1).interval(), Duration::from_nanos(333_333_334));
    assert_eq!(quota(0.5, 2).interval(), Duration::from_secs(2));
    let spec = RateLimitSpec {
        requests_per_second: 5.0,
        burst: 20,
    };
    assert_eq!(Quota::from_spec(&spec), Some(quota(5.0, 20)));
    assert_eq!(quota(5.0, 20).policy_header(), "20;w=4");
}

#[test]
fn gcra_allows_the_burst_then_the_rate() {
    let q = quota(10.0, 3);
    let mut g = Gcra::default();
    let now = 10 * SEC;
    let remaining: Vec<u32> = (0..3)
        .map(|_| g.check(q, now))
        .map(|d| {
            assert!(d.allowed);
            d.remaining
        })
        .collect();
    assert_eq!(remaining, vec![2, 1, 0]);
    let denied = g.check(q, now);
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Duration::from_millis(100));
    assert_eq!(denied.reset, Duration::from_millis(300));
    assert_eq!(denied.retry_after_secs(), 1);
    // One interval later exactly one more fits.
    assert!(g.check(q, now + SEC / 10).allowed);
    assert!(!g.check(q, now + SEC / 10).allowed);
    // After a quiet period the whole burst is back.
    assert!(g.is_idle(now + SEC));
    let d = g.check(q, now + SEC);
    assert_eq!((d.allowed, d.remaining), (true, 2));
}

#[test]
fn a_faster_quota_keeps_the_debt_in_requests_not_in_time() {
    // The whole unverified burst (5/s, burst 20) spent: 4 s ahead of now.
    let (slow, fast) = (quota(5.0, 20), quota(500.0, 2000));
    let mut g = Gcra::default();
    let now = 10 * SEC;
    for _ in 0..20 {
        assert!(g.check(slow, now).allowed);
    }
    assert!(!g.check(slow, now).allowed);
    // Promoted: 20 requests owed are 40 ms at 2 ms each, not 4 s (2,000 requests).
    let d = g.check(fast, now);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.remaining, 2000 - 21);
    assert_eq!(d.reset, Duration::from_millis(42));
}

#[test]
fn a_slower_quota_starts_with_at_most_one_empty_bucket() {
    let (fast, slow) = (quota(500.0, 2000), quota(5.0, 20));
    let mut g = Gcra::default();
    let now = 10 * SEC;
    for _ in 0..1500 {
        assert!(g.check(fast, now).allowed);
    }
    // Demoted: 1,500 requests owed at 200 ms would be 300 s; capped at the new bucket (4 s).
    let d = g.check(slow, now);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_millis(200));
    assert_eq!(d.reset, Duration::from_secs(4));
    // It refills at the slower rate from there: one request per 200 ms.
    assert!(g.check(slow, now + SEC / 5).allowed);
    assert!(!g.check(slow, now + SEC / 5).allowed);
    // The same rate with another burst keeps the arrival time as it is.
    let smaller = quota(5.0, 10);
    let d = g.check(smaller, now + SEC / 5);
    assert!(!d.allowed);
    assert_eq!(d.reset, Duration::from_millis(4000));
}

#[test]
fn decision_headers() {
    let d = Decision {
        allowed: true,
        limit: 20,
        remaining: 7,
        retry_after: Duration::ZERO,
        reset: Duration::from_millis(2500),
    };
    let h = d.headers();
    assert_eq!(h[0].0.as_str(), "ratelimit-limit");
    assert_eq!(h[0].1, "20");
    assert_eq!(h[1].1, "7");
    assert_eq!(
        (h[2].0.as_str(), h[2].1.to_str().unwrap()),
        ("ratelimit-reset", "3")
    );
}

#[test]
fn limiter_keeps_keys_apart_and_memory_bounded() {
    let t0 = Instant::now();
    let limiter = RateLimiter::new(32, t0);
    let q = quota(1.0, 1);
    assert!(limiter.check("alice", q, t0).allowed);
    assert!(!limiter.check("alice", q, t0).allowed);
    assert!(limiter.check("bob", q, t0).allowed, "keys are independent");
    assert_eq!(limiter.len(), 2);
    // Many distinct keys never grow past capacity.
    for i in 0..10_000 {
        limiter.check(&format!("k{i}"), q, t0 + Duration::from_millis(i));
    }
    assert!(
        limiter.len() <= limiter.capacity(),
        "{} > {}",
        limiter.len(),
        limiter.capacity()
    );
    // Idle keys are swept.
    let later = t0 + Duration::from_secs(60);
    assert!(limiter.sweep(later) > 0);
    assert!(limiter.is_empty());
}

#[test]
fn leased_bucket_spends_only_what_was_leased() {
    let ttl = Duration::from_secs(1);
    let mut b = LeasedBucket::new(4, 1);
    assert_eq!(b.take(0), Take::Empty { lease: Some(4) });
    assert_eq!(
        b.take(1),
        Take::Empty { lease: None },
        "one lease in flight at a time"
    );
    b.on_lease(4, 2, ttl);
    assert_eq!(b.take(3), Take::Granted { lease: None });
    assert_eq!(b.take(4), Take::Granted { lease: None });
    assert_eq!(
        b.take(5),
        Take::Granted { lease: Some(4) },
        "low water asks early"
    );
    assert_eq!(b.take(6), Take::Granted { lease: None });
    assert_eq!(b.take(7), Take::Empty { lease: None });
    b.on_lease_failed();
    assert_eq!(
        b.take(8),
        Take::Empty { lease: Some(4) },
        "a failed lease is retried"
    );
    b.on_lease(2, 9, ttl);
    assert_eq!(b.tokens(10), 2);
    assert_eq!(b.tokens(9 + SEC), 0, "leased tokens expire");
    assert_eq!(b.take(9 + SEC), Take::Empty { lease: Some(4) });
    b.on_lease(100, 9 + SEC, ttl);
    assert_eq!(b.tokens(9 + SEC), 4, "never more than a batch per lease");
    assert_eq!(LeasedBucket::batch_for(quota(10.0, 100), 5), 10);
    assert_eq!(LeasedBucket::batch_for(quota(10.0, 1), 5), 1);
}

proptest! {
    /// GCRA never allows more than `burst + rate × t` in any window of length `t`.
    #[test]
    fn gcra_never_exceeds_burst_plus_rate(
        rps in 0.5f64..50.0,
        burst in 1u32..20,
        gaps in prop::collection::vec(0u64..200_000_000, 1..300),
    ) {
        let q = quota(rps, burst);
        let mut g = Gcra::default();
        let mut now = 0u64;
        let mut allowed = Vec::new();
        for gap in gaps {
            now += gap;
            if g.check(q, now).allowed {
                allowed.push(now);
            }
        }
        for (i, start) in allowed.iter().enumerate() {
            for (j, end) in allowed.iter().enumerate().skip(i) {
                let window_secs = (end - start) as f64 / 1e9;
                let count = (j - i + 1) as f64;
                prop_assert!(
                    count <= f64::from(burst) + rps * window_secs + 1e-9,
                    "{count} requests in {window_secs} s at {rps}/s burst {burst}"
                );
            }
        }
    }

    /// A leased bucket never grants more tokens than it was leased.
    #[test]
    fn leased_bucket_never_overspends(
        ops in prop::collection::vec((0u8..3, 0u64..10), 1..200),
    ) {
        let mut b = LeasedBucket::new(5, 2);
        let (mut leased, mut spent, mut now) = (0u64, 0u64, 0u64);
        for (op, n) in ops {
            now += 1;
            match op {
                0 => {
                    b.on_lease(n, now, Duration::from_secs(3600));
                    leased += n.min(5);
                }
                1 => b.on_lease_failed(),
                _ => {
                    if matches!(b.take(now), Take::Granted { .. }) {
                        spent += 1;
                    }
                }
            }
            prop_assert!(spent <= leased);
            prop_assert!(b.tokens(now) <= 5 + 2);
        }
    }
}

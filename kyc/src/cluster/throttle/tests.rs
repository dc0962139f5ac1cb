use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}

fn limits() -> ThrottleLimits {
    ThrottleLimits {
        per_account: 3,
        per_ip: 5,
        window: Duration::from_secs(60),
    }
}

#[test]
fn window_restarts_after_it_ends() {
    let w = Window {
        count: 0,
        ends_at: t0(),
    }
    .hit(t0(), Duration::from_secs(60));
    assert_eq!(
        w,
        Window {
            count: 1,
            ends_at: t0() + time::Duration::seconds(60)
        }
    );
    let w = w.hit(t0() + time::Duration::seconds(59), Duration::from_secs(60));
    assert_eq!(w.count, 2);
    let w = w.hit(t0() + time::Duration::seconds(60), Duration::from_secs(60));
    assert_eq!(w.count, 1);
}

#[test]
fn decision_uses_the_exhausted_window() {
    let l = limits();
    let c = |count, secs| Counter {
        count,
        remaining: Duration::from_secs(secs),
    };
    assert!(decide(c(2, 50), c(4, 50), l).is_ok());
    match decide(c(3, 20), c(0, 0), l) {
        Err(ThrottleError::Throttled { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("{other:?}"),
    }
    match decide(c(3, 20), c(5, 40), l) {
        Err(ThrottleError::Throttled { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(40));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_after_rounds_up() {
    assert_eq!(
        whole_seconds_up(Duration::from_millis(59_001)),
        Duration::from_secs(60)
    );
    assert_eq!(whole_seconds_up(Duration::ZERO), Duration::from_secs(1));
}

#[test]
fn keys_hide_emails_and_group_ipv6() {
    let a = account_key("p:", " Alice@Example.com ");
    assert_eq!(a, account_key("p:", "alice@example.com"));
    assert!(!a.contains("alice"));
    let v6a: IpAddr = "2001:db8:1:2:aaaa::1".parse::<Ipv6Addr>().unwrap().into();
    let v6b: IpAddr = "2001:db8:1:2:bbbb::2".parse::<Ipv6Addr>().unwrap().into();
    assert_eq!(ip_key("", v6a), ip_key("", v6b));
    assert_eq!(ip_key("", v6a), "throttle:ip:2001:db8:1:2::/64");
    let mapped: IpAddr = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().into();
    assert_eq!(ip_key("", mapped), "throttle:ip:192.0.2.1");
}

#[tokio::test]
async fn in_process_account_limit_and_reset() {
    let throttle = LoginThrottle::in_process(limits());
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for _ in 0..3 {
        throttle.check("a@example.com", ip, t0()).await.unwrap();
        throttle
            .record_failure("a@example.com", ip, t0())
            .await
            .unwrap();
    }
    let err = throttle.check("A@example.com", ip, t0()).await.unwrap_err();
    assert!(
        matches!(err, ThrottleError::Throttled { retry_after } if retry_after == Duration::from_secs(60))
    );
    // Another account from the same address is still allowed (3 < 5).
    throttle.check("b@example.com", ip, t0()).await.unwrap();
    // The window ends.
    let later = t0() + time::Duration::seconds(61);
    throttle.check("a@example.com", ip, later).await.unwrap();
    // Success clears the account counter.
    throttle
        .record_failure("a@example.com", ip, later)
        .await
        .unwrap();
    throttle.record_success("a@example.com").await.unwrap();
    throttle.check("a@example.com", ip, later).await.unwrap();
}

#[tokio::test]
async fn in_process_ip_limit() {
    let throttle = LoginThrottle::in_process(limits());
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
    for i in 0..5 {
        throttle
            .record_failure(&format!("user{i}@example.com"), ip, t0())
            .await
            .unwrap();
    }
    assert!(throttle.check("fresh@example.com", ip, t0()).await.is_err());
    let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
    throttle
        .check("fresh@example.com", other, t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn in_process_sweeps_expired_counters() {
    let throttle = LoginThrottle::in_process(limits());
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    for i in 0..SWEEP_THRESHOLD {
        throttle
            .record_failure(&format!("u{i}@example.com"), ip, t0())
            .await
            .unwrap();
    }
    let later = t0() + time::Duration::seconds(120);
    throttle
        .record_failure("last@example.com", ip, later)
        .await
        .unwrap();
    assert_eq!(lock(&throttle.local).len(), 2);
}

/// Redis unreachable (nothing listens on port 1): logins are neither refused as unavailable
/// nor let through unthrottled; the local counters decide, and Redis is skipped meanwhile.
#[tokio::test]
async fn unreachable_redis_falls_back_to_local_counters() {
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let throttle = LoginThrottle::redis_lazy(client, "x:", limits()).unwrap();
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    for _ in 0..3 {
        throttle.check("down@example.com", ip, t0()).await.unwrap();
        throttle
            .record_failure("down@example.com", ip, t0())
            .await
            .unwrap();
    }
    assert!(throttle.degraded());
    match throttle.check("down@example.com", ip, t0()).await {
        Err(ThrottleError::Throttled { .. }) => {}
        other => panic!("expected Throttled from the local counter, got {other:?}"),
    }
    throttle.check("other@example.com", ip, t0()).await.unwrap();
    throttle.record_success("down@example.com").await.unwrap();
    throttle.check("down@example.com", ip, t0()).await.unwrap();
}

#[test]
fn stricter_counter_takes_the_larger_of_each() {
    let a = Counter {
        count: 4,
        remaining: Duration::from_secs(5),
    };
    let b = Counter {
        count: 2,
        remaining: Duration::from_secs(50),
    };
    assert_eq!(
        a.stricter(b),
        Counter {
            count: 4,
            remaining: Duration::from_secs(50)
        }
    );
}

/// While Redis is down the local fallback keeps customer and staff counters apart, as the
/// shared ones are: customer failures naming a staff email never lock out that staff login.
#[tokio::test]
async fn local_fallback_counts_staff_apart() {
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let customers = LoginThrottle::redis_lazy(client, "x:", limits()).unwrap();
    let staff = customers.for_staff();
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    for _ in 0..3 {
        customers
            .record_failure("admin@example.com", ip, t0())
            .await
            .unwrap();
    }
    assert!(customers.degraded());
    assert!(matches!(
        customers.check("admin@example.com", ip, t0()).await,
        Err(ThrottleError::Throttled { .. })
    ));
    staff.check("admin@example.com", ip, t0()).await.unwrap();
    for _ in 0..3 {
        staff
            .record_failure("admin@example.com", ip, t0())
            .await
            .unwrap();
    }
    assert!(matches!(
        staff.check("admin@example.com", ip, t0()).await,
        Err(ThrottleError::Throttled { .. })
    ));
    // A staff success clears only the staff counter.
    staff.record_success("admin@example.com").await.unwrap();
    staff.check("admin@example.com", ip, t0()).await.unwrap();
    assert!(
        customers
            .check("admin@example.com", ip, t0())
            .await
            .is_err()
    );
}

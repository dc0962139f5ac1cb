//! Two gateway processes on one PostgreSQL database (and one Redis prefix): 200 concurrent job
//! submissions racing for the last of a budget across both never admit past the cap, and a tier
//! change reaches the other replica's next requests.
//!
//! The tier change writes the `customers` row with `psql` and publishes the `customer_changed`
//! notice a staff action publishes (shortcut for the KYC approval; the SQLite test in
//! `metering_policy.rs` goes through the real staff decision endpoint).

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use support::cluster::publish_notice;
use support::identity::IdGateway;
use support::metering::{Backend, Cust, Meter, assert_flop, h100_flop, job, num, policy, tiers};
use support::{expect_problem, within};

/// Submissions per race.
const RACERS: usize = 200;
/// The estimate of each racing job: one H100 for six minutes.
fn job_flop() -> f64 {
    h100_flop(1, 0.1)
}

/// Sends `RACERS` submissions of `body(i)` for `c` at once, alternating between `a` and `b`;
/// returns `(admitted, sum of their estimate headers)`, asserting every other answer is a
/// `job-denied` 403 naming `limit`.
async fn race(
    m: &Meter,
    a: &IdGateway,
    b: &IdGateway,
    c: &Cust,
    limit: f64,
    body: impl Fn(usize) -> serde_json::Value,
) -> (usize, f64) {
    let sends = (0..RACERS).map(|i| {
        let gw = if i % 2 == 0 { a } else { b };
        let body = body(i);
        async move { m.submit_echo(gw, c, &body).await }
    });
    let answers = join_all(sends).await;
    let mut admitted = 0;
    let mut total = 0.0;
    for resp in answers {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            let estimate: f64 = resp
                .headers()
                .get("x-computegate-estimate-flop")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("admitted without an estimate: {resp:?}"));
            admitted += 1;
            total += estimate;
        } else {
            let doc = expect_problem(resp, 403, "job-denied").await;
            assert_eq!(num(&doc["limit_flop"]), limit, "{doc}");
        }
    }
    (admitted, total)
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn two_gateways_racing_for_the_last_budget_never_admit_past_the_cap() {
    within(Duration::from_secs(180), async {
        // Run cap 10.5 jobs, customer window cap 20.5 jobs.
        let run_cap = 10.5 * job_flop();
        let window_cap = 20.5 * job_flop();
        let caps = format!(
            "max_flop_per_run = {run_cap:e}\nmax_flop_per_customer_window = {window_cap:e}"
        );
        let text = policy("race.1", &tiers(&[("unverified", &caps)]), "");
        let m = Meter::start(Backend::Postgres, Some(&text)).await;
        let b = m.replica().await;
        let staff = m.staff("auditor").await;

        // Window cap: 200 distinct runs of one customer, half through each gateway.
        let c = m.customer().await;
        let (admitted, total) = race(&m, &m.gw, &b, &c, window_cap, |i| {
            job("h100", 1, 0.1, &format!("w-{i}"))
        })
        .await;
        assert!(
            total <= window_cap * (1.0 + 1e-4),
            "admitted {total:e} FLOP past the window cap {window_cap:e}"
        );
        assert_eq!(admitted, 20, "the cap holds exactly 20 jobs");
        let charged = m.charged(&staff, &c.id).await;
        assert!(
            charged <= window_cap,
            "ledger holds {charged:e} > {window_cap:e}"
        );
        assert_flop(charged, 20.0 * job_flop(), "ledger total");

        // Run cap: 200 jobs of one run by another customer.
        let d = m.customer().await;
        let (admitted, total) = race(&m, &m.gw, &b, &d, run_cap, |_| {
            job("h100", 1, 0.1, "one-run")
        })
        .await;
        assert!(
            total <= run_cap * (1.0 + 1e-4),
            "admitted {total:e} FLOP past the run cap {run_cap:e}"
        );
        assert_eq!(admitted, 10, "the run cap holds exactly 10 jobs");
        let runs = m.runs(&staff, &d.id).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_flop(num(&runs[0]["lineage_flop"]), 10.0 * job_flop(), "lineage");
        assert_eq!(
            runs[0]["jobs"], 200,
            "every decision is recorded: {}",
            runs[0]
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn two_gateways_racing_never_admit_past_the_concurrent_jobs_cap() {
    within(Duration::from_secs(120), async {
        let text = policy(
            "race.2",
            &tiers(&[("unverified", "max_concurrent_jobs = 5")]),
            "",
        );
        let m = Meter::start(Backend::Postgres, Some(&text)).await;
        let b = m.replica().await;
        let c = m.customer().await;
        let sends = (0..RACERS).map(|i| {
            let gw = if i % 2 == 0 { &m.gw } else { &b };
            let body = job("h100", 1, 0.1, &format!("c-{i}"));
            let c = &c;
            let m = &m;
            async move { m.submit_echo(gw, c, &body).await.status().as_u16() }
        });
        let statuses = join_all(sends).await;
        let admitted = statuses.iter().filter(|s| (200..300).contains(*s)).count();
        assert!(
            statuses.iter().all(|s| (200..300).contains(s) || *s == 403),
            "{statuses:?}"
        );
        assert_eq!(admitted, 5, "five jobs at once: {statuses:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_tier_change_takes_effect_on_the_other_replicas_next_request() {
    within(Duration::from_secs(60), async {
        let m = Meter::start(Backend::Postgres, None).await;
        let b = m.replica().await;
        let prefix = m.redis_prefix.clone().expect("Redis prefix");
        let c = m.customer().await;
        let wide = job("h100", 16, 0.1, "wide");

        // Unverified (the shipped trial): 16 accelerators are refused on both replicas, which
        // now hold the principal in their caches.
        for gw in [&m.gw, &b] {
            let doc = expect_problem(m.submit_echo(gw, &c, &wide).await, 403, "job-denied").await;
            assert_eq!(doc["required_tier"], "identity_verified", "{doc}");
        }

        // Verified (row written, notice published as the staff decision does): B admits the
        // job within a second.
        m.set_tier(&c.id, "identity_verified");
        let changed = json!({"type": "customer_changed", "customer_id": c.id});
        publish_notice(&prefix, &changed).await;
        let start = Instant::now();
        loop {
            let resp = m.submit_echo(&b, &c, &wide).await;
            if resp.status().is_success() {
                break;
            }
            expect_problem(resp, 403, "job-denied").await;
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "B still applies the old tier after a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = support::metering::expect_admitted(m.submit_echo(&m.gw, &c, &wide).await).await;
        assert_flop(a.estimate, h100_flop(16, 0.1), "estimate on A");
        // A plain POST is allowed too now.
        let resp = m
            .http
            .post(b.url("/v1/echo/anything"))
            .header("authorization", format!("Bearer {}", c.access))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{resp:?}");

        // And back: the next requests on B are held to the trial again.
        m.set_tier(&c.id, "unverified");
        publish_notice(&prefix, &changed).await;
        let start = Instant::now();
        loop {
            let resp = m.submit_echo(&b, &c, &wide).await;
            if resp.status() == 403 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "B still applies the verified tier after a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

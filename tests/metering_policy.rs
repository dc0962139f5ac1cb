//! The policy in force, changed while the gateway runs: a valid rewrite of `policy.file` applies
//! on SIGHUP and on file change (polled), an invalid one is rejected — the old policy stays,
//! `computegate_policy_reloads_total{result="rejected"}` counts it and the log says so — and a
//! customer's tier change through the KYC staff decision applies to its very next request.

mod support;

use std::time::{Duration, Instant};

use support::identity::{counter, metrics};
use support::metering::{Backend, Cust, Meter, assert_flop, expect_admitted, h100_flop, job};
use support::metering::{policy, rewrite_keeping_mtime, rewrite_touching, tiers};
use support::prometheus::Sample;
use support::{TEST_TIMEOUT, expect_problem, within};

/// A policy whose trial allows `accelerators` per job, with a request burst of `burst` for
/// the trial.
fn trial_policy(version: &str, accelerators: u32, burst: u32) -> String {
    let caps = format!(
        "max_accelerators_per_job = {accelerators}\n\
         rate_limit = {{ requests_per_second = 1000.0, burst = {burst} }}"
    );
    policy(version, &tiers(&[("unverified", &caps)]), "")
}

fn reloads(samples: &[Sample], result: &str) -> f64 {
    counter(
        samples,
        "computegate_policy_reloads_total",
        &[("result", result)],
    )
}

fn version_in_force(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.name == "computegate_policy_info" && s.value == 1.0)
        .filter_map(|s| s.labels.get("version").cloned())
        .collect()
}

/// Submits a 12-accelerator job; true when admitted, false when refused for the trial's cap.
async fn twelve_admitted(m: &Meter, c: &Cust, run: &str) -> bool {
    let resp = m.submit_echo(&m.gw, c, &job("h100", 12, 0.05, run)).await;
    if resp.status().is_success() {
        let a = expect_admitted(resp).await;
        assert_flop(a.estimate, h100_flop(12, 0.05), "estimate");
        return true;
    }
    let doc = expect_problem(resp, 403, "job-denied").await;
    assert!(
        doc["detail"].as_str().unwrap_or_default().contains("12"),
        "{doc}"
    );
    false
}

/// The `RateLimit-Limit` a plain GET reports.
async fn rate_limit(m: &Meter, c: &Cust) -> String {
    let resp = m
        .http
        .get(m.gw.url("/v1/echo/rate"))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{resp:?}");
    resp.headers()
        .get("ratelimit-limit")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Polls `probe` every 50 ms until true; fails after `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sighup_applies_a_valid_policy_and_keeps_the_old_one_when_invalid(backend: Backend) {
    let m = Meter::start(backend, Some(&trial_policy("reload.1", 8, 1000))).await;
    let file = m.policy_file.clone().expect("policy file");
    let c = m.customer().await;
    assert!(
        !twelve_admitted(&m, &c, "v1").await,
        "8 per job under reload.1"
    );
    assert_eq!(rate_limit(&m, &c).await, "1000");
    let samples = metrics(&m.http, &m.gw).await;
    assert_eq!(version_in_force(&samples), ["reload.1"]);
    // The group-commit series exist from the start, for dashboards and rate().
    for path in ["bulk", "one_by_one"] {
        let labels = [("path", path)];
        let series =
            support::prometheus::value(&samples, "computegate_admission_batches_total", &labels);
        assert!(
            series.is_some(),
            "computegate_admission_batches_total{{path={path}}}"
        );
    }
    let applied0 = reloads(&samples, "applied");
    let rejected0 = reloads(&samples, "rejected");

    // A valid rewrite (16 per job, burst 500), seen only through SIGHUP (mtime kept).
    rewrite_keeping_mtime(&file, &trial_policy("reload.2", 16, 500));
    m.gw.proc.signal("HUP");
    until(Duration::from_secs(2), "SIGHUP reload applied", || async {
        let samples = metrics(&m.http, &m.gw).await;
        reloads(&samples, "applied") > applied0
    })
    .await;
    let samples = metrics(&m.http, &m.gw).await;
    assert_eq!(version_in_force(&samples), ["reload.2"]);
    assert!(
        twelve_admitted(&m, &c, "v2").await,
        "16 per job under reload.2"
    );
    assert_eq!(rate_limit(&m, &c).await, "500", "the new tier rate applies");

    // An invalid rewrite: rejected, counted, logged; reload.2 stays in force.
    let broken = trial_policy("reload.3", 16, 500).replacen("flop = ", "flop = -", 1)
        + "\n[[tiers]]\nname = \"Bad Name\"\n";
    rewrite_keeping_mtime(&file, &broken);
    m.gw.proc.signal("HUP");
    until(Duration::from_secs(2), "SIGHUP reload rejected", || async {
        let samples = metrics(&m.http, &m.gw).await;
        reloads(&samples, "rejected") > rejected0
    })
    .await;
    m.gw.proc
        .wait_for_stderr("policy reload rejected", Duration::from_secs(2))
        .await;
    let samples = metrics(&m.http, &m.gw).await;
    assert_eq!(version_in_force(&samples), ["reload.2"]);
    assert!(
        twelve_admitted(&m, &c, "v3").await,
        "reload.2 still in force"
    );
    assert_eq!(rate_limit(&m, &c).await, "500");
}

#[tokio::test]
async fn sighup_applies_a_valid_policy_and_keeps_the_old_one_when_invalid_on_sqlite() {
    within(
        TEST_TIMEOUT,
        sighup_applies_a_valid_policy_and_keeps_the_old_one_when_invalid(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn sighup_applies_a_valid_policy_and_keeps_the_old_one_when_invalid_on_postgres() {
    within(
        TEST_TIMEOUT,
        sighup_applies_a_valid_policy_and_keeps_the_old_one_when_invalid(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn a_changed_policy_file_is_reloaded_without_a_signal() {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, Some(&trial_policy("poll.1", 16, 1000))).await;
        let file = m.policy_file.clone().expect("policy file");
        let c = m.customer().await;
        assert!(
            twelve_admitted(&m, &c, "p1").await,
            "16 per job under poll.1"
        );

        // A valid change (8 per job) applies within 5 s.
        rewrite_touching(&file, &trial_policy("poll.2", 8, 1000));
        let mut n = 0;
        until(Duration::from_secs(5), "file change applied", || {
            n += 1;
            let run = format!("p2-{n}");
            let (m, c) = (&m, &c);
            async move { !twelve_admitted(m, c, &run).await }
        })
        .await;
        let samples = metrics(&m.http, &m.gw).await;
        assert_eq!(version_in_force(&samples), ["poll.2"]);
        let rejected0 = reloads(&samples, "rejected");

        // An invalid change is rejected within 5 s; poll.2 stays.
        rewrite_touching(&file, "version = \"poll.3\"\nthis is not TOML");
        until(Duration::from_secs(5), "file change rejected", || async {
            let samples = metrics(&m.http, &m.gw).await;
            reloads(&samples, "rejected") > rejected0
        })
        .await;
        let samples = metrics(&m.http, &m.gw).await;
        assert_eq!(version_in_force(&samples), ["poll.2"]);
        assert!(
            !twelve_admitted(&m, &c, "p3").await,
            "poll.2 still in force"
        );
        m.gw.proc
            .wait_for_stderr("policy reload rejected", Duration::from_secs(2))
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_tier_change_applies_to_the_next_request() {
    // SQLite, one gateway, the real KYC path: a reviewer approves the customer's application
    // for `identity_verified`; the very next job is held to the new tier's caps.
    within(Duration::from_secs(90), async {
        let m = Meter::start(Backend::Sqlite, None).await;
        m.import_screening_list();
        let reviewer = m.staff("reviewer").await;
        let c = m.customer().await;
        let wide = job("h100", 16, 0.1, "wide");
        let doc = expect_problem(m.submit_echo(&m.gw, &c, &wide).await, 403, "job-denied").await;
        assert_eq!(doc["required_tier"], "identity_verified", "{doc}");
        let fingerprint = format!("pm_fp_{}", uuid::Uuid::new_v4().simple());
        let app = m
            .apply_individual(&c, "Karin Holmqvist", &fingerprint)
            .await;
        // Still the trial while the application is pending.
        expect_problem(m.submit_echo(&m.gw, &c, &wide).await, 403, "job-denied").await;
        m.approve_individual(&reviewer, &app).await;
        let a = expect_admitted(m.submit_echo(&m.gw, &c, &wide).await).await;
        assert_flop(a.estimate, h100_flop(16, 0.1), "estimate");
    })
    .await;
}

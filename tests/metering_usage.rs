//! Usage events through the real binary: `POST /computegate/v1/meter/usage`, signed
//! `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` (computed here independently), idempotent
//! by event id; bad signatures, unknown jobs, decreasing counters and malformed events are
//! refused and change no budget; measured usage replaces the reservation (the next admission's
//! `X-Computegate-Remaining-Flop` shows it), an overrun grows the charge and re-checks
//! thresholds. Last, `computegate demo` end to end: the simulator posts signed usage for the
//! jobs the gateway admits.
//!
//! SQLite by default; `_on_postgres` runs the same body on PostgreSQL and Redis.

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::metering::{
    Backend, Demo, Meter, USAGE_SECRET, assert_flop, h100_flop, job, num, policy, threshold, tiers,
    unix_now, usage_event,
};
use support::{TEST_TIMEOUT, client, expect_problem, within};

/// The customer window cap of the test policy.
const WINDOW_CAP: f64 = 1e19;

/// One H100-hour, FLOP.
fn e() -> f64 {
    h100_flop(1, 1.0)
}

/// FLOP of `seconds` H100-seconds as the usage intake measures them (peak × 0.4).
fn h100_seconds(seconds: f64) -> f64 {
    h100_flop(1, seconds / 3600.0)
}

/// A customer window cap of 1e19 (so every admission reports what is left) and a run threshold
/// at 1.75 E that only measured overruns reach.
fn usage_policy() -> String {
    let caps = "max_flop_per_customer_window = 1e19";
    let thresholds = threshold("usage-run-2.5e18", 2.5e18, &["run"], &["notify", "report"]);
    policy("usage.1", &tiers(&[("unverified", caps)]), &thresholds)
}

/// The run `run_id` of the staff run list.
async fn run_of(m: &Meter, staff: &str, customer: &str, run_id: &str) -> Value {
    let runs = m.runs(staff, customer).await;
    runs.into_iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("run {run_id} not listed"))
}

async fn usage_events_are_verified_idempotent_and_replace_the_reservation(backend: Backend) {
    let m = Meter::start(backend, Some(&usage_policy())).await;
    let staff = m.staff("auditor").await;
    let c = m.customer().await;

    let (first, job1) = m.admit_echo(&c, &job("h100", 1, 1.0, "measured")).await;
    assert_flop(
        first.remaining.expect("remaining"),
        WINDOW_CAP - e(),
        "after job 1",
    );

    // started, then a heartbeat of 360 accelerator-seconds (a tenth of the reservation).
    let started = usage_event("ev-start", &job1, "started", None, "h100");
    assert_eq!(m.usage_ok(&started).await, "recorded");
    assert_eq!(
        m.usage_ok(&started).await,
        "duplicate",
        "replay of `started`"
    );
    let beat = usage_event("ev-beat-1", &job1, "heartbeat", Some(360.0), "h100");
    assert_eq!(m.usage_ok(&beat).await, "recorded");
    let run = run_of(&m, &staff, &c.id, "measured").await;
    assert_flop(
        num(&run["used_flop"]),
        h100_seconds(360.0),
        "used after the heartbeat",
    );
    assert_flop(
        num(&run["reserved_flop"]),
        e() - h100_seconds(360.0),
        "reserved after the heartbeat",
    );
    assert_eq!(num(&run["accelerator_seconds"]), 360.0, "{run}");

    // A replay is a duplicate even when its body differs; nothing changes.
    let replay = usage_event("ev-beat-1", &job1, "heartbeat", Some(720.0), "h100");
    assert_eq!(m.usage_ok(&replay).await, "duplicate");

    // Refusals, none of which changes the budget.
    let decreasing = usage_event("ev-beat-2", &job1, "heartbeat", Some(100.0), "h100");
    expect_problem(m.usage(&decreasing).await, 409, "conflict").await;
    let fresh = usage_event("ev-beat-3", &job1, "heartbeat", Some(1800.0), "h100");
    let resp = m.usage_signed(&fresh, "not-the-secret", unix_now()).await;
    assert_eq!(resp.status(), 401, "wrong secret: {resp:?}");
    let resp = m
        .usage_signed(&fresh, USAGE_SECRET, unix_now() - 3600)
        .await;
    assert_eq!(resp.status(), 401, "signed an hour ago: {resp:?}");
    let resp = m
        .http
        .post(m.gw.url("/computegate/v1/meter/usage"))
        .header("content-type", "application/json")
        .body(fresh.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401, "unsigned: {resp:?}");
    // A valid signature over another body.
    let other = usage_event("ev-beat-3", &job1, "heartbeat", Some(1.0), "h100").to_string();
    let signature = support::metering::usage_signature(USAGE_SECRET, unix_now(), &other);
    let resp = m
        .http
        .post(m.gw.url("/computegate/v1/meter/usage"))
        .header("content-type", "application/json")
        .header("x-computegate-signature", signature)
        .body(fresh.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401, "signature of another body: {resp:?}");
    let unknown = usage_event(
        "ev-unknown",
        &uuid::Uuid::new_v4().to_string(),
        "heartbeat",
        Some(10.0),
        "h100",
    );
    expect_problem(m.usage(&unknown).await, 404, "not-found").await;
    for (what, event, status) in [
        (
            "unknown kind",
            usage_event("ev-bad-1", &job1, "paused", Some(900.0), "h100"),
            422,
        ),
        (
            "unknown accelerator",
            usage_event("ev-bad-2", &job1, "heartbeat", Some(900.0), "h900"),
            422,
        ),
        (
            "negative seconds",
            usage_event("ev-bad-3", &job1, "heartbeat", Some(-5.0), "h100"),
            422,
        ),
        (
            "heartbeat without seconds",
            usage_event("ev-bad-4", &job1, "heartbeat", None, "h100"),
            422,
        ),
        (
            "not a job id",
            usage_event("ev-bad-5", "job-1", "heartbeat", Some(900.0), "h100"),
            400,
        ),
    ] {
        let resp = m.usage(&event).await;
        assert_eq!(resp.status().as_u16(), status, "{what}: {resp:?}");
    }
    let run = run_of(&m, &staff, &c.id, "measured").await;
    assert_flop(
        num(&run["used_flop"]),
        h100_seconds(360.0),
        "used after the refusals",
    );
    assert_eq!(num(&run["accelerator_seconds"]), 360.0, "{run}");

    // Finished at 360 s: the rest of the reservation is released.
    let finished = usage_event("ev-finish", &job1, "finished", Some(360.0), "h100");
    assert_eq!(m.usage_ok(&finished).await, "recorded");
    assert_eq!(m.usage_ok(&finished).await, "duplicate");
    let run = run_of(&m, &staff, &c.id, "measured").await;
    assert_eq!(num(&run["reserved_flop"]), 0.0, "{run}");
    assert_flop(
        num(&run["used_flop"]),
        h100_seconds(360.0),
        "used when finished",
    );
    let late = usage_event("ev-late", &job1, "heartbeat", Some(400.0), "h100");
    expect_problem(m.usage(&late).await, 409, "conflict").await;

    // The next admission sees measured usage (0.1 E), not the estimate (E).
    let (second, _) = m.admit_echo(&c, &job("h100", 1, 1.0, "next")).await;
    assert_flop(
        second.remaining.expect("remaining"),
        WINDOW_CAP - h100_seconds(360.0) - e(),
        "after measured usage replaced the reservation",
    );

    // An overrun: a 1 h reservation that runs 3 h grows the charge to 3 E and crosses the run
    // threshold (1.75 E) on the usage event, which creates a report.
    let (_, job3) = m.admit_echo(&c, &job("h100", 1, 1.0, "overrun")).await;
    assert!(m.reports(&staff, "due", &c.id).await.is_empty());
    let long = usage_event("ev-over", &job3, "heartbeat", Some(3.0 * 3600.0), "h100");
    assert_eq!(m.usage_ok(&long).await, "recorded");
    let run = run_of(&m, &staff, &c.id, "overrun").await;
    assert_flop(
        num(&run["used_flop"]) + num(&run["reserved_flop"]),
        3.0 * e(),
        "charged after the overrun",
    );
    let due = m.reports(&staff, "due", &c.id).await;
    assert_eq!(due.len(), 1, "report of the overrun: {due:?}");
    assert_eq!(due[0]["run_id"], "overrun", "{}", due[0]);
    // A report written by measured usage holds the same identity snapshot as one written at
    // admission (attached after the usage commit).
    let identity = &due[0]["identity_snapshot"];
    assert_eq!(identity["customer_id"], c.id.as_str(), "{}", due[0]);
    assert_eq!(identity["tier"], "unverified", "{}", due[0]);
    assert!(identity["jurisdictions"].is_array(), "{}", due[0]);
    let (fourth, _) = m
        .admit_echo(&c, &job("h100", 1, 1.0, "after-overrun"))
        .await;
    assert_flop(
        fourth.remaining.expect("remaining"),
        WINDOW_CAP - h100_seconds(360.0) - e() - 3.0 * e() - e(),
        "after the overrun",
    );
}

#[tokio::test]
async fn usage_events_are_verified_idempotent_and_replace_the_reservation_on_sqlite() {
    within(
        TEST_TIMEOUT,
        usage_events_are_verified_idempotent_and_replace_the_reservation(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn usage_events_are_verified_idempotent_and_replace_the_reservation_on_postgres() {
    within(
        TEST_TIMEOUT,
        usage_events_are_verified_idempotent_and_replace_the_reservation(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_apply_once() {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, Some(&usage_policy())).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        let (_, job1) = m.admit_echo(&c, &job("h100", 1, 1.0, "racy")).await;
        let beat = usage_event("ev-racy", &job1, "heartbeat", Some(720.0), "h100");
        let answers = futures_util::future::join_all((0..10).map(|_| m.usage_ok(&beat))).await;
        let recorded = answers.iter().filter(|s| *s == "recorded").count();
        assert_eq!(recorded, 1, "{answers:?}");
        assert!(answers.iter().all(|s| s == "recorded" || s == "duplicate"));
        let run = run_of(&m, &staff, &c.id, "racy").await;
        assert_flop(num(&run["used_flop"]), h100_seconds(720.0), "used");
    })
    .await;
}

#[tokio::test]
async fn the_simulator_reports_usage_for_jobs_the_demo_gateway_admits() {
    // `computegate demo`: `POST /v1/jobs` is a `job_submit` route with the `generic` profile
    // under the shipped policy, and the simulator (one simulated hour per second) posts signed
    // started / heartbeat / finished events for the jobs the gateway admitted.
    within(Duration::from_secs(90), async {
        let demo = Demo::start().await;
        let http = client();
        let public = |p: &str| format!("http://{}{p}", demo.public);
        let admin = |p: &str| format!("http://{}{p}", demo.admin);
        let token = |url: String, email: &str, password: &str| {
            let http = http.clone();
            let body = json!({"email": email, "password": password});
            async move {
                let resp = http.post(url).json(&body).send().await.expect("send");
                assert_eq!(resp.status(), 200, "token: {resp:?}");
                let doc: Value = resp.json().await.expect("JSON");
                doc["access_token"].as_str().expect("token").to_owned()
            }
        };
        let customer = token(
            public("/computegate/v1/auth/token"),
            "customer@demo.computegate.dev",
            "demo-customer-password",
        )
        .await;
        let staff = token(
            admin("/staff/v1/auth/token"),
            "admin@demo.computegate.dev",
            "demo-admin-password",
        )
        .await;

        let resp = http
            .post(public("/v1/jobs"))
            .header("authorization", format!("Bearer {customer}"))
            .json(&job("h100", 2, 1.0, "demo-run"))
            .send()
            .await
            .expect("send job");
        let admitted = support::metering::expect_admitted(resp).await;
        assert_eq!(admitted.status, 201);
        assert_flop(admitted.estimate, h100_flop(2, 1.0), "estimate");
        assert_eq!(admitted.run, "demo-run");
        assert_flop(
            admitted.remaining.expect("trial cap"),
            1e19 - h100_flop(2, 1.0),
            "remaining",
        );

        // The 1 h job runs for a second; its measured 7200 accelerator-seconds replace the
        // reservation once the simulator reports `finished`.
        let runs_url = admin("/staff/v1/runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let last = loop {
            let resp = http
                .get(&runs_url)
                .header("authorization", format!("Bearer {staff}"))
                .send()
                .await
                .expect("send");
            let doc: Value = resp.json().await.unwrap_or(Value::Null);
            let run = doc["runs"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["run_id"] == "demo-run").cloned())
                .unwrap_or(Value::Null);
            if run["reserved_flop"].as_f64() == Some(0.0)
                && run["accelerator_seconds"].as_f64().is_some_and(|s| s > 0.0)
            {
                break run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the simulator's usage never finished the run: {run}\n{}",
                demo.proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_flop(
            num(&last["accelerator_seconds"]),
            7200.0,
            "accelerator-seconds",
        );
        assert_flop(num(&last["used_flop"]), h100_flop(2, 1.0), "measured");
        drop(demo);
    })
    .await;
}

#[tokio::test]
async fn a_job_that_runs_exactly_its_time_limit_is_charged_its_estimate() {
    // A language-model job (dataset kind `text`) is estimated at the policy's language-model
    // utilization (0.3). Running exactly the hour it reserved, its measured usage must be the
    // same FLOP, not an overrun: the meter has to use the job's own rate (type, precision,
    // utilization), not the general utilization (0.4).
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, Some(&usage_policy())).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        let mut body = job("h100", 1, 1.0, "lm");
        body["dataset"] = json!({"kind": "text"});
        let (a, job_id) = m.admit_echo(&c, &body).await;
        let estimate = support::metering::H100_BF16 * 3600.0 * 0.3;
        assert_flop(a.estimate, estimate, "language-model estimate");
        let done = usage_event("ev-lm-done", &job_id, "finished", Some(3600.0), "h100");
        assert_eq!(m.usage_ok(&done).await, "recorded");
        let run = run_of(&m, &staff, &c.id, "lm").await;
        assert_flop(
            num(&run["used_flop"]) + num(&run["reserved_flop"]),
            estimate,
            "an hour of the reserved hour",
        );
    })
    .await;
}

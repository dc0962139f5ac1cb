//! A customer's jobs through the real binary. Leases and closes: a customer stuck at its
//! concurrency cap after jobs that never sent usage is freed by lease expiry (a short
//! `lease_grace` in the test policy) and by closing its own job; another customer's close
//! answers 404; staff close any job with a reason, audited; a late usage event corrects an
//! expired job's charge; with two replicas on one PostgreSQL each job expires exactly once.
//! The usage view: budgets, caps and thresholds ahead per scope, jobs and notices.

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::identity::{create_key, eventually};
use support::metering::{
    Backend, Cust, Meter, assert_flop, h100_flop, job, num, policy, threshold, tiers, usage_event,
};
use support::{TEST_TIMEOUT, expect_problem, within};

/// Unverified customers (the trial tier) may run two jobs at once.
fn capped_policy(lease_grace: &str) -> String {
    let text = policy(
        "leases",
        &tiers(&[("unverified", "max_concurrent_jobs = 2")]),
        "",
    );
    assert!(text.contains("lease_grace = \"1h\""), "default grace moved");
    text.replace(
        "lease_grace = \"1h\"",
        &format!("lease_grace = {lease_grace:?}"),
    )
}

/// A short job (3.6 s time limit) through the echo route; its ledger job id.
async fn short_job(m: &Meter, c: &Cust, run: &str) -> String {
    m.admit_echo(c, &job("h100", 1, 0.001, run)).await.1
}

async fn third_is_refused(m: &Meter, c: &Cust) {
    let resp = m
        .submit_echo(&m.gw, c, &job("h100", 1, 0.001, "third"))
        .await;
    let doc = expect_problem(resp, 403, "job-denied").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap_or("")
            .contains("2 jobs at once"),
        "{doc}"
    );
}

/// `GET /staff/v1/jobs/{id}` as `staff`.
async fn staff_job(m: &Meter, staff: &str, id: &str) -> Value {
    let resp = m.staff_get(staff, &format!("/staff/v1/jobs/{id}")).await;
    assert_eq!(resp.status(), 200, "staff job read: {resp:?}");
    resp.json().await.expect("job JSON")
}

/// The audit records of `action` on `job:<id>`.
async fn audited(m: &Meter, auditor: &str, action: &str, id: &str) -> Vec<Value> {
    let path = format!("/staff/v1/audit?subject=job:{id}&action={action}");
    m.staff_list(auditor, &path, "records").await
}

async fn customer_close(m: &Meter, c: &Cust, id: &str) -> reqwest::Response {
    m.http
        .post(m.gw.url(&format!("/computegate/v1/jobs/{id}/close")))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send close")
}

// === lease expiry ===

async fn an_expired_lease_frees_the_slot(backend: Backend) {
    let m = Meter::start(backend, Some(&capped_policy("1s"))).await;
    let auditor = m.staff("auditor").await;
    let c = m.customer().await;
    let first = short_job(&m, &c, "lease-a").await;
    let second = short_job(&m, &c, "lease-b").await;
    // The upstream never reports usage: without a lease the customer stays at its cap.
    third_is_refused(&m, &c).await;

    // Time limit 3.6 s + grace 1 s, swept every 2 s.
    for id in [&first, &second] {
        eventually(Duration::from_secs(30), "lease expiry", || async {
            staff_job(&m, &auditor, id).await["status"] == "closed"
        })
        .await;
        let view = staff_job(&m, &auditor, id).await;
        assert_eq!(view["closed_reason"], "lease_expired", "{view}");
        assert_eq!(view["closed_by"], "system:lease", "{view}");
        // Charged conservatively at its reservation.
        assert_flop(num(&view["charged_flop"]), h100_flop(1, 0.001), "charge");
        assert_eq!(num(&view["used_flop"]), 0.0, "{view}");
        let records = audited(&m, &auditor, "ledger.job.expired", id).await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["detail"]["charge"], "reservation", "{records:?}");
    }
    // The slot is free again.
    short_job(&m, &c, "lease-c").await;

    // A late final usage event reconciles the expired job's charge to what was measured.
    let event = usage_event("late-finish", &first, "finished", Some(1.0), "h100");
    assert_eq!(m.usage_ok(&event).await, "recorded");
    let view = staff_job(&m, &auditor, &first).await;
    assert_eq!(view["status"], "finished", "{view}");
    assert_eq!(
        view["closed_reason"], "lease_expired",
        "the history stays: {view}"
    );
    assert_flop(
        num(&view["charged_flop"]),
        h100_flop(1, 1.0 / 3600.0),
        "measured charge",
    );
}

#[tokio::test]
async fn an_expired_lease_frees_the_concurrency_slot() {
    within(
        TEST_TIMEOUT,
        an_expired_lease_frees_the_slot(Backend::Sqlite),
    )
    .await;
}

/// Two replicas sweep the same PostgreSQL: every job expires exactly once.
#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn two_replicas_expire_each_job_once_on_postgres() {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Postgres, Some(&capped_policy("0s"))).await;
        let _replica = m.replica().await;
        let auditor = m.staff("auditor").await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let c = m.customer().await;
            ids.push(short_job(&m, &c, &format!("pair-{n}-a")).await);
            ids.push(short_job(&m, &c, &format!("pair-{n}-b")).await);
        }
        for id in &ids {
            eventually(Duration::from_secs(30), "lease expiry", || async {
                staff_job(&m, &auditor, id).await["status"] == "closed"
            })
            .await;
        }
        // Both replicas kept sweeping meanwhile; give them a few more rounds.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for id in &ids {
            let records = audited(&m, &auditor, "ledger.job.expired", id).await;
            assert_eq!(records.len(), 1, "job {id}: {records:?}");
        }
    })
    .await;
}

// === closes ===

async fn closes(backend: Backend) {
    let m = Meter::start(backend, Some(&capped_policy("1h"))).await;
    let auditor = m.staff("auditor").await;
    let reviewer = m.staff("reviewer").await;
    let a = m.customer().await;
    let b = m.customer().await;
    let first = short_job(&m, &a, "close-a").await;
    let second = short_job(&m, &a, "close-b").await;
    third_is_refused(&m, &a).await;

    // Another customer's job does not exist for B; an unknown id neither.
    expect_problem(customer_close(&m, &b, &first).await, 404, "not-found").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    expect_problem(customer_close(&m, &a, &unknown).await, 404, "not-found").await;
    assert_eq!(staff_job(&m, &auditor, &first).await["status"], "reserved");

    // A closes its own job: nothing measured, so the reservation is charged.
    let resp = customer_close(&m, &a, &first).await;
    assert_eq!(resp.status(), 200, "close: {resp:?}");
    let closed: Value = resp.json().await.expect("close JSON");
    assert_eq!(closed["status"], "closed", "{closed}");
    assert_eq!(closed["closed_reason"], "customer", "{closed}");
    assert_eq!(closed["charge"], "reservation", "{closed}");
    assert_flop(num(&closed["charged_flop"]), h100_flop(1, 0.001), "charge");
    // Closing twice: the job is no longer open.
    expect_problem(customer_close(&m, &a, &first).await, 409, "conflict").await;
    let records = audited(&m, &auditor, "ledger.job.closed", &first).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0]["actor"],
        format!("customer:{}", a.id),
        "{records:?}"
    );

    // The slot is free.
    let third = short_job(&m, &a, "close-c").await;

    // A job with measured usage closed by its customer is charged what was measured.
    let event = usage_event("close-beat", &third, "heartbeat", Some(1.0), "h100");
    assert_eq!(m.usage_ok(&event).await, "recorded");
    let resp = customer_close(&m, &a, &third).await;
    assert_eq!(resp.status(), 200, "close: {resp:?}");
    let closed: Value = resp.json().await.expect("close JSON");
    assert_eq!(closed["charge"], "measured", "{closed}");
    assert_flop(
        num(&closed["charged_flop"]),
        h100_flop(1, 1.0 / 3600.0),
        "measured charge",
    );

    // Staff close any job, with a reason; auditors may not, and a reason is required.
    let path = format!("/staff/v1/jobs/{second}/close");
    let why = json!({"reason": "platform confirmed the job was lost"});
    expect_problem(m.staff_post(&auditor, &path, &why).await, 403, "forbidden").await;
    let resp = m
        .staff_post(&reviewer, &path, &json!({"reason": " "}))
        .await;
    assert_eq!(resp.status(), 422, "{resp:?}");
    let resp = m.staff_post(&reviewer, &path, &why).await;
    assert_eq!(resp.status(), 200, "staff close: {resp:?}");
    let view = staff_job(&m, &auditor, &second).await;
    assert_eq!(view["status"], "closed", "{view}");
    assert_eq!(view["closed_reason"], "staff", "{view}");
    assert_eq!(view["close_note"], why["reason"], "{view}");
    let records = audited(&m, &auditor, "ledger.job.closed", &second).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["detail"]["note"], why["reason"], "{records:?}");
    assert!(
        records[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("staff:")),
        "{records:?}"
    );
    // Staff list the customer's jobs with their close.
    let listed = m
        .staff_list(
            &auditor,
            &format!("/staff/v1/jobs?customer_id={}&status=closed", a.id),
            "jobs",
        )
        .await;
    assert_eq!(listed.len(), 3, "{listed:?}");
}

#[tokio::test]
async fn customers_close_their_own_jobs_and_staff_close_any() {
    within(TEST_TIMEOUT, closes(Backend::Sqlite)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn customers_close_their_own_jobs_and_staff_close_any_on_postgres() {
    within(TEST_TIMEOUT, closes(Backend::Postgres)).await;
}

// === the usage view ===

async fn usage_of(m: &Meter, bearer: &str) -> reqwest::Response {
    m.http
        .get(m.gw.url("/computegate/v1/usage"))
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .expect("send usage read")
}

fn scope<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["scopes"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["scope"] == name))
        .unwrap_or_else(|| panic!("no {name} scope in {view}"))
}

#[tokio::test]
async fn the_usage_view_shows_budgets_thresholds_jobs_and_notices() {
    within(TEST_TIMEOUT, async {
        let caps = "max_flop_per_run = 1e21\nmax_flop_per_customer_window = 1e22\n\
                    max_concurrent_jobs = 2";
        let thresholds = [
            threshold("heads-up", 1e19, &["run", "customer"], &["notify"]),
            threshold("file-it", 1e20, &["run"], &["report"]),
        ]
        .concat();
        let text = policy("usage-view", &tiers(&[("unverified", caps)]), &thresholds);
        let m = Meter::start(Backend::Sqlite, Some(&text)).await;
        let c = m.customer().await;
        let other = m.customer().await;

        // Eight H100-hours (≈1.14e19) pass `heads-up` for the run and the customer.
        let (admitted, job_id) = m.admit_echo(&c, &job("h100", 8, 1.0, "usage-run")).await;
        let flop = h100_flop(8, 1.0);
        // The job's answer carries the notice of each `notify` threshold it crossed; `file-it`
        // (report only) is not a notice.
        let mut told = admitted.notices.clone();
        told.sort_unstable();
        assert_eq!(
            told,
            [
                "heads-up; scope=customer; threshold_flop=1.0000e19",
                "heads-up; scope=run; threshold_flop=1.0000e19",
            ],
            "{admitted:?}"
        );

        let resp = usage_of(&m, &c.access).await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        let view: Value = resp.json().await.expect("usage JSON");
        assert_eq!(view["tier"], "unverified", "{view}");
        assert_eq!(
            view["concurrent_jobs"],
            json!({"open": 1, "cap": 2}),
            "{view}"
        );

        let run = scope(&view, "run");
        assert_eq!(run["run_id"], "usage-run", "{view}");
        assert_flop(num(&run["total_flop"]), flop, "run total");
        assert_flop(num(&run["cap_flop"]), 1e21, "run cap");
        assert_flop(num(&run["remaining_flop"]), 1e21 - flop, "run remaining");
        let ahead = run["thresholds_ahead"].as_array().expect("ahead");
        assert_eq!(ahead.len(), 1, "heads-up is passed, file-it ahead: {run}");
        assert_eq!(ahead[0]["label"], "file-it", "{run}");
        assert_eq!(ahead[0]["actions"], json!(["report"]), "{run}");
        assert_eq!(ahead[0]["report_due_days"], 14, "{run}");
        assert!(
            ahead[0]["means"][0]
                .as_str()
                .is_some_and(|s| s.contains("14 days")),
            "{run}"
        );
        assert_flop(num(&ahead[0]["remaining_flop"]), 1e20 - flop, "to file-it");

        let customer = scope(&view, "customer");
        assert_flop(num(&customer["total_flop"]), flop, "customer total");
        assert_flop(num(&customer["cap_flop"]), 1e22, "customer cap");
        assert_eq!(customer["window"], "30d", "{customer}");
        assert_eq!(customer["thresholds_ahead"], json!([]), "{customer}");
        assert_flop(
            num(&scope(&view, "group")["total_flop"]),
            flop,
            "group of one",
        );

        let jobs = view["jobs"].as_array().expect("jobs");
        assert_eq!(jobs.len(), 1, "{view}");
        assert_eq!(jobs[0]["id"], job_id.as_str(), "{view}");
        assert_eq!(jobs[0]["status"], "reserved", "{view}");
        assert_flop(num(&jobs[0]["estimate_flop"]), flop, "job estimate");
        assert_eq!(num(&jobs[0]["measured_flop"]), 0.0, "{view}");

        let notices = view["notices"].as_array().expect("notices");
        let mut scopes: Vec<&str> = notices.iter().filter_map(|n| n["scope"].as_str()).collect();
        scopes.sort_unstable();
        assert_eq!(scopes, ["customer", "run"], "{view}");
        assert!(notices.iter().all(|n| n["label"] == "heads-up"), "{view}");

        // Another customer sees only its own (empty) usage.
        let theirs: Value = usage_of(&m, &other.access)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(theirs["jobs"], json!([]), "{theirs}");
        assert_eq!(theirs["notices"], json!([]), "{theirs}");

        // A read-only API key reads the view but may not close a job.
        let (_, key) = create_key(
            &m.http,
            &m.gw,
            &c.access,
            json!({"name": "ro", "scopes": ["read"]}),
        )
        .await;
        assert_eq!(usage_of(&m, &key).await.status(), 200);
        let reader = Cust {
            id: c.id.clone(),
            access: key,
        };
        let doc = expect_problem(
            customer_close(&m, &reader, &job_id).await,
            403,
            "scope-missing",
        )
        .await;
        assert_eq!(doc["missing_scope"], "jobs", "{doc}");

        // A threshold fires once per scope: the next job's answer carries no notice.
        let (quiet, _) = m.admit_echo(&c, &job("h100", 1, 0.1, "usage-run-2")).await;
        assert_eq!(quiet.notices, Vec::<String>::new(), "{quiet:?}");
    })
    .await;
}

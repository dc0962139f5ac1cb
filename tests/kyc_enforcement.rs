//! Verification decisions reach the data plane, through the real binary on SQLite and on
//! PostgreSQL + Redis with two replicas: a screening `hit` awaiting review bars job submission
//! until a reviewer clears it; a confirmed denied-party match and an embargoed jurisdiction
//! suspend the customer on every route at once (403 with a reason code, on every replica,
//! audited) — trial tier included; a re-screen after a list import suspends trial-tier and
//! pending customers too, not only approved ones.

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::identity::{IdGateway, eventually};
use support::metering::{Backend, Cust, Meter, individual_application, job};
use support::{expect_problem, within};

/// Budget of one whole scenario (many requests and CLI runs on a loaded 2-core machine).
const TIMEOUT: Duration = Duration::from_secs(180);
/// How long a suspension may take to reach a replica (notices; the principal cache TTL at worst).
const PROPAGATION: Duration = Duration::from_secs(15);

#[tokio::test]
async fn screening_decisions_bar_compute_on_sqlite() {
    within(TIMEOUT, decisions_bar_compute(Backend::Sqlite)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn screening_decisions_bar_compute_on_every_replica_on_postgres() {
    within(TIMEOUT, decisions_bar_compute(Backend::Postgres)).await;
}

#[tokio::test]
async fn a_rescreen_suspends_trial_and_pending_customers_on_sqlite() {
    within(TIMEOUT, rescreen_suspends(Backend::Sqlite)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_rescreen_suspends_trial_and_pending_customers_on_postgres() {
    within(TIMEOUT, rescreen_suspends(Backend::Postgres)).await;
}

/// The gateways a scenario checks: the one the test started, plus a replica on PostgreSQL.
async fn gateways(m: &Meter, backend: Backend) -> Vec<IdGateway> {
    match backend {
        Backend::Sqlite => Vec::new(),
        Backend::Postgres => vec![m.replica().await],
    }
}

async fn decisions_bar_compute(backend: Backend) {
    let m = Meter::start(backend, None).await;
    let replicas = gateways(&m, backend).await;
    let all: Vec<&IdGateway> = std::iter::once(&m.gw).chain(replicas.iter()).collect();
    m.import_screening_list();
    let reviewer = m.staff("reviewer").await;
    let senior = m.staff("senior_reviewer").await;
    let auditor = m.staff("auditor").await;
    let small = job("h100", 1, 0.05, "trial");

    // Viktor holds trial compute before he applies.
    let viktor = m.customer().await;
    m.admit(&viktor, &small).await;

    // He applies under the listed identity: a hit awaits review, and job submission is barred
    // on every replica at once (reads still pass).
    let listed = individual_application("Viktor Kalashov", "1971-03-14", "CY", "K1234567");
    let view = m.apply(&viktor, &listed).await;
    assert_eq!(view["status"], "pending_review", "{view}");
    let app = view["id"].as_str().expect("id").to_owned();
    for gw in &all {
        let doc = expect_problem(m.submit_to(gw, &viktor, &small).await, 403, "job-denied").await;
        assert_eq!(doc["reason"], "screening_hold", "{doc}");
        assert_eq!(get(&m, gw, &viktor).await.status(), 200, "reads pass");
    }

    // A reviewer confirms the match by rejecting: suspended on every route and replica.
    let resp = m
        .staff_post(
            &reviewer,
            &format!("/staff/v1/applications/{app}/decision"),
            &json!({"action": "reject", "reason": "confirmed denied-party match (SDN)"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "reject: {resp:?}");
    expect_suspended(&m, &all, &viktor, "denied_party").await;
    let resp = m
        .http
        .get(m.gw.url("/computegate/v1/kyc/applications"))
        .header("authorization", format!("Bearer {}", viktor.access))
        .send()
        .await
        .expect("send");
    let doc = expect_problem(resp, 403, "forbidden").await;
    assert_eq!(doc["reason"], "denied_party", "{doc}");
    expect_audited(
        &m,
        &auditor,
        &viktor,
        "kyc.customer.suspended",
        "denied_party",
    )
    .await;

    // An applicant naming an embargoed country is rejected at submission and suspended too.
    let amir = m.customer().await;
    m.admit(&amir, &small).await;
    let embargoed = individual_application("Amir Tehrani", "1980-01-01", "IR", "IR1234567");
    let view = m.apply(&amir, &embargoed).await;
    assert_eq!(view["status"], "rejected", "{view}");
    expect_suspended(&m, &all, &amir, "embargoed_jurisdiction").await;
    expect_audited(
        &m,
        &auditor,
        &amir,
        "kyc.customer.suspended",
        "embargoed_jurisdiction",
    )
    .await;

    // A hit a senior reviewer rules a false positive lifts the hold at once.
    let namesake = m.customer().await;
    let view = m.apply(&namesake, &listed).await;
    assert_eq!(view["status"], "pending_review", "{view}");
    let app = view["id"].as_str().expect("id").to_owned();
    let doc = expect_problem(m.submit(&namesake, &small).await, 403, "job-denied").await;
    assert_eq!(doc["reason"], "screening_hold", "{doc}");
    let resp = m
        .staff_post(
            &senior,
            &format!("/staff/v1/applications/{app}/screening-override"),
            &json!({"reason": "different person: documents checked against the listing"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "override: {resp:?}");
    for gw in &all {
        let resp = m.submit_to(gw, &namesake, &small).await;
        assert!(
            resp.status().is_success(),
            "cleared hit still held: {resp:?}"
        );
    }
}

async fn rescreen_suspends(backend: Backend) {
    let m = Meter::start(backend, None).await;
    let replicas = gateways(&m, backend).await;
    let all: Vec<&IdGateway> = std::iter::once(&m.gw).chain(replicas.iter()).collect();
    m.import_screening_list();
    let reviewer = m.staff("reviewer").await;
    let auditor = m.staff("auditor").await;
    let small = job("h100", 1, 0.05, "trial");
    // Two customers under the identity the next list version adds: one pending review, one
    // rejected (for another reason) and left at the trial tier. Both hold trial compute.
    let maria = individual_application("Maria Elena Lindqvist", "1988-07-02", "SE", "SE9988776");
    let pending = m.customer().await;
    let view = m.apply(&pending, &maria).await;
    assert_eq!(view["status"], "pending_review", "{view}");
    let trial = m.customer().await;
    let view = m.apply(&trial, &maria).await;
    let app = view["id"].as_str().expect("id").to_owned();
    let resp = m
        .staff_post(
            &reviewer,
            &format!("/staff/v1/applications/{app}/decision"),
            &json!({"action": "reject", "reason": "proof of address unreadable"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "reject: {resp:?}");
    for c in [&pending, &trial] {
        m.admit(c, &small).await;
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kyc/csl_v2.csv");
    let out = m.cli(&[
        "screening",
        "import",
        "--format",
        "csl",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert!(out.status.success(), "import: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 customers suspended"), "{stdout}");
    for c in [&pending, &trial] {
        expect_suspended(&m, &all, c, "screening_hit").await;
        expect_audited(&m, &auditor, c, "kyc.rescreen.suspended", "screening_hit").await;
    }
}

/// `GET /v1/echo/whoami` on `gw` as `c`.
async fn get(m: &Meter, gw: &IdGateway, c: &Cust) -> reqwest::Response {
    m.http
        .get(gw.url("/v1/echo/whoami"))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send")
}

/// Within [`PROPAGATION`], every gateway answers `c` 403 with `reason` on a plain route, and on
/// job submission.
async fn expect_suspended(m: &Meter, all: &[&IdGateway], c: &Cust, reason: &str) {
    for gw in all {
        eventually(PROPAGATION, "suspension on the data plane", || async {
            get(m, gw, c).await.status() == 403
        })
        .await;
        let doc = expect_problem(get(m, gw, c).await, 403, "forbidden").await;
        assert_eq!(doc["reason"], reason, "{doc}");
        let doc = expect_problem(
            m.submit_to(gw, c, &job("h100", 1, 0.05, "after")).await,
            403,
            "forbidden",
        )
        .await;
        assert_eq!(doc["reason"], reason, "{doc}");
    }
}

/// One `action` audit record on `customer:<c>` naming `reason`.
async fn expect_audited(m: &Meter, auditor: &str, c: &Cust, action: &str, reason: &str) {
    let path = format!("/staff/v1/audit?subject=customer:{}&action={action}", c.id);
    let resp = m.staff_get(auditor, &path).await;
    assert_eq!(resp.status(), 200, "audit: {resp:?}");
    let page: Value = resp.json().await.expect("audit JSON");
    let records = page["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(records[0]["detail"]["reason"], reason, "{page}");
}

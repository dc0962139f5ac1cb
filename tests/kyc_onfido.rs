//! Onfido webhooks as Onfido sends them, through the real binary: the documented
//! `check.completed` and Studio `workflow_run.completed` deliveries (byte for byte, with the
//! signatures Onfido's client libraries publish; see `kyc/tests/data/onfido/README.md`) are
//! queued, their resources fetched from a local server standing in for Onfido's API (failing,
//! slow, then answering), and the outcome recorded on the application named in the resource's
//! tags — once, however often the delivery is replayed, with every retry in the metrics.

mod kyc_support;
mod support;

use std::time::Duration;

use serde_json::{Value, json};

use kyc_support::onfido::{API_TOKEN, FakeOnfido, Step, fixture, fixture_text, notice};
use kyc_support::{Kyc, Staff, hmac_hex, individual};
use support::cluster::PgDatabase;
use support::identity::{Setup, counter, eventually, metrics};
use support::within;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Onfido's published token and signature of `webhook_check_completed.json`
/// (onfido-python `tests/test_classic_webhook_event_verification.py`).
const CHECK_TOKEN: &str = "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh";
const CHECK_SIGNATURE: &str = "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7";
/// Onfido's published token and signature of `webhook_workflow_run_completed.json`
/// (onfido-java `StudioWebhookEventVerifierTest.workflowRunCompletedTest`).
const RUN_TOKEN: &str = "sgx0lCZimfQBJHnuiKJaNUF76yQZfD94";
const RUN_SIGNATURE: &str = "de43e2a218c589d6bb750d9d7014744d378660cd106886f722f72a9c0eef3027";

const CHECK_ID: &str = "f2302f45-227d-413d-ad61-09ec077a086a";
const REPORT_ID: &str = "6b7b4c5e-51f6-4b5b-8a4f-0bf1a7d1b3e2";
const RUN_ID: &str = "d19692d6-730a-4730-9005-82185a5ec595";

#[tokio::test]
async fn onfido_outcomes_are_fetched_and_recorded_on_sqlite() {
    within(TIMEOUT, flow(Setup::default())).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn onfido_outcomes_are_fetched_and_recorded_on_postgres() {
    let db = PgDatabase::create();
    let setup = Setup {
        database_url: Some(db.url.clone()),
        ..Setup::default()
    };
    within(TIMEOUT, flow(setup)).await;
    drop(db);
}

async fn flow(setup: Setup) {
    let onfido = FakeOnfido::start().await;
    let base = onfido.base_url();
    // The two fixtures were signed with different tokens: one is "current", the other the
    // "previous" of a rotation, so the one gateway accepts both exactly as published.
    let kyc = Kyc::start_with_env(
        &setup,
        &[
            ("COMPUTEGATE_IDV_ONFIDO_SECRET", CHECK_TOKEN),
            ("COMPUTEGATE_IDV_ONFIDO_SECRET_PREVIOUS", RUN_TOKEN),
            ("COMPUTEGATE_IDV_ONFIDO_API_TOKEN", API_TOKEN),
            ("COMPUTEGATE_IDV_ONFIDO_API_URL", &base),
            ("COMPUTEGATE_IDV_ONFIDO_TIMEOUT_MS", "500"),
            ("COMPUTEGATE_IDV_ONFIDO_RETRY_MS", "100"),
        ],
    )
    .await;
    let auditor = kyc.staff("auditor").await;
    let first = kyc.customer().await;
    let checked = kyc
        .draft(
            &first,
            &individual("Lena Berg", "1990-01-01", "DE", "C01X00T47"),
        )
        .await;
    let second = kyc.customer().await;
    let studio = kyc
        .draft(
            &second,
            &individual("Jane Doe", "1990-01-01", "GB", "999999999"),
        )
        .await;
    onfido.serve("checks", fixture("api_check.json", &checked));
    onfido.serve("reports", fixture("api_report.json", &checked));
    onfido.serve("workflow_runs", fixture("api_workflow_run.json", &studio));

    // check.completed: Onfido's API fails twice, then is slower than the timeout, then answers.
    onfido.script(
        "checks",
        CHECK_ID,
        &[
            Step::Fail(503),
            Step::Fail(502),
            Step::Slow(Duration::from_secs(2)),
        ],
    );
    let body = fixture_text("webhook_check_completed.json");
    let resp = delivered(&kyc, &body, CHECK_SIGNATURE).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(
        ack,
        json!({"duplicate": false, "queued": true, "resource": "check"})
    );
    // Acknowledged once queued, not after the provider answered: its first success can only
    // come after two failures, a timeout and three back-offs.
    assert!(
        onfido.hits().iter().all(|h| h.status != 200),
        "{:?}",
        onfido.hits()
    );
    let recorded = recorded_on(&kyc, &auditor, &checked, 1).await;
    assert_eq!(recorded[0]["detail"]["outcome"], "verified");
    assert_eq!(recorded[0]["detail"]["provider"], "onfido");
    assert_eq!(
        recorded[0]["detail"]["event_id"],
        format!("check:{CHECK_ID}")
    );

    let statuses: Vec<(u16, bool)> = onfido.hits().iter().map(|h| (h.status, h.slow)).collect();
    assert_eq!(
        statuses,
        [(503, false), (502, false), (200, true), (200, false)]
    );
    // Replays are acknowledged as duplicates and fetch nothing more.
    let hits = onfido.hits().len();
    let resp = delivered(&kyc, &body, CHECK_SIGNATURE).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], true);
    // A report of the same check: fetched, leads to the check, whose outcome is recorded
    // already (one outcome per check, however many notices announce it).
    let resp = post(&kyc, &notice("report.completed", REPORT_ID), CHECK_TOKEN).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["resource"], "report");
    eventually(
        Duration::from_secs(20),
        "report and its check fetched",
        || async { onfido.hits().len() == hits + 2 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(onfido.hits().len(), hits + 2, "{:?}", onfido.hits());
    recorded_on(&kyc, &auditor, &checked, 1).await;

    // Studio: workflow_run.completed; the run is fetched (rate-limited once first).
    onfido.script("workflow_runs", RUN_ID, &[Step::Fail(429)]);
    let body = fixture_text("webhook_workflow_run_completed.json");
    let resp = delivered(&kyc, &body, RUN_SIGNATURE).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["resource"],
        "workflow_run"
    );
    let recorded = recorded_on(&kyc, &auditor, &studio, 1).await;
    assert_eq!(recorded[0]["detail"]["outcome"], "verified");
    assert_eq!(
        recorded[0]["detail"]["event_id"],
        format!("workflow_run:{RUN_ID}")
    );

    // A check Onfido does not know (404): given up at once, nothing recorded, no retry.
    let unknown = uuid::Uuid::new_v4();
    let resp = post(
        &kyc,
        &notice("check.completed", &unknown.to_string()),
        CHECK_TOKEN,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let onfido_label = [("provider", "onfido")];
    eventually(
        Duration::from_secs(20),
        "unknown check given up",
        || async {
            let m = metrics(&kyc.http, &kyc.gw.gw).await;
            counter(&m, "computegate_idv_fetch_given_up_total", &onfido_label) == 1.0
        },
    )
    .await;

    // Every request carried the API token; every failure and retry is counted.
    let all = onfido.hits();
    assert!(
        all.iter()
            .all(|h| h.authorization.as_deref() == Some(&format!("Token token={API_TOKEN}"))),
        "{all:?}"
    );
    let m = metrics(&kyc.http, &kyc.gw.gw).await;
    let requests = |resource: &str, result: &str| {
        counter(
            &m,
            "computegate_idv_provider_requests_total",
            &[
                ("provider", "onfido"),
                ("resource", resource),
                ("result", result),
            ],
        )
    };
    assert_eq!(requests("check", "status_5xx"), 2.0);
    assert_eq!(requests("check", "timeout"), 1.0);
    assert_eq!(
        requests("check", "ok"),
        2.0,
        "the check, and again after its report"
    );
    assert_eq!(requests("check", "status_4xx"), 1.0, "the unknown check");
    assert_eq!(requests("report", "ok"), 1.0);
    assert_eq!(requests("workflow_run", "status_4xx"), 1.0, "the 429");
    assert_eq!(requests("workflow_run", "ok"), 1.0);
    assert_eq!(
        counter(&m, "computegate_idv_fetch_retries_total", &onfido_label),
        4.0
    );
    assert_eq!(
        counter(
            &m,
            "computegate_idv_fetch_recorded_total",
            &[("provider", "onfido"), ("outcome", "verified")]
        ),
        2.0
    );
}

/// Posts `body` to the Onfido webhook, signed with `token`.
async fn post(kyc: &Kyc, body: &str, token: &str) -> reqwest::Response {
    delivered(kyc, body, &hmac_hex(token, body.as_bytes())).await
}

/// Posts `body` to the Onfido webhook with `X-SHA2-Signature: signature`.
async fn delivered(kyc: &Kyc, body: &str, signature: &str) -> reqwest::Response {
    kyc.webhook("onfido", &[("x-sha2-signature", signature.into())], body)
        .await
}

/// Waits until `application` has `n` `kyc.idv.recorded` records and returns them.
async fn recorded_on(kyc: &Kyc, auditor: &Staff, application: &str, n: usize) -> Vec<Value> {
    let subject = format!("application:{application}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page: Value = kyc
            .staff_get(auditor, "/staff/v1/audit?action=kyc.idv.recorded&limit=100")
            .await
            .json()
            .await
            .unwrap();
        let found: Vec<Value> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["subject"] == subject.as_str())
            .cloned()
            .collect();
        if found.len() >= n {
            assert_eq!(found.len(), n, "{found:?}");
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "IDV outcome not recorded: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

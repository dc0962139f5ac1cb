//! Records of access through the real binary: every data-plane request leaves one JSON line in
//! the access log (who, with which credential, what, when, from where — the forwarded client
//! address behind a trusted load balancer), job submissions included; and the audit chain
//! keeps the state changes of a job (started, finished), not its usage heartbeats.
//! SQLite, and PostgreSQL + Redis (`_on_postgres`).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use support::identity::create_key;
use support::metering::{Backend, Cust, Meter, job, usage_event};
use support::{TEST_TIMEOUT, TempDir, within};

/// The access-log lines in `file` once a line for each of `ids` is there (the writer runs
/// apart and writes in batches, so earlier lines may be there before ours).
async fn lines(file: &Path, ids: &[&str]) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        last = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect::<Vec<Value>>();
        if ids
            .iter()
            .all(|id| last.iter().any(|l| l["request_id"] == *id))
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no line for one of {ids:?} in {}: {last:?}", file.display());
}

async fn every_request_is_recorded(backend: Backend) {
    within(TEST_TIMEOUT, async {
        let dir = TempDir::new("access");
        let log = dir.path().join("access.jsonl");
        let path = log.display().to_string();
        let m = Meter::start_edited(backend, None, |c| {
            format!(
                "{}access = {path:?}\n",
                c.replacen(
                    "[server]\n",
                    "[server]\ntrust_forwarded_headers = true\n",
                    1
                )
            )
        })
        .await;
        let c = m.customer().await;
        let (key_id, key) = create_key(&m.http, &m.gw, &c.access, json!({"name": "runner"})).await;
        let runner = Cust {
            id: c.id.clone(),
            access: key,
        };
        // A job through a load balancer that appended the client's address, with the API key.
        let resp = m
            .http
            .post(m.gw.url("/v1/jobs"))
            .header("authorization", format!("Bearer {}", runner.access))
            .header("x-forwarded-for", "203.0.113.250, 198.51.100.23")
            .header("x-request-id", "req-job-1")
            .json(&job("h100", 1, 0.5, "logged"))
            .send()
            .await
            .expect("send job");
        assert_eq!(resp.status(), 201);
        // A plain read with the session token, and an unauthenticated attempt.
        let resp = m
            .http
            .get(m.gw.url("/v1/jobs"))
            .header("authorization", format!("Bearer {}", c.access))
            .header("x-request-id", "req-read-1")
            .send()
            .await
            .expect("send read");
        assert_eq!(resp.status(), 200);
        let resp = m
            .http
            .get(m.gw.url("/v1/jobs"))
            .header("x-request-id", "req-anon-1")
            .send()
            .await
            .expect("send anonymous read");
        assert_eq!(resp.status(), 401);

        let all = lines(&log, &["req-job-1", "req-read-1", "req-anon-1"]).await;
        let by_id = |id: &str| {
            all.iter()
                .find(|l| l["request_id"] == id)
                .unwrap_or_else(|| panic!("no line for {id}: {all:?}"))
                .clone()
        };
        let submitted = by_id("req-job-1");
        assert_eq!(submitted["customer"], c.id.as_str(), "{submitted}");
        assert_eq!(submitted["credential_id"], key_id.as_str(), "{submitted}");
        assert_eq!(submitted["route"], "jobs-submit", "{submitted}");
        assert_eq!(submitted["method"], "POST", "{submitted}");
        assert_eq!(submitted["status"], 201, "{submitted}");
        assert_eq!(submitted["client"], "198.51.100.23", "{submitted}");
        assert_eq!(submitted["job_submission"], true, "{submitted}");
        assert!(submitted["latency_ms"].as_f64().is_some(), "{submitted}");
        assert!(
            submitted["request_bytes"].as_u64().is_some_and(|b| b > 0),
            "{submitted}"
        );
        assert!(
            submitted["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
            "{submitted}"
        );
        let read = by_id("req-read-1");
        assert_eq!(read["customer"], c.id.as_str(), "{read}");
        assert!(
            read["credential_id"]
                .as_str()
                .is_some_and(|j| !j.is_empty()),
            "a session's jti: {read}"
        );
        assert_eq!(read["status"], 200, "{read}");
        assert_eq!(read["client"], "127.0.0.1", "{read}");
        let anon = by_id("req-anon-1");
        assert_eq!(anon["status"], 401, "{anon}");
        assert_eq!(anon["customer"], Value::Null, "{anon}");
    })
    .await;
}

#[tokio::test]
async fn every_data_plane_request_is_in_the_access_log() {
    every_request_is_recorded(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn every_data_plane_request_is_in_the_access_log_on_postgres() {
    every_request_is_recorded(Backend::Postgres).await;
}

async fn heartbeats_stay_out_of_the_chain(backend: Backend) {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(backend, None).await;
        let auditor = m.staff("auditor").await;
        let c = m.customer().await;
        let (_, job_id) = m.admit_echo(&c, &job("h100", 1, 1.0, "beating")).await;
        let events = [
            usage_event("hb-start", &job_id, "started", None, "h100"),
            usage_event("hb-1", &job_id, "heartbeat", Some(60.0), "h100"),
            usage_event("hb-2", &job_id, "heartbeat", Some(120.0), "h100"),
            usage_event("hb-3", &job_id, "heartbeat", Some(180.0), "h100"),
            usage_event("hb-end", &job_id, "finished", Some(240.0), "h100"),
        ];
        for e in &events {
            assert_eq!(m.usage_ok(e).await, "recorded", "{e}");
        }
        let resp = m
            .staff_get(
                &auditor,
                &format!(
                    "/staff/v1/audit?subject=job:{job_id}&action=ledger.usage.recorded&limit=100"
                ),
            )
            .await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        let page: Value = resp.json().await.expect("audit JSON");
        let kinds: Vec<&str> = page["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["detail"]["kind"].as_str())
            .collect();
        let mut kinds = kinds;
        kinds.sort_unstable();
        assert_eq!(kinds, ["finished", "started"], "{page}");
        // The heartbeats are on the job: the measured usage reached 240 accelerator-seconds.
        let runs = m.runs(&auditor, &c.id).await;
        let run = runs.iter().find(|r| r["run_id"] == "beating").expect("run");
        assert!(
            run["used_flop"].as_f64().is_some_and(|u| u > 0.0),
            "measured usage on the run: {run}"
        );
    })
    .await;
}

#[tokio::test]
async fn usage_heartbeats_stay_out_of_the_audit_chain() {
    heartbeats_stay_out_of_the_chain(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn usage_heartbeats_stay_out_of_the_audit_chain_on_postgres() {
    heartbeats_stay_out_of_the_chain(Backend::Postgres).await;
}

//! Idempotent job submission through the real binary (`Idempotency-Key` on `job_submit`
//! routes), in front of the simulator. A retry with the same key gets the first answer again,
//! marked `Idempotent-Replayed: true`, with no second reservation, audit record or upstream
//! job; the same key with another body is 422; malformed keys are 400; a job the upstream
//! refused gives its key back, so the retry is judged anew; concurrent attempts of one key
//! admit exactly one job; and with two replicas on one PostgreSQL a retry on the second replays
//! the first's answer. SQLite, and PostgreSQL + Redis.

mod support;

use serde_json::{Value, json};

use support::metering::{Backend, Cust, Meter, assert_flop, h100_flop, job};
use support::{Gateway, TEST_TIMEOUT, expect_problem, within};

/// `POST /v1/jobs` on `gw` as `c` with `body` and, when given, `Idempotency-Key: key`.
async fn submit(
    m: &Meter,
    gw: &Gateway,
    c: &Cust,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = m
        .http
        .post(gw.url("/v1/jobs"))
        .header("authorization", format!("Bearer {}", c.access))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.send().await.expect("send job")
}

/// An answer's status, `Idempotent-Replayed` header, `Location` and JSON body.
struct Answer {
    status: u16,
    replayed: bool,
    location: Option<String>,
    body: Value,
}

async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let replayed = match header("idempotent-replayed").as_deref() {
        None => false,
        Some("true") => true,
        Some(other) => panic!("Idempotent-Replayed: {other}"),
    };
    let location = header("location");
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        replayed,
        location,
        body,
    }
}

/// The customer's jobs in the ledger (staff view, every status).
async fn ledger_jobs(m: &Meter, staff: &str, c: &Cust) -> Vec<Value> {
    let path = format!("/staff/v1/jobs?customer_id={}", c.id);
    m.staff_list(staff, &path, "jobs").await
}

async fn a_retry_gets_the_first_answer(backend: Backend) {
    let m = Meter::start(backend, None).await;
    let staff = m.staff("auditor").await;
    let c = m.customer().await;
    let body = job("h100", 1, 0.5, "idem-run");
    let first = read(submit(&m, &m.gw, &c, Some("retry-1"), &body).await).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed, "the first answer is not a replay");
    let id = first.body["id"].as_str().expect("job id").to_owned();

    for _ in 0..2 {
        let again = read(submit(&m, &m.gw, &c, Some("retry-1"), &body).await).await;
        assert_eq!(again.status, 201);
        assert!(again.replayed, "marked Idempotent-Replayed: true");
        assert_eq!(again.body, first.body, "the same answer");
        assert_eq!(again.location, first.location);
        assert_eq!(again.body["id"], id.as_str());
    }
    // One job upstream, one job and one reservation in the ledger, one admission audited.
    assert_eq!(m.sim_jobs().await.len(), 1, "one upstream job");
    let jobs = ledger_jobs(&m, &staff, &c).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_flop(
        m.charged(&staff, &c.id).await,
        h100_flop(1, 0.5),
        "one reservation",
    );
    let ledger_id = jobs[0]["id"].as_str().expect("ledger job id");
    let path = format!("/staff/v1/audit?subject=job:{ledger_id}&action=ledger.job.admitted");
    assert_eq!(m.staff_list(&staff, &path, "records").await.len(), 1);

    // The same key for another request: 422, nothing admitted.
    let other = job("h100", 2, 0.5, "idem-run");
    let resp = submit(&m, &m.gw, &c, Some("retry-1"), &other).await;
    expect_problem(resp, 422, "idempotency-key-reused").await;
    // A malformed key: 400.
    let resp = submit(&m, &m.gw, &c, Some("has space"), &other).await;
    expect_problem(resp, 400, "invalid-idempotency-key").await;
    // Another customer's key of the same name is its own.
    let d = m.customer().await;
    let theirs = read(submit(&m, &m.gw, &d, Some("retry-1"), &body).await).await;
    assert_eq!(theirs.status, 201);
    assert!(!theirs.replayed);
    assert_ne!(theirs.body["id"], id.as_str());
    // Without a key, a resubmission is a new job, as before.
    let plain = read(submit(&m, &m.gw, &c, None, &body).await).await;
    assert_eq!(plain.status, 201);
    assert!(!plain.replayed);
    assert_ne!(plain.body["id"], id.as_str());
    assert_eq!(ledger_jobs(&m, &staff, &c).await.len(), 2);
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_without_a_second_job() {
    within(TEST_TIMEOUT, a_retry_gets_the_first_answer(Backend::Sqlite)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_retry_gets_the_first_answer_without_a_second_job_on_postgres() {
    within(
        TEST_TIMEOUT,
        a_retry_gets_the_first_answer(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn a_job_the_upstream_refused_gives_its_key_back() {
    // `h100-pcie` is in the shipped accelerator table but not in the simulator's fleet: the
    // gateway admits it, the simulator refuses it, the reservation is released — and the key
    // with it: a retry is judged anew (and refused anew), and the key may then carry a job the
    // simulator takes.
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, None).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        let refused = job("h100-pcie", 1, 0.5, "refused");
        for _ in 0..2 {
            let answer = read(submit(&m, &m.gw, &c, Some("k-refused"), &refused).await).await;
            assert!((400..500).contains(&answer.status), "{}", answer.body);
            assert!(!answer.replayed, "judged anew");
        }
        assert_eq!(m.charged(&staff, &c.id).await, 0.0);
        let jobs = ledger_jobs(&m, &staff, &c).await;
        assert_eq!(jobs.len(), 2, "two attempts, both released: {jobs:?}");
        assert!(jobs.iter().all(|j| j["status"] == "released"), "{jobs:?}");

        let taken = job("h100", 1, 0.5, "taken");
        let answer = read(submit(&m, &m.gw, &c, Some("k-refused"), &taken).await).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert!(!answer.replayed);
    })
    .await;
}

#[tokio::test]
async fn a_held_job_keeps_no_key() {
    // The shipped policy holds a job whose declared 6·N·D is far above its hardware estimate.
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, None).await;
        let c = m.customer().await;
        let mut body = job("h100", 1, 1.0, "gap");
        body["model"] = json!({"parameters": 7e9});
        body["dataset"] = json!({"tokens": 1e12});
        for _ in 0..2 {
            let resp = submit(&m, &m.gw, &c, Some("k-held"), &body).await;
            assert!(resp.headers().get("idempotent-replayed").is_none());
            expect_problem(resp, 409, "job-held-for-review").await;
        }
    })
    .await;
}

/// `n` attempts of one keyed request at once, alternating between `gateways`: exactly one is
/// admitted and forwarded; the others get its answer (replayed) or 409 while it is in flight.
async fn concurrent_attempts(m: &Meter, gateways: &[&Gateway], c: &Cust, n: usize) {
    let upstream_before = m.sim_jobs().await.len();
    let body = job("h100", 1, 0.5, "raced");
    let attempts = (0..n).map(|i| {
        let gw = gateways[i % gateways.len()];
        let body = &body;
        async move { submit(m, gw, c, Some("raced-key"), body).await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut fresh = Vec::new();
    let mut replayed = 0;
    for resp in answers {
        match resp.status().as_u16() {
            201 => {
                let answer = read(resp).await;
                if answer.replayed {
                    replayed += 1;
                } else {
                    fresh.push(answer.body);
                }
            }
            409 => {
                assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
                expect_problem(resp, 409, "idempotency-key-in-flight").await;
            }
            other => panic!("unexpected {other}: {:?}", resp.text().await),
        }
    }
    assert_eq!(fresh.len(), 1, "exactly one admitted ({replayed} replayed)");
    assert_eq!(
        m.sim_jobs().await.len(),
        upstream_before + 1,
        "one upstream job"
    );
    // Once it is answered, every retry replays it.
    let last =
        read(submit(m, gateways[gateways.len() - 1], c, Some("raced-key"), &body).await).await;
    assert!(last.replayed);
    assert_eq!(last.body, fresh[0]);
}

#[tokio::test]
async fn concurrent_attempts_of_one_key_admit_one_job() {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(Backend::Sqlite, None).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        concurrent_attempts(&m, &[&m.gw], &c, 8).await;
        assert_eq!(ledger_jobs(&m, &staff, &c).await.len(), 1);
        assert_flop(
            m.charged(&staff, &c.id).await,
            h100_flop(1, 0.5),
            "one reservation",
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn two_replicas_share_the_keys() {
    within(TEST_TIMEOUT * 2, async {
        let m = Meter::start(Backend::Postgres, None).await;
        let replica = m.replica().await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        // A retry on the second replica replays the first's answer.
        let body = job("h100", 1, 0.5, "replicated");
        let first = read(submit(&m, &m.gw, &c, Some("across"), &body).await).await;
        assert_eq!(first.status, 201, "{}", first.body);
        let again = read(submit(&m, &replica.gw, &c, Some("across"), &body).await).await;
        assert_eq!(again.status, 201);
        assert!(again.replayed, "replica B replays A's answer");
        assert_eq!(again.body, first.body);
        assert_eq!(ledger_jobs(&m, &staff, &c).await.len(), 1);

        // Concurrent attempts spread over both replicas admit one job.
        let d = m.customer().await;
        concurrent_attempts(&m, &[&m.gw, &replica.gw], &d, 8).await;
        assert_eq!(ledger_jobs(&m, &staff, &d).await.len(), 1);
        assert_flop(
            m.charged(&staff, &d.id).await,
            h100_flop(1, 0.5),
            "one reservation",
        );
    })
    .await;
}

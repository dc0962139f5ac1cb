//! Job ownership through the real binary and the reference upstream (the simulator): customer B
//! neither lists, reads, streams the logs of nor cancels customer A's job — each answers as if
//! the job did not exist — while A does all of it. SQLite, and PostgreSQL + Redis.

mod support;

use serde_json::Value;

use support::metering::{Backend, Cust, Meter, job};
use support::{TEST_TIMEOUT, within};

async fn send(m: &Meter, c: &Cust, method: reqwest::Method, path: &str) -> reqwest::Response {
    m.http
        .request(method, m.gw.url(path))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send")
}

async fn listed(m: &Meter, c: &Cust) -> Vec<String> {
    let resp = send(m, c, reqwest::Method::GET, "/v1/jobs").await;
    assert_eq!(resp.status(), 200);
    let jobs: Vec<Value> = resp.json().await.expect("job list");
    jobs.iter()
        .filter_map(|j| j["id"].as_str().map(str::to_owned))
        .collect()
}

async fn others_jobs_are_unreachable(backend: Backend) {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(backend, None).await;
        // Verified customers, whose tier may cancel (DELETE) jobs.
        let a = m.customer_at("identity_verified").await;
        let b = m.customer_at("identity_verified").await;
        let resp = m.submit(&a, &job("h100", 1, 0.5, "owned")).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.expect("job JSON");
        let id = body["id"].as_str().expect("job id").to_owned();

        assert_eq!(
            listed(&m, &a).await,
            std::slice::from_ref(&id),
            "A lists its job"
        );
        assert!(listed(&m, &b).await.is_empty(), "B lists none of A's jobs");
        for (method, path) in [
            (reqwest::Method::GET, format!("/v1/jobs/{id}")),
            (reqwest::Method::GET, format!("/v1/jobs/{id}/logs")),
            (reqwest::Method::DELETE, format!("/v1/jobs/{id}")),
        ] {
            let resp = send(&m, &b, method.clone(), &path).await;
            assert_eq!(resp.status(), 404, "B: {method} {path}");
        }
        // A's job was not cancelled by B; A reads and cancels it.
        let resp = send(&m, &a, reqwest::Method::GET, &format!("/v1/jobs/{id}")).await;
        assert_eq!(resp.status(), 200);
        let view: Value = resp.json().await.expect("job JSON");
        assert_ne!(view["status"], "cancelled", "{view}");
        let resp = send(&m, &a, reqwest::Method::DELETE, &format!("/v1/jobs/{id}")).await;
        assert_eq!(resp.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn another_customers_job_is_not_reachable() {
    others_jobs_are_unreachable(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn another_customers_job_is_not_reachable_on_postgres() {
    others_jobs_are_unreachable(Backend::Postgres).await;
}

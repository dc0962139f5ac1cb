//! Job ownership through the real binary. With the reference upstream (the simulator): customer
//! B neither lists, reads, streams the logs of nor cancels customer A's job — each answers as if
//! the job did not exist — while A does all of it. With an upstream that checks nothing (any
//! caller reaches any job), the gateway's `owner_path` rule does the same for the job's own
//! paths: B gets 404 without the upstream being asked, A gets 200, on either replica of two.
//! SQLite, and PostgreSQL + Redis.

mod support;

use std::sync::{Arc, Mutex};

use serde_json::Value;

use support::metering::{Backend, Cust, Meter, job};
use support::upstream::{TestUpstream, UpFuture, full};
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

/// A job API that checks nothing: `POST /v1/jobs` answers `201 {"id": "naive-N"}`, and any caller
/// may read (`GET /v1/jobs/{id}`, `…/logs`) or cancel (`DELETE`) any job. It records each request
/// as `METHOD path customer`.
fn naive_job_api(
    seen: Arc<Mutex<Vec<String>>>,
) -> impl Fn(http::Request<hyper::body::Incoming>) -> UpFuture + Send + Sync + 'static {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    move |req| {
        let customer = req
            .headers()
            .get("x-computegate-customer")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        seen.lock()
            .expect("lock")
            .push(format!("{method} {path} {customer}"));
        let (status, body) = if method == http::Method::POST && path == "/v1/jobs" {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                201,
                format!("{{\"id\":\"naive-{n}\",\"status\":\"queued\"}}"),
            )
        } else if let Some(rest) = path.strip_prefix("/v1/jobs/") {
            let id = rest.split('/').next().unwrap_or_default();
            (200, format!("{{\"id\":\"{id}\"}}"))
        } else {
            (404, "{}".to_owned())
        };
        Box::pin(async move {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(full(body))
                .expect("response")
        })
    }
}

/// Points the test gateway's upstream at `addr` and guards `/v1/jobs/{id}` with an owner rule.
fn guarded_config(addr: std::net::SocketAddr) -> impl FnOnce(String) -> String {
    move |config| {
        let config: String = config
            .lines()
            .map(|l| {
                if l.starts_with("addresses = ") {
                    format!("addresses = [\"{addr}\"]\n")
                } else if l == "name = \"api\"" {
                    format!("{l}\nowner_path = \"/v1/jobs/{{id}}\"\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(config.contains("owner_path"), "{config}");
        config
    }
}

async fn gateway_guards_jobs_of_a_naive_upstream(backend: Backend) {
    within(TEST_TIMEOUT, async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let upstream = TestUpstream::start(naive_job_api(seen.clone())).await;
        let m = Meter::start_edited(backend, None, guarded_config(upstream.addr)).await;
        let a = m.customer_at("identity_verified").await;
        let b = m.customer_at("identity_verified").await;
        let resp = m.submit(&a, &job("h100", 1, 0.5, "owned")).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.expect("job JSON");
        assert_eq!(
            body["status"], "queued",
            "the answer reaches the client whole: {body}"
        );
        let id = body["id"].as_str().expect("job id").to_owned();

        let object_paths = [
            (reqwest::Method::GET, format!("/v1/jobs/{id}")),
            (reqwest::Method::GET, format!("/v1/jobs/{id}/logs")),
            (reqwest::Method::DELETE, format!("/v1/jobs/{id}")),
        ];
        for (method, path) in &object_paths {
            let resp = send(&m, &b, method.clone(), path).await;
            assert_eq!(resp.status(), 404, "B: {method} {path}");
            let content_type = resp.headers()["content-type"].clone();
            assert_eq!(content_type, "application/problem+json");
        }
        // An unknown id is answered like another customer's job, and a path the upstream could
        // normalize onto A's job is refused.
        let resp = send(&m, &a, reqwest::Method::GET, "/v1/jobs/naive-999").await;
        assert_eq!(resp.status(), 404);
        let sneaky = format!("/v1/jobs/x%2F..%2F{id}");
        let resp = send(&m, &b, reqwest::Method::GET, &sneaky).await;
        assert_eq!(resp.status(), 400, "B: {sneaky}");
        {
            let seen = seen.lock().expect("lock");
            assert!(
                !seen.iter().any(|r| r.ends_with(&b.id)),
                "none of B's requests reached the upstream: {seen:?}"
            );
        }
        // A reaches its job on this gateway and on a second replica sharing the store.
        let replica = match backend {
            Backend::Postgres => Some(m.replica().await),
            Backend::Sqlite => None,
        };
        let gateways = std::iter::once(&m.gw.gw).chain(replica.as_ref().map(|r| &r.gw));
        for gw in gateways {
            for (method, path) in &object_paths {
                let resp = m
                    .http
                    .request(method.clone(), gw.url(path))
                    .header("authorization", format!("Bearer {}", a.access))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), 200, "A: {method} {path}");
            }
            let resp = m
                .http
                .get(gw.url(&format!("/v1/jobs/{id}")))
                .header("authorization", format!("Bearer {}", b.access))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 404, "B on every replica");
        }
        // The collection is not owner-checked: the upstream must scope it (README).
        let resp = send(&m, &b, reqwest::Method::GET, "/v1/jobs").await;
        assert_eq!(resp.status(), 404, "the naive upstream has no list");
        assert!(
            seen.lock()
                .expect("lock")
                .iter()
                .any(|r| r == &format!("GET /v1/jobs {}", b.id))
        );
    })
    .await;
}

#[tokio::test]
async fn the_gateway_keeps_others_off_a_job_the_upstream_does_not_guard() {
    gateway_guards_jobs_of_a_naive_upstream(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn the_gateway_keeps_others_off_a_job_the_upstream_does_not_guard_on_postgres() {
    gateway_guards_jobs_of_a_naive_upstream(Backend::Postgres).await;
}

//! API-key scopes through the real binary: a `read` key reads but cannot submit or act on jobs,
//! a `jobs` key submits, a session token does both, unknown scopes are refused at creation and
//! keys are managed with a session token only. SQLite, and PostgreSQL + Redis (`_on_postgres`).

mod support;

use serde_json::{Value, json};

use support::identity::create_key;
use support::metering::{Backend, Cust, Meter, job};
use support::{TEST_TIMEOUT, expect_problem, within};

/// A key of `c` with `scopes`, as a caller whose bearer credential is the key.
async fn key_caller(m: &Meter, c: &Cust, scopes: Value) -> Cust {
    let (_, key) = create_key(
        &m.http,
        &m.gw,
        &c.access,
        json!({"name": "k", "scopes": scopes}),
    )
    .await;
    Cust {
        id: c.id.clone(),
        access: key,
    }
}

async fn get(m: &Meter, c: &Cust, path: &str) -> reqwest::Response {
    m.http
        .get(m.gw.url(path))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send GET")
}

async fn scopes_hold(backend: Backend) {
    within(TEST_TIMEOUT, async {
        let m = Meter::start(backend, None).await;
        let c = m.customer().await;
        let reader = key_caller(&m, &c, json!(["read"])).await;
        let runner = key_caller(&m, &c, json!(["jobs"])).await;

        // `read`: safe methods only.
        assert_eq!(get(&m, &reader, "/v1/jobs").await.status(), 200);
        let resp = m.submit(&reader, &job("h100", 1, 0.5, "scoped")).await;
        let doc = expect_problem(resp, 403, "scope-missing").await;
        assert_eq!(doc["missing_scope"], "jobs", "{doc}");
        let resp = m
            .http
            .delete(m.gw.url("/v1/jobs/anything"))
            .header("authorization", format!("Bearer {}", reader.access))
            .send()
            .await
            .expect("send DELETE");
        let doc = expect_problem(resp, 403, "scope-missing").await;
        assert_eq!(doc["missing_scope"], "jobs", "{doc}");

        // `jobs`: submits, but does not read.
        let resp = m.submit(&runner, &job("h100", 1, 0.5, "scoped")).await;
        assert_eq!(
            resp.status(),
            201,
            "a jobs key submits: {:?}",
            resp.text().await
        );
        let doc = expect_problem(get(&m, &runner, "/v1/jobs").await, 403, "scope-missing").await;
        assert_eq!(doc["missing_scope"], "read", "{doc}");

        // A session token carries every scope.
        assert_eq!(get(&m, &c, "/v1/jobs").await.status(), 200);

        // Unknown or empty scope lists are refused at creation; key management needs a session.
        for scopes in [json!(["admin"]), json!([])] {
            let resp = m
                .http
                .post(m.gw.url("/computegate/v1/keys"))
                .header("authorization", format!("Bearer {}", c.access))
                .json(&json!({"name": "bad", "scopes": scopes}))
                .send()
                .await
                .expect("send key creation");
            expect_problem(resp, 422, "invalid-request").await;
        }
        let resp = get(&m, &reader, "/computegate/v1/keys").await;
        expect_problem(resp, 403, "forbidden").await;
    })
    .await;
}

#[tokio::test]
async fn api_key_scopes_are_enforced() {
    scopes_hold(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn api_key_scopes_are_enforced_on_postgres() {
    scopes_hold(Backend::Postgres).await;
}

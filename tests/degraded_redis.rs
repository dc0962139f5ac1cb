//! Black-box tests of the Redis degraded mode: two gateway processes over PostgreSQL and a
//! private Redis that the test stops and starts again (the shared Redis is never touched).
//!
//! - Revocation keeps its bound without Redis: a key revoked and a token logged out on replica A
//!   are refused by replica B within `auth.principal_cache_ttl`, because B re-checks its caches
//!   against the store while its notice subscription is down.
//! - A Redis outage blocks neither logins (the throttle falls back to local counters, still
//!   throttling) nor start-up (readiness says `degraded`, `computegate_notices_degraded` is 1),
//!   and the first login after Redis returns works.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use support::cluster::PgDatabase;
use support::identity::{
    IdGateway, Setup, create_key, eventually, login, logout, metrics, new_account, proxied,
    revoke_key, token,
};
use support::outage::OwnRedis;
use support::prometheus;
use support::{Sim, TEST_TIMEOUT, client, within};

/// `auth.principal_cache_ttl` of these tests: the revocation bound without Redis.
const TTL: Duration = Duration::from_secs(2);
/// Slack on top of the bound for a loaded 2-core machine (argon2 of the re-verified key,
/// process scheduling).
const SLACK: Duration = Duration::from_millis(1500);

fn setup(db: &PgDatabase, redis: &OwnRedis) -> Setup {
    Setup {
        auth: format!("principal_cache_ttl = \"{}s\"", TTL.as_secs()),
        database_url: Some(db.url.clone()),
        redis: Some((redis.url(), "cg:".into())),
        ..Setup::default()
    }
}

/// Polls until B answers `status` for `bearer`; returns how long that took.
async fn refused_by(http: &reqwest::Client, gw: &IdGateway, bearer: &str, what: &str) -> Duration {
    eventually(TTL * 6, what, || async {
        proxied(http, gw, bearer).await.status() == 401
    })
    .await
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn revocation_reaches_the_other_replica_within_the_cache_ttl_while_redis_is_down() {
    within(TEST_TIMEOUT * 2, async {
        let db = PgDatabase::create();
        let mut redis = OwnRedis::start();
        let sim = Sim::start().await;
        let a = IdGateway::start(sim.addr, &setup(&db, &redis)).await;
        let b =
            IdGateway::start_with_key(sim.addr, &setup(&db, &redis), a.master_key.clone()).await;
        let http = client();
        let account = new_account(&http, &a).await;
        let tokens = login(&http, &a, &account).await;
        let (key_id, key) = create_key(&http, &a, &tokens.access, json!({"name": "k"})).await;
        let session = login(&http, &b, &account).await;
        // Both credentials are verified and cached on B before the outage.
        assert_eq!(proxied(&http, &b, &key).await.status(), 200);
        assert_eq!(proxied(&http, &b, &session.access).await.status(), 200);

        redis.stop();
        // Let B's subscriber notice the dropped connection.
        tokio::time::sleep(Duration::from_millis(500)).await;

        assert_eq!(
            revoke_key(&http, &a, &tokens.access, &key_id)
                .await
                .status(),
            204
        );
        let revoked_at = Instant::now();
        assert_eq!(proxied(&http, &a, &key).await.status(), 401, "A at once");
        refused_by(&http, &b, &key, "revoked key refused by B without Redis").await;
        let took = revoked_at.elapsed();
        assert!(
            took < TTL + SLACK,
            "revoked key still accepted by B after {took:?}"
        );

        assert_eq!(
            logout(&http, &a, &session.access, Some(&session.refresh))
                .await
                .status(),
            204
        );
        let logged_out_at = Instant::now();
        refused_by(&http, &b, &session.access, "logged-out token refused by B").await;
        let took = logged_out_at.elapsed();
        assert!(
            took < TTL + SLACK,
            "logged-out token still accepted by B after {took:?}"
        );

        // Unrelated credentials keep working on B throughout.
        assert_eq!(proxied(&http, &b, &tokens.access).await.status(), 200);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn a_redis_outage_blocks_neither_logins_nor_start_up() {
    within(TEST_TIMEOUT * 2, async {
        let db = PgDatabase::create();
        let mut redis = OwnRedis::start();
        let sim = Sim::start().await;
        let a = IdGateway::start(sim.addr, &setup(&db, &redis)).await;
        let http = client();
        let account = new_account(&http, &a).await;
        let victim = new_account(&http, &a).await;

        redis.stop();
        // Logins work without Redis…
        login(&http, &a, &account).await;
        // …and are still throttled, on the local counter (default 5 failures per account).
        for i in 0..5 {
            let resp = token(&http, &a, &victim.email, "wrong password, surely").await;
            assert_eq!(resp.status(), 401, "failure {i} without Redis: {resp:?}");
        }
        let throttled = token(&http, &a, &victim.email, &victim.password).await;
        assert_eq!(throttled.status(), 429, "local throttle: {throttled:?}");
        assert!(throttled.headers().contains_key("retry-after"));

        // A replica starts during the outage, is ready (Redis shown degraded) and serves logins.
        let b =
            IdGateway::start_with_key(sim.addr, &setup(&db, &redis), a.master_key.clone()).await;
        let ready = http.get(b.admin_url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "ready while Redis is down");
        let doc: serde_json::Value = ready.json().await.unwrap();
        let detail = doc["checks"]["redis"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.starts_with("degraded"), "readiness detail: {doc}");
        let samples = metrics(&http, &b).await;
        assert_eq!(
            prometheus::value(&samples, "computegate_notices_degraded", &[]),
            Some(1.0)
        );
        let on_b = login(&http, &b, &account).await;
        assert_eq!(proxied(&http, &b, &on_b.access).await.status(), 200);

        // Redis returns: the very first login on each replica works, and notices recover.
        redis.resume();
        login(&http, &a, &account).await;
        login(&http, &b, &account).await;
        eventually(
            Duration::from_secs(15),
            "notices reconnect on B",
            || async {
                let samples = metrics(&http, &b).await;
                prometheus::value(&samples, "computegate_notices_degraded", &[]) == Some(0.0)
            },
        )
        .await;
        let ready = http.get(b.admin_url("/readyz")).send().await.unwrap();
        let doc: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(doc["checks"]["redis"], "ok", "{doc}");
    })
    .await;
}

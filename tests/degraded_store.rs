//! Black-box tests of the PostgreSQL degraded mode, on a private PostgreSQL cluster that the
//! test freezes (SIGSTOP: a hang), and stops (the shared server is never touched).
//!
//! Once the health probe knows the database is down, the gateway answers at once: logins and
//! job admissions 503 with `Retry-After` (admissions fail closed), while plain authenticated
//! routes keep serving a principal's last known state for `auth.store_outage_grace` past
//! `auth.principal_cache_ttl`. When the database returns, everything works again without a
//! restart.

mod support;

use std::time::{Duration, Instant};

use support::identity::{Setup, eventually, login, metrics, proxied, token};
use support::metering::{Meter, job};
use support::outage::OwnPostgres;
use support::prometheus;
use support::{TEST_TIMEOUT, within};

/// Longest a refused request may take once the store is known down (it used to take the
/// pool's 10 s acquire timeout).
const FAST: Duration = Duration::from_secs(1);

async fn store_down(m: &Meter) -> bool {
    let samples = metrics(&m.http, &m.gw).await;
    prometheus::value(&samples, "computegate_store_down", &[]) == Some(1.0)
}

/// What every outage must look like from outside, whatever its kind.
async fn check_outage(m: &Meter, kind: &str, access: &str, email: &str) {
    eventually(
        Duration::from_secs(10),
        &format!("{kind}: store known down"),
        || store_down(m),
    )
    .await;
    // The principal entries are older than principal_cache_ttl by now.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let start = Instant::now();
    let resp = proxied(&m.http, &m.gw, access).await;
    assert_eq!(
        resp.status(),
        200,
        "{kind}: plain route within the grace: {resp:?}"
    );
    assert!(
        start.elapsed() < FAST,
        "{kind}: plain route took {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let resp = token(&m.http, &m.gw, email, support::identity::PASSWORD).await;
    assert_eq!(resp.status(), 503, "{kind}: login: {resp:?}");
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        start.elapsed() < FAST,
        "{kind}: login took {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let c = support::metering::Cust {
        id: String::new(),
        access: access.to_owned(),
    };
    let resp = m
        .submit(&c, &job("h100", 1, 1.0, &format!("{kind}-run")))
        .await;
    assert_eq!(
        resp.status(),
        503,
        "{kind}: admission fails closed: {resp:?}"
    );
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        start.elapsed() < FAST,
        "{kind}: admission took {:?}",
        start.elapsed()
    );
}

async fn check_recovery(m: &Meter, kind: &str, account: &support::identity::Account) {
    eventually(
        Duration::from_secs(15),
        &format!("{kind}: store back"),
        || async { !store_down(m).await },
    )
    .await;
    let tokens = login(&m.http, &m.gw, account).await;
    assert_eq!(proxied(&m.http, &m.gw, &tokens.access).await.status(), 200);
    let c = support::metering::Cust {
        id: account.customer_id.clone(),
        access: tokens.access,
    };
    let resp = m
        .submit(&c, &job("h100", 1, 1.0, &format!("{kind}-after")))
        .await;
    assert!(
        resp.status().is_success(),
        "{kind}: admission after recovery: {resp:?}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL binaries (scripts/test.sh)"]
async fn a_hung_or_stopped_database_fails_fast_and_plain_routes_keep_serving() {
    within(TEST_TIMEOUT * 3, async {
        let pg = OwnPostgres::start();
        let m = Meter::start_with(Setup {
            auth: "principal_cache_ttl = \"1s\"\nstore_outage_grace = \"60s\"".into(),
            database_url: Some(pg.url()),
            ..Setup::default()
        })
        .await;
        let account = support::identity::new_account(&m.http, &m.gw).await;
        let tokens = login(&m.http, &m.gw, &account).await;
        assert_eq!(proxied(&m.http, &m.gw, &tokens.access).await.status(), 200);

        // A hang: every process of the cluster stopped, connections left open.
        pg.freeze();
        check_outage(&m, "hang", &tokens.access, &account.email).await;
        pg.thaw();
        check_recovery(&m, "hang", &account).await;

        // A clean stop.
        assert_eq!(proxied(&m.http, &m.gw, &tokens.access).await.status(), 200);
        pg.stop();
        check_outage(&m, "stop", &tokens.access, &account.email).await;
        pg.resume();
        check_recovery(&m, "stop", &account).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL binaries (scripts/test.sh)"]
async fn without_grace_plain_routes_stop_at_the_cache_ttl() {
    within(TEST_TIMEOUT * 2, async {
        let pg = OwnPostgres::start();
        let m = Meter::start_with(Setup {
            auth: "principal_cache_ttl = \"1s\"\nstore_outage_grace = \"0s\"".into(),
            database_url: Some(pg.url()),
            ..Setup::default()
        })
        .await;
        let account = support::identity::new_account(&m.http, &m.gw).await;
        let tokens = login(&m.http, &m.gw, &account).await;
        assert_eq!(proxied(&m.http, &m.gw, &tokens.access).await.status(), 200);
        pg.stop();
        eventually(Duration::from_secs(10), "store known down", || {
            store_down(&m)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let start = Instant::now();
        let resp = proxied(&m.http, &m.gw, &tokens.access).await;
        assert_eq!(resp.status(), 503, "no grace: {resp:?}");
        assert!(resp.headers().contains_key("retry-after"));
        assert!(start.elapsed() < FAST, "took {:?}", start.elapsed());
    })
    .await;
}

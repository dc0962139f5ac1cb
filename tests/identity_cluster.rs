//! Black-box tests of two gateway processes sharing PostgreSQL and Redis: credentials created on
//! one work on the other, and revocation, logout, tier changes, suspension and signing-key
//! rotation reach the other replica within a second (the bound), while taking effect on
//! the local one at once.
//!
//! There is no staff endpoint for suspension or tier changes yet, so those tests change the
//! customer row with `psql` and publish the `customer_changed` notice a staff action would
//! publish; what they check is the replicas' reaction.

mod support;

use std::time::Duration;

use serde_json::json;

use support::cluster::{PgDatabase, publish_notice, redis_prefix, redis_url};
use support::identity::{
    IdGateway, Setup, create_key, echo_as, eventually, expect_invalid_token, jwks, kids, login,
    logout, me, new_account, proxied, refresh, revoke_key, seen, token, tokens_of,
    verify_with_jwks,
};
use support::{Sim, TEST_TIMEOUT, client, expect_problem, within};

/// The propagation bound of the issue.
const ONE_SECOND: Duration = Duration::from_secs(1);

/// Two gateways (A started first, so it creates the signing key) on one database and one Redis
/// prefix.
struct Pair {
    a: IdGateway,
    b: IdGateway,
    prefix: String,
    // Dropped last: the gateways go first.
    db: PgDatabase,
    sim: Sim,
}

async fn pair() -> Pair {
    let db = PgDatabase::create();
    let sim = Sim::start().await;
    let prefix = redis_prefix();
    let setup = Setup {
        database_url: Some(db.url.clone()),
        redis: Some((redis_url(), prefix.clone())),
        ..Setup::default()
    };
    let a = IdGateway::start(sim.addr, &setup).await;
    let b = IdGateway::start_with_key(sim.addr, &setup, a.master_key.clone()).await;
    Pair {
        a,
        b,
        prefix,
        db,
        sim,
    }
}

/// Polls `bearer` on B's proxied route until it gets `status`; asserts it took under a second.
async fn b_answers(http: &reqwest::Client, p: &Pair, bearer: &str, status: u16, what: &str) {
    let took = eventually(Duration::from_secs(5), what, || async {
        proxied(http, &p.b, bearer).await.status() == status
    })
    .await;
    assert!(
        took < ONE_SECOND,
        "{what}: took {took:?} on the other replica"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn revocation_and_logout_reach_the_other_replica_within_a_second() {
    within(TEST_TIMEOUT, async {
        let p = pair().await;
        let http = client();
        let account = new_account(&http, &p.a).await;
        let tokens = login(&http, &p.a, &account).await;

        // A key made on A works on B (and is cached there before it is revoked).
        let (id, key) = create_key(&http, &p.a, &tokens.access, json!({"name": "shared"})).await;
        for _ in 0..3 {
            let echo = echo_as(&http, &p.b, &key).await;
            assert_eq!(
                seen(&echo, "x-computegate-customer"),
                [account.customer_id.as_str()]
            );
        }
        assert_eq!(proxied(&http, &p.a, &key).await.status(), 200);
        assert_eq!(
            revoke_key(&http, &p.a, &tokens.access, &id).await.status(),
            204
        );
        expect_invalid_token(proxied(&http, &p.a, &key).await, "revoked key on A").await;
        b_answers(&http, &p, &key, 401, "revoked key refused by B").await;
        expect_invalid_token(proxied(&http, &p.b, &key).await, "revoked key on B").await;

        // Refresh rotation is shared: a token rotated on A is a reuse on B, killing the family.
        let rotated = tokens_of(refresh(&http, &p.a, &tokens.refresh).await).await;
        let reuse = refresh(&http, &p.b, &tokens.refresh).await;
        assert_eq!(reuse.status(), 401, "reuse on the other replica: {reuse:?}");
        let family = refresh(&http, &p.a, &rotated.refresh).await;
        assert_eq!(
            family.status(),
            401,
            "family revoked everywhere: {family:?}"
        );

        // Logout on A: the access token dies on A at once and on B within a second.
        let session = login(&http, &p.b, &account).await;
        assert_eq!(proxied(&http, &p.b, &session.access).await.status(), 200);
        assert_eq!(proxied(&http, &p.a, &session.access).await.status(), 200);
        let out = logout(&http, &p.a, &session.access, Some(&session.refresh)).await;
        assert_eq!(out.status(), 204);
        expect_invalid_token(
            proxied(&http, &p.a, &session.access).await,
            "logged out on A",
        )
        .await;
        b_answers(
            &http,
            &p,
            &session.access,
            401,
            "logged-out token refused by B",
        )
        .await;
        expect_invalid_token(
            me(&http, &p.b, &session.access).await,
            "logged out, /me on B",
        )
        .await;
        let refreshed = refresh(&http, &p.b, &session.refresh).await;
        assert_eq!(refreshed.status(), 401, "refresh family revoked by logout");

        // A replica that starts later knows about the logout from the store.
        let setup = Setup {
            database_url: Some(p.db.url.clone()),
            redis: Some((redis_url(), p.prefix.clone())),
            ..Setup::default()
        };
        let c = IdGateway::start_with_key(p.sim.addr, &setup, p.a.master_key.clone()).await;
        expect_invalid_token(
            proxied(&http, &c, &session.access).await,
            "logged out, on C",
        )
        .await;
        expect_invalid_token(proxied(&http, &c, &key).await, "revoked key, on C").await;
        assert_eq!(proxied(&http, &c, &tokens.access).await.status(), 200);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn tier_change_and_suspension_reach_every_replica_within_a_second() {
    within(TEST_TIMEOUT, async {
        let p = pair().await;
        let http = client();
        let account = new_account(&http, &p.a).await;
        let tokens = login(&http, &p.a, &account).await;
        let (_, key) = create_key(&http, &p.a, &tokens.access, json!({"name": "k"})).await;
        for gw in [&p.a, &p.b] {
            let echo = echo_as(&http, gw, &tokens.access).await;
            assert_eq!(seen(&echo, "x-computegate-tier"), ["unverified"]);
            echo_as(&http, gw, &key).await;
        }

        // Tier and organization change (as a staff decision would make them).
        let org = uuid::Uuid::new_v4();
        p.db.sql(&format!(
            "INSERT INTO organizations (id, name, created_at) VALUES ('{org}', 'Acme', now());\
             UPDATE customers SET tier = 'validated_end_user', organization_id = '{org}' \
             WHERE id = '{}'",
            account.customer_id
        ));
        let changed = json!({"type": "customer_changed", "customer_id": account.customer_id});
        publish_notice(&p.prefix, &changed).await;
        for (name, gw) in [("A", &p.a), ("B", &p.b)] {
            let took = eventually(Duration::from_secs(5), "tier change", || async {
                let echo = echo_as(&http, gw, &tokens.access).await;
                seen(&echo, "x-computegate-tier") == ["validated_end_user"]
            })
            .await;
            assert!(took < ONE_SECOND, "tier change took {took:?} on {name}");
            let echo = echo_as(&http, gw, &key).await;
            assert_eq!(
                seen(&echo, "x-computegate-tier"),
                ["validated_end_user"],
                "{name}"
            );
            assert_eq!(
                seen(&echo, "x-computegate-organization"),
                [org.to_string()],
                "{name}"
            );
        }

        // Suspension: every credential is refused (403) on both replicas within a second.
        p.db.sql(&format!(
            "UPDATE customers SET status = 'suspended' WHERE id = '{}'",
            account.customer_id
        ));
        publish_notice(&p.prefix, &changed).await;
        for (name, gw) in [("A", &p.a), ("B", &p.b)] {
            for bearer in [&tokens.access, &key] {
                let took = eventually(Duration::from_secs(5), "suspension", || async {
                    proxied(&http, gw, bearer).await.status() == 403
                })
                .await;
                assert!(took < ONE_SECOND, "suspension took {took:?} on {name}");
                expect_problem(proxied(&http, gw, bearer).await, 403, "forbidden").await;
            }
            let me_resp = me(&http, gw, &tokens.access).await;
            expect_problem(me_resp, 403, "forbidden").await;
            let relogin = token(&http, gw, &account.email, &account.password).await;
            expect_problem(relogin, 403, "forbidden").await;
            let fresh = refresh(&http, gw, &tokens.refresh).await;
            assert!(
                matches!(fresh.status().as_u16(), 401 | 403),
                "refresh of a suspended customer on {name}: {fresh:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn key_rotation_is_announced_to_every_replica() {
    within(TEST_TIMEOUT, async {
        let p = pair().await;
        let http = client();
        let account = new_account(&http, &p.a).await;
        let old = login(&http, &p.a, &account).await;
        for gw in [&p.a, &p.b] {
            assert_eq!(proxied(&http, gw, &old.access).await.status(), 200);
        }
        let before = kids(&jwks(&http, &p.a).await);
        assert_eq!(before, kids(&jwks(&http, &p.b).await), "one key set");

        let out = p.a.cli(&["keys", "rotate"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "keys rotate: {out:?}");
        assert!(stdout.contains("replicas notified"), "{stdout}");
        let new_kid = stdout.split_whitespace().nth(3).expect("kid").to_owned();

        for (name, gw) in [("A", &p.a), ("B", &p.b)] {
            let took = eventually(Duration::from_secs(5), "JWKS update", || async {
                kids(&jwks(&http, gw).await).contains(&new_kid)
            })
            .await;
            assert!(took < ONE_SECOND, "JWKS of {name} took {took:?}");
            let set = jwks(&http, gw).await;
            assert_eq!(kids(&set).len(), 2, "{name}: {set}");
            verify_with_jwks(&old.access, &set, "computegate-api").expect("old token verifies");
            assert_eq!(
                proxied(&http, gw, &old.access).await.status(),
                200,
                "{name}"
            );
        }
        for (signer, verifier) in [(&p.a, &p.b), (&p.b, &p.a)] {
            let fresh = login(&http, signer, &account).await;
            let kid = jsonwebtoken::decode_header(&fresh.access).unwrap().kid;
            assert_eq!(
                kid.as_deref(),
                Some(new_kid.as_str()),
                "signed with the new key"
            );
            assert_eq!(proxied(&http, verifier, &fresh.access).await.status(), 200);
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn migrate_on_postgres_is_idempotent() {
    within(TEST_TIMEOUT, async {
        let p = pair().await;
        for round in 0..2 {
            let out = p.b.cli(&["migrate"]);
            assert!(out.status.success(), "migrate round {round}: {out:?}");
        }
        let tables = p.db.sql(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_name IN ('customers', 'api_keys', 'signing_keys', 'refresh_tokens')",
        );
        assert_eq!(tables, "4");
        // The store still serves both replicas.
        let http = client();
        let account = new_account(&http, &p.b).await;
        let tokens = login(&http, &p.a, &account).await;
        assert_eq!(proxied(&http, &p.b, &tokens.access).await.status(), 200);
    })
    .await;
}

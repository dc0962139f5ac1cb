//! Black-box tests of identity through the real binary on its embedded SQLite store: sign-up,
//! the token lifecycle (refresh rotation and reuse detection, logout), JWKS verification with an
//! independent JWT library, signing-key rotation on a single node, API keys, secrets kept out of
//! debug logs, and the authentication metrics. Identity headers: `identity_headers.rs`.

mod support;

use std::time::Duration;

use serde_json::json;

use support::identity::{
    IdGateway, Setup, assert_no_store, claims_unverified, counter, create_key, echo_as,
    expect_invalid_token, expect_unauthenticated, jwks, kids, login, logout, me, metrics,
    new_account, proxied, refresh, revoke_key, seen, signup, token, tokens_of, verify_with_jwks,
};
use support::{Sim, TEST_TIMEOUT, client, expect_problem, within};

#[tokio::test]
async fn token_lifecycle_signup_refresh_reuse_and_logout() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();

        // Sign-up normalizes the email; the same address in another case is taken.
        let resp = signup(&http, &gw, "Alice@Example.COM", "correct horse battery").await;
        assert_eq!(resp.status(), 201, "{resp:?}");
        let customer_id = resp.json::<serde_json::Value>().await.unwrap()["customer_id"]
            .as_str()
            .expect("customer_id")
            .to_owned();
        for again in ["alice@example.com", " ALICE@example.com "] {
            let resp = signup(&http, &gw, again, "another good password").await;
            expect_problem(resp, 409, "conflict").await;
        }

        let resp = token(&http, &gw, "alice@example.com", "correct horse battery").await;
        assert_no_store(&resp, "customer token answer");
        let first = tokens_of(resp).await;
        let doc: serde_json::Value = me(&http, &gw, &first.access).await.json().await.unwrap();
        assert_eq!(doc["customer_id"], customer_id.as_str(), "{doc}");
        assert_eq!(doc["email"], "alice@example.com", "{doc}");
        assert_eq!(doc["status"], "active", "{doc}");
        assert_eq!(doc["tier"], "unverified", "{doc}");

        // The upstream sees who is calling, never the caller's credential.
        let echo = echo_as(&http, &gw, &first.access).await;
        assert_eq!(
            seen(&echo, "x-computegate-customer"),
            [customer_id.as_str()]
        );
        assert_eq!(seen(&echo, "x-computegate-tier"), ["unverified"]);
        assert!(
            seen(&echo, "x-computegate-organization").is_empty(),
            "{echo}"
        );
        assert!(seen(&echo, "authorization").is_empty(), "{echo}");

        // Refresh rotates: the new refresh token works, the used one is dead, and reusing it
        // revokes the whole family (the new one too).
        let resp = refresh(&http, &gw, &first.refresh).await;
        assert_no_store(&resp, "refresh answer");
        let second = tokens_of(resp).await;
        assert_ne!(second.refresh, first.refresh);
        assert_eq!(me(&http, &gw, &second.access).await.status(), 200);
        let reuse = refresh(&http, &gw, &first.refresh).await;
        expect_unauthenticated(reuse, "reused refresh token").await;
        let after_reuse = refresh(&http, &gw, &second.refresh).await;
        expect_unauthenticated(after_reuse, "refresh token of a revoked family").await;

        // Logout refuses the access token at once, on the API and on the data plane, and
        // revokes the refresh token it was given.
        let third =
            tokens_of(token(&http, &gw, "ALICE@example.com", "correct horse battery").await).await;
        assert_eq!(proxied(&http, &gw, &third.access).await.status(), 200);
        let out = logout(&http, &gw, &third.access, Some(&third.refresh)).await;
        assert_eq!(out.status(), 204, "{out:?}");
        expect_invalid_token(me(&http, &gw, &third.access).await, "/me after logout").await;
        let data_plane = proxied(&http, &gw, &third.access).await;
        expect_invalid_token(data_plane, "proxied call after logout").await;
        let dead = refresh(&http, &gw, &third.refresh).await;
        expect_unauthenticated(dead, "refresh token revoked by logout").await;
        // Other sessions of the same customer are untouched.
        assert_eq!(proxied(&http, &gw, &second.access).await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn jwks_verifies_access_tokens_with_an_independent_library() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;

        let set = jwks(&http, &gw).await;
        let keys = set["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{set}");
        let jwk = &keys[0];
        assert_eq!(jwk["kty"], "OKP", "{set}");
        assert_eq!(jwk["crv"], "Ed25519", "{set}");
        assert_eq!(jwk["alg"], "EdDSA", "{set}");
        assert!(
            jwk.get("d").is_none(),
            "the JWKS must not publish private keys: {set}"
        );

        let header = jsonwebtoken::decode_header(&tokens.access).expect("JWT header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(
            header.kid.as_deref(),
            jwk["kid"].as_str(),
            "kid names the JWKS key"
        );
        let claims = verify_with_jwks(&tokens.access, &set, "computegate-api")
            .unwrap_or_else(|e| panic!("access token does not verify: {e}"));
        assert_eq!(claims["iss"], "computegate");
        assert_eq!(claims["aud"], "computegate-api");
        assert_eq!(claims["sub"], account.customer_id.as_str());
        assert_eq!(claims["tier"], "unverified");
        assert_eq!(claims["status"], "active");
        assert!(
            claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
            "{claims}"
        );
        let (iat, nbf, exp) = (&claims["iat"], &claims["nbf"], &claims["exp"]);
        assert_eq!(
            exp.as_i64().unwrap() - iat.as_i64().unwrap(),
            900,
            "15 min default"
        );
        assert!(nbf.as_i64().unwrap() <= iat.as_i64().unwrap(), "{claims}");
        // The verifier really checks: a wrong audience or a tampered payload fails.
        assert!(verify_with_jwks(&tokens.access, &set, "computegate-staff").is_err());
        let mut parts: Vec<&str> = tokens.access.split('.').collect();
        let other = login(&http, &gw, &account).await;
        let other_payload = other.access.split('.').nth(1).unwrap().to_owned();
        parts[1] = &other_payload;
        assert!(verify_with_jwks(&parts.join("."), &set, "computegate-api").is_err());
    })
    .await;
}

/// Without Redis the CLI cannot tell a running gateway about a rotation; the gateway re-reads
/// its keys every minute.
#[tokio::test]
async fn rotated_signing_key_is_published_and_old_tokens_keep_working() {
    within(Duration::from_secs(150), async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let old = login(&http, &gw, &account).await;
        let before = kids(&jwks(&http, &gw).await);
        assert_eq!(before.len(), 1);

        let out = gw.cli(&["keys", "rotate"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "keys rotate: {out:?}");
        assert!(stdout.contains("new signing key"), "{stdout}");

        assert_eq!(me(&http, &gw, &old.access).await.status(), 200);
        let started = std::time::Instant::now();
        let mut now_kids = before.clone();
        while now_kids.len() < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(65),
                "JWKS still lists {now_kids:?} after 65 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            now_kids = kids(&jwks(&http, &gw).await);
        }
        assert!(
            now_kids.contains(&before[0]),
            "old key still published: {now_kids:?}"
        );
        let set = jwks(&http, &gw).await;
        verify_with_jwks(&old.access, &set, "computegate-api").expect("old token verifies");
        assert_eq!(proxied(&http, &gw, &old.access).await.status(), 200);

        let new = login(&http, &gw, &account).await;
        let new_kid = jsonwebtoken::decode_header(&new.access)
            .unwrap()
            .kid
            .unwrap();
        assert_ne!(new_kid, before[0], "new tokens are signed with the new key");
        verify_with_jwks(&new.access, &set, "computegate-api").expect("new token verifies");
        assert_eq!(proxied(&http, &gw, &new.access).await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn api_keys_are_shown_once_work_upstream_and_die_on_revocation() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;

        let (id, key) = create_key(&http, &gw, &tokens.access, json!({"name": "ci"})).await;
        assert!(
            key.starts_with(&format!("cg_{id}_")),
            "key {key} names its id {id}"
        );
        let secret = &key[format!("cg_{id}_").len()..];
        assert!(secret.len() >= 32, "secret is long enough: {key}");

        let list = http
            .get(gw.url("/computegate/v1/keys"))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), 200);
        let text = list.text().await.unwrap();
        assert!(!text.contains(secret), "the list shows no secret: {text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["keys"][0]["id"], id.as_str(), "{doc}");
        assert_eq!(doc["keys"][0]["name"], "ci", "{doc}");

        for _ in 0..3 {
            let echo = echo_as(&http, &gw, &key).await;
            assert_eq!(
                seen(&echo, "x-computegate-customer"),
                [account.customer_id.as_str()]
            );
            assert_eq!(seen(&echo, "x-computegate-tier"), ["unverified"]);
            assert!(seen(&echo, "authorization").is_empty(), "{echo}");
        }
        assert_eq!(
            me(&http, &gw, &key).await.status(),
            200,
            "keys work on /me too"
        );

        let wrong_secret = format!("cg_{id}_{}", "A".repeat(secret.len()));
        let garbage = [
            "cgx_abc_def".to_owned(),
            format!("cg{id}_{secret}"),
            wrong_secret.clone(),
            format!("cg_{id}_"),
            format!("cg_{id}"),
            "cg_unknownkeyid0000_abcdefabcdefabcdefabcdefabcdef".to_owned(),
            "cg_a.b_c".to_owned(),
            format!("cg_{id}_{secret}{}", "x".repeat(300)),
            "garbage".to_owned(),
        ];
        for bad in &garbage {
            for _ in 0..2 {
                let resp = proxied(&http, &gw, bad).await;
                expect_invalid_token(resp, &format!("API key {bad:?}")).await;
            }
        }

        let resp = revoke_key(&http, &gw, &tokens.access, &id).await;
        assert_eq!(resp.status(), 204, "{resp:?}");
        expect_invalid_token(proxied(&http, &gw, &key).await, "revoked key").await;
        expect_invalid_token(me(&http, &gw, &key).await, "revoked key on /me").await;
        let again = revoke_key(&http, &gw, &tokens.access, &id).await;
        assert!(
            matches!(again.status().as_u16(), 204 | 404),
            "second revocation (idempotent or gone): {again:?}"
        );

        // Another customer cannot revoke (or see) someone else's key.
        let (id2, key2) = create_key(&http, &gw, &tokens.access, json!({"name": "two"})).await;
        let intruder = login(&http, &gw, &new_account(&http, &gw).await).await;
        let resp = revoke_key(&http, &gw, &intruder.access, &id2).await;
        expect_problem(resp, 404, "not-found").await;
        assert_eq!(proxied(&http, &gw, &key2).await.status(), 200);

        // Metrics: the key's successes (cache hits after the first), and the refusals.
        let m = metrics(&http, &gw).await;
        let attempts = "computegate_auth_attempts_total";
        let ok = counter(&m, attempts, &[("method", "api_key"), ("result", "ok")]);
        assert!(ok >= 5.0, "api_key ok = {ok}");
        let invalid = counter(
            &m,
            attempts,
            &[("method", "api_key"), ("result", "invalid")],
        );
        assert!(invalid >= 6.0, "api_key invalid = {invalid}");
        let hits = counter(
            &m,
            "computegate_auth_cache_total",
            &[("cache", "api_key"), ("result", "hit")],
        );
        assert!(hits >= 3.0, "api_key cache hits = {hits}");
        let jwt_ok = counter(&m, attempts, &[("method", "jwt"), ("result", "ok")]);
        assert!(jwt_ok >= 1.0, "jwt ok = {jwt_ok}");
    })
    .await;
}

#[tokio::test]
async fn expired_api_key_is_refused() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let tokens = login(&http, &gw, &new_account(&http, &gw).await).await;
        let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let past = past
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let resp = http
            .post(gw.url("/computegate/v1/keys"))
            .bearer_auth(&tokens.access)
            .json(&json!({"name": "old", "expires_at": past}))
            .send()
            .await
            .unwrap();
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(doc["errors"][0]["field"], "expires_at", "{doc}");

        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
        let soon = soon
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = json!({"name": "short", "expires_at": soon});
        let (_, key) = create_key(&http, &gw, &tokens.access, body).await;
        assert_eq!(
            proxied(&http, &gw, &key).await.status(),
            200,
            "valid until expiry"
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        expect_invalid_token(proxied(&http, &gw, &key).await, "expired key (cached)").await;
        expect_invalid_token(me(&http, &gw, &key).await, "expired key on /me").await;
    })
    .await;
}

#[tokio::test]
async fn secrets_never_appear_in_debug_logs() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let setup = Setup {
            log_level: "debug",
            ..Setup::default()
        };
        let gw = IdGateway::start(sim.addr, &setup).await;
        let http = client();
        let password = "planted-Passw0rd-7f3a9c";
        let wrong = "planted-WrongPass-1b2c3d";
        let email = support::identity::unique_email("leak");
        assert_eq!(signup(&http, &gw, &email, password).await.status(), 201);
        assert_eq!(token(&http, &gw, &email, wrong).await.status(), 401);
        let tokens = tokens_of(token(&http, &gw, &email, password).await).await;
        let (id, key) = create_key(&http, &gw, &tokens.access, json!({"name": "k"})).await;
        let secret = key[format!("cg_{id}_").len()..].to_owned();
        echo_as(&http, &gw, &key).await;
        assert_eq!(me(&http, &gw, &key).await.status(), 200);
        let wrong_key = format!("cg_{id}_{}", "Z".repeat(secret.len()));
        assert_eq!(proxied(&http, &gw, &wrong_key).await.status(), 401);
        let fresh = tokens_of(refresh(&http, &gw, &tokens.refresh).await).await;
        assert_eq!(refresh(&http, &gw, &tokens.refresh).await.status(), 401);
        assert_eq!(
            logout(&http, &gw, &fresh.access, Some(&fresh.refresh))
                .await
                .status(),
            204
        );
        assert_eq!(proxied(&http, &gw, &fresh.access).await.status(), 401);

        tokio::time::sleep(Duration::from_millis(300)).await;
        let logs = gw.proc.stderr();
        assert!(logs.contains("DEBUG"), "debug logging is on:\n{logs}");
        let planted = [
            ("password", password.to_owned()),
            ("wrong password", wrong.to_owned()),
            ("API key secret", secret),
            ("wrong API key secret", "Z".repeat(20)),
            ("refresh token", tokens.refresh.clone()),
            ("rotated refresh token", fresh.refresh.clone()),
            ("access token", tokens.access.clone()),
            (
                "access token signature",
                tokens.access.rsplit('.').next().unwrap().to_owned(),
            ),
        ];
        for (what, value) in planted {
            assert!(!logs.contains(&value), "the {what} appears in the logs");
        }
    })
    .await;
}

#[tokio::test]
async fn me_reports_the_account_state_and_requires_a_customer_token() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        let doc: serde_json::Value = me(&http, &gw, &tokens.access).await.json().await.unwrap();
        assert_eq!(doc["status"], "active", "{doc}");
        assert_eq!(doc["kind"], "individual", "{doc}");
        assert_eq!(doc["organization_id"], serde_json::Value::Null, "{doc}");
        assert!(doc.get("password_hash").is_none(), "{doc}");
        let claims = claims_unverified(&tokens.access);
        assert_eq!(claims["status"], "active", "{claims}");
        let none = http.get(gw.url("/computegate/v1/me")).send().await.unwrap();
        expect_unauthenticated(none, "/me without a credential").await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_method_on_a_control_plane_route_is_a_problem_document() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let resp = http
            .delete(gw.url("/computegate/v1/auth/token"))
            .send()
            .await
            .unwrap();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(allow.as_deref(), Some("POST"), "the Allow header is kept");
        let doc = expect_problem(resp, 405, "method-not-allowed").await;
        assert!(doc["detail"].as_str().is_some(), "{doc}");
    })
    .await;
}

//! Bounded work before authentication, through the real binary: a client address that keeps
//! failing is throttled before any signature check, an API-key id that keeps failing before
//! any hash, unknown key ids never queue for argon2, argon2 itself runs under a concurrency
//! bound (503 + `Retry-After` beyond it) for logins too, and sign-ups are throttled.

mod support;

use std::time::Duration;

use serde_json::json;

use support::identity::{
    IdGateway, PASSWORD, Setup, create_key, identity_config, login, master_key, new_account,
    proxied, signup, token, unique_email,
};
use support::{Gateway, Sim, client, expect_problem, within};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A gateway in front of `sim` with `auth` lines and extra environment overrides.
async fn gateway(sim: &Sim, auth: &str, env: &[(&str, &str)]) -> IdGateway {
    let key = master_key();
    let body = identity_config(sim.addr, &Setup::auth(auth));
    let mut all = vec![("COMPUTEGATE_MASTER_KEY", key.as_str())];
    all.extend_from_slice(env);
    let gw = Gateway::start_with_env(&body, &all).await;
    IdGateway {
        gw,
        master_key: key,
    }
}

/// Asserts a 429 `auth-throttled` problem with a `Retry-After`.
async fn expect_throttled(resp: reqwest::Response, what: &str) {
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| s >= 1),
        "{what}: Retry-After {retry:?}"
    );
    expect_problem(resp, 429, "auth-throttled").await;
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_throttled_but_cached_credentials_still_work() {
    within(TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = gateway(&sim, "failed_auth_per_address = 5", &[]).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        assert_eq!(proxied(&http, &gw, &tokens.access).await.status(), 200);
        let (_, key) = create_key(&http, &gw, &tokens.access, json!({"name": "ci"})).await;
        assert_eq!(proxied(&http, &gw, &key).await.status(), 200);
        // A forged token with a valid shape: each costs a signature check until throttled.
        let mut parts: Vec<String> = tokens.access.split('.').map(str::to_owned).collect();
        parts[2] = format!("{}AAAA", &parts[2][..parts[2].len() - 4]);
        let forged = parts.join(".");
        for i in 0..5 {
            let resp = proxied(&http, &gw, &forged).await;
            assert_eq!(resp.status(), 401, "failure {i} is answered normally");
        }
        // Past the limit, refusals are sent after `auth.failed_auth_delay` (1 s by default).
        let started = std::time::Instant::now();
        expect_throttled(proxied(&http, &gw, &forged).await, "forged token").await;
        let random_key = format!("cg_{}_{}", "Q".repeat(16), "A".repeat(43));
        expect_throttled(proxied(&http, &gw, &random_key).await, "forged key").await;
        let late = started.elapsed();
        assert!(
            late >= Duration::from_secs(2),
            "two late refusals: {late:?}"
        );
        // Credentials verified before are served from memory, at once, throttled address or not.
        let started = std::time::Instant::now();
        assert_eq!(proxied(&http, &gw, &tokens.access).await.status(), 200);
        assert_eq!(proxied(&http, &gw, &key).await.status(), 200);
        let quick = started.elapsed();
        assert!(
            quick < Duration::from_secs(1),
            "cached: not delayed ({quick:?})"
        );
        // A throttled login is answered late too (five failures lock the account's logins).
        for _ in 0..5 {
            let resp = token(&http, &gw, &account.email, "not the password").await;
            assert_eq!(resp.status(), 401);
        }
        let started = std::time::Instant::now();
        let resp = token(&http, &gw, &account.email, PASSWORD).await;
        expect_problem(resp, 429, "throttled").await;
        let late = started.elapsed();
        assert!(late >= Duration::from_secs(1), "throttled login: {late:?}");
    })
    .await;
}

#[tokio::test]
async fn a_key_id_that_keeps_failing_is_throttled_before_the_hash() {
    within(TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = gateway(
            &sim,
            "failed_auth_per_address = 0\nfailed_auth_per_key = 3",
            &[],
        )
        .await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        let (id, key) = create_key(&http, &gw, &tokens.access, json!({"name": "ci"})).await;
        assert_eq!(proxied(&http, &gw, &key).await.status(), 200, "owner first");
        for i in 0..3 {
            let guess = format!("cg_{id}_{}{i}", "B".repeat(42));
            assert_eq!(proxied(&http, &gw, &guess).await.status(), 401);
        }
        let guess = format!("cg_{id}_{}", "C".repeat(43));
        expect_throttled(proxied(&http, &gw, &guess).await, "guessing one key id").await;
        assert_eq!(
            proxied(&http, &gw, &key).await.status(),
            200,
            "the owner's cached key is not locked out"
        );
    })
    .await;
}

#[tokio::test]
async fn argon2_is_bounded_unknown_key_ids_never_wait_for_it_and_logins_get_503_beyond() {
    within(TIMEOUT, async {
        let sim = Sim::start().await;
        // Slow hashes, one at a time, one waiting: the bound is easy to exceed.
        let env = [
            ("COMPUTEGATE_AUTH__ARGON2_MEMORY_KIB", "32768"),
            ("COMPUTEGATE_AUTH__ARGON2_ITERATIONS", "6"),
            ("COMPUTEGATE_AUTH__ARGON2_CONCURRENCY", "1"),
            ("COMPUTEGATE_AUTH__ARGON2_QUEUE", "1"),
            ("COMPUTEGATE_AUTH__FAILED_AUTH_PER_ADDRESS", "0"),
        ];
        let gw = gateway(&sim, "", &env).await;
        let http = client();
        // Forged keys with random ids, all at once: refused after an id lookup, no hashing,
        // so none is ever told the hasher is busy.
        let forged = (0..16).map(|i| {
            let key = format!("cg_{:0>16}_{}", format!("forged{i}"), "A".repeat(43));
            let http = http.clone();
            let url = gw.url("/v1/echo");
            async move {
                http.get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            }
        });
        let statuses = futures_util::future::join_all(forged).await;
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
        // Logins all at once: one hashes, one waits, the rest are told to come back.
        let email = unique_email("gate");
        assert_eq!(signup(&http, &gw, &email, PASSWORD).await.status(), 201);
        let logins = (0..12).map(|_| {
            let http = http.clone();
            let gw = &gw;
            let email = email.clone();
            async move { token(&http, gw, &email, PASSWORD).await }
        });
        let answers = futures_util::future::join_all(logins).await;
        let mut busy = 0;
        for resp in answers {
            match resp.status().as_u16() {
                200 => {}
                503 => {
                    assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
                    busy += 1;
                }
                other => panic!("unexpected {other}: {resp:?}"),
            }
        }
        assert!(
            busy >= 1,
            "the bound must refuse some of 12 concurrent logins"
        );
        assert!(!gw.proc.stderr().contains("panicked"));
    })
    .await;
}

#[tokio::test]
async fn sign_ups_are_throttled_per_client_address() {
    within(TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = gateway(&sim, "signup_max_per_ip = 3", &[]).await;
        let http = client();
        for _ in 0..3 {
            let email = unique_email("signup");
            assert_eq!(signup(&http, &gw, &email, PASSWORD).await.status(), 201);
        }
        let resp = signup(&http, &gw, &unique_email("signup"), PASSWORD).await;
        assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
        assert_eq!(resp.status(), 429, "{resp:?}");
    })
    .await;
}

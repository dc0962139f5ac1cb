//! Login throttles through the real binary: customer and staff logins count apart (failed
//! customer logins with a staff member's email never lock that staff member out of the admin
//! listener), and behind a trusted load balancer the per-address counter is kept per client
//! address from the forwarding headers, not per balancer (on the admin listener only when it
//! trusts its own proxy). In process and in Redis.

mod support;

use std::ffi::OsStr;

use serde_json::json;

use support::cluster::{redis_prefix, redis_url};
use support::identity::{
    IdGateway, Setup, expect_unauthenticated, identity_config, master_key, token, unique_email,
};
use support::{Gateway, Sim, TEST_TIMEOUT, client, expect_problem, within};

const STAFF_PASSWORD: &str = "staff password 12345";

/// Creates an admin staff user on `gw`'s store with the CLI.
fn staff_create(gw: &IdGateway, email: &str) {
    let config = gw.config_path();
    let args = [
        "staff",
        "create",
        "--email",
        email,
        "--role",
        "admin",
        "--password-stdin",
    ]
    .map(OsStr::new);
    let mut all = args.to_vec();
    all.extend([OsStr::new("--config"), config.as_os_str()]);
    let out =
        support::run_cli_with_stdin(&all, &gw.env(), format!("{STAFF_PASSWORD}\n").as_bytes());
    assert!(out.status.success(), "staff create: {out:?}");
}

async fn staff_token(http: &reqwest::Client, gw: &IdGateway, email: &str) -> reqwest::Response {
    http.post(gw.admin_url("/staff/v1/auth/token"))
        .json(&json!({"email": email, "password": STAFF_PASSWORD}))
        .send()
        .await
        .expect("send staff token request")
}

async fn staff_not_locked_out_by_customer_logins(setup: Setup) {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &setup).await;
        let http = client();
        let email = unique_email("officer");
        staff_create(&gw, &email);
        // Five bad customer logins naming the staff member's email use up that email's
        // customer counter …
        for _ in 0..5 {
            let resp = token(&http, &gw, &email, "guessing, wrong").await;
            expect_unauthenticated(resp, "customer login with a staff email").await;
        }
        let resp = token(&http, &gw, &email, "guessing, wrong").await;
        expect_problem(resp, 429, "throttled").await;
        // … and the staff member still signs in on the admin listener.
        let resp = staff_token(&http, &gw, &email).await;
        assert_eq!(resp.status(), 200, "staff login after customer failures");
    })
    .await;
}

#[tokio::test]
async fn customer_failures_do_not_lock_out_staff_in_process() {
    staff_not_locked_out_by_customer_logins(Setup::default()).await;
}

#[tokio::test]
#[ignore = "needs Redis (COMPUTEGATE_TEST_REDIS_URL)"]
async fn customer_failures_do_not_lock_out_staff_in_redis() {
    staff_not_locked_out_by_customer_logins(Setup {
        redis: Some((redis_url(), redis_prefix())),
        ..Setup::default()
    })
    .await;
}

/// A bad login (customer or staff, by `token_url`) sent as if through a load balancer for
/// `client_ip`.
async fn forwarded_login(
    http: &reqwest::Client,
    token_url: &str,
    client_ip: &str,
) -> reqwest::Response {
    http.post(token_url)
        // The client may send its own X-Forwarded-For; the balancer appends what it saw.
        .header("x-forwarded-for", format!("203.0.113.250, {client_ip}"))
        .json(&json!({"email": unique_email("nobody"), "password": "guessing, wrong"}))
        .send()
        .await
        .expect("send token request")
}

async fn throttles_by_forwarded_address(setup: Setup) {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let key = master_key();
        let gw = Gateway::start_with_env(
            &identity_config(sim.addr, &setup),
            &[
                ("COMPUTEGATE_MASTER_KEY", key.as_str()),
                ("COMPUTEGATE_SERVER__TRUST_FORWARDED_HEADERS", "true"),
            ],
        )
        .await;
        let http = client();
        let customer_url = gw.url("/computegate/v1/auth/token");
        // Three failures from one client address exhaust its counter …
        for _ in 0..3 {
            let resp = forwarded_login(&http, &customer_url, "198.51.100.7").await;
            expect_unauthenticated(resp, "bad login").await;
        }
        let resp = forwarded_login(&http, &customer_url, "198.51.100.7").await;
        expect_problem(resp, 429, "throttled").await;
        // … while another client behind the same balancer is not locked out.
        let resp = forwarded_login(&http, &customer_url, "198.51.100.8").await;
        expect_unauthenticated(resp, "another client behind the balancer").await;
    })
    .await;
}

/// The data plane's failed-authentication throttle (and its delay) also counts per client
/// behind a trusted balancer: one forger cannot lock out every customer's new credentials.
#[tokio::test]
async fn bearer_throttle_counts_the_forwarded_client_not_the_balancer() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let key = master_key();
        let setup = Setup::auth("failed_auth_per_address = 3");
        let gw = Gateway::start_with_env(
            &identity_config(sim.addr, &setup),
            &[
                ("COMPUTEGATE_MASTER_KEY", key.as_str()),
                ("COMPUTEGATE_SERVER__TRUST_FORWARDED_HEADERS", "true"),
            ],
        )
        .await;
        let http = client();
        let account = support::identity::new_account(&http, &gw).await;
        let tokens = support::identity::login(&http, &gw, &account).await;
        let echo = |bearer: String, client_ip: &str| {
            http.get(gw.url("/v1/echo"))
                .header("authorization", format!("Bearer {bearer}"))
                .header("x-forwarded-for", format!("203.0.113.250, {client_ip}"))
                .send()
        };
        let forged = format!("cg_{}_{}", "Q".repeat(16), "A".repeat(43));
        for _ in 0..3 {
            let resp = echo(forged.clone(), "198.51.100.66").await.expect("send");
            assert_eq!(resp.status(), 401);
        }
        let resp = echo(forged.clone(), "198.51.100.66").await.expect("send");
        expect_problem(resp, 429, "auth-throttled").await;
        // A customer behind the same balancer, with a credential never seen before (not
        // cached): verified and served at once.
        let started = std::time::Instant::now();
        let resp = echo(tokens.access.clone(), "198.51.100.67")
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{resp:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    })
    .await;
}

#[tokio::test]
async fn throttles_by_the_forwarded_client_address_in_process() {
    throttles_by_forwarded_address(Setup::auth("login_max_failures_per_ip = 3")).await;
}

#[tokio::test]
#[ignore = "needs Redis (COMPUTEGATE_TEST_REDIS_URL)"]
async fn throttles_by_the_forwarded_client_address_in_redis() {
    throttles_by_forwarded_address(Setup {
        redis: Some((redis_url(), redis_prefix())),
        ..Setup::auth("login_max_failures_per_ip = 3")
    })
    .await;
}

/// Staff logins on the admin listener count per forwarded client address only with
/// `server.admin_trust_forwarded_headers`; trusting the public listener's headers
/// (`server.trust_forwarded_headers`, on in both runs) does not make the admin listener trust
/// them, so there the sent `X-Forwarded-For` is ignored and every failure counts against the
/// peer address.
async fn staff_logins_count_per_forwarded_client_only_when_trusted(admin_trusts: bool) {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let key = master_key();
        let setup = Setup::auth("login_max_failures_per_ip = 3");
        let gw = Gateway::start_with_env(
            &identity_config(sim.addr, &setup),
            &[
                ("COMPUTEGATE_MASTER_KEY", key.as_str()),
                ("COMPUTEGATE_SERVER__TRUST_FORWARDED_HEADERS", "true"),
                (
                    "COMPUTEGATE_SERVER__ADMIN_TRUST_FORWARDED_HEADERS",
                    if admin_trusts { "true" } else { "false" },
                ),
            ],
        )
        .await;
        let http = client();
        let staff_url = gw.admin_url("/staff/v1/auth/token");
        for _ in 0..3 {
            let resp = forwarded_login(&http, &staff_url, "198.51.100.7").await;
            assert_eq!(resp.status(), 401, "bad staff login");
        }
        let resp = forwarded_login(&http, &staff_url, "198.51.100.7").await;
        expect_problem(resp, 429, "throttled").await;
        let resp = forwarded_login(&http, &staff_url, "198.51.100.8").await;
        if admin_trusts {
            assert_eq!(resp.status(), 401, "another client behind the proxy");
        } else {
            expect_problem(resp, 429, "throttled").await;
        }
    })
    .await;
}

#[tokio::test]
async fn staff_logins_count_per_forwarded_client_when_the_admin_listener_trusts_its_proxy() {
    staff_logins_count_per_forwarded_client_only_when_trusted(true).await;
}

#[tokio::test]
async fn staff_logins_count_per_peer_when_only_the_public_listener_trusts_forwarding() {
    staff_logins_count_per_forwarded_client_only_when_trusted(false).await;
}

//! Black-box tests of the operator commands on the store (`migrate`, `staff create`,
//! `keys rotate`), of staff sign-in on the admin listener, and of start-up refusals about the
//! master key.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use support::identity::{
    IdGateway, Setup, claims_unverified, expect_unauthenticated, identity_config, jwks, login,
    master_key, me, new_account, proxied, tokens_of, unique_email, verify_with_jwks,
};
use support::{PROBLEM_BASE, Proc, Sim, TEST_TIMEOUT, TempDir, client, run_cli, within};

/// `computegate staff create --email E --role R --password-stdin <target…>` with `password`.
fn staff_create(
    email: &str,
    role: &str,
    password: &str,
    target: &[&OsStr],
    env: &[(&str, &str)],
) -> Output {
    let mut args: Vec<&OsStr> = [
        "staff",
        "create",
        "--email",
        email,
        "--role",
        role,
        "--password-stdin",
    ]
    .map(OsStr::new)
    .to_vec();
    args.extend_from_slice(target);
    support::run_cli_with_stdin(&args, env, format!("{password}\n").as_bytes())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a 401 problem from the admin listener (everything but `X-Request-Id`, which is
/// checked separately); returns whether the answer carried `X-Request-Id`.
async fn admin_unauthenticated(resp: reqwest::Response, what: &str) -> bool {
    assert_eq!(resp.status(), 401, "{what}: {resp:?}");
    let headers = resp.headers().clone();
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "{what}"
    );
    let challenge = headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{what}: {challenge:?}"
    );
    let doc: serde_json::Value = resp.json().await.expect("problem JSON");
    assert_eq!(
        doc["type"],
        format!("{PROBLEM_BASE}unauthenticated"),
        "{what}: {doc}"
    );
    headers.contains_key("x-request-id")
}

/// `POST /staff/v1/auth/token` on the admin listener.
async fn staff_token(
    http: &reqwest::Client,
    gw: &IdGateway,
    email: &str,
    password: &str,
) -> reqwest::Response {
    http.post(gw.admin_url("/staff/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("send staff token request")
}

#[tokio::test]
async fn staff_created_by_the_cli_signs_in_on_the_admin_listener_only() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let config = gw.config_path();
        let target = [OsStr::new("--config"), config.as_os_str()];
        let email = unique_email("boss");
        let out = staff_create(&email, "admin", "staff password 12345", &target, &gw.env());
        assert!(out.status.success(), "staff create: {out:?}");
        assert!(
            text(&out.stdout).contains(&email.to_lowercase()),
            "{}",
            text(&out.stdout)
        );
        assert!(
            !text(&out.stdout).contains("staff password 12345"),
            "password echoed"
        );

        let resp = staff_token(&http, &gw, &email.to_lowercase(), "staff password 12345").await;
        let cache_control = resp.headers().get("cache-control").cloned();
        let staff = tokens_of(resp).await;
        let claims = verify_with_jwks(&staff.access, &jwks(&http, &gw).await, "computegate-staff")
            .unwrap_or_else(|e| panic!("staff token does not verify: {e}"));
        assert_eq!(claims["role"], "admin", "{claims}");
        let wrong = staff_token(&http, &gw, &email, "not the password!").await;
        let wrong_has_id = admin_unauthenticated(wrong, "staff login with a wrong password").await;

        // The staff token is no customer credential, and staff sign-in is not on the data plane.
        expect_unauthenticated(me(&http, &gw, &staff.access).await, "staff token on /me").await;
        expect_unauthenticated(
            proxied(&http, &gw, &staff.access).await,
            "staff token proxied",
        )
        .await;
        let public = http
            .post(gw.url("/staff/v1/auth/token"))
            .json(&json!({"email": email, "password": "staff password 12345"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            public.status(),
            404,
            "staff API on the public listener: {public:?}"
        );
        // A customer cannot sign in as staff, nor the other way round.
        let customer = new_account(&http, &gw).await;
        let resp = staff_token(&http, &gw, &customer.email, &customer.password).await;
        admin_unauthenticated(resp, "customer on the staff token endpoint").await;
        let resp = support::identity::token(&http, &gw, &email, "staff password 12345").await;
        expect_unauthenticated(resp, "staff on the customer token endpoint").await;
        let customer_token = login(&http, &gw, &customer).await.access;
        let resp = http
            .get(gw.admin_url("/staff/v1/me"))
            .bearer_auth(&customer_token)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "customer token on the staff API: {resp:?}"
        );

        // The same email again fails; a bad role is a usage error naming the roles.
        let again = staff_create(&email, "admin", "staff password 12345", &target, &gw.env());
        assert!(!again.status.success(), "duplicate staff user: {again:?}");
        let bad = staff_create(
            "x@example.com",
            "god",
            "staff password 12345",
            &target,
            &gw.env(),
        );
        assert_eq!(bad.status.code(), Some(2), "{bad:?}");
        let stderr = text(&bad.stderr);
        assert!(
            stderr.contains("god") && stderr.contains("reviewer"),
            "{stderr}"
        );
        let short = staff_create("y@example.com", "auditor", "short", &target, &gw.env());
        assert_eq!(short.status.code(), Some(2), "{short:?}");
        assert!(
            text(&short.stderr).contains("password"),
            "{}",
            text(&short.stderr)
        );

        // Last, so that it does not hide the checks above: tokens must not be cached
        // (RFC 6749 §5.1), as the customer token endpoint already does.
        assert_eq!(
            cache_control.as_ref().map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "staff token answer without Cache-Control: no-store"
        );
        // The foundation's contract: `X-Request-Id` on every response, the admin listener's too.
        assert!(wrong_has_id, "staff API answers carry no X-Request-Id");
    })
    .await;
}

/// Each listener serves its own API's OpenAPI document, to anyone, and not the other's; a
/// request without a credential gets the bare `Bearer` challenge (RFC 6750 §3.1).
#[tokio::test]
async fn each_listener_serves_its_own_openapi_document() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let documents = [
            (
                gw.url("/computegate/openapi.json"),
                "Computegate customer API",
                gw.admin_url("/computegate/openapi.json"),
            ),
            (
                gw.admin_url("/staff/v1/openapi.json"),
                "Computegate staff API",
                gw.url("/staff/v1/openapi.json"),
            ),
        ];
        for (url, title, elsewhere) in documents {
            let resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}: {resp:?}");
            let doc: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(doc["openapi"], "3.1.0", "{url}");
            assert_eq!(doc["info"]["title"], title, "{url}");
            let resp = http.get(&elsewhere).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{elsewhere}: {resp:?}");
        }
        let resp = http.get(gw.url("/computegate/v1/me")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"computegate\""
        );
    })
    .await
}

#[tokio::test]
async fn generated_staff_password_is_printed_once_and_works() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let email = unique_email("rev");
        let out = gw.cli(&["staff", "create", "--email", &email, "--role", "reviewer"]);
        assert!(out.status.success(), "{out:?}");
        let stdout = text(&out.stdout);
        let password = stdout
            .lines()
            .find_map(|l| {
                l.split_once("password (shown once): ")
                    .map(|(_, p)| p.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no generated password in {stdout}"));
        let staff = tokens_of(staff_token(&http, &gw, &email, &password).await).await;
        assert_eq!(claims_unverified(&staff.access)["role"], "reviewer");
    })
    .await;
}

#[tokio::test]
async fn data_dir_store_takes_migrations_and_staff_users() {
    within(TEST_TIMEOUT, async {
        let dir = TempDir::new("datadir");
        let data = dir.path().join("store");
        let target = [OsStr::new("--data-dir"), data.as_os_str()];
        for round in 0..2 {
            let out = run_cli(&[&[OsStr::new("migrate")], &target[..]].concat(), &[]);
            assert!(out.status.success(), "migrate round {round}: {out:?}");
            assert!(
                text(&out.stdout).contains("up to date"),
                "{}",
                text(&out.stdout)
            );
        }
        let email = unique_email("ops");
        let out = staff_create(
            &email,
            "senior_reviewer",
            "staff password 12345",
            &target,
            &[],
        );
        assert!(out.status.success(), "{out:?}");
        let mut rotated = Vec::new();
        for _ in 0..2 {
            let out = run_cli(
                &[&[OsStr::new("keys"), OsStr::new("rotate")], &target[..]].concat(),
                &[],
            );
            assert!(out.status.success(), "keys rotate --data-dir: {out:?}");
            let stdout = text(&out.stdout);
            let kid = stdout
                .split_whitespace()
                .nth(3)
                .unwrap_or_default()
                .to_owned();
            assert!(
                stdout.starts_with("new signing key ") && !kid.is_empty(),
                "{stdout}"
            );
            rotated.push(kid);
        }

        // A gateway on that store, with the data dir's own key, signs the staff user in.
        let key = std::fs::read_to_string(data.join("master.key")).expect("data dir master key");
        let sim = Sim::start().await;
        let url = format!(
            "sqlite://{}?mode=rwc",
            data.join("computegate.db").display()
        );
        let setup = Setup {
            database_url: Some(url),
            ..Setup::default()
        };
        let gw = IdGateway::start_with_key(sim.addr, &setup, key.trim().to_owned()).await;
        let http = client();
        let staff = staff_token(&http, &gw, &email, "staff password 12345").await;
        let staff = tokens_of(staff).await.access;
        assert_eq!(claims_unverified(&staff)["role"], "senior_reviewer");
        let header = jsonwebtoken::decode_header(&staff).unwrap();
        assert_eq!(
            header.kid.as_ref(),
            Some(&rotated[1]),
            "signed with the newest key"
        );
        let published = support::identity::kids(&jwks(&http, &gw).await);
        for kid in &rotated {
            assert!(published.contains(kid), "{kid} not in {published:?}");
        }
    })
    .await;
}

/// Starts `serve` with `config` and `env`; it must exit with code 2 and a message naming
/// `COMPUTEGATE_MASTER_KEY`.
async fn serve_refuses(config: &Path, env: &[(&str, &str)], code: i32) -> String {
    let mut proc = Proc::spawn(
        &[
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        env,
    );
    let status = proc.wait_exit(Duration::from_secs(20)).await;
    proc.wait_for_stderr("COMPUTEGATE_MASTER_KEY", Duration::from_secs(5))
        .await;
    assert_eq!(
        status.code(),
        Some(code),
        "exit status; stderr:\n{}",
        proc.stderr()
    );
    proc.stderr()
}

#[tokio::test]
async fn serve_without_a_usable_master_key_exits_naming_the_variable() {
    within(TEST_TIMEOUT, async {
        let dir = TempDir::new("nokey");
        let sim = support::closed_port();
        let body = format!(
            "data_dir = {:?}\n{}",
            dir.path().join("data"),
            identity_config(sim, &Setup::default())
        );
        let config = dir.write("gateway.toml", body);
        let stderr = serve_refuses(&config, &[], 2).await;
        assert!(stderr.contains("not set"), "{stderr}");
        serve_refuses(
            &config,
            &[("COMPUTEGATE_MASTER_KEY", "not base64 at all!")],
            2,
        )
        .await;
        serve_refuses(&config, &[("COMPUTEGATE_MASTER_KEY", "c2hvcnQ=")], 2).await;
        let out = run_cli(
            &[
                OsStr::new("keys"),
                OsStr::new("rotate"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &[],
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "keys rotate without the key: {out:?}"
        );
        assert!(
            text(&out.stderr).contains("COMPUTEGATE_MASTER_KEY"),
            "{}",
            text(&out.stderr)
        );

        // A store sealed with one key refuses to start with another (not a crash, not a 5xx
        // later): the signing keys cannot be opened.
        let mk = master_key();
        let mut first = Proc::spawn(
            &[
                OsStr::new("serve"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &[("COMPUTEGATE_MASTER_KEY", &mk)],
        );
        first
            .wait_for_stderr("gateway started", Duration::from_secs(30))
            .await;
        first.signal("TERM");
        first.wait_exit(Duration::from_secs(20)).await;
        let other = master_key();
        let mut proc = Proc::spawn(
            &[
                OsStr::new("serve"),
                OsStr::new("--config"),
                config.as_os_str(),
            ],
            &[("COMPUTEGATE_MASTER_KEY", &other)],
        );
        let status = proc.wait_exit(Duration::from_secs(20)).await;
        assert!(!status.success(), "started with the wrong master key");
        proc.wait_for_stderr("master key", Duration::from_secs(5))
            .await;
    })
    .await;
}

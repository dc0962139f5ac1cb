//! Fixtures of the compute-metering black-box tests: a gateway with `job_submit` routes in front
//! of the simulator ([`Meter`]), customers, staff users, signed usage events and FLOP arithmetic.
//! Test policies and job bodies are in `policies`, the KYC approval path in `kyc`, the demo
//! process in `demo`, export parsing in `exports`, resellers and their end
//! customers in `resellers`.
//!
//! Numbers: one H100 for one hour under the shipped table is `989.4e12 × 3600 × 0.4` FLOP
//! ([`h100_flop`]); the tests size jobs and thresholds in multiples of it.
//!
//! Shortcut (said so where used): a customer's tier is changed by writing the `customers` row
//! (SQLite through python3's `sqlite3`, PostgreSQL through `psql`) before its first
//! authenticated request, or — for "takes effect on the next request" — followed by the
//! `customer_changed` notice a staff action publishes. The real staff path (`POST
//! /staff/v1/applications/{id}/decision`) is in [`Meter::approve_individual`].

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cluster::{PgDatabase, redis_prefix, redis_url};
use super::identity::{IdGateway, Setup, login, master_key, new_account, unique_email};
use super::{Gateway, Sim, TempDir, client, run_cli_with_stdin};

mod demo;
mod exports;
mod kyc;
mod policies;
mod resellers;

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub(crate) use self::{
    demo::Demo,
    exports::{csv_records, parse_csv},
    kyc::{individual_application, organization_application},
    policies::{default_policy, fine_tune, job, policy, threshold, tiers},
    resellers::{
        END_CUSTOMERS, mark_reseller, organization_of, person, register, registered, reseller,
        stranger,
    },
};

/// `COMPUTEGATE_USAGE_SECRET` of the test gateways.
pub(crate) const USAGE_SECRET: &str = "usage-secret-of-the-metering-tests";
/// Password of the staff users the tests create.
pub(crate) const STAFF_PASSWORD: &str = "staff password for metering tests";
/// Dense BF16 peak of an H100 SXM5 in the shipped table, FLOP/s.
pub(crate) const H100_BF16: f64 = 989.4e12;
/// Dense BF16 peak of an A100 in the shipped table, FLOP/s.
pub(crate) const A100_BF16: f64 = 312e12;
/// Dense BF16 peak of a B200 in the shipped table, FLOP/s.
pub(crate) const B200_BF16: f64 = 2250e12;
/// The shipped policy's general utilization.
pub(crate) const UTILIZATION: f64 = 0.4;
/// The shipped policy's language-model utilization (dataset kind `text` or `code`).
pub(crate) const UTILIZATION_LM: f64 = 0.3;

/// Which store (and cluster bus) a test gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite in the gateway's data dir, no Redis.
    Sqlite,
    /// A fresh PostgreSQL database and a Redis prefix of the test's own.
    Postgres,
}

/// A simulator, a gateway with metering routes (and possibly a policy file), and a client.
#[derive(Debug)]
pub(crate) struct Meter {
    /// The gateway.
    pub(crate) gw: IdGateway,
    /// The simulator behind it.
    pub(crate) sim: Sim,
    /// HTTP client.
    pub(crate) http: reqwest::Client,
    /// `policy.file`, when the gateway was given one.
    pub(crate) policy_file: Option<PathBuf>,
    /// The configuration body (everything but `data_dir`), for replicas.
    config: String,
    /// Redis key prefix (PostgreSQL backend).
    pub(crate) redis_prefix: Option<String>,
    /// Holds the policy file.
    _policy_dir: TempDir,
    /// The PostgreSQL database; dropped after the gateway (field order).
    pub(crate) db: Option<PgDatabase>,
}

/// A signed-up, logged-in customer.
#[derive(Debug, Clone)]
pub(crate) struct Cust {
    /// Customer id.
    pub(crate) id: String,
    /// Access token.
    pub(crate) access: String,
}

/// The metering headers of an admitted job.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    /// Status of the (forwarded) answer.
    pub(crate) status: u16,
    /// `X-Computegate-Estimate-Flop`.
    pub(crate) estimate: f64,
    /// `X-Computegate-Remaining-Flop`, when a cap applies.
    pub(crate) remaining: Option<f64>,
    /// `X-Computegate-Run`.
    pub(crate) run: String,
    /// Each `X-Computegate-Notice` (a crossed `notify` threshold), in order.
    pub(crate) notices: Vec<String>,
    /// The body the upstream answered with.
    pub(crate) body: Value,
}

// === numbers ===

/// Hardware estimate of `gpus` H100 for `hours` at the general utilization, FLOP.
pub(crate) fn h100_flop(gpus: u32, hours: f64) -> f64 {
    f64::from(gpus) * H100_BF16 * hours * 3600.0 * UTILIZATION
}

/// True when `a` and `b` agree to `rel` (relative).
pub(crate) fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// Asserts that `got` is `want` to the precision of the FLOP headers (5 significant digits).
#[track_caller]
pub(crate) fn assert_flop(got: f64, want: f64, what: &str) {
    assert!(close(got, want, 1e-4), "{what}: {got:e} is not {want:e}");
}

// === usage events ===

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` computed independently of the product.
pub(crate) fn usage_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A usage event body (`accelerator_seconds` omitted when `None`).
pub(crate) fn usage_event(
    event_id: &str,
    job_id: &str,
    kind: &str,
    seconds: Option<f64>,
    gpu: &str,
) -> Value {
    let mut event = json!({
        "event_id": event_id,
        "job_id": job_id,
        "kind": kind,
        "accelerator_type": gpu,
        "at": now_rfc3339(),
    });
    if let Some(s) = seconds {
        event["accelerator_seconds"] = json!(s);
    }
    event
}

/// Now, RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).expect("format")
}

/// Now, Unix seconds.
pub(crate) fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

// === impl Meter ===

impl Meter {
    /// A simulator and a gateway on `backend`, with `policy` (TOML text) as `policy.file`, or
    /// the built-in default policy when `None`.
    pub(crate) async fn start(backend: Backend, policy: Option<&str>) -> Self {
        Self::start_edited(backend, policy, |config| config).await
    }

    /// As [`Meter::start`], with the configuration text passed through `edit` first (it ends
    /// inside `[log]`).
    pub(crate) async fn start_edited(
        backend: Backend,
        policy: Option<&str>,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let sim = Sim::start().await;
        let policy_dir = TempDir::new("policy");
        let policy_file = policy.map(|text| policy_dir.write("policy.toml", text));
        let (db, prefix) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => (Some(PgDatabase::create()), Some(redis_prefix())),
        };
        let setup = Setup {
            database_url: db.as_ref().map(|d| d.url.clone()),
            redis: prefix.clone().map(|p| (redis_url(), p)),
            ..Setup::default()
        };
        Self::start_from(sim, policy_dir, policy_file, setup, db, prefix, edit).await
    }

    /// A simulator and a gateway configured by `setup` (its own database or Redis, `[auth]`
    /// lines), with the built-in default policy.
    pub(crate) async fn start_with(setup: Setup) -> Self {
        let sim = Sim::start().await;
        let policy_dir = TempDir::new("policy");
        let prefix = setup.redis.as_ref().map(|(_, p)| p.clone());
        Self::start_from(sim, policy_dir, None, setup, None, prefix, |c| c).await
    }

    async fn start_from(
        sim: Sim,
        policy_dir: TempDir,
        policy_file: Option<PathBuf>,
        setup: Setup,
        db: Option<PgDatabase>,
        prefix: Option<String>,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let config = edit(meter_config(sim.addr, &setup, policy_file.as_deref()));
        let key = master_key();
        let gw = start_gateway(&config, &key).await;
        Self {
            gw,
            sim,
            http: client(),
            policy_file,
            config,
            redis_prefix: prefix,
            _policy_dir: policy_dir,
            db,
        }
    }

    /// Another gateway process with the same configuration, store and master key.
    pub(crate) async fn replica(&self) -> IdGateway {
        start_gateway(&self.config, &self.gw.master_key).await
    }

    /// A new customer (unverified), logged in.
    pub(crate) async fn customer(&self) -> Cust {
        let account = new_account(&self.http, &self.gw).await;
        let tokens = login(&self.http, &self.gw, &account).await;
        Cust {
            id: account.customer_id,
            access: tokens.access,
        }
    }

    /// A new customer whose row is set to `tier` before its first authenticated request
    /// (shortcut for the KYC approval, see the module docs).
    pub(crate) async fn customer_at(&self, tier: &str) -> Cust {
        let account = new_account(&self.http, &self.gw).await;
        self.set_tier(&account.customer_id, tier);
        let tokens = login(&self.http, &self.gw, &account).await;
        Cust {
            id: account.customer_id,
            access: tokens.access,
        }
    }

    /// Writes `tier` into the customer's row directly (shortcut, see the module docs). Running
    /// gateways only see it on a principal-cache miss or after a `customer_changed` notice.
    pub(crate) fn set_tier(&self, customer_id: &str, tier: &str) {
        match &self.db {
            Some(db) => {
                db.sql(&format!(
                    "UPDATE customers SET tier = '{tier}' WHERE id = '{customer_id}'"
                ));
            }
            None => sqlite_exec(
                &self.gw.sqlite_path(),
                "UPDATE customers SET tier = ? WHERE id = ?",
                &[tier, &format!("uuid:{customer_id}")],
            ),
        }
    }

    /// `POST path` on the public listener as `c` with `body` (JSON bytes as given).
    pub(crate) async fn post_raw(
        &self,
        gw: &Gateway,
        c: &Cust,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(gw.url(path))
            .header("authorization", format!("Bearer {}", c.access))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send job")
    }

    /// `POST /v1/jobs` (the simulator's job API, `job_submit`/`generic`) as `c`.
    pub(crate) async fn submit(&self, c: &Cust, body: &Value) -> reqwest::Response {
        self.submit_to(&self.gw, c, body).await
    }

    /// `POST /v1/jobs` on `gw` as `c`.
    pub(crate) async fn submit_to(
        &self,
        gw: &Gateway,
        c: &Cust,
        body: &Value,
    ) -> reqwest::Response {
        self.post_raw(gw, c, "/v1/jobs", body.to_string()).await
    }

    /// `POST /v1/echo/jobs` (`job_submit`/`generic`, answered by the simulator's echo) as `c`.
    pub(crate) async fn submit_echo(
        &self,
        gw: &Gateway,
        c: &Cust,
        body: &Value,
    ) -> reqwest::Response {
        self.post_raw(gw, c, "/v1/echo/jobs", body.to_string())
            .await
    }

    /// Submits through the echo route, asserts admission, and returns it with the ledger job id
    /// the gateway forwarded upstream.
    pub(crate) async fn admit_echo(&self, c: &Cust, body: &Value) -> (Admitted, String) {
        let admitted = expect_admitted(self.submit_echo(&self.gw, c, body).await).await;
        let job = admitted.body["headers"]["x-computegate-job"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no X-Computegate-Job upstream: {}", admitted.body))
            .to_owned();
        (admitted, job)
    }

    /// Submits to `/v1/jobs` and asserts admission.
    pub(crate) async fn admit(&self, c: &Cust, body: &Value) -> Admitted {
        expect_admitted(self.submit(c, body).await).await
    }

    /// Posts a usage event signed with `secret` at `t`.
    pub(crate) async fn usage_signed(
        &self,
        event: &Value,
        secret: &str,
        t: i64,
    ) -> reqwest::Response {
        let body = event.to_string();
        self.http
            .post(self.gw.url("/computegate/v1/meter/usage"))
            .header("content-type", "application/json")
            .header("x-computegate-signature", usage_signature(secret, t, &body))
            .body(body)
            .send()
            .await
            .expect("send usage event")
    }

    /// Posts a usage event signed with the gateway's secret, now.
    pub(crate) async fn usage(&self, event: &Value) -> reqwest::Response {
        self.usage_signed(event, USAGE_SECRET, unix_now()).await
    }

    /// Posts a usage event and returns its `status` field (asserting 200).
    pub(crate) async fn usage_ok(&self, event: &Value) -> String {
        let resp = self.usage(event).await;
        assert_eq!(resp.status(), 200, "usage event {event}: {resp:?}");
        let doc: Value = resp.json().await.expect("usage JSON");
        doc["status"].as_str().expect("status").to_owned()
    }

    /// A new staff user with `role` (created with the CLI), signed in; returns its token.
    pub(crate) async fn staff(&self, role: &str) -> String {
        self.staff_with_email(role, &unique_email(role).to_lowercase())
            .await
    }

    /// A new staff user with `role` and `email` (created with the CLI), signed in; returns its
    /// token.
    pub(crate) async fn staff_with_email(&self, role: &str, email: &str) -> String {
        let config = self.gw.config_path();
        let args = [
            OsStr::new("staff"),
            OsStr::new("create"),
            OsStr::new("--email"),
            OsStr::new(email),
            OsStr::new("--role"),
            OsStr::new(role),
            OsStr::new("--password-stdin"),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        let input = format!("{STAFF_PASSWORD}\n");
        let out = run_cli_with_stdin(&args, &self.gw.env(), input.as_bytes());
        assert!(out.status.success(), "staff create: {out:?}");
        let resp = self
            .http
            .post(self.gw.admin_url("/staff/v1/auth/token"))
            .json(&json!({"email": email, "password": STAFF_PASSWORD}))
            .send()
            .await
            .expect("send staff token request");
        assert_eq!(resp.status(), 200, "staff token: {resp:?}");
        let doc: Value = resp.json().await.expect("token JSON");
        doc["access_token"].as_str().expect("token").to_owned()
    }

    /// `GET path` on the admin listener as `staff`.
    pub(crate) async fn staff_get(&self, staff: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.gw.admin_url(path))
            .header("authorization", format!("Bearer {staff}"))
            .send()
            .await
            .expect("send staff GET")
    }

    /// `POST path` on the admin listener as `staff` with a JSON body.
    pub(crate) async fn staff_post(
        &self,
        staff: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .post(self.gw.admin_url(path))
            .header("authorization", format!("Bearer {staff}"))
            .json(body)
            .send()
            .await
            .expect("send staff POST")
    }

    /// `GET path` as `staff`, asserting 200; the JSON array under `key`.
    pub(crate) async fn staff_list(&self, staff: &str, path: &str, key: &str) -> Vec<Value> {
        let resp = self.staff_get(staff, path).await;
        assert_eq!(resp.status(), 200, "GET {path}: {resp:?}");
        let doc: Value = resp.json().await.expect("list JSON");
        doc[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} array in {doc}"))
            .clone()
    }

    /// The customer's runs (`GET /staff/v1/runs?customer_id=`, the largest page).
    pub(crate) async fn runs(&self, staff: &str, customer_id: &str) -> Vec<Value> {
        self.staff_list(
            staff,
            &format!("/staff/v1/runs?customer_id={customer_id}&limit=500"),
            "runs",
        )
        .await
    }

    /// The customer's reports with `status` (`due`, `filed`).
    pub(crate) async fn reports(&self, staff: &str, status: &str, customer_id: &str) -> Vec<Value> {
        let path = format!("/staff/v1/reports?status={status}&customer_id={customer_id}");
        self.staff_list(staff, &path, "reports").await
    }

    /// The sum of `used_flop + reserved_flop` over the customer's runs.
    pub(crate) async fn charged(&self, staff: &str, customer_id: &str) -> f64 {
        self.runs(staff, customer_id)
            .await
            .iter()
            .map(|r| num(&r["used_flop"]) + num(&r["reserved_flop"]))
            .sum()
    }

    /// The simulator's job list (asked directly, not through the gateway).
    pub(crate) async fn sim_jobs(&self) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("http://{}/v1/jobs", self.sim.addr))
            .send()
            .await
            .expect("list simulator jobs");
        assert_eq!(resp.status(), 200, "simulator job list: {resp:?}");
        resp.json().await.expect("job list JSON")
    }

    /// `computegate ARGS --config <gateway config>` with the master key.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        self.gw.cli(args)
    }
}

/// Starts a gateway with `config` and `key`, and the usage secret.
async fn start_gateway(config: &str, key: &str) -> IdGateway {
    let env = [
        ("COMPUTEGATE_MASTER_KEY", key),
        ("COMPUTEGATE_USAGE_SECRET", USAGE_SECRET),
    ];
    let gw = Gateway::start_with_env(config, &env).await;
    IdGateway {
        gw,
        master_key: key.to_owned(),
    }
}

/// A gateway config (everything but `data_dir`) in front of `sim`: `POST /v1/jobs` and
/// `POST /v1/echo/jobs` are `job_submit` routes with the `generic` profile (the second answered
/// by the simulator's echo, which shows the headers the gateway forwarded),
/// `/v1/echo/slurm` and `/v1/echo/kubernetes` the same with those profiles, every other `/v1`
/// path `authenticated`.
pub(crate) fn meter_config(sim: SocketAddr, setup: &Setup, policy: Option<&Path>) -> String {
    let submit = |name: &str, prefix: &str, profile: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nmethods = [\"POST\"]\n\
             upstream = \"sim\"\nclass = \"job_submit\"\nprofile = \"{profile}\"\n\n"
        )
    };
    let mut text = format!(
        "[server]\npublic_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\n\
         shutdown_grace = \"1s\"\n\n[upstreams.sim]\naddresses = [\"{sim}\"]\n\n{}{}{}{}\
         [[routes]]\nname = \"api\"\npath_prefix = \"/v1\"\nupstream = \"sim\"\n\
         class = \"authenticated\"\n\n\
         [auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n{}\n\n",
        submit("jobs-submit", "/v1/jobs", "generic"),
        submit("echo-submit", "/v1/echo/jobs", "generic"),
        submit("echo-slurm", "/v1/echo/slurm", "slurm"),
        submit("echo-kubernetes", "/v1/echo/kubernetes", "kubernetes"),
        setup.auth,
    );
    if let Some(file) = policy {
        text.push_str(&format!(
            "[policy]\nfile = {:?}\n\n",
            file.display().to_string()
        ));
    }
    if let Some(url) = &setup.database_url {
        text.push_str(&format!("[database]\nurl = {url:?}\n\n"));
    }
    if let Some((url, prefix)) = &setup.redis {
        text.push_str(&format!(
            "[redis]\nurl = {url:?}\nkey_prefix = {prefix:?}\n\n"
        ));
    }
    text.push_str(&format!("[log]\nlevel = {:?}\n", setup.log_level));
    text
}

/// Reads an admitted job's answer (asserting a 2xx with the three metering headers).
pub(crate) async fn expect_admitted(resp: reqwest::Response) -> Admitted {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        (200..300).contains(&status),
        "job not admitted: {status} {text}"
    );
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let flop = |name: &str| {
        header(name).map(|v| {
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("{name} is not a number: {v:?}"))
        })
    };
    Admitted {
        status,
        estimate: flop("x-computegate-estimate-flop")
            .unwrap_or_else(|| panic!("no X-Computegate-Estimate-Flop on {headers:?}")),
        remaining: flop("x-computegate-remaining-flop"),
        run: header("x-computegate-run")
            .unwrap_or_else(|| panic!("no X-Computegate-Run on {headers:?}")),
        notices: (headers.get_all("x-computegate-notice").iter())
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// A JSON number (panics on anything else).
pub(crate) fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Writes `text` over `path`, keeping its modification time so that only a signal reloads it.
pub(crate) fn rewrite_keeping_mtime(path: &Path, text: &str) {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(path, text).expect("write policy");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open policy");
    file.set_modified(mtime).expect("set mtime");
}

/// Writes `text` over `path` with a modification time clearly after the previous one.
pub(crate) fn rewrite_touching(path: &Path, text: &str) {
    let before = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(path, text).expect("write policy");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open policy");
    let later = before.max(SystemTime::now()) + Duration::from_secs(1);
    file.set_modified(later).expect("set mtime");
}

/// Runs one parameterized statement, which must change exactly one row, on a SQLite file with
/// python3's `sqlite3` module (the gateway may hold the database open; a 10 s busy timeout
/// covers its writes). A parameter `uuid:<id>` is bound as the 16-byte blob the store keeps
/// ids as.
pub(crate) fn sqlite_exec(db: &Path, sql: &str, params: &[&str]) {
    let script = "import json, sqlite3, sys, uuid\n\
                  c = sqlite3.connect(sys.argv[1], timeout=10)\n\
                  ps = [uuid.UUID(p[5:]).bytes if p.startswith('uuid:') else p\n\
                        for p in json.loads(sys.argv[3])]\n\
                  n = c.execute(sys.argv[2], ps).rowcount\n\
                  c.commit()\n\
                  sys.exit(0 if n == 1 else 3)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(sql)
        .arg(serde_json::to_string(params).expect("params JSON"))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "sqlite {sql:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

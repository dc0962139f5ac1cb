//! The bad-input catalogue: every hostile request in `tests/data/bad_inputs.jsonl` is sent over a
//! raw TCP connection to one real gateway, and its status is checked. The gateway serves the
//! public listener (data plane, job submission, control plane, usage and webhook intake) and the
//! admin listener (staff API). Rate limits and failure throttles are set loose so that a 429
//! never hides what a case tests (each throttle has its own tests). At the end: no 5xx, no panic
//! in the log, and the gateway still answers.
//!
//! A case is one JSON line: `name`, `listener` (`public`, default, or `admin`), `method`, `path`,
//! `headers` (pairs), `body`, or instead `raw` (the whole request as sent), and `status` (one
//! code or a list of acceptable ones). Placeholders are filled in before sending:
//! `{customer_token}` (trial tier), `{validated_token}` (a `validated_end_user`),
//! `{staff_token}` (a senior reviewer), `{admin_token}`, `{api_key}`, `{key_id}`, `{customer_id}`, `{rep:N:TEXT}` (TEXT N times),
//! and in header values `{usage_signature}` / `{stripe_signature}` (valid signatures over the
//! case's final body, so hostile bodies reach the parsers behind the signature check).

mod kyc_support;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use kyc_support::{Kyc, ONFIDO_SECRET, STRIPE_PREVIOUS, STRIPE_SECRET, stripe_signature};
use support::identity::{IdGateway, Setup, create_key, master_key};
use support::metering::{USAGE_SECRET, meter_config, sqlite_exec, unix_now, usage_signature};
use support::{Gateway, Sim, TempDir, client, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `[auth]` lines: failure throttles far above what the catalogue sends.
const LOOSE_AUTH: &str = "failed_auth_per_address = 1000000\nfailed_auth_per_key = 1000000\n\
    login_max_failures_per_account = 1000000\nlogin_max_failures_per_ip = 1000000\n\
    signup_max_per_ip = 0";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    listener: Listener,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    raw: Option<String>,
    status: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Listener {
    #[default]
    Public,
    Admin,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    One(u16),
    Any(Vec<u16>),
}

/// Values the placeholders stand for.
struct Fill {
    pairs: Vec<(&'static str, String)>,
}

impl Expect {
    fn allows(&self, status: u16) -> bool {
        match self {
            Expect::One(s) => *s == status,
            Expect::Any(list) => list.contains(&status),
        }
    }
}

impl Fill {
    fn apply(&self, text: &str) -> String {
        let mut out = expand_repeats(text);
        for (name, value) in &self.pairs {
            out = out.replace(name, value);
        }
        out
    }
}

/// Expands `{rep:N:TEXT}` into TEXT repeated N times.
fn expand_repeats(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{rep:") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 5..];
        let end = tail.find('}').expect("closing brace of {rep:…}");
        let (count, unit) = tail[..end].split_once(':').expect("{rep:N:TEXT}");
        out.push_str(&unit.repeat(count.parse().expect("repeat count")));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The bytes of a structured case.
fn request_bytes(case: &Case, fill: &Fill) -> Vec<u8> {
    if let Some(raw) = &case.raw {
        return fill.apply(raw).into_bytes();
    }
    let body = case
        .body
        .as_deref()
        .map(|b| fill.apply(b))
        .unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: gw\r\n",
        case.method,
        fill.apply(&case.path)
    );
    let t = unix_now();
    let mut framed = false;
    for (name, value) in &case.headers {
        let value = match value.as_str() {
            "{usage_signature}" => usage_signature(USAGE_SECRET, t, &body),
            "{stripe_signature}" => stripe_signature(STRIPE_SECRET, t, &body),
            other => fill.apply(other),
        };
        let lower = name.to_ascii_lowercase();
        framed |= lower == "content-length" || lower == "transfer-encoding";
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !framed && (case.body.is_some() || matches!(case.method.as_str(), "POST" | "PUT" | "PATCH"))
    {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Writes `bytes` on a new connection and reads until the gateway closes it. A write may fail
/// when the gateway refuses early and closes (a large body); the answer is read regardless.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "no close within 20 s: {:?}",
        String::from_utf8_lossy(&out)
    );
    out
}

/// The status code of a raw answer; 0 when the connection closed without one.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bad_inputs.jsonl");
    let text = std::fs::read_to_string(path).expect("read the catalogue");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1))
        })
        .collect()
}

/// The default policy with every tier's rate limit far above what the catalogue sends.
fn loose_policy() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy/default.toml");
    let text = std::fs::read_to_string(path).expect("read the default policy");
    let loosened: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("rate_limit") {
                "rate_limit = { requests_per_second = 100000.0, burst = 100000 }".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(
        loosened
            .iter()
            .filter(|l| l.starts_with("rate_limit"))
            .count()
            >= 4,
        "every tier's rate limit was loosened"
    );
    loosened.join("\n")
}

/// One gateway with metering routes, usage intake, IDV webhooks, and the staff API.
async fn start() -> (Kyc, TempDir) {
    let sim = Sim::start().await;
    let dir = TempDir::new("bad-inputs-policy");
    let policy = dir.write("policy.toml", loose_policy());
    let setup = Setup {
        auth: LOOSE_AUTH.to_string(),
        ..Setup::default()
    };
    let config = meter_config(sim.addr, &setup, Some(&policy));
    let key = master_key();
    let env = [
        ("COMPUTEGATE_MASTER_KEY", key.as_str()),
        ("COMPUTEGATE_USAGE_SECRET", USAGE_SECRET),
        ("COMPUTEGATE_IDV_STRIPE_SECRET", STRIPE_SECRET),
        ("COMPUTEGATE_IDV_STRIPE_SECRET_PREVIOUS", STRIPE_PREVIOUS),
        ("COMPUTEGATE_IDV_ONFIDO_SECRET", ONFIDO_SECRET),
    ];
    let gw = Gateway::start_with_env(&config, &env).await;
    let kyc = Kyc {
        sim,
        gw: IdGateway {
            gw,
            master_key: key,
        },
        http: client(),
    };
    (kyc, dir)
}

#[tokio::test]
async fn every_hostile_request_gets_its_status_and_none_a_5xx() {
    within(Duration::from_secs(300), async {
        let cases = cases();
        assert!(cases.len() >= 200, "only {} cases", cases.len());
        let (kyc, _policy) = start().await;
        let trial = kyc.customer().await;
        let validated = kyc.customer().await;
        sqlite_exec(
            &kyc.gw.sqlite_path(),
            "UPDATE customers SET tier = ? WHERE id = ?",
            &["validated_end_user", &format!("uuid:{}", validated.id)],
        );
        let staff = kyc.staff("senior_reviewer").await;
        let admin = kyc.staff("admin").await;
        let (key_id, api_key) = create_key(
            &kyc.http,
            &kyc.gw,
            &trial.access,
            serde_json::json!({"name": "catalogue", "scopes": ["read", "jobs"]}),
        )
        .await;
        let fill = Fill {
            pairs: vec![
                ("{customer_token}", trial.access.clone()),
                ("{validated_token}", validated.access.clone()),
                ("{staff_token}", staff.token.clone()),
                ("{admin_token}", admin.token.clone()),
                ("{api_key}", api_key),
                ("{key_id}", key_id),
                ("{customer_id}", trial.id.clone()),
            ],
        };
        let mut wrong = Vec::new();
        let mut server_errors = 0;
        for case in &cases {
            let addr: SocketAddr = match case.listener {
                Listener::Public => kyc.gw.public,
                Listener::Admin => kyc.gw.admin,
            };
            let bytes = request_bytes(case, &fill);
            let answer = exchange(addr, &bytes).await;
            let status = status_of(&answer);
            if status >= 500 {
                server_errors += 1;
            }
            if !case.status.allows(status) {
                let head = String::from_utf8_lossy(&answer);
                let head: String = head.chars().take(900).collect();
                wrong.push(format!(
                    "{}: got {status}, want {:?}\n  {head}",
                    case.name, case.status
                ));
            }
        }
        println!(
            "bad-input catalogue: {} cases, {} as expected, {server_errors} × 5xx",
            cases.len(),
            cases.len() - wrong.len()
        );
        assert_eq!(server_errors, 0, "5xx answers:\n{}", wrong.join("\n"));
        assert!(
            wrong.is_empty(),
            "{} cases off:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        // Still alive and serving.
        let health = kyc
            .http
            .get(kyc.gw.admin_url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        let me = kyc
            .http
            .get(kyc.gw.url("/computegate/v1/me"))
            .bearer_auth(&trial.access)
            .send()
            .await
            .expect("me");
        assert_eq!(me.status(), 200);
        assert!(!kyc.gw.proc.stderr().contains("panicked"));
    })
    .await;
}

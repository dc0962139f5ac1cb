//! `computegate demo`: the newcomer's path. One process runs the simulated compute API, the
//! gateway in front of it and the embedded store; it seeds one account for each kind of person
//! (a customer, a reviewer, two senior reviewers, an auditor, an admin), imports a small
//! fictional denied-party list so screening runs, turns on the Stripe IDV webhook with a
//! per-run secret, and prints how to walk every journey from there.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use computegate_gateway::config::Config;
use computegate_kyc::Store;
use computegate_kyc::accounts::{AccountError, Actor, CustomerKind, StaffRole};
use computegate_kyc::screening::{ImportRequest, ListFormat, ListInput};
use computegate_kyc::verification::webhooks::{WebhookSecret, WebhookSecrets};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::identity::Identity;
use tokio::sync::watch;

/// Arguments of `computegate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data directory of the embedded store.
    #[arg(long, default_value = "./computegate-data")]
    pub data_dir: PathBuf,
    /// Public (data-plane) listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub public_addr: SocketAddr,
    /// Admin listener (metrics, health, staff API).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// Simulated compute API listener.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub sim_addr: SocketAddr,
}

/// The demo's configuration: the simulator's catalog public, everything else authenticated.
pub fn demo_config(args: &DemoArgs, sim_addr: SocketAddr) -> anyhow::Result<Config> {
    let text = format!(
        r#"
data_dir = {data_dir:?}

[server]
public_addr = "{public}"
admin_addr = "{admin}"
shutdown_grace = "5s"

[upstreams.sim]
addresses = ["{sim_addr}"]

[[routes]]
name = "sim-catalog-ping"
path_prefix = "/v1/ping"
methods = ["GET"]
upstream = "sim"
class = "public"

[[routes]]
name = "sim-catalog-gpus"
path_prefix = "/v1/gpus"
methods = ["GET"]
upstream = "sim"
class = "public"

[[routes]]
name = "sim-jobs-submit"
path_prefix = "/v1/jobs"
methods = ["POST"]
upstream = "sim"
class = "job_submit"
profile = "generic"

[[routes]]
name = "sim-api"
path_prefix = "/v1"
upstream = "sim"
class = "authenticated"
"#,
        data_dir = args.data_dir.display().to_string(),
        public = args.public_addr,
        admin = args.admin_addr,
    );
    let config = Config::from_toml(&text, std::env::vars())?;
    config.validate()?;
    Ok(config)
}

/// Runs the demo until SIGTERM/SIGINT.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let sim_listener = TcpListener::bind(args.sim_addr)
        .await
        .with_context(|| format!("cannot listen on --sim-addr {}", args.sim_addr))?;
    let sim_addr = sim_listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = demo_config(&args, sim_addr)?;
    let master = crate::identity::master_key_from_data_dir(&args.data_dir)?;
    // The simulator signs usage events for the jobs the gateway admits with a per-run secret.
    let usage_secret = uuid::Uuid::new_v4().simple().to_string();
    let usage_secrets = WebhookSecrets {
        current: WebhookSecret::new(usage_secret.clone()),
        previous: None,
    };
    // Stripe Identity's webhook is on with a per-run secret (or the operator's own), so the
    // printed sample event can record a verified identity on an application.
    let idv_secret = crate::environment::var("COMPUTEGATE_IDV_STRIPE_SECRET")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("whsec_demo_{}", uuid::Uuid::new_v4().simple()));
    let idv_secrets = crate::verification::idv_secrets_from_env(|k| match k {
        "COMPUTEGATE_IDV_STRIPE_SECRET" => Some(idv_secret.clone()),
        _ => crate::environment::var(k),
    });
    let running = crate::serve::start(
        &config,
        master,
        Some(usage_secrets),
        idv_secrets,
        stop_rx.clone(),
    )
    .await?;
    let usage_url = format!("http://{}/computegate/v1/meter/usage", running.addrs.public);
    let sim_config = crate::sim::SimConfig {
        usage: Some(crate::sim::UsageReporting {
            url: usage_url.parse().context("usage URL")?,
            secret: usage_secret,
            interval: std::time::Duration::from_secs(1),
        }),
        ..crate::sim::SimConfig::default()
    };
    let mut sim_stop = stop_rx;
    let sim = tokio::spawn(crate::sim::serve(sim_listener, sim_config, async move {
        let _ = sim_stop.wait_for(|s| *s).await;
    }));
    seed_accounts(&running.identity).await?;
    let list = seed_screening_list(&running.identity.store).await?;
    print_next_steps(&NextSteps {
        public: running.addrs.public,
        admin: running.addrs.admin,
        sim: sim_addr,
        data_dir: &args.data_dir,
        idv_secret: &idv_secret,
        list_entries: list,
    });

    computegate_gateway::server::termination_signal().await;
    let _ = stop_tx.send(true);
    running.wait().await;
    let _ = sim.await;
    Ok(())
}

/// Demo customer (printed; local demo only).
pub const DEMO_CUSTOMER: (&str, &str) = ("customer@demo.computegate.dev", "demo-customer-password");

/// Demo staff, one per role the journeys need (printed; local demo only). Two senior reviewers,
/// because the top tier takes two distinct senior approvals.
pub const DEMO_STAFF: [(StaffRole, &str, &str); 5] = [
    (
        StaffRole::Reviewer,
        "reviewer@demo.computegate.dev",
        "demo-reviewer-password",
    ),
    (
        StaffRole::SeniorReviewer,
        "senior1@demo.computegate.dev",
        "demo-senior1-password",
    ),
    (
        StaffRole::SeniorReviewer,
        "senior2@demo.computegate.dev",
        "demo-senior2-password",
    ),
    (
        StaffRole::Auditor,
        "auditor@demo.computegate.dev",
        "demo-auditor-password",
    ),
    (
        StaffRole::Admin,
        "admin@demo.computegate.dev",
        "demo-admin-password",
    ),
];

/// The fictional denied-party list the demo imports (see `data/demo/README.md`).
const SAMPLE_LIST: &[u8] = include_bytes!("../data/demo/sample-denied-parties.csv");

/// Creates the demo customer and staff unless they exist.
async fn seed_accounts(identity: &Identity) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let actor = Actor::system("demo");
    for (role, email, password) in DEMO_STAFF {
        let hash = identity.hasher.hash_async(password.into()).await?;
        match identity
            .store
            .accounts()
            .create_staff(email, role, &hash, &actor, now)
            .await
        {
            Ok(_) | Err(AccountError::EmailTaken) => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot seed the demo staff user {email}: {e}"
                ));
            }
        }
    }
    let hash = identity.hasher.hash_async(DEMO_CUSTOMER.1.into()).await?;
    match identity
        .store
        .accounts()
        .create_customer(DEMO_CUSTOMER.0, &hash, CustomerKind::Individual, now)
        .await
    {
        Ok(_) | Err(AccountError::EmailTaken) => {}
        Err(e) => return Err(anyhow::anyhow!("cannot seed the demo customer: {e}")),
    }
    Ok(())
}

/// Imports the sample list when the store holds none yet; answers the entries of the list in
/// force. The gateway's background sweep screens waiting applications against it.
async fn seed_screening_list(store: &Store) -> anyhow::Result<u64> {
    if let Some(version) = store.screening().latest_screening_version().await? {
        return Ok(version.entry_count);
    }
    let request = ImportRequest {
        format: ListFormat::Csl,
        main: ListInput {
            file_name: "sample-denied-parties.csv".into(),
            reader: std::io::Cursor::new(SAMPLE_LIST),
        },
        aliases: None,
        addresses: None,
        label: Some("demo sample list (fictional)".into()),
    };
    let version = crate::screening_cli::import_list(
        store,
        request,
        &Actor::system("demo"),
        OffsetDateTime::now_utc(),
        |_| {},
    )
    .await
    .context("cannot import the demo's sample denied-party list")?;
    Ok(version.entry_count)
}

/// What the printed next steps need.
struct NextSteps<'a> {
    public: SocketAddr,
    admin: SocketAddr,
    sim: SocketAddr,
    data_dir: &'a std::path::Path,
    idv_secret: &'a str,
    list_entries: u64,
}

fn print_next_steps(n: &NextSteps<'_>) {
    println!("{}", next_steps(n));
}

/// The text printed once the demo runs: every address, every seeded account, and each
/// journey's first commands. Tested against the running demo in `tests/demo_journeys.rs`.
fn next_steps(n: &NextSteps<'_>) -> String {
    let NextSteps {
        public,
        admin,
        sim,
        data_dir,
        idv_secret,
        list_entries,
    } = n;
    let data_dir = data_dir.display();
    let staff: String = DEMO_STAFF
        .iter()
        .map(|(role, email, password)| format!("  {:<16} {email} / {password}\n", role.as_str()))
        .collect();
    format!(
        r#"
Computegate demo is running.
  customer portal     http://{public}/computegate/account/
  compliance console  http://{admin}/console/
  gateway (public)    http://{public}   (the compute API behind it: /v1/…)
  admin listener      http://{admin}    (/metrics, /readyz, staff API /staff/v1/…)
  compute simulator   http://{sim}   (simulated training-compute API behind the gateway)
  API descriptions    http://{public}/computegate/openapi.json   http://{admin}/staff/v1/openapi.json

Seeded accounts (local demo only):
  customer         {customer} / {customer_pw}
{staff}  (the admin manages staff and keys; reading and deciding cases is for reviewers)

Screening runs against a fictional sample list ({list_entries} entries, data/demo/sample-denied-parties.csv):
  cargo run --release -- screening check "Iwan Zorwath" --dob 1970-01-12 --data-dir {data_dir}

Job body (POST http://{public}/v1/jobs, with a customer token or API key):
  {{"gpu_type": "h100", "gpu_count": 1, "max_duration_hours": 1, "run_id": "my-run"}}
  gpu_count is required; gpu_type, max_duration_hours, run_id, parent_run_id, precision
  (bf16|fp16|fp8|tf32|fp32), model.parameters and dataset.tokens/kind are optional.
  The gateway estimates the run's FLOP and admits it only within your tier's caps
  (unverified: 1e19 FLOP per run, e.g. one H100 for one hour; identity_verified: 1e22).

1. Customer: sign up and verify in the portal, or with curl:
  TOKEN=$(curl -s -X POST http://{public}/computegate/v1/auth/token -H 'content-type: application/json' \
       -d '{{"email":"{customer}","password":"{customer_pw}"}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s -X POST http://{public}/v1/jobs -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
       -d '{{"gpu_type":"h100","gpu_count":1,"max_duration_hours":1,"run_id":"first-run"}}'   # admitted (201)
  curl -s -X POST http://{public}/v1/jobs -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
       -d '{{"gpu_type":"h100","gpu_count":8,"max_duration_hours":4,"run_id":"big-run"}}'     # over the cap (403)
  Apply for a tier (POST /computegate/v1/kyc/applications, then …/documents and …/submit); the README's
  "Walkthrough" has every command. Record a verified identity for application APP with Stripe's signed event:
  APP=<application id>; T=$(date +%s); BODY='{{"id":"evt_demo_'$APP'_'$T'","type":"identity.verification_session.verified","data":{{"object":{{"client_reference_id":"'$APP'"}}}}}}'
  curl -s -X POST http://{public}/computegate/v1/kyc/webhooks/stripe -H 'content-type: application/json' \
       -H "Stripe-Signature: t=$T,v1=$(printf '%s' "$T.$BODY" | openssl dgst -sha256 -hmac '{idv_secret}' | sed 's/^.*= //')" -d "$BODY"

2. Reviewers: log into the console as the reviewer (tiers below the top) or as each senior reviewer in turn
  (validated_end_user takes two distinct senior approvals); or POST /staff/v1/auth/token on the admin listener.

3. Auditor: the console verifies the audit chain and exports reports; or, from another terminal:
  cargo run --release -- audit verify --data-dir {data_dir}
  cargo run --release -- report export --kind quarterly --since {year}-01-01 --format csv --data-dir {data_dir}

  curl -s http://{admin}/metrics | grep computegate_

Stop with Ctrl-C.
"#,
        customer = DEMO_CUSTOMER.0,
        customer_pw = DEMO_CUSTOMER.1,
        year = OffsetDateTime::now_utc().year(),
    )
}

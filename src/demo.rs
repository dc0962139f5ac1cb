//! `computegate demo`: the newcomer's path. One process runs the simulated compute API, the
//! gateway in front of it and the embedded store, then prints what to try next.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use computegate_gateway::config::Config;
use computegate_kyc::accounts::{AccountError, Actor, CustomerKind, StaffRole};
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
    let secrets = computegate_kyc::verification::webhooks::WebhookSecrets {
        current: computegate_kyc::verification::webhooks::WebhookSecret::new(usage_secret.clone()),
        previous: None,
    };
    let running = crate::serve::start(&config, master, Some(secrets), stop_rx.clone()).await?;
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
    seed(&running.identity).await?;
    print_next_steps(running.addrs.public, running.addrs.admin, sim_addr);

    computegate_gateway::server::termination_signal().await;
    let _ = stop_tx.send(true);
    running.wait().await;
    let _ = sim.await;
    Ok(())
}

/// Demo staff admin (printed; local demo only).
pub const DEMO_STAFF: (&str, &str) = ("admin@demo.computegate.dev", "demo-admin-password");
/// Demo customer (printed; local demo only).
pub const DEMO_CUSTOMER: (&str, &str) = ("customer@demo.computegate.dev", "demo-customer-password");

/// Creates the demo staff admin and customer unless they exist.
async fn seed(identity: &Identity) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let actor = Actor::system("demo");
    let hash = identity.hasher.hash_async(DEMO_STAFF.1.into()).await?;
    match identity
        .store
        .accounts()
        .create_staff(DEMO_STAFF.0, StaffRole::Admin, &hash, &actor, now)
        .await
    {
        Ok(_) | Err(AccountError::EmailTaken) => {}
        Err(e) => return Err(anyhow::anyhow!("cannot seed the demo staff user: {e}")),
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

fn print_next_steps(public: SocketAddr, admin: SocketAddr, sim: SocketAddr) {
    println!(
        r#"
Computegate demo is running.
  gateway (public)   http://{public}
  admin (metrics)    http://{admin}
  compute simulator  http://{sim}   (simulated training-compute API behind the gateway)

Seeded (local demo only):
  customer  {customer} / {customer_pw}
  staff     {staff} / {staff_pw}   (admin listener: POST /staff/v1/auth/token)

Try:
  curl -i http://{public}/v1/ping                 # public route, proxied to the simulator
  curl -s http://{public}/v1/gpus                 # public GPU catalog
  curl -i http://{public}/v1/jobs                 # authenticated route: 401 without a credential

  # sign up, get a token, make an authenticated call
  curl -s -X POST http://{public}/computegate/v1/auth/signup -H 'content-type: application/json' \
       -d '{{"email":"you@example.com","password":"a long passphrase","kind":"individual"}}'
  TOKEN=$(curl -s -X POST http://{public}/computegate/v1/auth/token -H 'content-type: application/json' \
       -d '{{"email":"you@example.com","password":"a long passphrase"}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s http://{public}/computegate/v1/me -H "authorization: Bearer $TOKEN"
  curl -s http://{public}/v1/jobs -H "authorization: Bearer $TOKEN"      # proxied with verified identity headers
  curl -s -X POST http://{public}/computegate/v1/keys -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"name":"laptop"}}'      # an API key (shown once)

  curl -s http://{public}/.well-known/jwks.json
  curl -s http://{admin}/metrics | grep computegate_
  curl -s http://{admin}/readyz

Stop with Ctrl-C.
"#,
        customer = DEMO_CUSTOMER.0,
        customer_pw = DEMO_CUSTOMER.1,
        staff = DEMO_STAFF.0,
        staff_pw = DEMO_STAFF.1,
    );
}

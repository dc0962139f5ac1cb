//! `computegate demo`: the newcomer's path. One process runs the simulated compute API, the
//! gateway in front of it and the embedded store, then prints what to try next.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use computegate_gateway::config::Config;
use tokio::net::TcpListener;
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
    let mut sim_stop = stop_rx.clone();
    let sim = tokio::spawn(crate::sim::serve(
        sim_listener,
        crate::sim::SimConfig::default(),
        async move {
            let _ = sim_stop.wait_for(|s| *s).await;
        },
    ));

    let config = demo_config(&args, sim_addr)?;
    let running = crate::serve::start(&config, stop_rx).await?;
    print_next_steps(running.addrs.public, running.addrs.admin, sim_addr);

    computegate_gateway::server::termination_signal().await;
    let _ = stop_tx.send(true);
    running.wait().await;
    let _ = sim.await;
    Ok(())
}

fn print_next_steps(public: SocketAddr, admin: SocketAddr, sim: SocketAddr) {
    println!(
        r#"
Computegate demo is running.
  gateway (public)   http://{public}
  admin (metrics)    http://{admin}
  compute simulator  http://{sim}   (simulated training-compute API behind the gateway)

Try:
  curl -i http://{public}/v1/ping                 # public route, proxied to the simulator
  curl -s http://{public}/v1/gpus                 # public GPU catalog
  curl -i http://{public}/v1/jobs                 # authenticated route: 401 without a credential
  curl -s http://{admin}/metrics | grep computegate_http_requests
  curl -s http://{admin}/readyz

Stop with Ctrl-C.
"#
    );
}

//! Running the gateway: bind listeners, wire the data plane, serve until a termination signal,
//! drain, and reload the TLS certificate on SIGHUP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use computegate_gateway::access_log::{AccessLog, AccessLogTarget};
use computegate_gateway::admin::Admin;
use computegate_gateway::authz::Authz;
use computegate_gateway::config::Config;
use computegate_gateway::listeners::{Listener, ReleaseThreads, Threads};
use computegate_gateway::proxy::Gateway;
use computegate_gateway::server::{self, ServeSettings};
use computegate_gateway::tls::ReloadableCert;
use computegate_kyc::audit::PolicyTrigger;
use computegate_kyc::crypto::MasterKey;

use crate::api;
use crate::identity::Identity;
use crate::startup::StartupConfigError;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Addresses the running gateway listens on (after binding port 0, the real ports).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    /// Public listener.
    pub public: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// External-authorization listener, when `[authz]` is configured.
    pub authz: Option<SocketAddr>,
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let master = crate::identity::master_key_from_env(crate::environment::var)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let usage_secrets = api::usage::secrets_from(crate::environment::var);
    let idv_secrets = crate::verification::idv_secrets_from_env(crate::environment::var);
    let running = start(&config, master, usage_secrets, idv_secrets, stop_rx).await?;
    let authz = running
        .addrs
        .authz
        .map(|a| format!(" authz={a}"))
        .unwrap_or_default();
    println!(
        "computegate listening: public={} admin={}{authz}",
        running.addrs.public, running.addrs.admin
    );
    server::termination_signal().await;
    let _ = stop_tx.send(true);
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// A started gateway.
pub struct Running {
    /// Where it listens.
    pub addrs: BoundAddrs,
    /// The identity service (the demo seeds accounts through it).
    pub identity: Arc<Identity>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Keeps the extra serving threads' runtimes up until every thread has drained.
    release_threads: ReleaseThreads,
}

impl Running {
    /// Waits until every listener, on every serving thread, has drained, then lets the serving
    /// threads end.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        drop(self.release_threads);
    }
}

/// Binds and starts the listeners; they stop when `stop` turns true.
pub async fn start(
    config: &Config,
    master: MasterKey,
    usage_secrets: Option<computegate_kyc::verification::webhooks::WebhookSecrets>,
    idv_secrets: crate::verification::IdvSecrets,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut registry = Registry::default();
    let identity = Identity::open(config, master.clone(), &mut registry).await?;
    let (policy, policy_metrics) =
        crate::policy_file::load(config.policy.file.as_deref(), &mut registry)?;
    crate::policy_file::record(&identity.store, &policy.current(), PolicyTrigger::Startup)
        .await
        .context("cannot record the policy in force in the audit chain")?;
    // --- verification (KYC/KYB): service, background tasks, metrics -------------------------
    let kyc = crate::verification::Verification::new(
        identity.clone(),
        master,
        policy.clone(),
        idv_secrets,
        crate::verification::OnfidoApiConfig::from_env(crate::environment::var)
            .context("invalid Onfido API settings")?,
        &mut registry,
    );
    kyc.spawn_tasks(stop.clone());
    // --- end verification ---------------------------------------------------------------------
    let ledger_metrics = crate::ledger_metrics::LedgerMetrics::register(&mut registry);
    ledger_metrics.start_at_zero(&policy.current());
    let metering = crate::metering::Metering::new(
        identity.store.clone(),
        kyc.master().clone(),
        policy.clone(),
        usage_secrets,
        ledger_metrics.clone(),
    );
    metering.spawn_lease_sweep(stop.clone());
    crate::retention::spawn_daily(
        identity.store.clone(),
        policy.clone(),
        crate::retention::RetentionMetrics::register(&mut registry),
        stop.clone(),
    );
    let state = api::ApiState {
        identity: identity.clone(),
        kyc,
        metering,
    };
    let customer_api = api::customer_plane(state.clone());
    let staff_api = api::staff_plane(state);
    let gateway = Gateway::new(
        config,
        &mut registry,
        Some(identity.verifier.clone()),
        Some(customer_api),
    )
    .map_err(StartupConfigError)?
    .with_access_log(
        AccessLog::open(&AccessLogTarget::parse(&config.log.access), &mut registry)
            .map_err(|e| StartupConfigError(format!("log.access: {e}")))?,
    )
    .with_policy(policy.clone())
    .with_ledger(crate::ledger_port::StoreLedger::new(
        identity.store.clone(),
        ledger_metrics.clone(),
    ))
    .with_job_owners(crate::ownership_port::StoreJobOwners::new(
        identity.store.clone(),
    ));
    let gateway = crate::ratelimit_redis::with_cluster_rate_limit(gateway, config, &mut registry)
        .await
        .context("cannot connect to Redis for rate limits (redis.url)")?;
    ledger_metrics.spawn_refresh(identity.store.clone(), stop.clone());
    let policy_reload = config.policy.file.clone().map(|path| {
        crate::policy_file::spawn_watcher(
            policy.clone(),
            path.clone(),
            policy_metrics.clone(),
            identity.store.clone(),
        );
        (
            policy.clone(),
            path,
            policy_metrics.clone(),
            identity.store.clone(),
        )
    });
    let gateway = Arc::new(gateway);
    let registry = Arc::new(registry);

    let (tls, cert) = match &config.server.tls {
        Some(t) => {
            let cert = Arc::new(
                ReloadableCert::load(&t.cert, &t.key)
                    .map_err(|e| StartupConfigError(format!("server.tls: {e}")))?,
            );
            let server_config = cert
                .server_config()
                .map_err(|e| StartupConfigError(format!("server.tls: {e}")))?;
            (Some(TlsAcceptor::from(server_config)), Some(cert))
        }
        None => (None, None),
    };
    tokio::spawn(reload_on_sighup(cert, policy_reload));

    // The data-plane listeners, one socket per serving thread (`server.runtime`).
    let mut threads = Threads::new(config.server.listener_threads());
    let public = threads.bind(config.server.public_addr).with_context(|| {
        format!(
            "cannot listen on server.public_addr {}",
            config.server.public_addr
        )
    })?;
    let admin_listener = TcpListener::bind(config.server.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on server.admin_addr {}",
                config.server.admin_addr
            )
        })?;
    let authz = match &config.authz {
        Some(c) => Some(bind_authz(c, gateway.clone(), &threads)?),
        None => None,
    };
    let addrs = BoundAddrs {
        public: public.local_addr(),
        admin: admin_listener.local_addr()?,
        authz: authz.as_ref().map(|(listener, _)| listener.local_addr()),
    };
    let settings = ServeSettings::from(&config.server);
    let admin = Arc::new(Admin::new(
        registry,
        gateway.clone(),
        identity.readiness_checks(),
        Some(staff_api),
        stop.clone(),
    ));
    let mut tasks = vec![
        threads.serve(public, gateway, tls, &settings, &stop)?,
        tokio::spawn(server::serve(
            admin_listener,
            admin,
            None,
            settings.clone(),
            stop.clone(),
        )),
    ];
    if let Some((listener, authz)) = authz {
        // Plain HTTP: edge proxies ask over their own network (see docs/authz.md).
        tasks.push(threads.serve(listener, authz, None, &settings, &stop)?);
    }
    let serving = threads
        .start()
        .context("cannot start the serving threads")?;
    tasks.extend(serving.drained);
    let (runtime, threads) = (config.server.runtime, config.server.threads());
    match addrs.authz {
        Some(authz) => tracing::info!(
            public = %addrs.public, admin = %addrs.admin, %authz, ?runtime, threads,
            "gateway started"
        ),
        None => tracing::info!(
            public = %addrs.public, admin = %addrs.admin, ?runtime, threads, "gateway started"
        ),
    }
    Ok(Running {
        addrs,
        identity,
        tasks,
        release_threads: serving.release,
    })
}

/// Binds the external-authorization listener (`[authz]`) in front of `gateway`'s decision.
fn bind_authz(
    config: &computegate_gateway::config::AuthzConfig,
    gateway: Arc<Gateway>,
    threads: &Threads,
) -> anyhow::Result<(Listener, Arc<Authz>)> {
    let authz = Authz::new(gateway, config).map_err(|e| StartupConfigError(e.to_string()))?;
    let listener = threads
        .bind(config.addr)
        .with_context(|| format!("cannot listen on authz.addr {}", config.addr))?;
    Ok((listener, Arc::new(authz)))
}

/// What SIGHUP reloads: the policy file with its handle and metrics, and the store its audit
/// record goes to.
type PolicyReload = (
    Arc<computegate_gateway::policy::PolicyHandle>,
    std::path::PathBuf,
    Arc<computegate_gateway::policy::PolicyMetrics>,
    computegate_kyc::Store,
);

/// Reloads the TLS certificate and the policy file whenever SIGHUP arrives; a bad file keeps the
/// old one in force.
async fn reload_on_sighup(cert: Option<Arc<ReloadableCert>>, policy: Option<PolicyReload>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload on signal disabled");
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(cert) = &cert {
            match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
                }
            }
        }
        if let Some((handle, path, metrics, store)) = &policy {
            crate::policy_file::reload(handle, path, metrics, store, PolicyTrigger::Sighup).await;
        }
    }
}

/// Runs the simulator alone until SIGTERM/SIGINT.
/// Usage reporting of a simulator run on its own: to `url`, signed with the gateway's usage
/// secret (`COMPUTEGATE_USAGE_SECRET`, or the file `COMPUTEGATE_USAGE_SECRET_FILE` names).
pub fn sim_usage_reporting(url: http::Uri) -> anyhow::Result<crate::sim::UsageReporting> {
    let secret = crate::environment::var("COMPUTEGATE_USAGE_SECRET")
        .filter(|s| !s.is_empty())
        .context(
            "--usage-url needs COMPUTEGATE_USAGE_SECRET (the gateway's usage signing secret)",
        )?;
    Ok(crate::sim::UsageReporting {
        url,
        secret,
        interval: std::time::Duration::from_secs(1),
    })
}

/// Runs the simulator alone on `addr`, reporting usage when `usage` says where.
pub async fn run_sim(
    addr: SocketAddr,
    speedup: f64,
    usage: Option<crate::sim::UsageReporting>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    println!("computegate simulator listening: http://{bound}");
    let config = crate::sim::SimConfig { speedup, usage };
    crate::sim::serve(listener, config, server::termination_signal())
        .await
        .context("simulator failed")
}

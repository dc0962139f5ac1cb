//! The policy in force: loaded from `policy.file` or the shipped default built into the binary,
//! and reloaded atomically on SIGHUP and when the file changes (a bad file is rejected, logged
//! and counted, and the old policy stays). The policy loaded at start-up and each accepted
//! reload are recorded in the audit chain ([`record`]; the store skips a policy the last record
//! already names), which is where the annual pack finds the versions in force over a year.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use computegate_gateway::policy::{Policy, PolicyHandle, PolicyMetrics};
use computegate_kyc::audit::{PolicyLoad, PolicyTrigger};
use computegate_kyc::{Store, StoreError};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use crate::startup::StartupConfigError;

/// The shipped default policy (`deploy/policy/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../deploy/policy/default.toml");

/// How often the policy file's modification time is checked.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Loads the policy named by configuration (or the default) and registers its metrics.
pub fn load(
    file: Option<&Path>,
    registry: &mut Registry,
) -> anyhow::Result<(Arc<PolicyHandle>, Arc<PolicyMetrics>)> {
    let policy = read(file)?;
    let metrics = Arc::new(PolicyMetrics::register(registry, &policy));
    Ok((Arc::new(PolicyHandle::new(policy)), metrics))
}

/// Reads and validates the policy named by configuration (or the built-in default).
pub fn read(file: Option<&Path>) -> anyhow::Result<Policy> {
    Ok(match file {
        Some(path) => computegate_gateway::policy::load(path)
            .map_err(|e| StartupConfigError(format!("policy.file {}: {e}", path.display())))?,
        None => Policy::from_toml(DEFAULT_POLICY)
            .map_err(|e| anyhow::anyhow!("the built-in default policy is invalid: {e}"))?,
    })
}

/// Appends `policy`, put in force by `trigger`, to the audit chain unless the last policy
/// record names the same version and text digest; whether it was appended.
pub async fn record(
    store: &Store,
    policy: &Policy,
    trigger: PolicyTrigger,
) -> Result<bool, StoreError> {
    let load = PolicyLoad {
        version: policy.version().to_owned(),
        effective_from: policy.effective_from().to_string(),
        digest: policy.digest().to_owned(),
        trigger,
    };
    store
        .audit()
        .record_policy_load(&load, OffsetDateTime::now_utc())
        .await
}

/// Reloads `path` into `handle` now and records an accepted policy in the audit chain; errors
/// are logged (and a rejected file counted by the handle).
pub async fn reload(
    handle: &PolicyHandle,
    path: &Path,
    metrics: &PolicyMetrics,
    store: &Store,
    trigger: PolicyTrigger,
) {
    match handle.reload(path, metrics) {
        Ok(p) => {
            tracing::info!(version = %p.version(), "policy reloaded");
            // The policy is in force either way; a store outage only loses the record.
            if let Err(e) = record(store, &p, trigger).await {
                tracing::error!(error = %e, "the reloaded policy could not be recorded in the audit chain");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload rejected; the previous policy stays in force")
        }
    }
}

/// Watches `path` and reloads when its modification time changes.
pub fn spawn_watcher(
    handle: Arc<PolicyHandle>,
    path: PathBuf,
    metrics: Arc<PolicyMetrics>,
    store: Store,
) {
    tokio::spawn(async move {
        let mut last = modified(&path);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now.is_some() && now != last {
                last = now;
                reload(&handle, &path, &metrics, &store, PolicyTrigger::FileChanged).await;
            }
        }
    });
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

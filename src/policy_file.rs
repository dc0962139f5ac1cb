//! The policy in force: loaded from `policy.file` or the shipped default built into the binary,
//! and reloaded atomically on SIGHUP and when the file changes (a bad file is rejected, logged
//! and counted, and the old policy stays).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use computegate_gateway::policy::{Policy, PolicyHandle, PolicyMetrics};
use prometheus_client::registry::Registry;

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
    let policy = match file {
        Some(path) => computegate_gateway::policy::load(path)
            .map_err(|e| StartupConfigError(format!("policy.file {}: {e}", path.display())))?,
        None => Policy::from_toml(DEFAULT_POLICY)
            .map_err(|e| anyhow::anyhow!("the built-in default policy is invalid: {e}"))?,
    };
    let metrics = Arc::new(PolicyMetrics::register(registry, &policy));
    Ok((Arc::new(PolicyHandle::new(policy)), metrics))
}

/// Reloads `path` into `handle` now; errors are logged and counted by the handle.
pub fn reload(handle: &PolicyHandle, path: &Path, metrics: &PolicyMetrics) {
    match handle.reload(path, metrics) {
        Ok(p) => tracing::info!(version = %p.version(), "policy reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "policy reload rejected; the previous policy stays in force")
        }
    }
}

/// Watches `path` and reloads when its modification time changes.
pub fn spawn_watcher(handle: Arc<PolicyHandle>, path: PathBuf, metrics: Arc<PolicyMetrics>) {
    tokio::spawn(async move {
        let mut last = modified(&path);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now.is_some() && now != last {
                last = now;
                reload(&handle, &path, &metrics);
            }
        }
    });
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

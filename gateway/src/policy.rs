//! The policy in force for the data plane: the pure policy model and decisions of
//! `computegate-policy` (re-exported here, so `crate::policy::Policy` is the one type the
//! gateway uses), plus what needs I/O — reading the policy file ([`load`]) and the
//! [`PolicyHandle`] that swaps the policy atomically on reload (file watching and SIGHUP).
//!
//! Readers take a cheap `Arc` clone under a read lock that is held for nanoseconds; a reload
//! builds the new [`Policy`] completely (parse + validate) before taking the write lock, so a
//! request sees either the old policy or the new one, never a mix, and a bad file never
//! replaces a good one.

use std::path::Path;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use computegate_policy::*;

/// Shared holder of the policy in force.
#[derive(Debug)]
pub struct PolicyHandle {
    current: RwLock<Arc<Policy>>,
}

/// Reload outcome label of `computegate_policy_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReloadResult {
    /// The new policy is in force.
    Applied,
    /// The file was rejected; the old policy stays.
    Rejected,
}

/// Policy metrics: reloads by result, and the version in force.
#[derive(Debug, Clone)]
pub struct PolicyMetrics {
    reloads: Family<ResultLabel, Counter>,
    info: Family<VersionLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
    table_version: String,
}

/// Reads and validates the policy file at `path` (the file read is the only I/O; parsing and
/// validation are [`Policy::from_toml`]).
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Policy::from_toml(&text)
}

// === impl PolicyHandle ===

impl PolicyHandle {
    /// Holds `policy` as the one in force.
    pub fn new(policy: Policy) -> Self {
        Self {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy in force now. Keep the `Arc` for the whole request so one request is decided
    /// under one policy.
    pub fn current(&self) -> Arc<Policy> {
        // A poisoned lock only means a writer panicked between two whole-`Arc` states; the
        // value inside is still a complete policy.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `policy` in force and returns the one it replaces.
    pub fn replace(&self, policy: Policy) -> Arc<Policy> {
        let new = Arc::new(policy);
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, new)
    }

    /// Loads `path` and, if valid, puts it in force; otherwise keeps the old policy. Records
    /// the outcome in `metrics` and the log either way.
    pub fn reload(&self, path: &Path, metrics: &PolicyMetrics) -> Result<Arc<Policy>, PolicyError> {
        match load(path) {
            Ok(policy) => {
                let old = self.replace(policy);
                let new = self.current();
                metrics.applied(&old, &new);
                tracing::info!(
                    path = %path.display(),
                    old_version = old.version(),
                    version = new.version(),
                    table_version = new.table_version(),
                    "policy reloaded"
                );
                Ok(new)
            }
            Err(e) => {
                metrics.rejected();
                tracing::warn!(path = %path.display(), error = %e, "policy reload rejected; the old policy stays");
                Err(e)
            }
        }
    }
}

// === impl ReloadResult ===

impl ReloadResult {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Rejected => "rejected",
        }
    }
}

// === impl PolicyMetrics ===

impl PolicyMetrics {
    /// Registers `computegate_policy_reloads_total{result}` and
    /// `computegate_policy_info{version, table_version}` (1 for the policy in force) and sets the
    /// info gauge for `initial`.
    pub fn register(registry: &mut Registry, initial: &Policy) -> Self {
        let reloads = Family::<ResultLabel, Counter>::default();
        let info = Family::<VersionLabel, Gauge>::default();
        registry.register(
            "computegate_policy_reloads",
            "Policy reloads by result (applied, rejected)",
            reloads.clone(),
        );
        registry.register(
            "computegate_policy_info",
            "The policy in force (value 1), by policy and accelerator-table version",
            info.clone(),
        );
        for r in [ReloadResult::Applied, ReloadResult::Rejected] {
            reloads.get_or_create_owned(&ResultLabel { result: r.as_str() });
        }
        info.get_or_create(&VersionLabel::of(initial)).set(1);
        Self { reloads, info }
    }

    /// Counts a reload that put `new` in force in place of `old`.
    pub fn applied(&self, old: &Policy, new: &Policy) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: ReloadResult::Applied.as_str(),
            })
            .inc();
        // One series at a time: the label set stays bounded however often policy changes.
        self.info.remove(&VersionLabel::of(old));
        self.info.get_or_create(&VersionLabel::of(new)).set(1);
    }

    /// Counts a rejected reload.
    pub fn rejected(&self) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: ReloadResult::Rejected.as_str(),
            })
            .inc();
    }
}

impl VersionLabel {
    fn of(p: &Policy) -> Self {
        Self {
            version: p.version().to_string(),
            table_version: p.table_version().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");

    fn default_policy() -> Policy {
        Policy::from_toml(DEFAULT).expect("the shipped policy is valid")
    }

    #[test]
    fn handle_swaps_and_reload_keeps_old_on_error() {
        let dir = std::env::temp_dir().join(format!("cg-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        let handle = PolicyHandle::new(default_policy());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = PolicyMetrics::register(&mut registry, &handle.current());

        std::fs::write(
            &path,
            DEFAULT.replacen("version = \"2026.1\"", "version = \"2026.2\"", 1),
        )
        .unwrap();
        let held = handle.current();
        assert_eq!(handle.reload(&path, &metrics).unwrap().version(), "2026.2");
        assert_eq!(
            held.version(),
            "2026.1",
            "an in-flight request keeps its policy"
        );
        assert_eq!(handle.current().version(), "2026.2");

        std::fs::write(&path, "version = [").unwrap();
        assert!(handle.reload(&path, &metrics).is_err());
        assert!(handle.reload(&dir.join("missing.toml"), &metrics).is_err());
        assert_eq!(
            handle.current().version(),
            "2026.2",
            "a bad file never replaces a good one"
        );

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("computegate_policy_reloads_total{result=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("computegate_policy_reloads_total{result=\"rejected\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "computegate_policy_info{version=\"2026.2\",table_version=\"2026-01\"} 1"
            ),
            "{text}"
        );
        assert!(
            !text.contains("version=\"2026.1\""),
            "old version series removed: {text}"
        );

        let old = handle.replace(default_policy());
        assert_eq!(old.version(), "2026.2");
        std::fs::remove_dir_all(&dir).ok();
    }
}

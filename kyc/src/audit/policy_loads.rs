//! Which policy was in force when: every policy put in force — at start-up, or on a reload by
//! the file watcher or SIGHUP — is appended to the chain as `policy.version.loaded` with its
//! version, effective date, the SHA-256 of its text and the trigger, unless it is the one the
//! last such record names (same version and digest), so restarts with an unchanged policy add
//! nothing. The annual pack reads these records back as the versions in force over a period
//! (`crate::ledger::annual`). The detail holds no secrets: the policy file has none, and only
//! its digest is stored, not its text.
//!
//! Two nodes starting at once with a new policy may both record it (each reads the last record
//! before appending); the pack folds consecutive records of one version and digest together.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{AuditAction, AuditEntry, append};
use crate::accounts::Actor;
use crate::names::stored_enum;
use crate::store::{AuditStore, StoreError, in_transaction};

/// What put a policy in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyTrigger {
    /// The process started with it.
    Startup,
    /// The file watcher saw the policy file change.
    FileChanged,
    /// An operator sent SIGHUP.
    Sighup,
}

stored_enum!(PolicyTrigger {
    Startup => "startup",
    FileChanged => "file_changed",
    Sighup => "sighup",
});

/// A policy put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLoad {
    /// `version` of the policy.
    pub version: String,
    /// Its `effective_from` date.
    pub effective_from: String,
    /// SHA-256 (lowercase hex) of its text.
    pub digest: String,
    /// What loaded it.
    pub trigger: PolicyTrigger,
}

// === impl PolicyLoad ===

impl PolicyLoad {
    /// The record's `detail`.
    pub fn detail(&self) -> Value {
        json!({
            "version": self.version,
            "effective_from": self.effective_from,
            "digest": self.digest,
            "trigger": self.trigger.as_str(),
        })
    }

    /// Whether `detail` (of an earlier record) names this same policy: same version and digest.
    /// A redacted or unreadable detail names none, so the load is recorded again.
    pub fn is_recorded_by(&self, detail: &str) -> bool {
        let Ok(doc) = serde_json::from_str::<Value>(detail) else {
            return false;
        };
        doc["version"] == self.version.as_str() && doc["digest"] == self.digest.as_str()
    }
}

// === impl AuditStore ===

impl AuditStore<'_> {
    /// Appends `load` as `policy.version.loaded` unless the last such record names the same
    /// policy; whether it was appended.
    pub async fn record_policy_load(
        &self,
        load: &PolicyLoad,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const LAST: &str = "SELECT detail FROM audit_log WHERE action = $1 \
             ORDER BY seq DESC LIMIT 1";
        let appended = in_transaction!(self.store, |tx| {
            let last: Option<(String,)> = sqlx::query_as(LAST)
                .bind(AuditAction::PolicyLoaded.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if last.is_some_and(|(detail,)| load.is_recorded_by(&detail)) {
                false
            } else {
                let actor = Actor::system("policy");
                let entry = AuditEntry::new(now, &actor, AuditAction::PolicyLoaded, "policy")
                    .with_detail(load.detail());
                append(&mut tx, &entry).await?;
                true
            }
        });
        Ok(appended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::REDACTED_DETAIL;
    use crate::audit::canonical::to_canonical;

    fn load(version: &str, digest: &str) -> PolicyLoad {
        PolicyLoad {
            version: version.into(),
            effective_from: "2026-01-01".into(),
            digest: digest.into(),
            trigger: PolicyTrigger::Startup,
        }
    }

    #[test]
    fn a_load_is_recorded_by_a_record_of_the_same_version_and_digest_whatever_the_trigger() {
        let first = load("2026.1", "aa");
        let stored = to_canonical(&first.detail());
        let restart = PolicyLoad {
            trigger: PolicyTrigger::Sighup,
            ..first.clone()
        };
        assert!(restart.is_recorded_by(&stored));
        assert!(!load("2026.2", "aa").is_recorded_by(&stored));
        assert!(!load("2026.1", "bb").is_recorded_by(&stored), "edited file");
        assert!(!first.is_recorded_by(REDACTED_DETAIL));
        assert!(!first.is_recorded_by("not json"));
    }

    #[test]
    fn the_detail_names_the_trigger_and_no_policy_text() {
        let detail = load("2026.1", "aa").detail();
        assert_eq!(detail["trigger"], "startup");
        assert_eq!(
            detail.as_object().map(|o| o.len()),
            Some(4),
            "version, effective_from, digest, trigger only"
        );
    }
}

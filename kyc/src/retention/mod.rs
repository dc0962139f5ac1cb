//! Retention: purging or redacting records whose class's retention period (the policy's
//! `[retention]`) has run out, and recording that it happened.
//!
//! What expiry means per class (the starting point of the period, and what is done):
//!
//! | class | counts from | done |
//! |---|---|---|
//! | `accounts` | the account's closure (`status = closed`, its `updated_at`) | email and password hash replaced, `redacted_at` set; the row and its id stay (every record refers to it) |
//! | `verification` | the application's end (rejected, expired or closed; or, for an individual's application, its customer's closure); an end customer's account closure | each document's stored bytes and wrapped key purged, `purged_at` set, type, size and SHA-256 stay; the sealed payload withdrawn, `identity_purged_at` set, once it no longer identifies an open account (its customer closed, or a newer application past the draft stage exists); an end customer's sealed identity withdrawn, `identity_purged_at` set; rows and ids stay |
//! | `screening` | the screening | result rows deleted |
//! | `ledger` | the usage event | usage events of closed, finished, released or denied jobs deleted; jobs, crossings and reports stay |
//! | `access_log` | the access | rows deleted |
//! | `audit_chain` | the record's `at` | `actor_ip` cleared and `detail` replaced by [`REDACTED_DETAIL`](crate::audit::REDACTED_DETAIL); `seq`, `at`, `actor`, `action`, `subject`, `prev_hash`, `hash` stay |
//!
//! One run is one transaction: every class is handled, then ONE audit record
//! ([`AuditAction::RetentionApplied`](crate::audit::AuditAction::RetentionApplied)) is
//! appended with the counts per class, the policy version and the highest redacted `seq`
//! ([`REDACTED_THROUGH_KEY`](crate::audit::REDACTED_THROUGH_KEY)) — never any content. A run
//! is idempotent: what it purged or redacted no longer matches, so a second run counts zero.
//! A dry run executes the same statements and rolls them back, so its counts are exactly what
//! a real run would do at that moment.
//!
//! The daily run claims its UTC day in `retention_runs` inside that transaction; a replica that
//! finds the day taken does nothing, so the task acts once per day across the cluster (on
//! PostgreSQL a second replica's insert waits on the first's uncommitted row and then skips).
//!
//! # What redaction keeps provable
//!
//! A redacted record's hash cannot be recomputed (its content is gone). `audit verify` checks
//! that it links to its predecessor, takes its stored hash as the link its successor (or the
//! head) must match, and refuses a redacted record beyond the highest `seq` a verified
//! retention record says it redacted through, or one still carrying content. So redaction
//! cannot hide an edit of a newer record; removing or reordering a redacted record, or
//! changing the last redacted record's hash, breaks a verified link. It does not prove the
//! remaining columns (`at`, `actor`, `action`, `subject`) of a redacted record, nor the hashes
//! inside a run of redacted records: those are covered only by stored hashes that nothing can
//! recompute any more (docs/retention.md says this in full).

mod purge;

use std::collections::BTreeMap;

use computegate_policy::{Policy, RecordClass};
use time::{Date, OffsetDateTime};

use crate::audit::REDACTED_THROUGH_KEY;

/// What a run covers: the cutoff per class with a rule (records whose starting point lies
/// before it have expired) and the policy version they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    cutoffs: BTreeMap<RecordClass, OffsetDateTime>,
    policy_version: String,
}

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// The daily task; acts only if no replica has run on this UTC day yet.
    Daily(Date),
    /// `computegate retention run`: acts now, whatever ran today.
    Manual,
    /// `computegate retention run --dry-run`: counts what a run would do and changes nothing.
    DryRun,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetentionCounts {
    /// Records purged or redacted per class; classes without a rule are absent.
    pub counts: BTreeMap<&'static str, u64>,
    /// The highest redacted audit `seq` after the run (0 when none is).
    pub redacted_through_seq: i64,
}

// === impl RetentionPlan ===

impl RetentionPlan {
    /// The cutoffs of `policy` at `now`.
    pub fn new(policy: &Policy, now: OffsetDateTime) -> RetentionPlan {
        let now_unix = now.unix_timestamp();
        let cutoffs = RecordClass::ALL
            .into_iter()
            .filter_map(|class| {
                let cutoff = policy.retention().cutoff_unix(class, now_unix)?;
                let at = OffsetDateTime::from_unix_timestamp(cutoff).ok()?;
                Some((class, at.replace_nanosecond(now.nanosecond()).unwrap_or(at)))
            })
            .collect();
        RetentionPlan {
            cutoffs,
            policy_version: policy.version().to_owned(),
        }
    }

    /// The cutoff of `class`, if the policy sets a rule for it.
    pub fn cutoff(&self, class: RecordClass) -> Option<OffsetDateTime> {
        self.cutoffs.get(&class).copied()
    }

    /// The classes this plan acts on.
    pub fn classes(&self) -> impl Iterator<Item = RecordClass> + '_ {
        self.cutoffs.keys().copied()
    }
}

// === impl RetentionCounts ===

impl RetentionCounts {
    /// The audit record's detail: counts per class, the policy version and the redaction bound
    /// `verify` checks against; nothing about any record's content.
    fn audit_detail(&self, plan: &RetentionPlan, kind: RunKind) -> serde_json::Value {
        serde_json::json!({
            "counts": self.counts,
            "policy_version": plan.policy_version,
            "trigger": match kind {
                RunKind::Daily(_) => "daily",
                RunKind::Manual | RunKind::DryRun => "manual",
            },
            REDACTED_THROUGH_KEY: self.redacted_through_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn policy(retention: &str) -> Policy {
        let text = include_str!("../../../deploy/policy/default.toml");
        let start = text
            .find("\n[retention")
            .expect("default policy has [retention]");
        let end = start + 1 + text[start + 1..].find("\n# ---").expect("next section");
        Policy::from_toml(&format!(
            "{}\n{retention}\n{}",
            &text[..start],
            &text[end..]
        ))
        .expect("valid policy")
    }

    #[test]
    fn cutoffs_are_now_minus_each_period_and_only_for_classes_with_a_rule() {
        let p = policy(
            "[retention.access_log]\nperiod = \"2d\"\nminimum = \"1d\"\nbasis = \"b\"\n\
             status = \"in_force\"\n",
        );
        let now = datetime!(2030-03-10 12:00:00.5 UTC);
        let plan = RetentionPlan::new(&p, now);
        assert_eq!(
            plan.cutoff(RecordClass::AccessLog),
            Some(datetime!(2030-03-08 12:00:00.5 UTC))
        );
        assert_eq!(plan.cutoff(RecordClass::AuditChain), None);
        assert_eq!(plan.classes().collect::<Vec<_>>(), [RecordClass::AccessLog]);
    }

    #[test]
    fn shipped_policy_keeps_screening_and_the_chain_ten_years() {
        let p = Policy::from_toml(include_str!("../../../deploy/policy/default.toml")).unwrap();
        let now = datetime!(2036-01-01 0:00 UTC);
        let plan = RetentionPlan::new(&p, now);
        for class in [RecordClass::Screening, RecordClass::AuditChain] {
            let cutoff = plan.cutoff(class).expect("rule");
            assert!(
                cutoff <= datetime!(2026-01-01 0:00 UTC),
                "{class}: {cutoff}"
            );
        }
        assert_eq!(plan.classes().count(), RecordClass::ALL.len());
    }

    #[test]
    fn the_audit_detail_holds_counts_and_the_bound_only() {
        let p = Policy::from_toml(include_str!("../../../deploy/policy/default.toml")).unwrap();
        let plan = RetentionPlan::new(&p, datetime!(2030-01-01 0:00 UTC));
        let counts = RetentionCounts {
            counts: [("access_log", 3), ("audit_chain", 7)]
                .into_iter()
                .collect(),
            redacted_through_seq: 41,
        };
        let day = datetime!(2030-01-01 0:00 UTC).date();
        let detail = counts.audit_detail(&plan, RunKind::Daily(day));
        let keys: Vec<&str> = detail
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["counts", "policy_version", REDACTED_THROUGH_KEY, "trigger"]
        );
        assert_eq!(detail["counts"]["audit_chain"], 7);
        assert_eq!(detail[REDACTED_THROUGH_KEY], 41);
        assert_eq!(detail["trigger"], "daily");
    }
}

//! The policy's thresholds and tier caps as the compute ledger applies them: one
//! [`ThresholdRule`] per (threshold, scope, action), the frontier restriction as `block` rules,
//! and a tier's FLOP and concurrency caps as [`LedgerLimits`].
//!
//! These are the only conversions from the policy document to the ledger's inputs; they use the
//! policy's own [`Scope`] and [`Action`], so a new scope or action is a compile error wherever
//! a rule is evaluated or stored, never a silent default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Policy;
use crate::model::{Action, RuleStatus, Scope, Tier};

/// Label of the `block` rules that hold a frontier-restricted submitter below the frontier FLOP
/// (named in the denial's `threshold` problem field).
pub const FRONTIER_RESTRICTED_LABEL: &str = "frontier-restricted-jurisdiction";

/// Report due days of the frontier rules: a blocked job never runs, so no report falls due;
/// the policy default, for form.
const FRONTIER_REPORT_DUE_DAYS: u32 = 15;

/// Tier caps for one admission, as plain data ([`Tier::ledger_limits`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerLimits {
    /// Most FLOP a run lineage may accumulate (used + reserved); `None`: no cap.
    pub max_flop_per_run: Option<f64>,
    /// Most FLOP a customer may have charged within [`LedgerLimits::window`]; `None`: no cap.
    pub max_flop_per_customer_window: Option<f64>,
    /// The rolling window of the customer cap.
    pub window: Duration,
    /// Most jobs a customer may have reserved or running at once; `None`: no cap.
    pub max_concurrent_jobs: Option<u32>,
}

/// One threshold for one scope and one action, as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRule {
    /// Stable label, e.g. `eu_ai_act_art51` (shown in reports and metrics).
    pub label: String,
    /// Cumulative FLOP at which it fires.
    pub flop: f64,
    /// Which total it watches.
    pub scope: Scope,
    /// What crossing it does.
    pub action: Action,
    /// Only for runs declaring biological-sequence data.
    pub bio_sequence_only: bool,
    /// Days from crossing to the report's due date (15 by default in the shipped policy).
    pub report_due_days: u32,
}

/// The thresholds in force and the rolling window of the customer, organization and group
/// totals they watch.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdPolicy {
    /// The rules, in any order.
    pub rules: Vec<ThresholdRule>,
    /// Rolling window for non-run scopes.
    pub window: Duration,
}

/// Whether `rules` give the threshold labelled `label` a `notify` action: its crossings are
/// told to the customer (in the job's answer and the usage view).
pub fn notifies(rules: &[ThresholdRule], label: &str) -> bool {
    (rules.iter()).any(|r| r.label == label && r.action == Action::Notify)
}

// === impl Policy ===

impl Policy {
    /// The policy's thresholds as ledger rules: one rule per scope and action; revoked ones
    /// never fire.
    pub fn threshold_rules(&self) -> Vec<ThresholdRule> {
        let mut rules = Vec::new();
        for t in self.thresholds().iter().filter(|t| t.is_active()) {
            for &scope in &t.scopes {
                for &action in &t.actions {
                    rules.push(ThresholdRule {
                        label: t.label.clone(),
                        flop: t.flop,
                        scope,
                        action,
                        bio_sequence_only: t.applies_when.is_some(),
                        report_due_days: t.report_due_days,
                    });
                }
            }
        }
        rules
    }

    /// The policy's frontier rule (`jurisdiction.frontier`) as ledger rules: `block` at its
    /// FLOP on the run lineage and on the linked group (the customer alone when unlinked, over
    /// the rolling window), so a frontier-scale run split across runs or accounts is refused
    /// too. None when the policy has no frontier rule or its source is revoked.
    pub fn frontier_rules(&self) -> Vec<ThresholdRule> {
        let Some(frontier) = &self.jurisdiction().frontier else {
            return Vec::new();
        };
        if frontier.status == RuleStatus::Revoked {
            return Vec::new();
        }
        [Scope::Run, Scope::Group]
            .into_iter()
            .map(|scope| ThresholdRule {
                label: FRONTIER_RESTRICTED_LABEL.to_string(),
                flop: frontier.flop,
                scope,
                action: Action::Block,
                bio_sequence_only: false,
                report_due_days: FRONTIER_REPORT_DUE_DAYS,
            })
            .collect()
    }

    /// The rules one admission is held to over `window`: [`Policy::threshold_rules`], and for a
    /// submitter in a frontier-restricted jurisdiction group also [`Policy::frontier_rules`].
    pub fn threshold_policy(&self, window: Duration, frontier_restricted: bool) -> ThresholdPolicy {
        let mut rules = self.threshold_rules();
        if frontier_restricted {
            rules.extend(self.frontier_rules());
        }
        ThresholdPolicy { rules, window }
    }
}

// === impl Tier ===

impl Tier {
    /// The tier's cumulative caps as the ledger holds them (the per-job accelerator cap is
    /// checked before the ledger is asked).
    pub fn ledger_limits(&self) -> LedgerLimits {
        LedgerLimits {
            max_flop_per_run: self.max_flop_per_run,
            max_flop_per_customer_window: self.max_flop_per_customer_window,
            window: self.window,
            max_concurrent_jobs: self
                .max_concurrent_jobs
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");
    const WINDOW: Duration = Duration::from_secs(86_400);

    fn frontier_of(rules: &ThresholdPolicy) -> Vec<&ThresholdRule> {
        rules
            .rules
            .iter()
            .filter(|r| r.label == FRONTIER_RESTRICTED_LABEL)
            .collect()
    }

    #[test]
    fn frontier_restricted_submitters_get_blocking_rules_at_the_frontier_flop() {
        let policy = Policy::from_toml(DEFAULT).expect("the shipped policy is valid");
        let plain = policy.threshold_policy(WINDOW, false);
        assert!(frontier_of(&plain).is_empty());
        let restricted = policy.threshold_policy(WINDOW, true);
        assert_eq!(restricted.rules.len(), plain.rules.len() + 2);
        let rules = frontier_of(&restricted);
        let scopes: Vec<_> = rules.iter().map(|r| r.scope).collect();
        assert_eq!(scopes, [Scope::Run, Scope::Group]);
        for r in rules {
            assert_eq!(r.flop, 1e26);
            assert_eq!(r.action, Action::Block);
            assert!(!r.bio_sequence_only);
        }
    }

    #[test]
    fn a_revoked_or_absent_frontier_rule_blocks_nothing() {
        let start = DEFAULT
            .find("[jurisdiction.frontier]")
            .expect("frontier rule");
        let (head, table) = DEFAULT.split_at(start);
        let revoked = table.replacen("status = \"recommended\"", "status = \"revoked\"", 1);
        assert_ne!(revoked, table, "fixture text not found");
        let policy = Policy::from_toml(&format!("{head}{revoked}")).expect("valid when revoked");
        assert!(frontier_of(&policy.threshold_policy(WINDOW, true)).is_empty());
        let end = start + DEFAULT[start..].find("\n\n").expect("end of table");
        let absent = format!("{}{}", &DEFAULT[..start], &DEFAULT[end..]);
        let policy = Policy::from_toml(&absent).expect("valid without a frontier rule");
        assert!(frontier_of(&policy.threshold_policy(WINDOW, true)).is_empty());
    }
}

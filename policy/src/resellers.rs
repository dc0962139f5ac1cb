//! The reseller pass-through rule: a reseller registers its end customers and names one on every
//! job; a reseller whose jobs are refused for a missing, unknown or uncleared end customer too
//! often over a rolling window has stopped passing identities through, and is flagged for a
//! compliance review. The rule is policy data (`[resellers]`); the decision is pure, over
//! counts the ledger reads.

use std::time::Duration;

use serde::Deserialize;

use crate::serde_util::human_duration;

/// `[resellers]`: when a reseller's pass-through refusals flag it for review.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResellerRule {
    /// Largest share of a reseller's jobs refused for their end customer, over `window`, that
    /// is still tolerated (a share above it flags the reseller). Default 0.2.
    #[serde(default = "default_max_refused_share")]
    pub max_refused_share: f64,
    /// The rolling window the share is counted over. Default 24 h.
    #[serde(default = "default_window", with = "human_duration")]
    pub window: Duration,
    /// Fewest jobs in the window before the share is judged, so a reseller's first mistakes
    /// do not flag it. Default 20.
    #[serde(default = "default_min_jobs")]
    pub min_jobs: u64,
}

/// A reseller's job decisions over the rule's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassThroughCounts {
    /// Jobs refused for their end customer (missing, unknown, not the reseller's, not cleared).
    pub refused: u64,
    /// Every job decision of the reseller, those refusals included.
    pub total: u64,
}

/// What the rule makes of a reseller's counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PassThrough {
    /// Fewer jobs than `min_jobs`: not judged yet.
    TooFewJobs,
    /// The refused share is within the rule.
    Within {
        /// Refused / total.
        share: f64,
    },
    /// The refused share exceeds the rule: flag the reseller for review.
    Flag {
        /// Refused / total.
        share: f64,
    },
}

// === impl ResellerRule ===

impl Default for ResellerRule {
    fn default() -> Self {
        Self {
            max_refused_share: default_max_refused_share(),
            window: default_window(),
            min_jobs: default_min_jobs(),
        }
    }
}

impl ResellerRule {
    /// Judges a reseller's counts over the window.
    pub fn judge(&self, counts: PassThroughCounts) -> PassThrough {
        if counts.total == 0 || counts.total < self.min_jobs {
            return PassThrough::TooFewJobs;
        }
        // Counts stay far below 2^52, so the division is exact enough for a share.
        let share = counts.refused.min(counts.total) as f64 / counts.total as f64;
        if share > self.max_refused_share {
            PassThrough::Flag { share }
        } else {
            PassThrough::Within { share }
        }
    }
}

fn default_max_refused_share() -> f64 {
    0.2
}
fn default_window() -> Duration {
    Duration::from_secs(86_400)
}
fn default_min_jobs() -> u64 {
    20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max: f64, min_jobs: u64) -> ResellerRule {
        ResellerRule {
            max_refused_share: max,
            min_jobs,
            ..ResellerRule::default()
        }
    }

    fn counts(refused: u64, total: u64) -> PassThroughCounts {
        PassThroughCounts { refused, total }
    }

    #[test]
    fn too_few_jobs_are_not_judged_however_many_are_refused() {
        let r = rule(0.2, 20);
        assert_eq!(r.judge(counts(19, 19)), PassThrough::TooFewJobs);
        assert_eq!(r.judge(counts(0, 0)), PassThrough::TooFewJobs);
        // `min_jobs = 0` still never divides by zero.
        assert_eq!(rule(0.2, 0).judge(counts(0, 0)), PassThrough::TooFewJobs);
    }

    #[test]
    fn a_share_above_the_maximum_flags_and_the_maximum_itself_does_not() {
        let r = rule(0.2, 20);
        assert_eq!(r.judge(counts(4, 20)), PassThrough::Within { share: 0.2 });
        assert_eq!(r.judge(counts(5, 20)), PassThrough::Flag { share: 0.25 });
        assert_eq!(r.judge(counts(0, 50)), PassThrough::Within { share: 0.0 });
    }

    #[test]
    fn refusals_never_count_for_more_than_every_job() {
        assert_eq!(
            rule(0.5, 1).judge(counts(9, 3)),
            PassThrough::Flag { share: 1.0 }
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let r = ResellerRule::default();
        assert_eq!(r.max_refused_share, 0.2);
        assert_eq!(r.window, Duration::from_secs(86_400));
        assert_eq!(r.min_jobs, 20);
    }
}

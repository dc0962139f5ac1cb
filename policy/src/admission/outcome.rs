//! The typed answer to one job submission — admitted, held for review, or refused with a typed
//! reason — carrying everything the data plane needs to answer and count it (estimate, limit,
//! threshold, the tier that would allow the job). The ledger adapter builds it from the
//! stateless checks here ([`precheck`]) and the ledger's verdict under its row locks
//! ([`evaluate`](super::evaluate)); the gateway maps it to headers and one problem document.
//!
//! Metric labels come from these enums ([`Outcome::metric_labels`]), never from strings compared
//! at run time: a new reason is a compile error wherever it must be handled.

use std::fmt;

use super::model::{Crossing, Denial, DenialReason, Totals};
use crate::{CapNeeds, Policy, Scope, ThresholdRule, Tier, notifies};

/// The ledger's answer to one job submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Reserved and recorded; forward the job.
    Admitted(Admitted),
    /// Held until a compliance officer decides; resubmit after approval.
    Held(Hold),
    /// Refused.
    Denied(Refusal),
}

/// An admitted job.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The ledger's job id.
    pub job_id: String,
    /// The run id as recorded.
    pub run_id: String,
    /// FLOP reserved.
    pub estimate_flop: f64,
    /// Tightest remaining budget after this job, FLOP; `None` without FLOP caps.
    pub remaining_flop: Option<f64>,
    /// Thresholds this job crossed whose policy says `notify`: the answer tells the customer.
    pub notices: Vec<Notice>,
}

/// A threshold crossing the customer is told about (a `notify` action).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The threshold's label.
    pub label: String,
    /// Which total crossed it.
    pub scope: Scope,
    /// The threshold, FLOP.
    pub threshold_flop: f64,
}

/// A job held for review.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The review to quote.
    pub review_id: String,
    /// Why it is held.
    pub reason: HoldReason,
    /// FLOP the job would reserve.
    pub estimate_flop: f64,
}

/// Why a job is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// The declared compute and the hardware estimate disagree beyond the policy's factor.
    DeclaredGap {
        /// The gap, as the estimate describes it.
        gap: String,
    },
    /// The job crosses a threshold whose action is `review`.
    ThresholdReview,
}

/// A refused job.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The rule that refused it.
    pub reason: RefusalReason,
    /// The submitter's tier.
    pub tier: String,
    /// FLOP the job would reserve.
    pub estimate_flop: f64,
    /// The FLOP limit it would pass (cap or blocking threshold).
    pub limit_flop: Option<f64>,
    /// The blocking threshold's label.
    pub threshold: Option<String>,
    /// The lowest tier whose caps would allow the job; `None` when none would, or when the
    /// refusal is not about caps.
    pub required_tier: Option<String>,
}

/// Why a job was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The submitter's tier is not in the policy in force (e.g. removed on reload).
    UnknownTier,
    /// More accelerators than the tier allows per job.
    AcceleratorsPerJob {
        /// Accelerators requested.
        requested: u64,
        /// The tier's limit.
        limit: u64,
    },
    /// The ledger does not know the submitting account.
    UnknownAccount,
    /// The ledger refused the request as malformed (the text names the field).
    InvalidRequest(&'static str),
    /// A denied-party screening match on the account awaits compliance review.
    ScreeningHold,
    /// A cap or a `block` threshold, decided on the totals under the ledger's locks.
    Ledger(DenialReason),
    /// A reseller's job does not name an end customer it may run for (or the reseller is
    /// suspended): the end customer's identity was not passed through.
    EndCustomer(EndCustomerRefusal),
}

/// Why a job was refused for its end customer (see `docs/resellers.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndCustomerRefusal {
    /// A reseller's job names no end customer.
    Missing,
    /// The named end customer is not one the reseller registered (unknown, malformed, or
    /// another reseller's: the answer does not tell which).
    Unknown,
    /// The end customer's screening is not cleared, or it is suspended.
    NotCleared,
    /// Only a reseller's jobs may name an end customer.
    NotReseller,
    /// Staff suspended the reseller: none of its jobs run.
    ResellerSuspended,
}

// === impl EndCustomerRefusal ===

impl EndCustomerRefusal {
    /// Every reason.
    pub const ALL: [EndCustomerRefusal; 5] = [
        EndCustomerRefusal::Missing,
        EndCustomerRefusal::Unknown,
        EndCustomerRefusal::NotCleared,
        EndCustomerRefusal::NotReseller,
        EndCustomerRefusal::ResellerSuspended,
    ];

    /// Bounded code for problem documents (`reason`) and the stored refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            EndCustomerRefusal::Missing => "end_customer_missing",
            EndCustomerRefusal::Unknown => "end_customer_unknown",
            EndCustomerRefusal::NotCleared => "end_customer_not_cleared",
            EndCustomerRefusal::NotReseller => "end_customer_not_allowed",
            EndCustomerRefusal::ResellerSuspended => "reseller_suspended",
        }
    }

    /// Whether the refusal counts against the reseller's pass-through share: the job was the
    /// reseller's and failed to name a cleared end customer of its own. A suspended
    /// reseller's refusals are its suspension, not new evidence; a non-reseller has no share.
    pub fn counts_against_pass_through(self) -> bool {
        match self {
            EndCustomerRefusal::Missing
            | EndCustomerRefusal::Unknown
            | EndCustomerRefusal::NotCleared => true,
            EndCustomerRefusal::NotReseller | EndCustomerRefusal::ResellerSuspended => false,
        }
    }
}

impl fmt::Display for EndCustomerRefusal {
    /// Why, in words safe to show the submitter (never whose an end customer id is).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndCustomerRefusal::Missing => {
                "a reseller's job must name its end customer (header \
                 `X-Computegate-End-Customer`, or `end_customer` in the job body)"
            }
            EndCustomerRefusal::Unknown => "the end customer is not one you registered",
            EndCustomerRefusal::NotCleared => {
                "the end customer is not cleared to run jobs (screening under review, refused, \
                 or suspended)"
            }
            EndCustomerRefusal::NotReseller => {
                "only a reseller's jobs may name an end customer; leave the end customer out"
            }
            EndCustomerRefusal::ResellerSuspended => {
                "the reseller is suspended by compliance staff; no job runs for it"
            }
        })
    }
}

/// What an admission is counted as: `(decision, reason)` metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Admitted.
    Admitted,
    /// Held for review.
    Held,
    /// Refused.
    Denied,
}

/// The facts of a job the stateless checks need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobFacts<'a> {
    /// The submitter's tier.
    pub tier: &'a str,
    /// Accelerators requested.
    pub accelerators: u64,
    /// FLOP the job would reserve.
    pub estimate_flop: f64,
}

/// The stateless checks before the ledger is asked: the tier exists in the policy in force and
/// allows this many accelerators per job. `Ok` is the tier whose caps the ledger applies.
pub fn precheck<'p>(policy: &'p Policy, job: &JobFacts<'_>) -> Result<&'p Tier, Refusal> {
    let Some(tier) = policy.tier(job.tier) else {
        return Err(Refusal::stateless(policy, job, RefusalReason::UnknownTier));
    };
    if let Some(limit) = tier.max_accelerators_per_job
        && job.accelerators > limit
    {
        let reason = RefusalReason::AcceleratorsPerJob {
            requested: job.accelerators,
            limit,
        };
        return Err(Refusal::stateless(policy, job, reason));
    }
    Ok(tier)
}

// === impl Outcome ===

impl Outcome {
    /// The `(decision, reason)` label values this outcome is counted under.
    pub fn metric_labels(&self) -> (Decision, &'static str) {
        match self {
            Outcome::Admitted(_) => (Decision::Admitted, "within_limits"),
            Outcome::Held(h) => (Decision::Held, h.reason.as_str()),
            Outcome::Denied(r) => (Decision::Denied, r.reason.metric_label()),
        }
    }
}

// === impl Refusal ===

impl Refusal {
    /// A refusal decided before the ledger was asked: the tier that would allow the job is
    /// judged on the job alone (its accelerators and its estimate as the run's total).
    pub fn stateless(policy: &Policy, job: &JobFacts<'_>, reason: RefusalReason) -> Self {
        let needs = CapNeeds {
            accelerators: job.accelerators,
            run_flop: job.estimate_flop,
            customer_window_flop: 0.0,
            concurrent_jobs: 1,
        };
        Self::with_needs(policy, job, reason, &needs, None)
    }

    /// A refusal by the ledger's rules, judged on the totals the ledger read under its locks
    /// (`before`: without this job). The tier that would allow it is the lowest whose caps fit
    /// the totals with the job added.
    pub fn ledger(policy: &Policy, job: &JobFacts<'_>, denial: Denial, before: &Totals) -> Self {
        let needs = CapNeeds {
            accelerators: job.accelerators,
            run_flop: before.lineage_flop + job.estimate_flop,
            customer_window_flop: before.customer_window_flop + job.estimate_flop,
            concurrent_jobs: before.open_jobs.unwrap_or(0) + 1,
        };
        let mut refusal = Self::with_needs(
            policy,
            job,
            RefusalReason::Ledger(denial.reason),
            &needs,
            denial.limit_flop,
        );
        refusal.threshold = denial.threshold_label;
        refusal
    }

    /// A refusal about the account rather than the job's size: no tier would change it.
    pub fn account(job: &JobFacts<'_>, reason: RefusalReason) -> Self {
        Self {
            reason,
            tier: job.tier.to_string(),
            estimate_flop: job.estimate_flop,
            limit_flop: None,
            threshold: None,
            required_tier: None,
        }
    }

    fn with_needs(
        policy: &Policy,
        job: &JobFacts<'_>,
        reason: RefusalReason,
        needs: &CapNeeds,
        limit_flop: Option<f64>,
    ) -> Self {
        let required_tier = policy
            .required_tier_for(needs)
            .map(|t| t.name.clone())
            .filter(|t| t.as_str() != job.tier);
        Self {
            reason,
            tier: job.tier.to_string(),
            estimate_flop: job.estimate_flop,
            limit_flop,
            threshold: None,
            required_tier,
        }
    }
}

impl fmt::Display for Refusal {
    /// Why, in words safe to show the submitter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tier = &self.tier;
        match self.reason {
            RefusalReason::UnknownTier => f.write_str("the account's tier is not in the policy"),
            RefusalReason::AcceleratorsPerJob { requested, limit } => write!(
                f,
                "{requested} accelerators requested; tier `{tier}` allows {limit} per job"
            ),
            RefusalReason::UnknownAccount => f.write_str("unknown account"),
            RefusalReason::InvalidRequest(why) => f.write_str(why),
            RefusalReason::ScreeningHold => f.write_str(
                "a denied-party screening match on your application awaits compliance review; \
                 job submission is barred until a reviewer clears it",
            ),
            RefusalReason::Ledger(DenialReason::RunCap) => write!(
                f,
                "the run (with its fine-tunes) would exceed tier `{tier}`'s FLOP per run"
            ),
            RefusalReason::Ledger(DenialReason::CustomerWindowCap) => write!(
                f,
                "the account would exceed tier `{tier}`'s FLOP per rolling window"
            ),
            RefusalReason::Ledger(DenialReason::ConcurrentJobs { limit }) => {
                write!(f, "tier `{tier}` allows {limit} jobs at once")
            }
            RefusalReason::Ledger(DenialReason::Threshold) => {
                f.write_str("the job would cross a threshold whose action is to block")
            }
            RefusalReason::EndCustomer(why) => why.fmt(f),
        }
    }
}

// === impl RefusalReason ===

impl RefusalReason {
    /// Bounded code for problem documents (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::UnknownTier => "tier_unknown",
            RefusalReason::AcceleratorsPerJob { .. } => "accelerators_per_job",
            RefusalReason::UnknownAccount => "unknown_account",
            RefusalReason::InvalidRequest(_) => "invalid_request",
            RefusalReason::ScreeningHold => "screening_hold",
            RefusalReason::Ledger(reason) => reason.as_str(),
            RefusalReason::EndCustomer(why) => why.as_str(),
        }
    }

    /// The metric `reason` label: caps on the FLOP totals, blocking thresholds, the account's
    /// screening hold, malformed requests, and the tier's other limits.
    pub fn metric_label(self) -> &'static str {
        match self {
            RefusalReason::Ledger(DenialReason::Threshold) => "threshold",
            RefusalReason::Ledger(DenialReason::RunCap | DenialReason::CustomerWindowCap) => {
                "flop_cap"
            }
            RefusalReason::ScreeningHold => "screening_hold",
            RefusalReason::UnknownAccount | RefusalReason::InvalidRequest(_) => "invalid_request",
            RefusalReason::EndCustomer(_) => "end_customer",
            RefusalReason::UnknownTier
            | RefusalReason::AcceleratorsPerJob { .. }
            | RefusalReason::Ledger(DenialReason::ConcurrentJobs { .. }) => "tier_limit",
        }
    }
}

// === impl HoldReason ===

impl HoldReason {
    /// Bounded code for problem documents and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            HoldReason::DeclaredGap { .. } => "declared_gap",
            HoldReason::ThresholdReview => "threshold_review",
        }
    }
}

impl fmt::Display for HoldReason {
    /// Why, in words safe to show the submitter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::DeclaredGap { gap } => write!(
                f,
                "the declared compute and the hardware estimate disagree ({gap}); a compliance \
                 officer reviews the job; resubmit it once the review is approved"
            ),
            HoldReason::ThresholdReview => f.write_str(
                "the job crosses a threshold that requires a compliance review; resubmit it once \
                 the review is approved",
            ),
        }
    }
}

// === impl Decision ===

impl Decision {
    /// Bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Admitted => "admitted",
            Decision::Held => "held",
            Decision::Denied => "denied",
        }
    }
}

// === impl Notice ===

impl Notice {
    /// The notices among a job's `crossings`: those whose label `rules` give a `notify` action
    /// (a crossing carries only its strongest action, so the rules are asked).
    pub fn from_crossings(rules: &[ThresholdRule], crossings: &[Crossing]) -> Vec<Notice> {
        (crossings.iter())
            .filter(|c| notifies(rules, &c.label))
            .map(|c| Notice {
                label: c.label.clone(),
                scope: c.scope,
                threshold_flop: c.threshold_flop,
            })
            .collect()
    }
}

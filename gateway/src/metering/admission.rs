//! The admission evaluator: given the totals the ledger locked and a job's estimate, which tier
//! caps are exceeded and which thresholds the job crosses, and what happens.
//!
//! Pure and plain-data in, plain-data out, so the ledger can call it inside its SQL
//! transaction with the rows it holds locked. The strongest outcome wins:
//! block > review > (report, notify: admit with crossings to record).
//!
//! - **Caps** (hardware estimate): accelerators per job; run-lineage total + estimate against
//!   `max_flop_per_run`; customer total over the tier's window + estimate against
//!   `max_flop_per_customer_window`; active jobs + 1 against `max_concurrent_jobs`. Exceeded →
//!   block, naming the lowest tier that would allow the job.
//! - **Frontier jurisdiction**: a party in a frontier-restricted group is blocked when the run
//!   lineage or linked group would reach the rule's FLOP (by the hardware or the declared
//!   estimate, whichever is larger).
//! - **Thresholds**: a threshold is crossed in a scope when `previous < flop ≤ previous +
//!   amount`, where amount is the larger of the hardware and declared estimates (basis
//!   `declared` when only the declaration reaches it). Scopes without a total (no organization,
//!   no group) are skipped. Revoked thresholds never fire; `applies_when =
//!   "biological_sequence_data"` fires only for jobs declaring such data.
//!
//! Crossings are facts about one admission; the ledger should record each (scope subject,
//! threshold label) once, since a released reservation can let a later job cross again.

use std::fmt;

use crate::policy::{Action, Policy, RuleStatus, Scope};

/// A tier's caps as plain data (`None` = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierCaps {
    /// Most accelerators per job.
    pub max_accelerators_per_job: Option<u64>,
    /// Most FLOP per run lineage.
    pub max_flop_per_run: Option<f64>,
    /// Most FLOP per customer over the tier's window.
    pub max_flop_per_customer_window: Option<f64>,
    /// Most jobs at once.
    pub max_concurrent_jobs: Option<u64>,
}

/// What a job would need from a tier's caps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapNeeds {
    /// Accelerators of the job.
    pub accelerators: u64,
    /// Run-lineage total including this job, FLOP.
    pub run_flop: f64,
    /// Customer window total including this job, FLOP.
    pub customer_window_flop: f64,
    /// Active jobs including this one.
    pub concurrent_jobs: u64,
}

/// Cumulative FLOP before this job (measured use plus open reservations), as locked by the
/// ledger. `organization` and `group` are `None` when the customer has none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// The job's run lineage.
    pub run: f64,
    /// The customer, over the tier's window.
    pub customer: f64,
    /// The customer's organization.
    pub organization: Option<f64>,
    /// The customer's linked group.
    pub group: Option<f64>,
}

/// Everything the evaluator needs about one submission.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmissionInput {
    /// The principal's tier.
    pub tier: String,
    /// Accelerators of the job.
    pub accelerators: u64,
    /// Hardware estimate, FLOP (reserved and capped).
    pub estimate_flop: f64,
    /// Declared 6·N·D, FLOP, if any (projects thresholds only).
    pub declared_flop: Option<f64>,
    /// The estimate flagged a declared/hardware gap.
    pub declared_gap: bool,
    /// The job declares biological-sequence data.
    pub biological_sequence: bool,
    /// Totals before this job.
    pub totals: Totals,
    /// The customer's jobs admitted and not finished.
    pub active_jobs: u64,
    /// The party is in a frontier-restricted jurisdiction group.
    pub frontier_restricted: bool,
}

/// A threshold crossed by one admission or usage event in one scope.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Crossing {
    /// Threshold label.
    pub threshold_label: String,
    /// Threshold FLOP.
    pub flop: f64,
    /// Scope whose total crosses it.
    pub scope: Scope,
    /// The threshold's actions, weakest first.
    pub actions: Vec<Action>,
    /// What the crossing is based on.
    pub basis: CrossingBasis,
    /// Scope total before, FLOP.
    pub previous_total: f64,
    /// Scope total after, FLOP.
    pub new_total: f64,
    /// Days until the report is due, when an action is `report`.
    pub report_due_days: Option<u32>,
    /// The threshold's source.
    pub source: String,
    /// Standing of that source.
    pub status: RuleStatus,
}

/// What a crossing's total is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrossingBasis {
    /// The hardware estimate at submission (projected).
    Estimate,
    /// Only the declared 6·N·D reaches it (projected).
    Declared,
    /// Measured usage from the compute platform.
    Measured,
}

/// The evaluator's answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AdmissionVerdict {
    /// Forward the job; record the crossings (reports, notices).
    Admit {
        /// Thresholds crossed (notify/report only).
        crossings: Vec<Crossing>,
        /// Declared-gap action to record, if the gap was flagged and the policy does not
        /// review it.
        declared_gap: Option<Action>,
        /// Budget left after this job, FLOP (`None` = no FLOP cap).
        remaining_flop: Option<f64>,
    },
    /// Hold the job until a compliance officer approves.
    Review {
        /// Thresholds crossed.
        crossings: Vec<Crossing>,
        /// Why it is held.
        reasons: Vec<ReviewReason>,
        /// Budget left after this job if approved, FLOP.
        remaining_flop: Option<f64>,
    },
    /// Refuse the job.
    Block(Block),
}

/// Why a job is held for review.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReviewReason {
    /// A threshold with a `review` action is crossed.
    Threshold {
        /// Its label.
        label: String,
        /// Its FLOP.
        flop: f64,
    },
    /// Declared and hardware estimates differ beyond the policy's factor.
    DeclaredGap,
}

/// A refusal with the fields of the 403 problem document.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Block {
    /// Why.
    pub reason: BlockReason,
    /// The FLOP limit exceeded, when the reason is a FLOP cap, threshold or frontier rule.
    pub limit_flop: Option<f64>,
    /// The count limit exceeded (accelerators, concurrent jobs).
    pub limit_count: Option<u64>,
    /// Threshold label, when a `block` threshold refused.
    pub threshold: Option<String>,
    /// Lowest tier that would admit the job; `None` when no tier would.
    pub required_tier: Option<String>,
    /// Human explanation, safe to show the customer.
    pub detail: String,
}

/// Why a job was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockReason {
    /// The tier is not in the policy.
    UnknownTier,
    /// More accelerators than the tier allows per job.
    AcceleratorsPerJob,
    /// The run lineage would exceed the tier's FLOP per run.
    FlopPerRun,
    /// The customer would exceed the tier's FLOP per window.
    FlopPerCustomerWindow,
    /// Too many jobs at once.
    ConcurrentJobs,
    /// Frontier-scale training for a party in a restricted jurisdiction.
    FrontierJurisdiction,
    /// A threshold whose action is `block`.
    Threshold,
}

/// Decides one submission under `policy`.
pub fn evaluate(policy: &Policy, input: &AdmissionInput) -> AdmissionVerdict {
    let Some(tier) = policy.tier(&input.tier) else {
        return AdmissionVerdict::Block(Block {
            reason: BlockReason::UnknownTier,
            limit_flop: None,
            limit_count: None,
            threshold: None,
            required_tier: None,
            detail: format!(
                "tier `{}` is not defined by the policy in force",
                input.tier
            ),
        });
    };
    let caps = tier.caps();
    let est = input.estimate_flop.max(0.0);
    let t = &input.totals;
    let needs = CapNeeds {
        accelerators: input.accelerators,
        run_flop: t.run + est,
        customer_window_flop: t.customer + est,
        concurrent_jobs: input.active_jobs.saturating_add(1),
    };
    if let Some(reason) = caps.first_exceeded(&needs) {
        let required = policy.required_tier_for(&needs).map(|r| r.name.clone());
        return AdmissionVerdict::Block(cap_block(reason, &caps, &needs, &tier.name, required));
    }
    let projected = input.declared_flop.map_or(est, |d| d.max(est));
    if let Some(block) = frontier_block(policy, input, projected) {
        return AdmissionVerdict::Block(block);
    }
    let mut all = crossings(
        policy,
        t,
        projected,
        CrossingBasis::Estimate,
        input.biological_sequence,
    );
    for c in &mut all {
        if c.previous_total + est < c.flop {
            c.basis = CrossingBasis::Declared;
        }
    }
    if let Some(c) = all.iter().find(|c| c.actions.contains(&Action::Block)) {
        return AdmissionVerdict::Block(Block {
            reason: BlockReason::Threshold,
            limit_flop: Some(c.flop),
            limit_count: None,
            threshold: Some(c.threshold_label.clone()),
            required_tier: None,
            detail: format!(
                "the {} total would reach {:e} FLOP, threshold `{}` ({})",
                c.scope, c.flop, c.threshold_label, c.source
            ),
        });
    }
    let remaining_flop = caps.remaining(&needs);
    let mut reasons: Vec<ReviewReason> = Vec::new();
    for c in all.iter().filter(|c| c.actions.contains(&Action::Review)) {
        let dup = reasons.iter().any(
            |r| matches!(r, ReviewReason::Threshold { label, .. } if *label == c.threshold_label),
        );
        if !dup {
            reasons.push(ReviewReason::Threshold {
                label: c.threshold_label.clone(),
                flop: c.flop,
            });
        }
    }
    let gap_action = input.declared_gap.then(|| policy.declared_gap_action());
    if gap_action == Some(Action::Review) {
        reasons.push(ReviewReason::DeclaredGap);
    }
    if reasons.is_empty() {
        AdmissionVerdict::Admit {
            crossings: all,
            declared_gap: gap_action,
            remaining_flop,
        }
    } else {
        AdmissionVerdict::Review {
            crossings: all,
            reasons,
            remaining_flop,
        }
    }
}

/// Thresholds that `amount` more FLOP crosses in each scope of `totals`; what usage events use
/// with [`CrossingBasis::Measured`] when measured use runs past a reservation.
pub fn crossings(
    policy: &Policy,
    totals: &Totals,
    amount: f64,
    basis: CrossingBasis,
    biological_sequence: bool,
) -> Vec<Crossing> {
    let mut out = Vec::new();
    if !(amount.is_finite() && amount > 0.0) {
        return out;
    }
    for th in policy.thresholds().iter().filter(|t| t.is_active()) {
        if th.applies_when.is_some() && !biological_sequence {
            continue;
        }
        for &scope in &th.scopes {
            let Some(previous) = totals.get(scope) else {
                continue;
            };
            let new_total = previous + amount;
            if previous < th.flop && th.flop <= new_total {
                out.push(Crossing {
                    threshold_label: th.label.clone(),
                    flop: th.flop,
                    scope,
                    actions: sorted(&th.actions),
                    basis,
                    previous_total: previous,
                    new_total,
                    report_due_days: th
                        .actions
                        .contains(&Action::Report)
                        .then_some(th.report_due_days),
                    source: th.source.clone(),
                    status: th.status,
                });
            }
        }
    }
    out
}

fn sorted(actions: &[Action]) -> Vec<Action> {
    let mut a = actions.to_vec();
    a.sort();
    a.dedup();
    a
}

fn cap_block(
    reason: BlockReason,
    caps: &TierCaps,
    needs: &CapNeeds,
    tier: &str,
    required_tier: Option<String>,
) -> Block {
    let (limit_flop, limit_count, what) = match reason {
        BlockReason::AcceleratorsPerJob => (
            None,
            caps.max_accelerators_per_job,
            format!("{} accelerators per job", needs.accelerators),
        ),
        BlockReason::FlopPerRun => (
            caps.max_flop_per_run,
            None,
            format!("{:.3e} FLOP for the run lineage", needs.run_flop),
        ),
        BlockReason::FlopPerCustomerWindow => (
            caps.max_flop_per_customer_window,
            None,
            format!(
                "{:.3e} FLOP in the customer window",
                needs.customer_window_flop
            ),
        ),
        _ => (
            None,
            caps.max_concurrent_jobs,
            format!("{} concurrent jobs", needs.concurrent_jobs),
        ),
    };
    let limit = limit_flop
        .map(|f| format!("{f:e} FLOP"))
        .or(limit_count.map(|n| n.to_string()))
        .unwrap_or_default();
    let hint = match &required_tier {
        Some(r) => format!("; tier `{r}` allows it"),
        None => "; no tier allows it".to_string(),
    };
    Block {
        reason,
        limit_flop,
        limit_count,
        threshold: None,
        required_tier,
        detail: format!("tier `{tier}` allows at most {limit}, the job needs {what}{hint}"),
    }
}

fn frontier_block(policy: &Policy, input: &AdmissionInput, projected: f64) -> Option<Block> {
    let rule = policy.jurisdiction().frontier.as_ref()?;
    if !input.frontier_restricted || rule.status == RuleStatus::Revoked {
        return None;
    }
    let t = &input.totals;
    let reaches = |total: Option<f64>| total.is_some_and(|v| v + projected >= rule.flop);
    if !(reaches(Some(t.run)) || reaches(t.group)) {
        return None;
    }
    Some(Block {
        reason: BlockReason::FrontierJurisdiction,
        limit_flop: Some(rule.flop),
        limit_count: None,
        threshold: None,
        required_tier: None,
        detail: format!(
            "training at {:e} FLOP or more is not available to parties in a restricted \
             jurisdiction ({})",
            rule.flop, rule.source
        ),
    })
}

// === impl TierCaps ===

impl TierCaps {
    /// The first cap `needs` exceeds, if any.
    pub fn first_exceeded(&self, needs: &CapNeeds) -> Option<BlockReason> {
        let over_u = |cap: Option<u64>, v: u64| cap.is_some_and(|c| v > c);
        let over_f = |cap: Option<f64>, v: f64| cap.is_some_and(|c| v > c);
        if over_u(self.max_accelerators_per_job, needs.accelerators) {
            Some(BlockReason::AcceleratorsPerJob)
        } else if over_f(self.max_flop_per_run, needs.run_flop) {
            Some(BlockReason::FlopPerRun)
        } else if over_f(
            self.max_flop_per_customer_window,
            needs.customer_window_flop,
        ) {
            Some(BlockReason::FlopPerCustomerWindow)
        } else if over_u(self.max_concurrent_jobs, needs.concurrent_jobs) {
            Some(BlockReason::ConcurrentJobs)
        } else {
            None
        }
    }

    /// FLOP budget left after `needs` (the tighter of run and window caps), never negative.
    pub fn remaining(&self, needs: &CapNeeds) -> Option<f64> {
        let run = self.max_flop_per_run.map(|c| c - needs.run_flop);
        let window = self
            .max_flop_per_customer_window
            .map(|c| c - needs.customer_window_flop);
        match (run, window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|v| v.max(0.0))
    }
}

// === impl Totals ===

impl Totals {
    /// The total for `scope`, if the customer has one.
    pub fn get(&self, scope: Scope) -> Option<f64> {
        match scope {
            Scope::Run => Some(self.run),
            Scope::Customer => Some(self.customer),
            Scope::Organization => self.organization,
            Scope::Group => self.group,
        }
    }
}

// === impl AdmissionInput ===

impl AdmissionInput {
    /// Input for `spec` with `estimate` under `tier`, before the ledger fills in totals, active
    /// jobs and jurisdiction.
    pub fn new(tier: &str, spec: &super::JobSpec, estimate: &super::Estimate) -> Self {
        Self {
            tier: tier.to_string(),
            accelerators: spec.accelerators,
            estimate_flop: estimate.admitted_flop(),
            declared_flop: estimate.declared_flop,
            declared_gap: estimate.has_declared_gap(),
            biological_sequence: spec.is_biological_sequence(),
            ..Self::default()
        }
    }
}

// === impl AdmissionVerdict ===

impl AdmissionVerdict {
    /// `admit`, `review` or `block`, for metric labels and records.
    pub fn decision(&self) -> &'static str {
        match self {
            AdmissionVerdict::Admit { .. } => "admit",
            AdmissionVerdict::Review { .. } => "review",
            AdmissionVerdict::Block(_) => "block",
        }
    }

    /// Thresholds crossed (empty for a block).
    pub fn crossings(&self) -> &[Crossing] {
        match self {
            AdmissionVerdict::Admit { crossings, .. }
            | AdmissionVerdict::Review { crossings, .. } => crossings,
            AdmissionVerdict::Block(_) => &[],
        }
    }
}

impl BlockReason {
    /// Stable name for metric labels and problem documents.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::UnknownTier => "tier_unknown",
            BlockReason::AcceleratorsPerJob => "tier_accelerators_per_job",
            BlockReason::FlopPerRun => "tier_flop_per_run",
            BlockReason::FlopPerCustomerWindow => "tier_flop_per_customer_window",
            BlockReason::ConcurrentJobs => "tier_concurrent_jobs",
            BlockReason::FrontierJurisdiction => "jurisdiction_frontier",
            BlockReason::Threshold => "threshold_block",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CrossingBasis {
    /// Whether the crossing is projected (at submission) rather than measured.
    pub fn is_projected(self) -> bool {
        self != CrossingBasis::Measured
    }

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CrossingBasis::Estimate => "estimate",
            CrossingBasis::Declared => "declared",
            CrossingBasis::Measured => "measured",
        }
    }
}

#[cfg(test)]
mod tests;

//! The pure admission rules: caps, threshold crossings and the proposed verdict, over a
//! [`Snapshot`] of totals read under the budget locks. No I/O and no clock: rolling windows are
//! applied when the snapshot is read.
//!
//! Precedence: a cap or `block` threshold denies; otherwise a `review` crossing (or a review the
//! caller asks for) holds; otherwise the job is admitted, with its `notify` and `report`
//! crossings recorded.
//!
//! A threshold *fires* for a scope (a lineage, customer, organization or group) the first time
//! the scope's projected total reaches it: `threshold <= previous + job`, unless an admitted job
//! already fired it for that scope. So a total that passes a threshold fires it once — also
//! when it got there without crossing it in one job (two accounts linked after the fact, a
//! lineage that shrank when a job finished early and grows again) — and a held or denied job
//! leaves it unfired for the resubmission. A `block` threshold refuses any job whose projected
//! total reaches it. Caps are checked with the reserved estimate; thresholds are projected with
//! the larger of the estimate and the declared compute.

use uuid::Uuid;

use super::model::{Crossing, Denial, DenialReason, Totals};
use crate::{LedgerLimits, Scope, ThresholdPolicy, ThresholdRule};

/// Totals read under the budget locks, before the job, with the ids of each scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Root run of the job's lineage.
    pub lineage_root: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The customer's organization, if any.
    pub organization_id: Option<Uuid>,
    /// The customer's linked group, if linked.
    pub group_id: Option<Uuid>,
    /// The totals.
    pub totals: Totals,
    /// `(scope id, label)` of thresholds admitted jobs already fired — needed only for the
    /// rules [`reached`] lists.
    pub fired: Vec<(Uuid, String)>,
}

/// The job as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobFigures {
    /// FLOP reserved and held against the caps.
    pub estimate_flop: f64,
    /// FLOP the thresholds are projected with (at least the estimate; e.g. a larger declared
    /// 6·N·D figure).
    pub projected_flop: f64,
    /// The run declares biological-sequence data.
    pub bio_sequence: bool,
    /// The caller asks for a review hold whatever the thresholds say (e.g. the declared
    /// estimate is far from the hardware one).
    pub hold_for_review: bool,
}

/// What the rules propose, before any review approval is looked up.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// Reserve and forward.
    Admit,
    /// Hold for a compliance decision (a `review` threshold is crossed).
    Review,
    /// Refuse.
    Deny(Denial),
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The proposed verdict.
    pub proposal: Proposal,
    /// Every threshold the job would cross, in rule order.
    pub crossings: Vec<Crossing>,
    /// Totals if the job is admitted.
    pub totals_if_admitted: Totals,
}

/// Applies caps and thresholds to a job.
pub fn evaluate(
    limits: &LedgerLimits,
    policy: &ThresholdPolicy,
    job: &JobFigures,
    snapshot: &Snapshot,
) -> Evaluation {
    let projected = job.projected_flop.max(job.estimate_flop);
    let crossings = fired_now(&policy.rules, job.bio_sequence, snapshot, projected);
    let denial = cap_denial(limits, &snapshot.totals, job.estimate_flop)
        .or_else(|| block_denial(&policy.rules, job.bio_sequence, snapshot, projected));
    let review = job.hold_for_review || crossings.iter().any(|c| c.action.holds_for_review());
    let proposal = match denial {
        Some(denial) => Proposal::Deny(denial),
        None if review => Proposal::Review,
        None => Proposal::Admit,
    };
    Evaluation {
        proposal,
        crossings,
        totals_if_admitted: add(&snapshot.totals, job.estimate_flop),
    }
}

/// Thresholds that fire when measured usage grows the job's charge by `growth` FLOP (no caps:
/// the job is already running).
pub fn usage_crossings(
    rules: &[ThresholdRule],
    bio_sequence: bool,
    snapshot: &Snapshot,
    growth: f64,
) -> Vec<Crossing> {
    if growth > 0.0 {
        fired_now(rules, bio_sequence, snapshot, growth)
    } else {
        Vec::new()
    }
}

/// `(scope id, label)` of every applicable rule the projected total reaches: the thresholds
/// whose fired state the store must look up before [`evaluate`].
pub fn reached(
    rules: &[ThresholdRule],
    bio_sequence: bool,
    snapshot: &Snapshot,
    growth: f64,
) -> Vec<(Uuid, String)> {
    applicable(rules, bio_sequence)
        .filter_map(|r| {
            let (scope_id, previous) = scope_total(r.scope, snapshot)?;
            (r.flop <= previous + growth).then(|| (scope_id, r.label.clone()))
        })
        .collect()
}

/// The tightest remaining FLOP cap for `totals`, never negative; `None` without FLOP caps.
pub fn remaining_flop(limits: &LedgerLimits, totals: &Totals) -> Option<f64> {
    let run = limits.max_flop_per_run.map(|cap| cap - totals.lineage_flop);
    let window = limits
        .max_flop_per_customer_window
        .map(|cap| cap - totals.customer_window_flop);
    let tightest = match (run, window) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    tightest.map(|r| r.max(0.0))
}

/// `totals` with `flop` added to every FLOP total.
pub fn add(totals: &Totals, flop: f64) -> Totals {
    Totals {
        lineage_flop: totals.lineage_flop + flop,
        customer_window_flop: totals.customer_window_flop + flop,
        customer_flop: totals.customer_flop + flop,
        organization_flop: totals.organization_flop.map(|t| t + flop),
        group_flop: totals.group_flop + flop,
        open_jobs: totals.open_jobs,
    }
}

/// The first cap the job would pass: concurrency, then the run cap, then the customer window.
fn cap_denial(limits: &LedgerLimits, totals: &Totals, estimate: f64) -> Option<Denial> {
    let cap = |reason, limit_flop| Denial {
        reason,
        limit_flop,
        threshold_label: None,
        scope: None,
    };
    if let Some(limit) = limits.max_concurrent_jobs
        && totals.open_jobs.unwrap_or(0) >= u64::from(limit)
    {
        return Some(cap(DenialReason::ConcurrentJobs { limit }, None));
    }
    if let Some(max) = limits.max_flop_per_run
        && totals.lineage_flop + estimate > max
    {
        return Some(cap(DenialReason::RunCap, Some(max)));
    }
    if let Some(max) = limits.max_flop_per_customer_window
        && totals.customer_window_flop + estimate > max
    {
        return Some(cap(DenialReason::CustomerWindowCap, Some(max)));
    }
    None
}

/// The lowest `block` threshold the projected total would reach.
fn block_denial(
    rules: &[ThresholdRule],
    bio_sequence: bool,
    snapshot: &Snapshot,
    estimate: f64,
) -> Option<Denial> {
    applicable(rules, bio_sequence)
        .filter(|r| r.action.refuses())
        .filter(|r| {
            scope_total(r.scope, snapshot).is_some_and(|(_, total)| total + estimate >= r.flop)
        })
        .min_by(|a, b| a.flop.total_cmp(&b.flop))
        .map(|r| Denial {
            reason: DenialReason::Threshold,
            limit_flop: Some(r.flop),
            threshold_label: Some(r.label.clone()),
            scope: Some(r.scope),
        })
}

/// Every applicable rule the projected total reaches that no admitted job fired yet for its
/// scope, one crossing per `(label, scope id)` with the highest action of its rules (a policy
/// may list one threshold once per action).
fn fired_now(
    rules: &[ThresholdRule],
    bio_sequence: bool,
    snapshot: &Snapshot,
    growth: f64,
) -> Vec<Crossing> {
    let mut out: Vec<Crossing> = Vec::new();
    for r in applicable(rules, bio_sequence) {
        let Some((scope_id, previous)) = scope_total(r.scope, snapshot) else {
            continue;
        };
        let projected = previous + growth;
        let fired = snapshot
            .fired
            .iter()
            .any(|(id, label)| *id == scope_id && *label == r.label);
        if r.flop > projected || fired {
            continue;
        }
        merge_crossing(&mut out, r, scope_id, previous, projected);
    }
    out
}

/// Adds rule `r` firing for `scope_id` (total `previous` → `projected`) to `out`: one crossing
/// per (label, scope, scope id), with the strongest action and the earliest report due of the
/// label's rules (a policy lists one threshold once per action).
pub fn merge_crossing(
    out: &mut Vec<Crossing>,
    r: &ThresholdRule,
    scope_id: Uuid,
    previous: f64,
    projected: f64,
) {
    let same = out
        .iter_mut()
        .find(|c| c.label == r.label && c.scope == r.scope && c.scope_id == scope_id);
    match same {
        Some(c) => {
            c.action = c.action.max(r.action);
            c.report_due_days = c.report_due_days.min(r.report_due_days);
        }
        None => out.push(Crossing {
            label: r.label.clone(),
            threshold_flop: r.flop,
            scope: r.scope,
            scope_id,
            action: r.action,
            previous_flop: previous,
            projected_flop: projected,
            report_due_days: r.report_due_days,
        }),
    }
}

/// Rules that apply to this job: biological-sequence rules only for runs declaring such data.
fn applicable(rules: &[ThresholdRule], bio_sequence: bool) -> impl Iterator<Item = &ThresholdRule> {
    rules
        .iter()
        .filter(move |r| bio_sequence || !r.bio_sequence_only)
}

/// The id and current total a scope refers to; `None` for an organization scope of a customer
/// without one. An unlinked customer is its own group.
fn scope_total(scope: Scope, s: &Snapshot) -> Option<(Uuid, f64)> {
    let t = &s.totals;
    match scope {
        Scope::Run => Some((s.lineage_root, t.lineage_flop)),
        Scope::Customer => Some((s.customer_id, t.customer_flop)),
        Scope::Organization => s.organization_id.zip(t.organization_flop),
        Scope::Group => Some((s.group_id.unwrap_or(s.customer_id), t.group_flop)),
    }
}

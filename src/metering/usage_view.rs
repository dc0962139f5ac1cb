//! The customer's usage view (`GET /computegate/v1/usage`), built by a pure function from the
//! policy in force, the customer's tier and the ledger's totals: per scope (run lineage,
//! customer, organization, linked group) the total, the cap and what remains, and the
//! thresholds ahead with what crossing each means; the customer's jobs; and the notices —
//! crossings of thresholds whose action is `notify`.

use computegate_kyc::ledger::{CustomerUsage, JobRecord, JobStatus, ScopeCrossing};
use computegate_policy::{Action, Policy, Scope, ThresholdRule, Tier, short_duration};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// The whole view.
#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    /// The caller.
    pub customer_id: Uuid,
    /// Its tier.
    pub tier: String,
    /// The policy version the caps and thresholds come from.
    pub policy_version: String,
    /// Reserved or running jobs against the tier's concurrency cap.
    pub concurrent_jobs: ConcurrentJobs,
    /// One entry per scope the customer is counted in.
    pub scopes: Vec<ScopeView>,
    /// The customer's jobs, newest first.
    pub jobs: Vec<JobView>,
    /// Crossings of `notify` thresholds, newest first.
    pub notices: Vec<Notice>,
}

/// Open jobs and the cap.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrentJobs {
    /// Reserved or running now.
    pub open: u64,
    /// The tier's cap (`null`: none).
    pub cap: Option<u64>,
}

/// One scope's budget.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeView {
    /// `run` (a lineage: a run and its fine-tunes), `customer`, `organization`, `group`.
    pub scope: &'static str,
    /// Lineage root, customer, organization or group id.
    pub id: Uuid,
    /// For `run`: the root run's run id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The rolling window totals are counted over (`null`: lifetime, for run lineages).
    pub window: Option<String>,
    /// Used plus reserved FLOP.
    pub total_flop: f64,
    /// The tier's cap on this total (`null`: none).
    pub cap_flop: Option<f64>,
    /// `cap_flop - total_flop`, never below zero.
    pub remaining_flop: Option<f64>,
    /// Thresholds the total has not reached yet, lowest first.
    pub thresholds_ahead: Vec<ThresholdAhead>,
}

/// A threshold ahead of a scope's total.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdAhead {
    /// The policy's label.
    pub label: String,
    /// Where it fires.
    pub flop: f64,
    /// How far away it is.
    pub remaining_flop: f64,
    /// Its actions.
    pub actions: Vec<Action>,
    /// What crossing it means, one sentence per action.
    pub means: Vec<String>,
    /// Days from crossing to a report's due date, when it calls for a report.
    pub report_due_days: Option<u32>,
    /// Only runs declaring biological-sequence data count.
    pub bio_sequence_only: bool,
}

/// A job as its customer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Ledger job id (`X-Computegate-Job`).
    pub id: Uuid,
    /// Run id.
    pub run_id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// FLOP estimated at admission.
    pub estimate_flop: f64,
    /// Measured FLOP.
    pub measured_flop: f64,
    /// What it counts for.
    pub charged_flop: f64,
    /// Decision time.
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    /// When its lease ends (ended).
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Why it was closed without a final usage event.
    pub closed_reason: Option<computegate_kyc::ledger::CloseReason>,
    /// The admission decision as the ledger stored it (`admitted`, `held_for_review`,
    /// `denied_run_cap`, …), for the portal's pages; not part of the JSON answer.
    #[serde(skip)]
    pub decision: String,
}

/// A `notify` threshold crossed.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// The threshold's label.
    pub label: String,
    /// The scope whose total crossed it.
    pub scope: String,
    /// The threshold.
    pub threshold_flop: f64,
    /// The job that crossed it.
    pub job_id: Uuid,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Human-readable.
    pub message: String,
}

/// Who the view is for.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    /// The customer.
    pub customer_id: Uuid,
    /// Its organization.
    pub organization_id: Option<Uuid>,
    /// Its tier (`None` when the tier is not in the policy: no caps shown).
    pub tier: Option<&'a Tier>,
    /// The tier's name.
    pub tier_name: &'a str,
}

/// Builds the view. Pure.
pub fn build(
    policy: &Policy,
    who: Viewer<'_>,
    usage: &CustomerUsage,
    jobs: &[JobRecord],
) -> UsageView {
    let rules = policy.threshold_rules();
    let window = who.tier.map(|t| short_duration(t.window));
    let mut scopes = Vec::new();
    for lineage in &usage.lineages {
        let cap = who.tier.and_then(|t| t.max_flop_per_run);
        scopes.push(scope_view(
            Scope::Run,
            lineage.lineage_root,
            Some(lineage.root_run_id.clone()),
            None,
            lineage.flop,
            cap,
            &rules,
        ));
    }
    let cap = who.tier.and_then(|t| t.max_flop_per_customer_window);
    scopes.push(scope_view(
        Scope::Customer,
        who.customer_id,
        None,
        window.clone(),
        usage.customer_window_flop,
        cap,
        &rules,
    ));
    if let (Some(org), Some(total)) = (who.organization_id, usage.organization_flop) {
        scopes.push(scope_view(
            Scope::Organization,
            org,
            None,
            window.clone(),
            total,
            None,
            &rules,
        ));
    }
    // A customer linked to nobody is a group of one: its group total is its own.
    let (group_id, group_total) = usage
        .group
        .unwrap_or((who.customer_id, usage.customer_flop));
    scopes.push(scope_view(
        Scope::Group,
        group_id,
        None,
        window,
        group_total,
        None,
        &rules,
    ));
    UsageView {
        customer_id: who.customer_id,
        tier: who.tier_name.to_owned(),
        policy_version: policy.version().to_owned(),
        concurrent_jobs: ConcurrentJobs {
            open: usage.open_jobs,
            cap: who.tier.and_then(|t| t.max_concurrent_jobs),
        },
        scopes,
        jobs: jobs.iter().map(job_view).collect(),
        notices: notices(&rules, &usage.crossings),
    }
}

/// The notices among `crossings`: those of labels the policy gives a `notify` action. Pure.
pub fn notices(rules: &[ThresholdRule], crossings: &[ScopeCrossing]) -> Vec<Notice> {
    crossings
        .iter()
        .filter(|c| computegate_policy::notifies(rules, &c.label))
        .map(|c| Notice {
            label: c.label.clone(),
            scope: c.scope.clone(),
            threshold_flop: c.threshold_flop,
            job_id: c.job_id,
            at: c.occurred_at,
            message: notice_text(&c.label, &c.scope, c.threshold_flop),
        })
        .collect()
}

/// The notice text for a crossing of `label` by a `scope` total.
pub fn notice_text(label: &str, scope: &str, threshold_flop: f64) -> String {
    format!("the {scope} total reached the `{label}` threshold of {threshold_flop:e} FLOP")
}

fn scope_view(
    scope: Scope,
    id: Uuid,
    run_id: Option<String>,
    window: Option<String>,
    total: f64,
    cap: Option<f64>,
    rules: &[ThresholdRule],
) -> ScopeView {
    ScopeView {
        scope: scope.as_str(),
        id,
        run_id,
        window,
        total_flop: total,
        cap_flop: cap,
        remaining_flop: cap.map(|c| (c - total).max(0.0)),
        thresholds_ahead: ahead(rules, scope, total),
    }
}

/// The thresholds of `scope` above `total`, one entry per label with all its actions, lowest
/// first. Pure.
pub fn ahead(rules: &[ThresholdRule], scope: Scope, total: f64) -> Vec<ThresholdAhead> {
    let mut out: Vec<ThresholdAhead> = Vec::new();
    for r in rules.iter().filter(|r| r.scope == scope && r.flop > total) {
        let entry = match out.iter_mut().find(|a| a.label == r.label) {
            Some(e) => e,
            None => {
                out.push(ThresholdAhead {
                    label: r.label.clone(),
                    flop: r.flop,
                    remaining_flop: r.flop - total,
                    actions: Vec::new(),
                    means: Vec::new(),
                    report_due_days: None,
                    bio_sequence_only: r.bio_sequence_only,
                });
                out.last_mut().expect("just pushed")
            }
        };
        if !entry.actions.contains(&r.action) {
            entry.actions.push(r.action);
            entry.means.push(meaning(r.action, r.report_due_days));
            if r.action >= Action::Report {
                entry.report_due_days = Some(r.report_due_days);
            }
        }
    }
    out.sort_by(|a, b| a.flop.total_cmp(&b.flop).then(a.label.cmp(&b.label)));
    for a in &mut out {
        a.actions.sort();
    }
    out
}

/// What crossing a threshold with `action` means for the customer.
fn meaning(action: Action, report_due_days: u32) -> String {
    match action {
        Action::Notify => "you are notified (job answer and this view)".into(),
        Action::Report => format!(
            "a report to the authorities is due within {report_due_days} days of the crossing"
        ),
        Action::Review => {
            "the job that would cross it is held for compliance review until staff approve it"
                .into()
        }
        Action::Block => "a job that would cross it is refused".into(),
    }
}

fn job_view(j: &JobRecord) -> JobView {
    JobView {
        id: j.id,
        run_id: j.run_id.clone(),
        status: j.status,
        estimate_flop: j.estimate_flop,
        measured_flop: j.used_flop,
        charged_flop: j.charged_flop,
        decided_at: j.decided_at,
        lease_expires_at: j.lease_expires_at,
        closed_reason: j.closed_reason,
        decision: j.decision.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, flop: f64, scope: Scope, action: Action) -> ThresholdRule {
        ThresholdRule {
            label: label.into(),
            flop,
            scope,
            action,
            bio_sequence_only: false,
            report_due_days: 15,
        }
    }

    #[test]
    fn thresholds_ahead_are_grouped_by_label_lowest_first() {
        let rules = vec![
            rule("big", 1e26, Scope::Run, Action::Review),
            rule("eu", 1e25, Scope::Run, Action::Report),
            rule("eu", 1e25, Scope::Run, Action::Notify),
            rule("eu", 1e25, Scope::Customer, Action::Notify),
            rule("passed", 1e20, Scope::Run, Action::Notify),
            rule("big", 1e26, Scope::Run, Action::Report),
        ];
        let a = ahead(&rules, Scope::Run, 1e21);
        let labels: Vec<&str> = a.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["eu", "big"], "passed thresholds are not ahead");
        assert_eq!(a[0].actions, [Action::Notify, Action::Report]);
        assert_eq!(a[0].report_due_days, Some(15));
        assert_eq!(a[0].remaining_flop, 1e25 - 1e21);
        assert_eq!(a[0].means.len(), 2);
        assert!(
            a[0].means.iter().any(|m| m.contains("15 days")),
            "{:?}",
            a[0].means
        );
        assert_eq!(a[1].actions, [Action::Report, Action::Review]);
        let only_notify = ahead(&rules, Scope::Customer, 0.0);
        assert_eq!(only_notify[0].report_due_days, None);
    }

    #[test]
    fn only_notify_thresholds_make_notices() {
        let rules = vec![
            rule("heads-up", 1e20, Scope::Customer, Action::Notify),
            rule("file", 1e21, Scope::Run, Action::Report),
        ];
        let crossing = |label: &str| ScopeCrossing {
            label: label.into(),
            scope: "customer".into(),
            scope_id: Uuid::nil(),
            threshold_flop: 1e20,
            job_id: Uuid::nil(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
        };
        let n = notices(&rules, &[crossing("heads-up"), crossing("file")]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].label, "heads-up");
        assert!(n[0].message.contains("heads-up"), "{}", n[0].message);
    }
}

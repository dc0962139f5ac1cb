//! The gateway's compute-ledger port implemented with the store: a job the data plane has
//! metered is reserved against the run lineage, customer, organization and linked-group budgets in
//! one transaction, with the tier caps and thresholds of the policy in force.
//!
//! Stateless caps (accelerators per job) are checked here before the store is asked; everything
//! that depends on cumulative totals is decided inside the ledger's transaction.

use std::sync::Arc;

use computegate_gateway::admission::{
    AdmissionOutcome, ComputeLedger, JobAdmission, LedgerUnavailable,
};
use computegate_gateway::auth::BoxFuture;
use computegate_gateway::metering::{Estimate, EstimateFlag};
use computegate_gateway::policy::{Action, CapNeeds, Policy, RuleStatus, Scope};
use computegate_kyc::Store;

use crate::ledger_metrics::LedgerMetrics;
use computegate_kyc::ledger::{
    AdmissionOptions, AdmissionRequest, DenialReason, LedgerError, LedgerLimits, ThresholdAction,
    ThresholdPolicy, ThresholdRule, ThresholdScope, Verdict,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// [`ComputeLedger`] over the store.
pub struct StoreLedger {
    store: Store,
    metrics: Arc<LedgerMetrics>,
}

impl StoreLedger {
    /// A ledger writing to `store`.
    pub fn new(store: Store, metrics: Arc<LedgerMetrics>) -> Arc<Self> {
        Arc::new(Self { store, metrics })
    }
}

/// Attempts at releasing a reservation before giving up (each is one short transaction).
const RELEASE_ATTEMPTS: u32 = 3;

impl ComputeLedger for StoreLedger {
    fn release(&self, job_id: String, reason: String) -> BoxFuture<()> {
        let store = self.store.clone();
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(&job_id) else {
                return;
            };
            for attempt in 1..=RELEASE_ATTEMPTS {
                match store
                    .release_job(id, &reason, OffsetDateTime::now_utc())
                    .await
                {
                    Ok(()) => return,
                    // Usage events already settle it, or it is gone: nothing to return.
                    Err(LedgerError::JobNotOpen { .. } | LedgerError::UnknownJob) => return,
                    Err(e) if attempt == RELEASE_ATTEMPTS => {
                        tracing::warn!(job = %id, error = %e,
                            "could not release the reservation of a job the upstream refused; \
                             it stays counted until it leaves the rolling windows");
                    }
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(
                            50 * u64::from(attempt),
                        ))
                        .await;
                    }
                }
            }
        })
    }

    fn admit(&self, job: JobAdmission) -> BoxFuture<Result<AdmissionOutcome, LedgerUnavailable>> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = admit(&store, &metrics, &job).await;
            let (decision, reason) = match &outcome {
                Ok(AdmissionOutcome::Admitted { .. }) => ("admitted", "within_limits"),
                Ok(AdmissionOutcome::Held { .. }) if job.estimate.has_declared_gap() => {
                    ("held", "declared_gap")
                }
                Ok(AdmissionOutcome::Held { .. }) => ("held", "threshold_review"),
                Ok(AdmissionOutcome::Denied {
                    threshold: Some(_), ..
                }) => ("denied", "threshold"),
                Ok(AdmissionOutcome::Denied {
                    limit_flop: Some(_),
                    ..
                }) => ("denied", "flop_cap"),
                Ok(_) => ("denied", "tier_limit"),
                Err(_) => ("unavailable", "store"),
            };
            metrics.admission(decision, reason);
            if decision == "admitted" {
                metrics.admitted(&job.principal.tier, job.estimate.admitted_flop());
            }
            outcome
        })
    }
}

/// Admission of one metered job: stateless caps here, the rest in the ledger's transaction.
async fn admit(
    store: &Store,
    metrics: &LedgerMetrics,
    job: &JobAdmission,
) -> Result<AdmissionOutcome, LedgerUnavailable> {
    {
        {
            let policy = job.policy.clone();
            let Some(tier) = policy.tier(&job.principal.tier) else {
                return Ok(denied(
                    &policy,
                    job,
                    "the account's tier is not in the policy",
                    None,
                ));
            };
            if let Some(max) = tier.max_accelerators_per_job
                && job.spec.accelerators > max
            {
                let detail = format!(
                    "{} accelerators requested; tier `{}` allows {max} per job",
                    job.spec.accelerators, tier.name
                );
                return Ok(denied(&policy, job, &detail, None));
            }
            let Ok(customer_id) = Uuid::parse_str(&job.principal.customer_id) else {
                return Ok(denied(&policy, job, "unknown account", None));
            };
            let request = AdmissionRequest {
                customer_id,
                organization_id: job
                    .principal
                    .organization_id
                    .as_deref()
                    .and_then(|o| Uuid::parse_str(o).ok()),
                run_id: job
                    .spec
                    .run_id
                    .clone()
                    .unwrap_or_else(|| format!("job-{}", job.request_id)),
                parent_run_id: job.spec.parent_run_id.clone(),
                estimate_flop: job.estimate.admitted_flop(),
                hardware_flop: Some(job.estimate.hardware_flop),
                declared_flop: job.estimate.declared_flop,
                basis: job.estimate.basis.clone(),
                table_version: job.estimate.table_version.clone(),
                accelerators: u32::try_from(job.spec.accelerators).unwrap_or(u32::MAX),
                accelerator_type: job.estimate.accelerator_type_resolved.clone(),
                flop_per_accelerator_second: job
                    .estimate
                    .accelerator_type_resolved
                    .is_some()
                    .then_some(job.estimate.peak_flops * job.estimate.utilization),
                bio_sequence: job.spec.is_biological_sequence(),
                limits: LedgerLimits {
                    max_flop_per_run: tier.max_flop_per_run,
                    max_flop_per_customer_window: tier.max_flop_per_customer_window,
                    window: tier.window,
                    max_concurrent_jobs: tier
                        .max_concurrent_jobs
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                },
                thresholds: Arc::new(thresholds(&policy, tier.window, job.frontier_restricted)),
                identity_snapshot: Some(crate::report_identity::from_principal(&job.principal)),
                route: job.route.to_string(),
                request_id: job.request_id.clone(),
                client_ip: Some(job.client_ip),
                now: OffsetDateTime::now_utc(),
            };
            let options = admission_options(&job.estimate);
            let decision = match store.admit_with(&request, &options).await {
                Ok(d) => d,
                Err(LedgerError::Invalid(why)) => return Ok(denied(&policy, job, why, None)),
                Err(e) => {
                    tracing::warn!(error = %e, "job admission failed; refusing (fail closed)");
                    return Err(LedgerUnavailable);
                }
            };
            metrics.crossed(&decision.crossings);
            Ok(match decision.verdict {
                Verdict::Admitted => AdmissionOutcome::Admitted {
                    job_id: decision.job_id.to_string(),
                    run_id: request.run_id,
                    remaining_flop: decision.remaining_flop,
                },
                Verdict::HeldForReview { review_id } => AdmissionOutcome::Held {
                    review_id: review_id.to_string(),
                    detail: match &options.hold_for_review {
                        Some(gap) => format!(
                            "the declared compute and the hardware estimate disagree ({gap}); \
                             a compliance officer reviews the job; resubmit it once the review \
                             is approved"
                        ),
                        None => "the job crosses a threshold that requires a compliance review; \
                                 resubmit it once the review is approved"
                            .into(),
                    },
                },
                Verdict::Denied(d) => {
                    let detail = match d.reason {
                        DenialReason::RunCap => format!(
                            "the run (with its fine-tunes) would exceed tier `{}`'s FLOP per run",
                            tier.name
                        ),
                        DenialReason::CustomerWindowCap => format!(
                            "the account would exceed tier `{}`'s FLOP per rolling window",
                            tier.name
                        ),
                        DenialReason::ConcurrentJobs { limit } => {
                            format!("tier `{}` allows {limit} jobs at once", tier.name)
                        }
                        _ => "the job would cross a threshold whose action is to block".into(),
                    };
                    // The tier that would allow it, judged on the totals with this job added (a
                    // denied job is not in `totals_after`).
                    let t = &decision.totals_after;
                    let estimate = job.estimate.admitted_flop();
                    let needs = CapNeeds {
                        accelerators: job.spec.accelerators,
                        run_flop: t.lineage_flop + estimate,
                        customer_window_flop: t.customer_window_flop + estimate,
                        concurrent_jobs: t.open_jobs.unwrap_or(0) + 1,
                    };
                    let required_tier = policy
                        .required_tier_for(&needs)
                        .map(|t| t.name.clone())
                        .filter(|t| t.as_str() != job.principal.tier.as_ref());
                    AdmissionOutcome::Denied {
                        detail,
                        limit_flop: d.limit_flop,
                        threshold: d.threshold_label,
                        required_tier,
                    }
                }
            })
        }
    }
}

/// What the ledger adds to the hardware estimate: the declared 6·N·D compute projects the
/// thresholds when it is larger (a run that says it will cross a threshold fires it at
/// submission), and a declared/hardware gap beyond the policy's factor holds the job for review.
fn admission_options(estimate: &Estimate) -> AdmissionOptions {
    let gap = estimate.flags.iter().find_map(|f| match f {
        EstimateFlag::DeclaredGap { .. } => Some(f.to_string()),
        _ => None,
    });
    AdmissionOptions {
        projected_flop: (estimate.projected_flop() > estimate.admitted_flop())
            .then(|| estimate.projected_flop()),
        hold_for_review: gap,
    }
}

/// Label of the `block` rules that hold a frontier-restricted submitter below the frontier FLOP
/// (named in the denial's `threshold` problem field).
pub const FRONTIER_RESTRICTED_LABEL: &str = "frontier-restricted-jurisdiction";

/// The policy's thresholds as ledger rules over `window`; for a submitter in a
/// frontier-restricted jurisdiction group also [`frontier_rules`].
fn thresholds(
    policy: &Policy,
    window: std::time::Duration,
    frontier_restricted: bool,
) -> ThresholdPolicy {
    let mut rules = threshold_rules(policy);
    if frontier_restricted {
        rules.extend(frontier_rules(policy));
    }
    ThresholdPolicy { rules, window }
}

/// The policy's frontier rule (`jurisdiction.frontier`) as ledger rules: `block` at its FLOP on
/// the run lineage and on the linked group (the customer alone when unlinked, over the rolling
/// window), so a frontier-scale run split across runs or accounts is refused too. None when the
/// policy has no frontier rule or its source is revoked.
pub fn frontier_rules(policy: &Policy) -> Vec<ThresholdRule> {
    let Some(frontier) = &policy.jurisdiction().frontier else {
        return Vec::new();
    };
    if frontier.status == RuleStatus::Revoked {
        return Vec::new();
    }
    [ThresholdScope::Run, ThresholdScope::Group]
        .into_iter()
        .map(|scope| ThresholdRule {
            label: FRONTIER_RESTRICTED_LABEL.to_string(),
            flop: frontier.flop,
            scope,
            action: ThresholdAction::Block,
            bio_sequence_only: false,
            // A blocked job never runs, so no report falls due; the policy default for form.
            report_due_days: 15,
        })
        .collect()
}

/// The policy's thresholds as ledger rules: one rule per scope and action; revoked ones never fire.
pub fn threshold_rules(policy: &Policy) -> Vec<ThresholdRule> {
    let mut rules = Vec::new();
    for t in policy.thresholds() {
        if t.status == RuleStatus::Revoked {
            continue;
        }
        for scope in &t.scopes {
            for action in &t.actions {
                rules.push(ThresholdRule {
                    label: t.label.clone(),
                    flop: t.flop,
                    scope: match scope {
                        Scope::Run => ThresholdScope::Run,
                        Scope::Customer => ThresholdScope::Customer,
                        Scope::Organization => ThresholdScope::Organization,
                        _ => ThresholdScope::Group,
                    },
                    action: match action {
                        Action::Notify => ThresholdAction::Notify,
                        Action::Report => ThresholdAction::Report,
                        Action::Review => ThresholdAction::Review,
                        _ => ThresholdAction::Block,
                    },
                    bio_sequence_only: t.applies_when.is_some(),
                    report_due_days: t.report_due_days,
                });
            }
        }
    }
    rules
}

fn denied(
    policy: &Policy,
    job: &JobAdmission,
    detail: &str,
    limit: Option<f64>,
) -> AdmissionOutcome {
    denied_with(policy, job, detail, limit, None)
}

fn denied_with(
    policy: &Policy,
    job: &JobAdmission,
    detail: &str,
    limit_flop: Option<f64>,
    threshold: Option<String>,
) -> AdmissionOutcome {
    let required_tier = policy
        .required_tier_for_job(job.spec.accelerators, job.estimate.admitted_flop())
        .map(|t| t.name.clone())
        .filter(|t| t.as_str() != job.principal.tier.as_ref());
    AdmissionOutcome::Denied {
        detail: detail.to_string(),
        limit_flop,
        threshold,
        required_tier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../deploy/policy/default.toml");
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(86_400);

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
        let plain = thresholds(&policy, WINDOW, false);
        assert!(frontier_of(&plain).is_empty());
        let restricted = thresholds(&policy, WINDOW, true);
        assert_eq!(restricted.rules.len(), plain.rules.len() + 2);
        let rules = frontier_of(&restricted);
        let scopes: Vec<_> = rules.iter().map(|r| r.scope).collect();
        assert_eq!(scopes, [ThresholdScope::Run, ThresholdScope::Group]);
        for r in rules {
            assert_eq!(r.flop, 1e26);
            assert_eq!(r.action, ThresholdAction::Block);
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
        assert!(frontier_of(&thresholds(&policy, WINDOW, true)).is_empty());
        let end = start + DEFAULT[start..].find("\n\n").expect("end of table");
        let absent = format!("{}{}", &DEFAULT[..start], &DEFAULT[end..]);
        let policy = Policy::from_toml(&absent).expect("valid without a frontier rule");
        assert!(frontier_of(&thresholds(&policy, WINDOW, true)).is_empty());
    }
}

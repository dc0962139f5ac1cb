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
use computegate_gateway::metering::CapNeeds;
use computegate_gateway::policy::{Action, Policy, RuleStatus, Scope};
use computegate_kyc::Store;

use crate::ledger_metrics::LedgerMetrics;
use computegate_kyc::ledger::{
    AdmissionRequest, DenialReason, LedgerError, LedgerLimits, ThresholdAction, ThresholdPolicy,
    ThresholdRule, ThresholdScope, Verdict,
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

impl ComputeLedger for StoreLedger {
    fn admit(&self, job: JobAdmission) -> BoxFuture<Result<AdmissionOutcome, LedgerUnavailable>> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = admit(&store, &metrics, &job).await;
            let (decision, reason) = match &outcome {
                Ok(AdmissionOutcome::Admitted { .. }) => ("admitted", "within_limits"),
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
                bio_sequence: job.spec.is_biological_sequence(),
                limits: LedgerLimits {
                    max_flop_per_run: tier.max_flop_per_run,
                    max_flop_per_customer_window: tier.max_flop_per_customer_window,
                    window: tier.window,
                    max_concurrent_jobs: tier
                        .max_concurrent_jobs
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                },
                thresholds: Arc::new(thresholds(&policy, tier.window)),
                identity_snapshot: Some(serde_json::json!({
                    "customer_id": job.principal.customer_id.as_ref(),
                    "tier": job.principal.tier.as_ref(),
                    "organization_id": job.principal.organization_id.as_deref(),
                })),
                route: job.route.to_string(),
                request_id: job.request_id.clone(),
                client_ip: Some(job.client_ip),
                now: OffsetDateTime::now_utc(),
            };
            let decision = match store.admit(&request).await {
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
                    detail: "the job crosses a threshold that requires a compliance review; \
                             resubmit it once the review is approved"
                        .into(),
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

/// The policy's thresholds as ledger rules over `window`.
fn thresholds(policy: &Policy, window: std::time::Duration) -> ThresholdPolicy {
    ThresholdPolicy {
        rules: threshold_rules(policy),
        window,
    }
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

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
use computegate_gateway::policy::{CapNeeds, Policy};
use computegate_kyc::Store;

use crate::ledger_metrics::LedgerMetrics;
use computegate_kyc::ledger::{
    AdmissionOptions, AdmissionRequest, DenialReason, LedgerError, Verdict,
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
                    .ledger()
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
                    reason: Some(SCREENING_HOLD),
                    ..
                }) => ("denied", SCREENING_HOLD),
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
            // Read live (not from the principal cache): the hold starts the moment screening
            // records a hit, on every replica, and ends when a reviewer clears it.
            match store.verification().screening_hold(customer_id).await {
                Ok(false) => {}
                Ok(true) => return Ok(screening_hold()),
                Err(e) => {
                    tracing::warn!(error = %e, "screening hold lookup failed; refusing (fail closed)");
                    return Err(LedgerUnavailable);
                }
            }
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
                limits: tier.ledger_limits(),
                thresholds: Arc::new(policy.threshold_policy(tier.window, job.frontier_restricted)),
                identity_snapshot: Some(crate::report_identity::from_principal(&job.principal)),
                route: job.route.to_string(),
                request_id: job.request_id.clone(),
                client_ip: Some(job.client_ip),
                now: OffsetDateTime::now_utc(),
            };
            let options = admission_options(&job.estimate);
            let decision = match store.ledger().admit_with(&request, &options).await {
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
                        reason: None,
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
        reason: None,
    }
}

/// Code of the refusal while a denied-party screening hit awaits review.
const SCREENING_HOLD: &str = "screening_hold";

/// The refusal of a customer whose denied-party screening hit awaits a reviewer.
fn screening_hold() -> AdmissionOutcome {
    AdmissionOutcome::Denied {
        detail: "a denied-party screening match on your application awaits compliance review; \
                 job submission is barred until a reviewer clears it"
            .into(),
        limit_flop: None,
        threshold: None,
        required_tier: None,
        reason: Some(SCREENING_HOLD),
    }
}

//! The gateway's compute-ledger port over the store: an adapter. The policy crate decides
//! (stateless checks with [`precheck`], the ledger's rules under its row locks, the typed
//! [`Outcome`]); this file only reads the live screening hold, asks whom the job is metered to
//! (the caller, or the end customer a reseller names: `resellers`), translates the gateway's job
//! into the ledger's request, and counts the outcome.

use std::sync::Arc;

use computegate_gateway::admission::{AdmitError, ComputeLedger, JobAdmission, LedgerUnavailable};
use computegate_gateway::auth::BoxFuture;
use computegate_gateway::idempotency::{IdempotencyKey, KeyClaim, StoredAnswer, StoredKey};
use computegate_gateway::metering::{Estimate, EstimateFlag};
use computegate_kyc::Store;
use computegate_kyc::ledger::{
    AdmissionOptions, AdmissionRequest, IdempotencyClaim, IdempotentAnswer, LedgerError, Verdict,
};
use computegate_policy::admission::{
    Admitted, Hold, HoldReason, JobFacts, Notice, Outcome, Refusal, RefusalReason, precheck,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ledger_metrics::LedgerMetrics;

mod resellers;

use self::resellers::{Account, account_of};

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

/// Attempts at releasing a reservation, or storing an idempotent answer, before giving up
/// (each is one short transaction).
const RELEASE_ATTEMPTS: u32 = 3;

impl ComputeLedger for StoreLedger {
    fn release(&self, job_id: String, reason: String) -> BoxFuture<()> {
        let store = self.store.clone();
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(&job_id) else {
                return;
            };
            for attempt in 1..=RELEASE_ATTEMPTS {
                let now = OffsetDateTime::now_utc();
                match store.ledger().release_job(id, &reason, now).await {
                    Ok(()) => return,
                    // Usage events already settle it, or it is gone: nothing to return.
                    Err(LedgerError::JobNotOpen { .. } | LedgerError::UnknownJob) => return,
                    Err(e) if attempt == RELEASE_ATTEMPTS => {
                        tracing::warn!(job = %id, error = %e,
                            "could not release the reservation of a job the upstream refused; \
                             it stays counted until it leaves the rolling windows");
                    }
                    Err(_) => {
                        let pause = std::time::Duration::from_millis(50 * u64::from(attempt));
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        })
    }

    fn admit(&self, job: JobAdmission) -> BoxFuture<Result<Outcome, AdmitError>> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = admit(&store, &metrics, &job).await;
            match &outcome {
                Ok(o) => metrics.admission(Ok(o), &job.principal.tier),
                Err(AdmitError::Unavailable(e)) => metrics.admission(Err(e), &job.principal.tier),
                // A concurrent attempt of a request already counted: no decision of its own.
                Err(_) => {}
            }
            outcome
        })
    }

    fn idempotency_key(
        &self,
        customer: Arc<str>,
        route: Arc<str>,
        key: IdempotencyKey,
    ) -> BoxFuture<Result<Option<StoredKey>, LedgerUnavailable>> {
        let store = self.store.clone();
        Box::pin(async move {
            // Not an account id: it holds no key (its admission is refused anyway).
            let Ok(customer) = Uuid::parse_str(&customer) else {
                return Ok(None);
            };
            let now = OffsetDateTime::now_utc();
            let found = store
                .ledger()
                .idempotency_key(customer, &route, key.as_str(), now)
                .await;
            match found {
                Ok(found) => Ok(found.map(|k| StoredKey {
                    fingerprint: k.fingerprint,
                    answer: k.answer.map(|a| StoredAnswer {
                        status: a.status,
                        headers: a.headers,
                        body: a.body.map(Into::into),
                    }),
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency key lookup failed; refusing (fail closed)");
                    Err(LedgerUnavailable)
                }
            }
        })
    }

    fn record_answer(&self, job_id: String, answer: StoredAnswer) -> BoxFuture<()> {
        let store = self.store.clone();
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(&job_id) else {
                return;
            };
            let answer = IdempotentAnswer {
                status: answer.status,
                headers: answer.headers,
                body: answer.body.map(|b| b.to_vec()),
            };
            for attempt in 1..=RELEASE_ATTEMPTS {
                match store.ledger().record_idempotent_answer(id, &answer).await {
                    Ok(_) => return,
                    Err(e) if attempt == RELEASE_ATTEMPTS => {
                        tracing::warn!(job = %id, error = %e,
                            "could not store the answer to a keyed job submission; retries \
                             with its key get 409 until the key expires");
                    }
                    Err(_) => {
                        let pause = std::time::Duration::from_millis(50 * u64::from(attempt));
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        })
    }
}

/// Admission of one metered job: the stateless checks, the live screening hold, then the
/// ledger's transaction.
async fn admit(
    store: &Store,
    metrics: &LedgerMetrics,
    job: &JobAdmission,
) -> Result<Outcome, AdmitError> {
    let policy = &job.policy;
    let facts = JobFacts {
        tier: &job.principal.tier,
        accelerators: job.spec.accelerators,
        estimate_flop: job.estimate.admitted_flop(),
    };
    let refused = |reason| Ok(Outcome::Denied(Refusal::stateless(policy, &facts, reason)));
    let tier = match precheck(policy, &facts) {
        Ok(tier) => tier,
        Err(refusal) => return Ok(Outcome::Denied(refusal)),
    };
    let Ok(caller) = Uuid::parse_str(&job.principal.customer_id) else {
        return refused(RefusalReason::UnknownAccount);
    };
    let account = match account_of(store, job, caller).await? {
        Ok(account) => account,
        Err(why) => {
            let reason = RefusalReason::EndCustomer(why);
            return Ok(Outcome::Denied(Refusal::account(&facts, reason)));
        }
    };
    // Read live (not from the principal cache): the hold starts the moment screening records a
    // hit, on every replica, and ends when a reviewer clears it. A reseller's own hold bars its
    // end customers' jobs too (its credential submits them).
    match store.verification().screening_hold(caller).await {
        Ok(false) => {}
        Ok(true) => {
            let hold = RefusalReason::ScreeningHold;
            return Ok(Outcome::Denied(Refusal::account(&facts, hold)));
        }
        Err(e) => {
            tracing::warn!(error = %e, "screening hold lookup failed; refusing (fail closed)");
            return Err(LedgerUnavailable.into());
        }
    }
    let request = ledger_request(job, account, tier);
    let options = AdmissionOptions {
        idempotency: (job.idempotency.as_ref()).map(|c| claim(c, caller, account, request.now)),
        ..admission_options(&job.estimate)
    };
    let decision = match store.ledger().admit_with(&request, &options).await {
        Ok(d) => d,
        Err(LedgerError::Invalid(why)) => return refused(RefusalReason::InvalidRequest(why)),
        Err(LedgerError::IdempotencyKeyTaken) => return Err(AdmitError::KeyTaken),
        Err(e) => {
            tracing::warn!(error = %e, "job admission failed; refusing (fail closed)");
            return Err(LedgerUnavailable.into());
        }
    };
    metrics.crossed(&decision.crossings);
    Ok(match decision.verdict {
        Verdict::Admitted => Outcome::Admitted(Admitted {
            job_id: decision.job_id.to_string(),
            run_id: request.run_id,
            estimate_flop: facts.estimate_flop,
            remaining_flop: decision.remaining_flop,
            notices: Notice::from_crossings(&request.thresholds.rules, &decision.crossings),
        }),
        Verdict::HeldForReview { review_id } => Outcome::Held(Hold {
            review_id: review_id.to_string(),
            reason: match options.hold_for_review {
                Some(gap) => HoldReason::DeclaredGap { gap },
                None => HoldReason::ThresholdReview,
            },
            estimate_flop: facts.estimate_flop,
        }),
        // A denied job is not in `totals_after`: they are the totals before it.
        Verdict::Denied(denial) => Outcome::Denied(Refusal::ledger(
            policy,
            &facts,
            denial,
            &decision.totals_after,
        )),
    })
}

/// The ledger's request for `job` metered to `account` under `tier`'s caps and the thresholds
/// in force. An end customer's job is its own, as a customer of ours would be: its runs, its
/// customer scope and its linked group, never the reseller's organization (the reseller's end
/// customers are separate parties, and their compute is not the reseller's training); the
/// caps are those of the reseller's tier.
fn ledger_request(
    job: &JobAdmission,
    account: Account,
    tier: &computegate_policy::Tier,
) -> AdmissionRequest {
    let estimate = &job.estimate;
    let org = match account {
        Account::Own(_) => job.principal.organization_id.as_deref(),
        Account::EndCustomer { .. } => None,
    };
    AdmissionRequest {
        customer_id: account.id(),
        organization_id: org.and_then(|o| Uuid::parse_str(o).ok()),
        run_id: (job.spec.run_id.clone()).unwrap_or_else(|| format!("job-{}", job.request_id)),
        parent_run_id: job.spec.parent_run_id.clone(),
        estimate_flop: estimate.admitted_flop(),
        hardware_flop: Some(estimate.hardware_flop),
        declared_flop: estimate.declared_flop,
        basis: estimate.basis.clone(),
        table_version: estimate.table_version.clone(),
        accelerators: u32::try_from(job.spec.accelerators).unwrap_or(u32::MAX),
        accelerator_type: estimate.accelerator_type_resolved.clone(),
        flop_per_accelerator_second: (estimate.accelerator_type_resolved.is_some())
            .then_some(estimate.peak_flops * estimate.utilization),
        bio_sequence: job.spec.is_biological_sequence(),
        limits: tier.ledger_limits(),
        thresholds: Arc::new((job.policy).threshold_policy(tier.window, job.frontier_restricted)),
        identity_snapshot: Some(match account {
            Account::Own(_) => crate::report_identity::from_principal(&job.principal),
            Account::EndCustomer { id, reseller } => {
                crate::report_identity::end_customer(&job.principal, id, reseller)
            }
        }),
        route: job.route.to_string(),
        request_id: job.request_id.clone(),
        client_ip: Some(job.client_ip),
        // The time limit the estimate used (the stated one, or the policy's longest under
        // `assume_max`) plus the policy's grace.
        lease: Some(estimate.duration.saturating_add(job.policy.lease_grace())),
        now: OffsetDateTime::now_utc(),
    }
}

/// The ledger's claim of the gateway's idempotency key, expiring `ttl` after `now`. The key is
/// the submitting `caller`'s (it looks its retries up as its own) even when `account`, the one
/// metered, is a reseller's end customer.
fn claim(c: &KeyClaim, caller: Uuid, account: Account, now: OffsetDateTime) -> IdempotencyClaim {
    IdempotencyClaim {
        owner: (account.id() != caller).then_some(caller),
        key: c.key.as_str().to_owned(),
        fingerprint: c.fingerprint.clone(),
        expires_at: now.saturating_add(c.ttl.try_into().unwrap_or(time::Duration::DAY)),
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
        idempotency: None,
    }
}

//! The [`Metering`] service: the control plane's operations over the compute ledger that are
//! more than one store call — the audited report export, the staff link that re-checks the
//! merged group's thresholds at once, and the usage intake that turns measured
//! accelerator-seconds into FLOP at the job's rate. The HTTP handlers in `api::metering` and
//! `api::usage` only translate requests to these calls and their results to answers.

use std::sync::Arc;
use std::time::Duration;

use computegate_gateway::policy::{Policy, PolicyHandle};
use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, JobFilter, LedgerError, StaffLink, UsageEvent, UsageKind,
    UsageOutcome, UsageQuery,
};
use computegate_kyc::verification::webhooks::WebhookSecrets;
use computegate_policy::ThresholdPolicy;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ledger_metrics::LedgerMetrics;

mod leases;
pub mod usage_view;

/// The window usage events re-check thresholds over.
const USAGE_THRESHOLD_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// The metering service of one gateway process.
pub struct Metering {
    store: Store,
    master: MasterKey,
    policy: Arc<PolicyHandle>,
    usage_secrets: Option<WebhookSecrets>,
    metrics: Arc<LedgerMetrics>,
}

/// A report export asked for by a staff member.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// What to export.
    pub kind: ExportKind,
    /// The kind as asked (for the audit record).
    pub kind_name: &'a str,
    /// JSON or CSV.
    pub format: ExportFormat,
    /// The format as asked (for the audit record).
    pub format_name: &'a str,
    /// Lower time bound.
    pub since: OffsetDateTime,
    /// One customer only, when given.
    pub customer_id: Option<Uuid>,
}

/// A usage event as the compute platform reported it, before its rate is known.
#[derive(Debug)]
pub struct UsageReport {
    /// The sender's idempotency key.
    pub event_id: String,
    /// The metered job.
    pub job_id: Uuid,
    /// Started, heartbeat or finished (with the cumulative accelerator-seconds).
    pub kind: UsageKind,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The reported accelerator type (a key of the policy's accelerator table).
    pub accelerator_type: String,
}

/// Why a metering operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeteringError {
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit record of an export could not be written (the export is not answered).
    #[error("the export could not be audited: {0}")]
    AuditUnavailable(String),
    /// The reported accelerator type is not in the policy's accelerator table.
    #[error("the accelerator type is not in the accelerator table")]
    UnknownAccelerator,
    /// The accelerator has no peak for the policy's default precision.
    #[error("the accelerator type has no peak for the default precision")]
    NoPeak,
}

// === impl Metering ===

impl Metering {
    /// The service over `store` with the policy in force; `usage_secrets` sign usage events
    /// (none: the intake answers 503).
    pub fn new(
        store: Store,
        master: MasterKey,
        policy: Arc<PolicyHandle>,
        usage_secrets: Option<WebhookSecrets>,
        metrics: Arc<LedgerMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            master,
            policy,
            usage_secrets,
            metrics,
        })
    }

    /// The system of record (plain reads and single-step changes of the ledger).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The secrets usage events are signed with, when configured.
    pub fn usage_secrets(&self) -> Option<&WebhookSecrets> {
        self.usage_secrets.as_ref()
    }

    /// Writes the export into `out` and audits it (who, what, since when, how many); the
    /// number of records.
    pub async fn export_reports(
        &self,
        actor: &Actor,
        req: ExportRequest<'_>,
        out: &mut Vec<u8>,
    ) -> Result<usize, MeteringError> {
        let count = self
            .store
            .ledger()
            .export_reports(req.kind, req.since, req.format, out)
            .await?;
        let entry = AuditEntry::new(
            OffsetDateTime::now_utc(),
            actor,
            AuditAction::ReportsExported,
            "ledger:reports",
        )
        .with_detail(serde_json::json!({
            "kind": req.kind_name, "since": req.since.to_string(), "format": req.format_name,
            "customer_id": req.customer_id, "records": count,
        }));
        self.store
            .audit()
            .record_audit(&entry)
            .await
            .map_err(|e| MeteringError::AuditUnavailable(e.to_string()))?;
        Ok(count)
    }

    /// Links two accounts; the merged group's rolling total is re-checked against the policy's
    /// group thresholds at once, and the crossings it fired are counted.
    pub async fn link(
        &self,
        a: Uuid,
        b: Uuid,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<StaffLink, MeteringError> {
        let thresholds = group_thresholds(&self.policy.current());
        let linked = self
            .store
            .ledger()
            .link_customers(a, b, reason, actor, &thresholds, now)
            .await?;
        self.metrics.crossed(&linked.check.crossings);
        Ok(linked)
    }

    /// Records a usage event at the job's rate (the accelerator's peak × the policy's default
    /// utilization), re-checks thresholds, counts crossings, and attaches the identity snapshot
    /// to the reports it filed.
    pub async fn record_usage(&self, report: UsageReport) -> Result<UsageOutcome, MeteringError> {
        let policy = self.policy.current();
        let accelerator = policy
            .accelerator(&report.accelerator_type)
            .ok_or(MeteringError::UnknownAccelerator)?;
        let peak = accelerator
            .peak_flops
            .get(policy.default_precision())
            .ok_or(MeteringError::NoPeak)?;
        let usage = UsageEvent {
            event_id: report.event_id,
            job_id: report.job_id,
            kind: report.kind,
            at: report.at,
            accelerator_type: accelerator.type_key.clone(),
            flop_per_accelerator_second: peak * policy.utilization_default(),
        };
        let thresholds = ThresholdPolicy {
            rules: policy.threshold_rules(),
            window: USAGE_THRESHOLD_WINDOW,
        };
        let outcome = self
            .store
            .ledger()
            .record_usage(&usage, &thresholds)
            .await?;
        if let UsageOutcome::Recorded(recorded) = &outcome {
            self.metrics.crossed(&recorded.crossings);
            if recorded.measured_flop > 0.0 {
                // The tier the customer holds now (a job does not record the tier it was
                // admitted at): one keyed read per event that measured something.
                let tier = match self
                    .store
                    .accounts()
                    .customer_by_id(recorded.customer_id)
                    .await
                {
                    Ok(Some(c)) => c.tier.as_str().to_owned(),
                    _ => "unknown".to_owned(),
                };
                self.metrics.measured(&tier, recorded.measured_flop);
            }
            if !recorded.report_ids.is_empty() {
                crate::report_identity::attach(
                    &self.store,
                    &self.master,
                    recorded.customer_id,
                    &recorded.report_ids,
                )
                .await;
            }
        }
        Ok(outcome)
    }
}

/// How many of a customer's jobs its usage view lists (newest first).
const USAGE_VIEW_JOBS: u32 = 100;

impl Metering {
    /// The customer's own usage view: totals, caps and thresholds ahead per scope, its jobs and
    /// its notices (see [`usage_view`]).
    pub async fn customer_usage(
        &self,
        customer_id: Uuid,
        organization_id: Option<Uuid>,
        tier_name: &str,
    ) -> Result<usage_view::UsageView, MeteringError> {
        const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);
        let policy = self.policy.current();
        let tier = policy.tier(tier_name);
        // Admission counts the customer cap and the thresholds over the tier's window.
        let window = tier.map_or(DEFAULT_WINDOW, |t| t.window);
        let query = UsageQuery {
            customer_id,
            organization_id,
            cap_window: window,
            threshold_window: window,
            now: OffsetDateTime::now_utc(),
        };
        let usage = self.store.ledger().customer_usage(&query).await?;
        let filter = JobFilter {
            customer_id: Some(customer_id),
            status: None,
            limit: USAGE_VIEW_JOBS,
            after: None,
        };
        let jobs = self.store.ledger().list_jobs(&filter).await?;
        let viewer = usage_view::Viewer {
            customer_id,
            organization_id,
            tier,
            tier_name,
        };
        Ok(usage_view::build(&policy, viewer, &usage, &jobs))
    }
}

/// The policy's thresholds over the longest tier window: a group's members may hold different
/// tiers, and the widest rolling total is the one a split hides in.
fn group_thresholds(policy: &Policy) -> ThresholdPolicy {
    const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);
    ThresholdPolicy {
        rules: policy.threshold_rules(),
        window: policy
            .tiers()
            .iter()
            .map(|t| t.window)
            .max()
            .unwrap_or(DEFAULT_WINDOW),
    }
}

//! Jobs in the ledger for the metering router tests: admitted by the store under the default
//! policy's thresholds, as the data plane's admission would.

use std::sync::Arc;
use std::time::Duration;

use computegate_kyc::ledger::{AdmissionDecision, AdmissionOptions, AdmissionRequest};
use computegate_policy::{LedgerLimits, ThresholdPolicy};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::test_support::Api;

/// Admits an H100 job of `flop` for `customer_id`; `hold` holds it for review.
pub(crate) async fn admit(
    api: &Api,
    customer_id: Uuid,
    flop: f64,
    hold: Option<&str>,
) -> AdmissionDecision {
    admit_capped(api, customer_id, flop, hold, None).await
}

/// As [`admit`], under a per-run cap of `max_flop_per_run` (a bigger job is denied).
pub(crate) async fn admit_capped(
    api: &Api,
    customer_id: Uuid,
    flop: f64,
    hold: Option<&str>,
    max_flop_per_run: Option<f64>,
) -> AdmissionDecision {
    let policy = computegate_gateway::policy::Policy::from_toml(crate::policy_file::DEFAULT_POLICY)
        .expect("default policy");
    let window = Duration::from_secs(30 * 86_400);
    let req = AdmissionRequest {
        customer_id,
        organization_id: None,
        run_id: format!("run-{}", Uuid::now_v7().simple()),
        parent_run_id: None,
        estimate_flop: flop,
        hardware_flop: Some(flop),
        declared_flop: None,
        basis: "hardware:h100:bf16:u0.4".into(),
        table_version: "test".into(),
        accelerators: 8,
        accelerator_type: Some("h100".into()),
        flop_per_accelerator_second: None,
        bio_sequence: false,
        limits: LedgerLimits {
            max_flop_per_run,
            max_flop_per_customer_window: None,
            window,
            max_concurrent_jobs: None,
        },
        thresholds: Arc::new(ThresholdPolicy {
            rules: policy.threshold_rules(),
            window,
        }),
        identity_snapshot: None,
        route: "/v1/jobs".into(),
        request_id: Uuid::new_v4().to_string(),
        client_ip: None,
        lease: None,
        now: OffsetDateTime::now_utc(),
    };
    let options = AdmissionOptions {
        projected_flop: None,
        hold_for_review: hold.map(str::to_owned),
        ..AdmissionOptions::default()
    };
    api.identity()
        .store
        .ledger()
        .admit_with(&req, &options)
        .await
        .expect("admit")
}

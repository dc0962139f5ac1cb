//! Ledger fixtures: customers, the shipped thresholds as plain data, and request builders.

use std::sync::Arc;
use std::time::Duration;

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerKind};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::ledger::{
    AdmissionDecision, AdmissionRequest, AttributeHash, AttributeKey, LinkValue, UsageEvent,
    UsageKind, UsageOutcome, UsageRecorded, Verdict,
};
use computegate_policy::{Action, LedgerLimits, Scope, ThresholdPolicy, ThresholdRule};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) async fn customer(store: &Store) -> Uuid {
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    store
        .accounts()
        .create_customer(&email, HASH, CustomerKind::Individual, crate::support::t0())
        .await
        .expect("create customer")
        .id
}

pub(super) async fn organization(store: &Store) -> Uuid {
    store
        .accounts()
        .create_organization(
            "Acme Training",
            &Actor::system("test"),
            crate::support::t0(),
        )
        .await
        .expect("create organization")
        .id
}

/// A keyed attribute hash of `value` (as a payment fingerprint) under a fixed test key.
pub(super) fn hashed(value: &str) -> AttributeHash {
    let master = MasterKey::from_base64(&"A".repeat(43)).expect("test key");
    let value = LinkValue::payment_fingerprint(value).expect("a non-empty value");
    AttributeKey::derive(&master).hash(&value)
}

pub(super) fn staff() -> Actor {
    Actor::staff(Uuid::now_v7(), None)
}

pub(super) fn rule(label: &str, flop: f64, scope: Scope, action: Action) -> ThresholdRule {
    ThresholdRule {
        label: label.into(),
        flop,
        scope,
        action,
        bio_sequence_only: false,
        report_due_days: 15,
    }
}

/// The shipped default thresholds (docs/policy.md), per run lineage and per linked group.
pub(super) fn shipped_thresholds() -> Arc<ThresholdPolicy> {
    let mut bio = rule("bio_1e23", 1e23, Scope::Run, Action::Review);
    bio.bio_sequence_only = true;
    let mut rules = vec![bio];
    for scope in [Scope::Run, Scope::Group] {
        let s = scope.as_str();
        rules.push(rule(&format!("gpai_1e23_{s}"), 1e23, scope, Action::Notify));
        rules.push(rule(
            &format!("eu_art51_1e25_{s}"),
            1e25,
            scope,
            Action::Report,
        ));
        rules.push(rule(&format!("us_1e26_{s}"), 1e26, scope, Action::Review));
    }
    Arc::new(ThresholdPolicy {
        rules,
        window: DAY * 365,
    })
}

pub(super) fn thresholds(rules: Vec<ThresholdRule>) -> Arc<ThresholdPolicy> {
    Arc::new(ThresholdPolicy {
        rules,
        window: DAY * 365,
    })
}

pub(super) fn no_limits() -> LedgerLimits {
    LedgerLimits {
        max_flop_per_run: None,
        max_flop_per_customer_window: None,
        window: DAY * 30,
        max_concurrent_jobs: None,
    }
}

/// A hardware-estimated H100 job under the shipped thresholds and no caps.
pub(super) fn job(customer_id: Uuid, run_id: &str, estimate_flop: f64) -> AdmissionRequest {
    AdmissionRequest {
        customer_id,
        organization_id: None,
        run_id: run_id.into(),
        parent_run_id: None,
        estimate_flop,
        hardware_flop: Some(estimate_flop),
        declared_flop: None,
        basis: "hardware:h100:bf16:u0.4".into(),
        table_version: "2025-06".into(),
        accelerators: 64,
        accelerator_type: Some("h100".into()),
        flop_per_accelerator_second: None,
        bio_sequence: false,
        limits: no_limits(),
        thresholds: shipped_thresholds(),
        identity_snapshot: Some(serde_json::json!({ "legal_name": "Test Customer" })),
        route: "/v1/jobs".into(),
        request_id: Uuid::new_v4().to_string(),
        client_ip: None,
        lease: None,
        now: crate::support::t0(),
    }
}

pub(super) async fn admit(store: &Store, req: &AdmissionRequest) -> AdmissionDecision {
    store.ledger().admit(req).await.expect("admit")
}

pub(super) async fn admitted(store: &Store, req: &AdmissionRequest) -> AdmissionDecision {
    let d = admit(store, req).await;
    assert_eq!(d.verdict, Verdict::Admitted, "{d:?}");
    d
}

pub(super) fn usage(
    job_id: Uuid,
    event_id: &str,
    kind: UsageKind,
    at: OffsetDateTime,
) -> UsageEvent {
    UsageEvent {
        event_id: event_id.into(),
        job_id,
        kind,
        at,
        accelerator_type: "h100".into(),
        flop_per_accelerator_second: 10.0,
    }
}

pub(super) async fn recorded(store: &Store, event: &UsageEvent) -> UsageRecorded {
    match store
        .ledger()
        .record_usage(event, &shipped_thresholds())
        .await
        .expect("record usage")
    {
        UsageOutcome::Recorded(r) => r,
        UsageOutcome::Duplicate => panic!("unexpected duplicate {event:?}"),
    }
}

/// Lifetime total of the lineage the run belongs to, from the staff read.
pub(super) async fn lineage_total(store: &Store, customer_id: Uuid, run_id: &str) -> f64 {
    let runs = store
        .ledger()
        .list_runs(&computegate_kyc::ledger::RunFilter {
            customer_id: Some(customer_id),
            ..Default::default()
        })
        .await
        .expect("list runs");
    runs.iter()
        .find(|r| r.run_id == run_id)
        .map(|r| r.lineage_flop)
        .expect("run listed")
}

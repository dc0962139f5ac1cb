//! Concurrency: 200 admissions racing for the last budget through two independent pools (two
//! "replicas" on one database) never admit past a cap — per customer window, per lineage, and
//! per linked group across two accounts.

use std::sync::Arc;

use computegate_kyc::Store;
use computegate_kyc::ledger::{AdmissionRequest, DenialReason, LinkAttribute, Verdict};
use computegate_policy::{Action, Scope};
use tokio::sync::Barrier;

use super::fixtures::{admitted, customer, job, lineage_total, rule, thresholds};
use crate::support::{Ctx, t0};

/// Submissions per race.
const RACERS: usize = 200;

/// Runs every request concurrently, alternating between the two stores, and returns the
/// verdicts.
async fn race(stores: [Store; 2], requests: Vec<AdmissionRequest>) -> Vec<Verdict> {
    let start = Arc::new(Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (i, req) in requests.into_iter().enumerate() {
        let store = stores[i % 2].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store.ledger().admit(&req).await.expect("admit").verdict
        }));
    }
    let mut verdicts = Vec::new();
    for t in tasks {
        verdicts.push(t.await.expect("task"));
    }
    verdicts
}

async fn second_replica(ctx: &Ctx) -> Store {
    Store::connect(&ctx.url).await.expect("second pool")
}

async fn customer_window_cap_is_never_passed(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut base = job(c, "warmup", 900.0);
    base.limits.max_flop_per_customer_window = Some(1000.0);
    admitted(s, &base).await;
    // 100 FLOP of budget left, 200 jobs of 10 FLOP on 200 different runs.
    let requests = (0..RACERS)
        .map(|i| {
            let mut r = base.clone();
            r.run_id = format!("run-{i}");
            r.estimate_flop = 10.0;
            r
        })
        .collect();
    let replica = second_replica(&ctx).await;
    let verdicts = race([s.clone(), replica.clone()], requests).await;
    replica.close().await;
    let admitted_count = verdicts.iter().filter(|v| **v == Verdict::Admitted).count();
    assert_eq!(admitted_count, 10, "exactly the budget left, never more");
    assert!(verdicts.iter().all(|v| match v {
        Verdict::Admitted => true,
        Verdict::Denied(d) => d.reason == DenialReason::CustomerWindowCap,
        Verdict::HeldForReview { .. } => false,
    }));
    let mut probe = base.clone();
    probe.estimate_flop = 0.0;
    probe.run_id = "probe".into();
    let d = admitted(s, &probe).await;
    assert_eq!(d.totals_after.customer_window_flop, 1000.0);
}

async fn lineage_cap_is_never_passed(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut base = job(c, "base", 0.0);
    base.limits.max_flop_per_run = Some(500.0);
    admitted(s, &base).await;
    // Every racer fine-tunes the same base: one lineage, one budget row.
    let requests = (0..RACERS)
        .map(|i| {
            let mut r = base.clone();
            r.run_id = format!("ft-{}", i % 7);
            r.parent_run_id = Some("base".into());
            r.estimate_flop = 7.0;
            r
        })
        .collect();
    let replica = second_replica(&ctx).await;
    let verdicts = race([s.clone(), replica.clone()], requests).await;
    replica.close().await;
    let admitted_count = verdicts.iter().filter(|v| **v == Verdict::Admitted).count();
    assert_eq!(admitted_count, 71, "floor(500 / 7)");
    assert_eq!(lineage_total(s, c, "base").await, 497.0);
}

async fn group_block_threshold_holds_across_linked_accounts(ctx: Ctx) {
    let s = &ctx.store;
    let (a, b) = (customer(s).await, customer(s).await);
    let card = super::fixtures::hashed("shared-card");
    for x in [a, b] {
        s.ledger()
            .link_by_attribute(x, LinkAttribute::PaymentFingerprint, &card, t0())
            .await
            .unwrap();
    }
    let policy = thresholds(vec![rule(
        "group_block_1000",
        1000.0,
        Scope::Group,
        Action::Block,
    )]);
    let requests = (0..RACERS)
        .map(|i| {
            let mut r = job(if i % 2 == 0 { a } else { b }, &format!("r{i}"), 10.0);
            r.thresholds = policy.clone();
            r
        })
        .collect();
    let replica = second_replica(&ctx).await;
    let verdicts = race([s.clone(), replica.clone()], requests).await;
    replica.close().await;
    let admitted_count = verdicts.iter().filter(|v| **v == Verdict::Admitted).count();
    // The 100th job would reach 1000: 99 pass, split between the two accounts.
    assert_eq!(admitted_count, 99);
}

async fn admissions_racing_a_merge_never_fail_and_then_see_one_group(ctx: Ctx) {
    let s = &ctx.store;
    let (a, c) = (customer(s).await, customer(s).await);
    let card = super::fixtures::hashed("card-merging");
    s.ledger()
        .link_by_attribute(a, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    let replica = second_replica(&ctx).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 {
            s.clone()
        } else {
            replica.clone()
        };
        let who = if i % 2 == 0 { a } else { c };
        tasks.push(tokio::spawn(async move {
            if i == 50 {
                // The merge lands in the middle of the admissions.
                store
                    .ledger()
                    .link_by_attribute(c, LinkAttribute::PaymentFingerprint, &card, t0())
                    .await
                    .expect("link");
            }
            store
                .ledger()
                .admit(&job(who, &format!("m{i}"), 10.0))
                .await
                .expect("admit")
                .verdict
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), Verdict::Admitted);
    }
    replica.close().await;
    let group = s.ledger().group_of(a).await.unwrap().expect("linked");
    assert_eq!(group.members.len(), 2);
    let d = admitted(s, &job(c, "probe", 0.0)).await;
    assert_eq!(d.totals_after.group_flop, 1000.0);
    assert_eq!(d.totals_after.customer_flop, 500.0);
}

crate::store_suite!(
    admissions_racing_a_merge_never_fail_and_then_see_one_group,
    customer_window_cap_is_never_passed,
    lineage_cap_is_never_passed,
    group_block_threshold_holds_across_linked_accounts,
);

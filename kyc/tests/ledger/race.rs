//! Concurrency: 200 admissions racing for the last budget through two independent pools (two
//! "replicas" on one database) never admit past a cap — per customer window, per lineage, and
//! per linked group across two accounts.

use std::sync::Arc;
use std::time::Duration;

use computegate_kyc::Store;
use computegate_kyc::ledger::{AdmissionRequest, DenialReason, JobFilter, LinkAttribute, Verdict};
use computegate_policy::{Action, Scope};
use tokio::sync::Barrier;
use uuid::Uuid;

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

/// How many of the verdicts were admissions, per customer, when racer `i` belongs to customer
/// `i % customers`.
fn admitted_per_customer(verdicts: &[Verdict], customers: usize) -> Vec<usize> {
    let mut counts = vec![0; customers];
    for (i, v) in verdicts.iter().enumerate() {
        if *v == Verdict::Admitted {
            counts[i % customers] += 1;
        }
    }
    counts
}

/// The audit chain verifies and holds exactly `grown` records more than `before`, numbered
/// without gaps.
async fn assert_chain_grew_by(s: &Store, before: u64, grown: u64) {
    let after = s.audit().verify_audit_chain().await.expect("verify");
    assert!(after.first_broken.is_none(), "{after:?}");
    assert_eq!(after.records - before, grown, "{after:?}");
    assert_eq!(after.head.seq, i64::try_from(after.records).unwrap_or(-1));
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

/// Group commit with many customers: the 200 racers belong to 8 customers, so each replica's
/// batches mix customers and lock their budget rows in arrival order — two replicas' batches
/// can meet in opposite orders (PostgreSQL gives one up after its lock timeout and decides its
/// admissions alone). Every customer still gets exactly its budget, and the audit chain holds
/// one linked record per decision, in order.
async fn batches_of_many_customers_keep_every_budget_and_one_chain(ctx: Ctx) {
    let s = &ctx.store;
    let before = s.audit().verify_audit_chain().await.expect("verify");
    let mut customers = Vec::new();
    for _ in 0..8 {
        customers.push(customer(s).await);
    }
    // 25 racers per customer, 10 FLOP each, 55 FLOP of window cap: 5 admitted per customer.
    let requests = (0..RACERS)
        .map(|i| {
            let mut r = job(customers[i % 8], &format!("mix-{i}"), 10.0);
            r.limits.max_flop_per_customer_window = Some(55.0);
            r
        })
        .collect();
    let replica = second_replica(&ctx).await;
    let verdicts = race([s.clone(), replica.clone()], requests).await;
    replica.close().await;
    assert_eq!(
        admitted_per_customer(&verdicts, customers.len()),
        [5; 8],
        "floor(55 / 10) each, never more"
    );
    for (k, &c) in customers.iter().enumerate() {
        let mut probe = job(c, "probe", 0.0);
        probe.limits.max_flop_per_customer_window = Some(55.0);
        let d = admitted(s, &probe).await;
        assert_eq!(d.totals_after.customer_window_flop, 50.0, "customer {k}");
    }
    // One record per racer and per probe.
    assert_chain_grew_by(s, before.records, RACERS as u64 + 8).await;
}

/// The common case, decided with the batch statements: every racer's run and budget rows
/// exist, so whole batches are read, decided in memory and written at once. 8 customers, 4 of
/// them in one organization, 3 runs each; every customer still gets exactly its window cap,
/// the organization's total is exactly its members' reservations, and the chain holds one
/// record per decision.
async fn bulk_batches_keep_every_budget_exact(ctx: Ctx) {
    let s = &ctx.store;
    let org = super::fixtures::organization(s).await;
    let mut customers = Vec::new();
    for k in 0..8 {
        let c = customer(s).await;
        for run in 0..3 {
            let mut first = job(c, &format!("pre-{run}"), 0.0);
            first.organization_id = (k < 4).then_some(org);
            admitted(s, &first).await;
        }
        customers.push(c);
    }
    let before = s.audit().verify_audit_chain().await.expect("verify");
    let requests = (0..RACERS)
        .map(|i| {
            let k = i % 8;
            let mut r = job(customers[k], &format!("pre-{}", i % 3), 10.0);
            r.organization_id = (k < 4).then_some(org);
            r.limits.max_flop_per_customer_window = Some(55.0);
            // Columns that differ from racer to racer, so a job row written from another
            // racer's values (or a column written into its neighbour) shows below.
            r.accelerators = racer_accelerators(i);
            r.accelerator_type = i.is_multiple_of(2).then(|| format!("type-{i}"));
            r.lease = Some(Duration::from_secs(600 + i as u64));
            r
        })
        .collect();
    let replica = second_replica(&ctx).await;
    let verdicts = race([s.clone(), replica.clone()], requests).await;
    assert_racers_rows(s, &customers, &verdicts).await;
    let stats = [
        s.ledger().admission_batch_stats(),
        replica.ledger().admission_batch_stats(),
    ];
    replica.close().await;
    assert!(
        stats.iter().map(|x| x.bulk_batches).sum::<u64>() > 0,
        "no batch was decided with the batch statements: {stats:?}"
    );
    assert_eq!(
        admitted_per_customer(&verdicts, customers.len()),
        [5; 8],
        "floor(55 / 10) each, never more"
    );
    for (k, &c) in customers.iter().enumerate() {
        let mut probe = job(c, "probe", 0.0);
        probe.organization_id = (k < 4).then_some(org);
        probe.limits.max_flop_per_customer_window = Some(55.0);
        let d = admitted(s, &probe).await;
        assert_eq!(d.totals_after.customer_window_flop, 50.0, "customer {k}");
        if k < 4 {
            assert_eq!(
                d.totals_after.organization_flop,
                Some(200.0),
                "customer {k}"
            );
        }
    }
    let lineages: f64 = {
        let mut sum = 0.0;
        for &c in &customers {
            for run in 0..3 {
                sum += lineage_total(s, c, &format!("pre-{run}")).await;
            }
        }
        sum
    };
    assert_eq!(
        lineages,
        8.0 * 50.0,
        "every reservation on its lineage row, once"
    );
    // One record per racer and per probe.
    assert_chain_grew_by(s, before.records, RACERS as u64 + 8).await;
}

/// Racer `i`'s accelerator count: tells its job row apart from every other racer's.
fn racer_accelerators(i: usize) -> u32 {
    1_000 + u32::try_from(i).expect("few racers")
}

/// Every racer's job row holds what that racer asked and was decided: its customer, run,
/// estimate, accelerators, accelerator type, decision and (admitted only) lease — one row per
/// racer.
async fn assert_racers_rows(s: &Store, customers: &[Uuid], verdicts: &[Verdict]) {
    let mut seen = vec![false; verdicts.len()];
    for &c in customers {
        let filter = JobFilter {
            customer_id: Some(c),
            ..JobFilter::default()
        };
        for j in s.ledger().list_jobs(&filter).await.expect("jobs") {
            let Some(i) = usize::try_from(j.accelerators - i64::from(racer_accelerators(0)))
                .ok()
                .filter(|&i| i < verdicts.len())
            else {
                continue;
            };
            assert!(!seen[i], "racer {i} has two job rows");
            seen[i] = true;
            assert_eq!(j.customer_id, customers[i % customers.len()], "racer {i}");
            assert_eq!(j.run_id, format!("pre-{}", i % 3), "racer {i}");
            assert_eq!(j.estimate_flop, 10.0, "racer {i}");
            let wanted_type = i.is_multiple_of(2).then(|| format!("type-{i}"));
            assert_eq!(j.accelerator_type, wanted_type, "racer {i}");
            assert_eq!(j.decided_at, t0(), "racer {i}");
            if verdicts[i] == Verdict::Admitted {
                assert_eq!(j.decision, "admitted", "racer {i}");
                assert_eq!(j.reserved_flop, 10.0, "racer {i}");
                let lease = t0() + Duration::from_secs(600 + i as u64);
                assert_eq!(j.lease_expires_at, Some(lease), "racer {i}");
            } else {
                assert!(
                    j.decision.starts_with("denied"),
                    "racer {i}: {}",
                    j.decision
                );
                assert_eq!(j.reserved_flop, 0.0, "racer {i}");
                assert_eq!(j.lease_expires_at, None, "racer {i}");
            }
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i]).collect();
    assert!(missing.is_empty(), "racers without a job row: {missing:?}");
}

crate::store_suite!(
    bulk_batches_keep_every_budget_exact,
    batches_of_many_customers_keep_every_budget_and_one_chain,
    admissions_racing_a_merge_never_fail_and_then_see_one_group,
    customer_window_cap_is_never_passed,
    lineage_cap_is_never_passed,
    group_block_threshold_holds_across_linked_accounts,
);

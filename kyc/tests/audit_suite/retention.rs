//! Retention against the chain: redaction is the one change the guard lets through, the chain
//! still verifies after it, and the daily claim lets exactly one of several replicas act.

use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::retention::{RetentionPlan, RunKind};
use computegate_policy::Policy;
use time::Duration;

use crate::chain::{append_n, refused};
use crate::support::{Ctx, t0};

/// The shipped policy with only the audit chain kept, for one day.
fn one_day_chain_policy() -> Policy {
    let text = include_str!("../../../deploy/policy/default.toml");
    let start = text
        .find("\n[retention.")
        .expect("shipped policy has [retention]");
    let end = start
        + 1
        + text[start + 1..]
            .find("\n# ---")
            .expect("a section follows");
    let rule = "[retention.audit_chain]\nperiod = \"1d\"\nminimum = \"0s\"\n\
                basis = \"test\"\nstatus = \"recommended\"\n";
    Policy::from_toml(&format!("{}\n{rule}\n{}", &text[..start], &text[end..])).unwrap()
}

async fn retention_records(store: &Store) -> usize {
    let filter = AuditFilter {
        action: Some("retention.run.completed".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    store.audit().audit_page(&filter).await.unwrap().len()
}

async fn redaction_is_the_only_change_the_guard_allows(ctx: Ctx) {
    append_n(&ctx.store, 4).await;
    let now = t0() + Duration::days(2);
    let plan = RetentionPlan::new(&one_day_chain_policy(), now);
    let actor = Actor::system("test");
    let counts = ctx
        .store
        .retention()
        .run_retention(&plan, RunKind::Manual, &actor, now)
        .await
        .unwrap()
        .expect("a manual run acts");
    assert_eq!(counts.counts["audit_chain"], 4);
    assert_eq!(counts.redacted_through_seq, 4);
    let v = ctx.store.audit().verify_audit_chain().await.unwrap();
    assert_eq!(v.first_broken, None);
    assert_eq!((v.records, v.redacted), (5, 4));

    // A redacted record cannot be redacted again, un-redacted, or changed otherwise; the
    // newest (unredacted) one cannot be passed off as redacted with another subject.
    for sql in [
        "UPDATE audit_log SET redacted_at = NULL WHERE seq = 1",
        "UPDATE audit_log SET subject = 'x' WHERE seq = 2",
        "UPDATE audit_log SET detail = '{\"redacted\":true}', actor_ip = NULL, \
         redacted_at = at, subject = 'x' WHERE seq = 5",
        "DELETE FROM audit_log WHERE seq = 3",
    ] {
        assert!(refused(&ctx, sql).await, "{sql} should be refused");
    }
    // Idempotent: nothing is left to redact.
    let again = ctx
        .store
        .retention()
        .run_retention(&plan, RunKind::Manual, &actor, now)
        .await
        .unwrap()
        .expect("a manual run acts");
    assert_eq!(again.counts["audit_chain"], 0);
    assert_eq!(retention_records(&ctx.store).await, 2);
}

async fn a_dry_run_counts_and_changes_nothing(ctx: Ctx) {
    append_n(&ctx.store, 3).await;
    let now = t0() + Duration::days(2);
    let plan = RetentionPlan::new(&one_day_chain_policy(), now);
    let dry = ctx
        .store
        .retention()
        .run_retention(&plan, RunKind::DryRun, &Actor::system("test"), now)
        .await
        .unwrap()
        .expect("a dry run counts");
    assert_eq!(dry.counts["audit_chain"], 3);
    let v = ctx.store.audit().verify_audit_chain().await.unwrap();
    assert_eq!((v.records, v.redacted), (3, 0));
    assert_eq!(retention_records(&ctx.store).await, 0);
}

async fn one_daily_run_per_day_across_replicas(ctx: Ctx) {
    append_n(&ctx.store, 3).await;
    let now = t0() + Duration::days(2);
    let plan = RetentionPlan::new(&one_day_chain_policy(), now);
    let mut replicas = vec![ctx.store.clone()];
    for _ in 0..3 {
        replicas.push(Store::connect_existing(&ctx.url).await.unwrap());
    }
    let runs = replicas.iter().map(|store| {
        let plan = plan.clone();
        let store = store.clone();
        tokio::spawn(async move {
            store
                .retention()
                .run_retention(
                    &plan,
                    RunKind::Daily(now.date()),
                    &Actor::system("retention"),
                    now,
                )
                .await
                .unwrap()
        })
    });
    let mut acted = 0;
    for run in runs.collect::<Vec<_>>() {
        if run.await.unwrap().is_some() {
            acted += 1;
        }
    }
    assert_eq!(acted, 1, "exactly one replica acts");
    assert_eq!(retention_records(&ctx.store).await, 1);
    // The next day is free again.
    let tomorrow = now + Duration::days(1);
    let next = ctx
        .store
        .retention()
        .run_retention(
            &plan,
            RunKind::Daily(tomorrow.date()),
            &Actor::system("retention"),
            tomorrow,
        )
        .await
        .unwrap();
    assert!(next.is_some());
}

crate::store_suite!(
    redaction_is_the_only_change_the_guard_allows,
    a_dry_run_counts_and_changes_nothing,
    one_daily_run_per_day_across_replicas,
);

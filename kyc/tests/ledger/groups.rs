//! Linked groups: automatic linking by shared attributes, merging, staff link and unlink.

use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::ledger::{LedgerError, LinkAttribute, ReportFilter, Verdict};
use computegate_policy::{Action, Scope, ThresholdPolicy};
use uuid::Uuid;

use super::fixtures::{DAY, admit, customer, hashed, job, rule, staff};
use crate::support::{Ctx, t0};

/// Group thresholds for the link-time re-check: 2e19 notify + report, 5e19 review.
fn group_rules() -> ThresholdPolicy {
    ThresholdPolicy {
        rules: vec![
            rule("g2e19", 2e19, Scope::Group, Action::Notify),
            rule("g2e19", 2e19, Scope::Group, Action::Report),
            rule("g5e19", 5e19, Scope::Group, Action::Review),
        ],
        window: 30 * DAY,
    }
}

async fn shared_attributes_link_and_merge_groups(ctx: Ctx) {
    let s = &ctx.store;
    let [a, b, c, d] = [
        customer(s).await,
        customer(s).await,
        customer(s).await,
        customer(s).await,
    ];
    let card = hashed("card-1");
    let owner = hashed("owner:jane doe:1970-01-01");
    let passport = hashed("passport:FR:12AB34567");
    let link = |c, kind, h| async move {
        s.ledger()
            .link_by_attribute(c, kind, h, t0())
            .await
            .unwrap()
    };

    assert!(
        link(a, LinkAttribute::PaymentFingerprint, &card)
            .await
            .group
            .is_none()
    );
    let ab = link(b, LinkAttribute::PaymentFingerprint, &card).await;
    assert_eq!(ab.moved.len(), 2);
    let g1 = ab.group.unwrap();
    link(c, LinkAttribute::BeneficialOwner, &owner).await;
    let cd = link(d, LinkAttribute::BeneficialOwner, &owner)
        .await
        .group
        .unwrap();
    assert_ne!(g1.id, cd.id);

    // b and c share a document: both groups merge into one of four.
    link(b, LinkAttribute::IdDocument, &passport).await;
    let merged = link(c, LinkAttribute::IdDocument, &passport).await;
    let group = merged.group.unwrap();
    assert_eq!(group.members.len(), 4);
    assert_eq!(
        merged.moved.len(),
        2,
        "the smaller (tied: higher id) group moved"
    );
    for x in [a, b, c, d] {
        assert_eq!(s.ledger().group_of(x).await.unwrap().unwrap().id, group.id);
    }
    // Idempotent.
    let again = link(c, LinkAttribute::IdDocument, &passport).await;
    assert!(again.moved.is_empty());
    assert_eq!(again.group.unwrap().id, group.id);

    let records = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("ledger.group.linked".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 3);
    assert!(
        !records[0].detail.to_string().contains("card-1"),
        "no raw attribute"
    );
}

async fn staff_unlink_exempts_and_link_restores(ctx: Ctx) {
    let s = &ctx.store;
    let (a, b, c) = (customer(s).await, customer(s).await, customer(s).await);
    let card = hashed("card-2");
    for x in [a, b, c] {
        s.ledger()
            .link_by_attribute(x, LinkAttribute::PaymentFingerprint, &card, t0())
            .await
            .unwrap();
    }
    let group = s.ledger().group_of(a).await.unwrap().unwrap();
    assert_eq!(group.members.len(), 3);

    let officer = staff();
    let r = s
        .ledger()
        .unlink_customer(b, "family card", &Actor::customer(b, None), t0())
        .await;
    assert!(matches!(r, Err(LedgerError::NotStaff)));
    let left = s
        .ledger()
        .unlink_customer(b, "family card", &officer, t0())
        .await
        .unwrap();
    assert_eq!(left, Some(group.id));
    assert!(s.ledger().group_of(b).await.unwrap().is_none());
    assert_eq!(
        s.ledger().group_of(a).await.unwrap().unwrap().members.len(),
        2
    );

    // Automatic linking leaves the unlinked customer alone, from either side.
    let out = s
        .ledger()
        .link_by_attribute(b, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    assert!(out.group.is_none() && out.moved.is_empty());
    let d = customer(s).await;
    s.ledger()
        .link_by_attribute(d, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    assert!(s.ledger().group_of(b).await.unwrap().is_none());
    assert_eq!(s.ledger().group_of(d).await.unwrap().unwrap().id, group.id);

    // Staff link puts it back and lifts the exemption.
    let g = s
        .ledger()
        .link_customers(b, a, "same company", &officer, &group_rules(), t0())
        .await
        .unwrap();
    assert!(g.check.crossings.is_empty(), "nobody ran anything");
    let g = g.group;
    assert_eq!(g.id, group.id);
    assert_eq!(g.members.len(), 4);
    assert!(
        g.members
            .iter()
            .any(|m| m.customer_id == b && m.via == "staff")
    );

    // Unlinking a customer in no group only records the exemption.
    let solo = customer(s).await;
    assert_eq!(
        s.ledger()
            .unlink_customer(solo, "n/a", &officer, t0())
            .await
            .unwrap(),
        None
    );
}

async fn unknown_customers_are_refused(ctx: Ctx) {
    let s = &ctx.store;
    let a = customer(s).await;
    let ghost = Uuid::now_v7();
    let r = s
        .ledger()
        .link_by_attribute(ghost, LinkAttribute::IdDocument, &hashed("x"), t0())
        .await;
    assert!(matches!(r, Err(LedgerError::UnknownCustomer)), "{r:?}");
    let r = s
        .ledger()
        .link_customers(a, ghost, "x", &staff(), &group_rules(), t0())
        .await;
    assert!(matches!(r, Err(LedgerError::UnknownCustomer)), "{r:?}");
    assert!(s.ledger().group_of(a).await.unwrap().is_none());
}

/// A job of `customer` under the group rules.
fn group_job(customer: Uuid, run: &str, flop: f64) -> computegate_kyc::ledger::AdmissionRequest {
    let mut req = job(customer, run, flop);
    req.thresholds = std::sync::Arc::new(group_rules());
    req
}

async fn a_staff_link_rechecks_group_thresholds_at_once(ctx: Ctx) {
    let s = &ctx.store;
    let (a, b) = (customer(s).await, customer(s).await);
    for (c, run) in [(a, "late-a"), (b, "late-b")] {
        let d = admit(s, &group_job(c, run, 1.2e19)).await;
        assert_eq!(d.verdict, Verdict::Admitted);
        assert!(d.crossings.is_empty(), "each alone is below 2e19: {d:?}");
    }
    let link = s
        .ledger()
        .link_customers(
            a,
            b,
            "shared owner found late",
            &staff(),
            &group_rules(),
            t0(),
        )
        .await
        .unwrap();
    let c = &link.check.crossings;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].label, "g2e19");
    assert_eq!(c[0].action, Action::Report);
    assert_eq!((c[0].scope, c[0].scope_id), (Scope::Group, link.group.id));
    assert_eq!((c[0].previous_flop, c[0].projected_flop), (1.2e19, 2.4e19));
    assert_eq!(link.check.report_ids.len(), 1);
    let reports = s
        .ledger()
        .list_reports(&ReportFilter {
            status: None,
            due_before: None,
            customer_id: None,
            limit: 0,
            after: None,
        })
        .await
        .unwrap();
    let report = reports
        .iter()
        .find(|r| r.id == link.check.report_ids[0])
        .expect("the link's report is listed");
    assert_eq!(Some(report.job_id), link.check.job_id);
    assert_eq!(report.crossings[0].label, "g2e19");
    assert_eq!(report.cumulative_flop, 2.4e19);
    let created = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("ledger.report.created".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.len(), 1, "one report record, written with the link");

    // Fired once: the group's next job does not fire it again.
    let next = admit(s, &group_job(a, "late-a2", 1e18)).await;
    assert_eq!(next.verdict, Verdict::Admitted);
    assert!(next.crossings.is_empty(), "{next:?}");
    // Linking again changes nothing and fires nothing.
    let again = s
        .ledger()
        .link_customers(a, b, "again", &staff(), &group_rules(), t0())
        .await
        .unwrap();
    assert!(again.check.crossings.is_empty() && again.check.report_ids.is_empty());
}

async fn a_link_leaves_review_thresholds_to_the_next_job(ctx: Ctx) {
    let s = &ctx.store;
    let (c, d) = (customer(s).await, customer(s).await);
    admit(s, &group_job(c, "big-c", 3e19)).await;
    admit(s, &group_job(d, "big-d", 3e19)).await;
    // 6e19 together passes the 5e19 review threshold; each part alone was past 2e19 already.
    let link = s
        .ledger()
        .link_customers(c, d, "same owner", &staff(), &group_rules(), t0())
        .await
        .unwrap();
    assert!(link.check.crossings.is_empty(), "{:?}", link.check);
    let next = admit(s, &group_job(c, "big-c2", 1e18)).await;
    assert!(
        matches!(next.verdict, Verdict::HeldForReview { .. }),
        "the group's next job is held: {next:?}"
    );
    assert!(
        next.crossings
            .iter()
            .any(|x| x.label == "g5e19" && x.scope_id == link.group.id)
    );
}

crate::store_suite!(
    shared_attributes_link_and_merge_groups,
    staff_unlink_exempts_and_link_restores,
    unknown_customers_are_refused,
    a_staff_link_rechecks_group_thresholds_at_once,
    a_link_leaves_review_thresholds_to_the_next_job,
);

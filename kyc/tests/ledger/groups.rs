//! Linked groups: automatic linking by shared attributes, merging, staff link and unlink.

use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::ledger::{AttributeHash, LedgerError, LinkAttribute};
use uuid::Uuid;

use super::fixtures::{customer, staff};
use crate::support::{Ctx, t0};

async fn shared_attributes_link_and_merge_groups(ctx: Ctx) {
    let s = &ctx.store;
    let [a, b, c, d] = [
        customer(s).await,
        customer(s).await,
        customer(s).await,
        customer(s).await,
    ];
    let card = AttributeHash::of(b"card-1");
    let owner = AttributeHash::of(b"owner:jane doe:1970-01-01");
    let passport = AttributeHash::of(b"passport:FR:12AB34567");
    let link = |c, kind, h| async move { s.link_by_attribute(c, kind, h, t0()).await.unwrap() };

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
        assert_eq!(s.group_of(x).await.unwrap().unwrap().id, group.id);
    }
    // Idempotent.
    let again = link(c, LinkAttribute::IdDocument, &passport).await;
    assert!(again.moved.is_empty());
    assert_eq!(again.group.unwrap().id, group.id);

    let records = s
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
    let card = AttributeHash::of(b"card-2");
    for x in [a, b, c] {
        s.link_by_attribute(x, LinkAttribute::PaymentFingerprint, &card, t0())
            .await
            .unwrap();
    }
    let group = s.group_of(a).await.unwrap().unwrap();
    assert_eq!(group.members.len(), 3);

    let officer = staff();
    let r = s
        .unlink_customer(b, "family card", &Actor::customer(b, None), t0())
        .await;
    assert!(matches!(r, Err(LedgerError::NotStaff)));
    let left = s
        .unlink_customer(b, "family card", &officer, t0())
        .await
        .unwrap();
    assert_eq!(left, Some(group.id));
    assert!(s.group_of(b).await.unwrap().is_none());
    assert_eq!(s.group_of(a).await.unwrap().unwrap().members.len(), 2);

    // Automatic linking leaves the unlinked customer alone, from either side.
    let out = s
        .link_by_attribute(b, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    assert!(out.group.is_none() && out.moved.is_empty());
    let d = customer(s).await;
    s.link_by_attribute(d, LinkAttribute::PaymentFingerprint, &card, t0())
        .await
        .unwrap();
    assert!(s.group_of(b).await.unwrap().is_none());
    assert_eq!(s.group_of(d).await.unwrap().unwrap().id, group.id);

    // Staff link puts it back and lifts the exemption.
    let g = s
        .link_customers(b, a, "same company", &officer, t0())
        .await
        .unwrap();
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
        s.unlink_customer(solo, "n/a", &officer, t0())
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
        .link_by_attribute(
            ghost,
            LinkAttribute::IdDocument,
            &AttributeHash::of(b"x"),
            t0(),
        )
        .await;
    assert!(matches!(r, Err(LedgerError::UnknownCustomer)), "{r:?}");
    let r = s.link_customers(a, ghost, "x", &staff(), t0()).await;
    assert!(matches!(r, Err(LedgerError::UnknownCustomer)), "{r:?}");
    assert!(s.group_of(a).await.unwrap().is_none());
}

crate::store_suite!(
    shared_attributes_link_and_merge_groups,
    staff_unlink_exempts_and_link_restores,
    unknown_customers_are_refused,
);

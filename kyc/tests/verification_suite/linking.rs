//! Automatic linking on approval: accounts whose approved applications share a payment
//! fingerprint, an owner or a document are linked in the approving transaction, by keyed
//! hashes only; an application that is not approved links nobody.

use computegate_kyc::accounts::{CustomerKind, StaffRole, Tier};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::ledger::{AttributeKey, LinkAttribute, LinkValue};
use computegate_kyc::verification::{
    ApplicationPayload, DecisionRequest, ScreeningDecision, StaffCaller, StaffDecision,
};
use time::Duration;
use uuid::Uuid;

use crate::fixtures::*;
use crate::support::{Ctx, t0};

/// The shared individual fixture as someone else: another name, birth date and passport.
fn someone_else(name: &str, passport: &str, card: &str) -> ApplicationPayload {
    let mut p = individual();
    let person = p.individual.as_mut().unwrap();
    person.legal_name = Some(name.into());
    person.date_of_birth = Some("1979-03-02".into());
    person.id_document.as_mut().unwrap().number = Some(passport.into());
    p.payment_fingerprint = Some(card.into());
    p
}

async fn decide(
    s: &computegate_kyc::Store,
    key: &MasterKey,
    reviewer: &StaffCaller,
    app: Uuid,
    action: StaffDecision,
) {
    s.verification()
        .decide_application(
            key,
            reviewer,
            app,
            DecisionRequest {
                action,
                reason: "linking test decision".into(),
                reverify_after: Some(Duration::days(365)),
                evidence: Default::default(),
            },
            t0(),
        )
        .await
        .unwrap();
}

fn approve() -> StaffDecision {
    StaffDecision::Approve {
        tier: Tier::new(Tier::IDENTITY_VERIFIED).unwrap(),
    }
}

async fn approvals_link_accounts_sharing_attributes(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let mut ids = Vec::new();
    // alice: the fixture. bob: another person paying with alice's card. carol: alice herself
    // (name spelled differently) with another card and passport. dave: a stranger. erin: a
    // stranger with alice's card whose application is rejected.
    let alice_card = individual().payment_fingerprint.unwrap();
    let payloads = [
        individual(),
        someone_else("Bob Builder", "B1234567", &alice_card),
        {
            let mut p = someone_else("ADA MARIA NUNEZ LOVELACE", "C7654321", "card_fp:other-1");
            p.individual.as_mut().unwrap().date_of_birth = Some("1990-12-10".into());
            p
        },
        someone_else("Dave Stranger", "D1111111", "card_fp:other-2"),
        someone_else("Erin Rejected", "E2222222", &alice_card),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let c = customer(s, &format!("c{i}@example.com"), CustomerKind::Individual).await;
        let app = pending(s, &key, &c, payload, ScreeningDecision::Clear).await;
        ids.push((c.customer_id, app));
    }
    let [alice, bob, carol, dave, erin] = [ids[0], ids[1], ids[2], ids[3], ids[4]];

    // Pending applications link nobody.
    assert!(s.ledger().group_of(alice.0).await.unwrap().is_none());
    decide(s, &key, &reviewer, alice.1, approve()).await;
    assert!(
        s.ledger().group_of(alice.0).await.unwrap().is_none(),
        "nobody to share with yet"
    );
    decide(s, &key, &reviewer, bob.1, approve()).await;
    decide(s, &key, &reviewer, carol.1, approve()).await;
    decide(s, &key, &reviewer, dave.1, approve()).await;
    decide(s, &key, &reviewer, erin.1, StaffDecision::Reject).await;

    let group = s
        .ledger()
        .group_of(alice.0)
        .await
        .unwrap()
        .expect("alice is linked");
    let mut members: Vec<Uuid> = group.members.iter().map(|m| m.customer_id).collect();
    members.sort();
    let mut expected = vec![alice.0, bob.0, carol.0];
    expected.sort();
    assert_eq!(members, expected, "{group:?}");
    let via = |c: Uuid| {
        group
            .members
            .iter()
            .find(|m| m.customer_id == c)
            .map(|m| m.via.clone())
    };
    assert_eq!(via(bob.0).as_deref(), Some("payment_fingerprint"));
    assert_eq!(via(carol.0).as_deref(), Some("beneficial_owner"));
    assert!(s.ledger().group_of(dave.0).await.unwrap().is_none());
    assert!(
        s.ledger().group_of(erin.0).await.unwrap().is_none(),
        "a rejected application links nobody"
    );

    // One audit record per automatic link, by the system, with no raw attribute in it.
    let linked = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("ledger.group.linked".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(linked.len(), 2, "{linked:?}");
    for r in &linked {
        assert_eq!(r.actor, "system:linking");
        let detail = r.detail.to_string();
        assert!(!detail.contains(&alice_card) && !detail.to_lowercase().contains("lovelace"));
    }

    // The stored hash is the keyed one: a customer recorded with the keyed hash of alice's
    // card (computed from this store's master key) joins the group; the same card hashed
    // under another master key matches nobody.
    let card = LinkValue::payment_fingerprint(&alice_card).unwrap();
    let frank = customer(s, "frank@example.com", CustomerKind::Individual).await;
    let other_key = AttributeKey::derive(&MasterKey::generate().unwrap()).hash(&card);
    let out = s
        .ledger()
        .link_by_attribute(
            frank.customer_id,
            LinkAttribute::PaymentFingerprint,
            &other_key,
            t0(),
        )
        .await
        .unwrap();
    assert!(out.group.is_none());
    let keyed = AttributeKey::derive(&key).hash(&card);
    let out = s
        .ledger()
        .link_by_attribute(
            frank.customer_id,
            LinkAttribute::PaymentFingerprint,
            &keyed,
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(out.group.map(|g| g.id), Some(group.id));
    chain_intact(s).await;
}

crate::store_suite!(approvals_link_accounts_sharing_attributes);

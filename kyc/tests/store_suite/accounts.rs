//! Customers, organizations, staff and the access log.

use std::net::IpAddr;

use computegate_kyc::access_log::{AccessAction, AccessEvent, AccessOutcome};
use computegate_kyc::accounts::{
    AccountError, Actor, CustomerKind, CustomerStatus, StaffRole, Subject, Tier,
};
use time::Duration;
use time::macros::{datetime, offset};
use uuid::Uuid;

use crate::support::{Ctx, t0};

const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

async fn email_is_normalized_and_unique(ctx: Ctx) {
    let s = &ctx.store;
    let c = s
        .accounts()
        .create_customer("  Alice@Example.COM ", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    assert_eq!(c.email, "alice@example.com");
    assert_eq!(c.status, CustomerStatus::Active);
    assert_eq!(c.tier.as_str(), Tier::UNVERIFIED);
    assert_eq!(c.id.get_version_num(), 7);

    let dup = s
        .accounts()
        .create_customer("alice@EXAMPLE.com", HASH, CustomerKind::Organization, t0())
        .await;
    assert!(matches!(dup, Err(AccountError::EmailTaken)), "{dup:?}");
    let bad = s
        .accounts()
        .create_customer("not-an-email", HASH, CustomerKind::Individual, t0())
        .await;
    assert!(matches!(bad, Err(AccountError::InvalidEmail)));

    let by_email = s
        .accounts()
        .customer_by_email("ALICE@example.com ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email, c);
    assert_eq!(s.accounts().customer_by_id(c.id).await.unwrap().unwrap(), c);
    assert!(
        s.accounts()
            .customer_by_id(Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.accounts()
            .customer_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Staff emails are a separate namespace, unique among staff.
    let actor = Actor::system("test");
    s.accounts()
        .create_staff("alice@example.com", StaffRole::Admin, HASH, &actor, t0())
        .await
        .unwrap();
    let dup = s
        .accounts()
        .create_staff(
            " ALICE@example.com",
            StaffRole::Reviewer,
            HASH,
            &actor,
            t0(),
        )
        .await;
    assert!(matches!(dup, Err(AccountError::EmailTaken)));
}

async fn hostile_and_unicode_text_is_stored_verbatim(ctx: Ctx) {
    let s = &ctx.store;
    let email = "o'brien+\"x\";--DROP@exämple.com";
    let c = s
        .accounts()
        .create_customer(email, HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    assert_eq!(c.email, "o'brien+\"x\";--drop@exämple.com");
    assert_eq!(
        s.accounts()
            .customer_by_email(email)
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    // A LIKE-style wildcard is not a wildcard.
    assert!(
        s.accounts()
            .customer_by_email("%@exämple.com")
            .await
            .unwrap()
            .is_none()
    );

    let name = "Robert'); DROP TABLE customers;-- 株式会社 \u{1F600} \\ % _";
    let org = s
        .accounts()
        .create_organization(name, &Actor::system("test"), t0())
        .await
        .unwrap();
    assert_eq!(
        s.accounts()
            .organization_by_id(org.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        name
    );

    let reason = "'; UPDATE customers SET tier='validated_end_user' --  ünïcödé";
    let actor = Actor::staff(Uuid::now_v7(), Some("2001:db8::1".parse().unwrap()));
    s.accounts()
        .set_customer_status(c.id, CustomerStatus::Suspended, &actor, reason, t0())
        .await
        .unwrap();
    let log = s
        .access()
        .access_log_for_subject(&Subject::Customer(c.id).to_string(), 10)
        .await
        .unwrap();
    let detail: serde_json::Value =
        serde_json::from_str(log[0].event.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["reason"], reason);
    assert_eq!(
        s.accounts()
            .customer_by_id(c.id)
            .await
            .unwrap()
            .unwrap()
            .tier
            .as_str(),
        Tier::UNVERIFIED
    );
    // Tables survived.
    assert!(
        s.accounts()
            .customer_by_email(email)
            .await
            .unwrap()
            .is_some()
    );
}

async fn timestamps_are_stored_as_utc(ctx: Ctx) {
    let local = datetime!(2030-06-01 14:30:00.123456789 +02:00);
    let c = ctx
        .store
        .accounts()
        .create_customer("tz@example.com", HASH, CustomerKind::Individual, local)
        .await
        .unwrap();
    let back = ctx
        .store
        .accounts()
        .customer_by_id(c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.created_at, datetime!(2030-06-01 12:30:00.123456 UTC));
    assert_eq!(back.created_at.offset(), offset!(UTC));
    assert_eq!(back, c);
}

async fn status_and_tier_changes_are_administrative_actions(ctx: Ctx) {
    let s = &ctx.store;
    let c = s
        .accounts()
        .create_customer("carol@example.com", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let refresh = s
        .credentials()
        .issue_refresh(Subject::Customer(c.id), t0(), Duration::days(30))
        .await
        .unwrap();
    let staff_id = Uuid::now_v7();
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let actor = Actor::staff(staff_id, Some(ip));

    let later = t0() + Duration::minutes(5);
    let tier = Tier::new(Tier::IDENTITY_VERIFIED).unwrap();
    let updated = s
        .accounts()
        .set_customer_tier(c.id, &tier, &actor, "IDV passed", later)
        .await
        .unwrap();
    assert_eq!(updated.tier, tier);
    assert_eq!(updated.updated_at, later);

    let suspended = s
        .accounts()
        .set_customer_status(c.id, CustomerStatus::Suspended, &actor, "fraud", later)
        .await
        .unwrap();
    assert_eq!(suspended.status, CustomerStatus::Suspended);
    // Leaving `active` ends every session.
    let err = s
        .credentials()
        .rotate_refresh(&refresh.token, later)
        .await
        .unwrap_err();
    assert!(
        matches!(err, computegate_kyc::refresh::RefreshError::Revoked),
        "{err:?}"
    );

    let log = s
        .access()
        .access_log_for_subject(&Subject::Customer(c.id).to_string(), 10)
        .await
        .unwrap();
    let actions: Vec<_> = log.iter().map(|r| r.event.action).collect();
    assert_eq!(
        actions,
        [
            AccessAction::CustomerStatusChange,
            AccessAction::CustomerTierChange
        ]
    );
    for r in &log {
        assert_eq!(r.event.client_ip, Some(ip));
        assert_eq!(
            r.event.actor.as_deref(),
            Some(format!("staff:{staff_id}").as_str())
        );
        assert_eq!(r.event.at, later);
        assert_eq!(r.event.outcome, AccessOutcome::Success);
    }

    let missing = s
        .accounts()
        .set_customer_status(Uuid::now_v7(), CustomerStatus::Closed, &actor, "x", later)
        .await;
    assert!(matches!(missing, Err(AccountError::CustomerNotFound)));
}

async fn organizations_have_members(ctx: Ctx) {
    let s = &ctx.store;
    let actor = Actor::system("test");
    let org = s
        .accounts()
        .create_organization("Acme AI", &actor, t0())
        .await
        .unwrap();
    let a = s
        .accounts()
        .create_customer("a@acme.test", HASH, CustomerKind::Organization, t0())
        .await
        .unwrap();
    let b = s
        .accounts()
        .create_customer(
            "b@acme.test",
            HASH,
            CustomerKind::Organization,
            t0() + Duration::seconds(1),
        )
        .await
        .unwrap();
    s.accounts()
        .add_organization_member(org.id, a.id, &actor, t0())
        .await
        .unwrap();
    s.accounts()
        .add_organization_member(org.id, b.id, &actor, t0())
        .await
        .unwrap();
    let members = s.accounts().organization_members(org.id).await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.id).collect::<Vec<_>>(),
        [a.id, b.id]
    );
    assert_eq!(members[0].organization_id, Some(org.id));

    let err = s
        .accounts()
        .add_organization_member(Uuid::now_v7(), a.id, &actor, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::OrganizationNotFound));
    let err = s
        .accounts()
        .add_organization_member(org.id, Uuid::now_v7(), &actor, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, AccountError::CustomerNotFound));
    assert!(matches!(
        s.accounts().create_organization("   ", &actor, t0()).await,
        Err(AccountError::InvalidOrganizationName)
    ));
}

async fn staff_users(ctx: Ctx) {
    let s = &ctx.store;
    let actor = Actor::system("cli");
    let staff = s
        .accounts()
        .create_staff(
            " Rev@Example.com",
            StaffRole::SeniorReviewer,
            HASH,
            &actor,
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(staff.email, "rev@example.com");
    let back = s
        .accounts()
        .staff_by_email("REV@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, staff);
    assert_eq!(
        s.accounts()
            .staff_by_id(staff.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        StaffRole::SeniorReviewer
    );
    let log = s
        .access()
        .access_log_for_subject(&Subject::Staff(staff.id).to_string(), 5)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event.action, AccessAction::StaffCreate);
    assert_eq!(log[0].event.actor.as_deref(), Some("system:cli"));
}

async fn access_log_records_ip_time_action_subject(ctx: Ctx) {
    let s = &ctx.store;
    let subject = "email:nobody@example.com";
    let v4: IpAddr = "203.0.113.5".parse().unwrap();
    let v6: IpAddr = "2001:db8::5".parse().unwrap();
    for (i, ip) in [Some(v4), Some(v6), None].into_iter().enumerate() {
        let mut e = AccessEvent::new(
            t0() + Duration::seconds(i as i64),
            ip,
            AccessAction::Login,
            AccessOutcome::Failure,
            subject,
        );
        e.detail = Some(r#"{"reason":"invalid_credentials"}"#.into());
        s.access().record_access(&e).await.unwrap();
    }
    let log = s
        .access()
        .access_log_for_subject(subject, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    // Newest first.
    assert_eq!(log[0].event.client_ip, None);
    assert_eq!(log[1].event.client_ip, Some(v6));
    assert_eq!(log[2].event.client_ip, Some(v4));
    assert_eq!(log[2].event.at, t0());
    assert_eq!(
        s.access()
            .access_log_for_subject(subject, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        s.access()
            .access_log_for_subject("email:other", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::store_suite!(
    email_is_normalized_and_unique,
    hostile_and_unicode_text_is_stored_verbatim,
    timestamps_are_stored_as_utc,
    status_and_tier_changes_are_administrative_actions,
    organizations_have_members,
    staff_users,
    access_log_records_ip_time_action_subject,
);

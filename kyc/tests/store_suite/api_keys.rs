//! API keys: create, list, verify, revoke, expire.

use std::net::IpAddr;

use computegate_kyc::access_log::{AccessAction, AccessOutcome};
use computegate_kyc::accounts::{Actor, CustomerKind};
use computegate_kyc::api_keys::{KeyError, KeyState, NewApiKey, parse_api_key};
use time::Duration;
use uuid::Uuid;

use crate::support::{Ctx, hasher, t0};

const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

fn new_key(name: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        expires_at: None,
        scopes: vec!["jobs:submit".into(), "jobs:read".into()],
    }
}

async fn create_verify_revoke(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let ip: IpAddr = "198.51.100.20".parse().unwrap();
    let owner = s
        .accounts()
        .create_customer("keys@example.com", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let other = s
        .accounts()
        .create_customer("other@example.com", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let actor = Actor::customer(owner.id, Some(ip));
    let name = "CI 'runner'; -- 東京";
    let created = s
        .credentials()
        .create_api_key(&h, owner.id, new_key(name), &actor, t0())
        .await
        .unwrap();
    let parsed = parse_api_key(&created.key).unwrap();
    assert_eq!(parsed.key_id, created.id);
    assert!(!format!("{created:?}").contains(parsed.secret));

    let listed = s
        .credentials()
        .list_api_keys(owner.id, None, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].scopes, ["jobs:submit", "jobs:read"]);
    assert_eq!(listed[0].state(t0()), KeyState::Active);
    assert!(
        s.credentials()
            .list_api_keys(other.id, None, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let principal = s
        .credentials()
        .verify_api_key(&h, &created.key, Some(ip), t0())
        .await
        .unwrap();
    assert_eq!(principal.customer_id, owner.id);
    assert_eq!(principal.key_id, created.id);
    assert_eq!(principal.scopes, ["jobs:submit", "jobs:read"]);

    // Wrong secret and unknown id give the same answer.
    let wrong_secret = format!("cg_{}_{}", created.id, "A".repeat(43));
    let unknown_id = format!("cg_{}_{}", "Z".repeat(16), &created.key[20..]);
    for bad in [&wrong_secret, &unknown_id] {
        let err = s
            .credentials()
            .verify_api_key(&h, bad, Some(ip), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::Invalid), "{err:?}");
    }
    let err = s
        .credentials()
        .verify_api_key(&h, "cg_nope", Some(ip), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Malformed));

    // Only the owner may revoke.
    let err = s
        .credentials()
        .revoke_api_key(
            other.id,
            &created.id,
            &Actor::customer(other.id, None),
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::NotFound));
    let err = s
        .credentials()
        .revoke_api_key(owner.id, "ZZZZZZZZZZZZZZZZ", &actor, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::NotFound));
    s.credentials()
        .revoke_api_key(owner.id, &created.id, &actor, t0())
        .await
        .unwrap();
    s.credentials()
        .revoke_api_key(owner.id, &created.id, &actor, t0())
        .await
        .unwrap();

    let err = s
        .credentials()
        .verify_api_key(&h, &created.key, Some(ip), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Revoked), "{err:?}");
    // A revoked key with a wrong secret is still just Invalid.
    let err = s
        .credentials()
        .verify_api_key(&h, &wrong_secret, Some(ip), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Invalid));

    let state = s
        .credentials()
        .api_key_state(&created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.state(t0()), KeyState::Revoked);
    assert!(
        s.credentials()
            .api_key_state("ZZZZZZZZZZZZZZZZ")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.credentials()
            .api_key_state("bad id")
            .await
            .unwrap()
            .is_none()
    );

    // Access log: create, 1 success + 3 failures of use, revoke (twice).
    let log = s
        .access()
        .access_log_for_subject(&format!("api_key:{}", created.id), 20)
        .await
        .unwrap();
    let count = |action, outcome| {
        log.iter()
            .filter(|r| r.event.action == action && r.event.outcome == outcome)
            .count()
    };
    assert_eq!(count(AccessAction::ApiKeyCreate, AccessOutcome::Success), 1);
    assert_eq!(count(AccessAction::ApiKeyUse, AccessOutcome::Success), 1);
    assert_eq!(count(AccessAction::ApiKeyUse, AccessOutcome::Failure), 3);
    assert_eq!(count(AccessAction::ApiKeyRevoke, AccessOutcome::Success), 2);
    assert!(log.iter().all(|r| r.event.client_ip == Some(ip)));
}

async fn expiry_and_limits(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let owner = s
        .accounts()
        .create_customer("exp@example.com", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let actor = Actor::customer(owner.id, None);
    let expiring = NewApiKey {
        expires_at: Some(t0() + Duration::hours(1)),
        ..new_key("short-lived")
    };
    let created = s
        .credentials()
        .create_api_key(&h, owner.id, expiring, &actor, t0())
        .await
        .unwrap();
    let p = s
        .credentials()
        .verify_api_key(&h, &created.key, None, t0() + Duration::minutes(59))
        .await
        .unwrap();
    assert_eq!(p.expires_at, Some(t0() + Duration::hours(1)));
    let err = s
        .credentials()
        .verify_api_key(&h, &created.key, None, t0() + Duration::hours(1))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Expired), "{err:?}");

    let past = NewApiKey {
        expires_at: Some(t0()),
        ..new_key("dead on arrival")
    };
    assert!(matches!(
        s.credentials()
            .create_api_key(&h, owner.id, past, &actor, t0())
            .await,
        Err(KeyError::ExpiryInPast)
    ));
    assert!(matches!(
        s.credentials()
            .create_api_key(&h, Uuid::now_v7(), new_key("ghost"), &actor, t0())
            .await,
        Err(KeyError::CustomerNotFound)
    ));
}

/// Keys list newest first a page at a time: walking with the last key's `(created_at, id)` as
/// the cursor yields every key once, keys created at the same instant included.
async fn keys_page_by_keyset(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let owner = s
        .accounts()
        .create_customer("pages@example.com", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let actor = Actor::customer(owner.id, None);
    for i in 0..5 {
        // Three keys at one instant, two a minute later.
        let at = if i < 3 {
            t0()
        } else {
            t0() + Duration::minutes(1)
        };
        s.credentials()
            .create_api_key(&h, owner.id, new_key(&format!("k{i}")), &actor, at)
            .await
            .unwrap();
    }
    let whole = s
        .credentials()
        .list_api_keys(owner.id, None, 100)
        .await
        .unwrap();
    assert_eq!(whole.len(), 5);
    assert!(whole.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    for limit in [1, 2, 3] {
        let mut seen = Vec::new();
        let mut after: Option<(time::OffsetDateTime, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
            let page = s
                .credentials()
                .list_api_keys(owner.id, cursor, limit)
                .await
                .unwrap();
            after = page.last().map(|k| (k.created_at, k.id.clone()));
            let short = page.len() < limit as usize;
            seen.extend(page.into_iter().map(|k| k.id));
            if short {
                break;
            }
        }
        let ids: Vec<String> = whole.iter().map(|k| k.id.clone()).collect();
        assert_eq!(seen, ids, "by {limit}");
    }
}

crate::store_suite!(create_verify_revoke, expiry_and_limits, keys_page_by_keyset);

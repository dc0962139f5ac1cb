//! Refresh tokens: rotation, reuse detection (also under concurrency), expiry, logout.

use computegate_kyc::accounts::Subject;
use computegate_kyc::refresh::RefreshError;
use time::Duration;
use uuid::Uuid;

use crate::support::{Ctx, t0};

async fn rotation_keeps_the_family_and_slides_expiry(ctx: Ctx) {
    let s = &ctx.store;
    let subject = Subject::Customer(Uuid::now_v7());
    let first = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(30))
        .await
        .unwrap();
    assert!(first.token.starts_with("cgr_"));
    assert_eq!(first.expires_at, t0() + Duration::days(30));

    let later = t0() + Duration::days(1);
    let second = s
        .credentials()
        .rotate_refresh(&first.token, later)
        .await
        .unwrap();
    assert_eq!(second.subject, subject);
    assert_eq!(second.family_id, first.family_id);
    assert_ne!(second.token, first.token);
    assert_eq!(second.expires_at, later + Duration::days(30));

    let third = s
        .credentials()
        .rotate_refresh(&second.token, later)
        .await
        .unwrap();
    assert_eq!(third.family_id, first.family_id);
}

async fn reuse_revokes_the_family(ctx: Ctx) {
    let s = &ctx.store;
    let subject = Subject::Staff(Uuid::now_v7());
    let first = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(1))
        .await
        .unwrap();
    let second = s
        .credentials()
        .rotate_refresh(&first.token, t0())
        .await
        .unwrap();

    // The old token again: theft or replay.
    let err = s
        .credentials()
        .rotate_refresh(&first.token, t0())
        .await
        .unwrap_err();
    match err {
        RefreshError::Reused {
            family_id,
            subject: who,
        } => {
            assert_eq!(family_id, first.family_id);
            assert_eq!(who, subject);
        }
        other => panic!("expected Reused, got {other:?}"),
    }
    // The legitimate successor is dead too.
    let err = s
        .credentials()
        .rotate_refresh(&second.token, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");

    // Another family of the same subject is untouched.
    let other = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(1))
        .await
        .unwrap();
    s.credentials()
        .rotate_refresh(&other.token, t0())
        .await
        .unwrap();
}

async fn concurrent_double_use_yields_one_winner(ctx: Ctx) {
    const RACERS: usize = 8;
    let s = &ctx.store;
    let first = s
        .credentials()
        .issue_refresh(Subject::Customer(Uuid::now_v7()), t0(), Duration::days(1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let store = s.clone();
        let token = first.token.clone();
        tasks.push(tokio::spawn(async move {
            store.credentials().rotate_refresh(&token, t0()).await
        }));
    }
    let mut winners = Vec::new();
    let mut reused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(grant) => winners.push(grant),
            Err(RefreshError::Reused { .. }) => reused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one exchange may succeed");
    assert_eq!(reused, RACERS - 1);
    // The reuse revoked the family, including the winner's successor.
    let err = s
        .credentials()
        .rotate_refresh(&winners[0].token, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
}

async fn expired_unknown_and_malformed(ctx: Ctx) {
    let s = &ctx.store;
    let grant = s
        .credentials()
        .issue_refresh(Subject::Customer(Uuid::now_v7()), t0(), Duration::hours(1))
        .await
        .unwrap();
    let err = s
        .credentials()
        .rotate_refresh(&grant.token, t0() + Duration::hours(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Expired), "{err:?}");
    // Still expired, not "reused": the failed attempt did not consume it.
    let err = s
        .credentials()
        .rotate_refresh(&grant.token, t0() + Duration::hours(2))
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Expired), "{err:?}");

    let unknown = format!("cgr_{}", "A".repeat(43));
    assert!(matches!(
        s.credentials().rotate_refresh(&unknown, t0()).await,
        Err(RefreshError::Invalid)
    ));
    for junk in [
        "",
        "cgr_",
        "Bearer x",
        "cgr_'; DELETE FROM refresh_tokens; --",
    ] {
        assert!(matches!(
            s.credentials().rotate_refresh(junk, t0()).await,
            Err(RefreshError::Invalid)
        ));
    }
}

async fn logout_revokes_the_family(ctx: Ctx) {
    let s = &ctx.store;
    let subject = Subject::Customer(Uuid::now_v7());
    let first = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(1))
        .await
        .unwrap();
    let second = s
        .credentials()
        .rotate_refresh(&first.token, t0())
        .await
        .unwrap();
    let revoked = s
        .credentials()
        .revoke_refresh_family(&second.token, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.family_id, first.family_id);
    assert_eq!(revoked.subject, subject);
    assert!(matches!(
        s.credentials().rotate_refresh(&second.token, t0()).await,
        Err(RefreshError::Revoked)
    ));
    // Idempotent, and unknown tokens are not an error.
    assert!(
        s.credentials()
            .revoke_refresh_family(&second.token, t0())
            .await
            .unwrap()
            .is_some()
    );
    let unknown = format!("cgr_{}A", "C".repeat(42));
    assert!(
        s.credentials()
            .revoke_refresh_family(&unknown, t0())
            .await
            .unwrap()
            .is_none()
    );

    // Revoke everything of a subject.
    let a = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(1))
        .await
        .unwrap();
    let b = s
        .credentials()
        .issue_refresh(subject, t0(), Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        s.credentials()
            .revoke_refresh_for_subject(subject, t0())
            .await
            .unwrap(),
        2
    );
    for t in [a.token, b.token] {
        assert!(matches!(
            s.credentials().rotate_refresh(&t, t0()).await,
            Err(RefreshError::Revoked)
        ));
    }
    // Housekeeping removes long-expired rows.
    assert!(
        s.credentials()
            .prune_refresh_tokens(t0() + Duration::days(2))
            .await
            .unwrap()
            >= 4
    );
}

crate::store_suite!(
    rotation_keeps_the_family_and_slides_expiry,
    reuse_revokes_the_family,
    concurrent_double_use_yields_one_winner,
    expired_unknown_and_malformed,
    logout_revokes_the_family,
);

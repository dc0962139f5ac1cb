//! Signing keys: creation, rotation with an overlap window, pruning, wrong master key.

use computegate_kyc::access_log::AccessAction;
use computegate_kyc::accounts::Actor;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::tokens::{AccessClaims, TokenError};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::Ctx;

fn claims(now: OffsetDateTime) -> AccessClaims {
    AccessClaims {
        iss: "https://gw.test".into(),
        aud: "computegate".into(),
        sub: Uuid::now_v7().to_string(),
        tier: "unverified".into(),
        status: "active".into(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: (now + Duration::minutes(15)).unix_timestamp(),
        jti: Uuid::new_v4().to_string(),
        org: None,
        role: None,
    }
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&["https://gw.test"]);
    v.set_audience(&["computegate"]);
    v
}

/// Verifies `token` the way an upstream does: kid from the header, key from the JWKS.
fn verify_with_jwks(jwks: serde_json::Value, token: &str) -> Result<AccessClaims, String> {
    let set: JwkSet = serde_json::from_value(jwks).map_err(|e| e.to_string())?;
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    decode::<AccessClaims>(token, &key, &validation())
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn rotation_keeps_old_keys_verifying(ctx: Ctx) {
    let s = &ctx.store;
    let master = MasterKey::generate().unwrap();
    let actor = Actor::system("cli");
    // Real time: jsonwebtoken checks exp against the system clock.
    let now = OffsetDateTime::now_utc();

    let empty = s.credentials().load_keyring(&master, now).await.unwrap();
    assert!(matches!(
        empty.sign_access(&claims(now)),
        Err(TokenError::NoActiveKey)
    ));

    let first = s
        .credentials()
        .ensure_signing_key(&master, &actor, now)
        .await
        .unwrap();
    assert_eq!(
        s.credentials()
            .ensure_signing_key(&master, &actor, now)
            .await
            .unwrap(),
        first
    );
    let ring1 = s.credentials().load_keyring(&master, now).await.unwrap();
    assert_eq!(ring1.active_kid(), Some(first.as_str()));
    let old_token = ring1.sign_access(&claims(now)).unwrap();

    let window = Duration::minutes(20);
    let second = s
        .credentials()
        .rotate_signing_key(&master, &actor, now, window)
        .await
        .unwrap();
    assert_ne!(first, second);
    let ring2 = s.credentials().load_keyring(&master, now).await.unwrap();
    assert_eq!(ring2.active_kid(), Some(second.as_str()));
    let mut kids = ring2.kids();
    kids.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(kids, expected);
    assert_eq!(ring2.decoding_keys().unwrap().len(), 2);
    assert_eq!(ring2.jwks()["keys"].as_array().unwrap().len(), 2);

    // Old token still verifies with the new keyring; new tokens carry the new kid.
    verify_with_jwks(ring2.jwks(), &old_token).unwrap();
    let new_token = ring2.sign_access(&claims(now)).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(second.as_str())
    );
    verify_with_jwks(ring2.jwks(), &new_token).unwrap();
    // A replica that never saw the new key rejects the new token.
    assert!(verify_with_jwks(ring1.jwks(), &new_token).is_err());

    // After the window the old key leaves the keyring and may be pruned.
    let after = now + window + Duration::seconds(1);
    let ring3 = s.credentials().load_keyring(&master, after).await.unwrap();
    assert_eq!(ring3.kids(), [second.as_str()]);
    assert_eq!(s.credentials().prune_signing_keys(now).await.unwrap(), 0);
    assert_eq!(s.credentials().prune_signing_keys(after).await.unwrap(), 1);
    assert!(verify_with_jwks(ring3.jwks(), &old_token).is_err());

    let log = s
        .access()
        .access_log_for_subject(&format!("signing_key:{second}"), 5)
        .await
        .unwrap();
    assert_eq!(log[0].event.action, AccessAction::SigningKeyRotate);
}

async fn wrong_master_key_is_detected(ctx: Ctx) {
    let s = &ctx.store;
    let now = OffsetDateTime::now_utc();
    let master = MasterKey::generate().unwrap();
    let kid = s
        .credentials()
        .ensure_signing_key(&master, &Actor::system("cli"), now)
        .await
        .unwrap();
    let other = MasterKey::generate().unwrap();
    match s.credentials().load_keyring(&other, now).await {
        Err(TokenError::CorruptKey { kid: k }) => assert_eq!(k, kid),
        other => panic!("expected CorruptKey, got {other:?}"),
    }
}

async fn concurrent_rotations_leave_one_active_key(ctx: Ctx) {
    let s = &ctx.store;
    let now = OffsetDateTime::now_utc();
    let master = MasterKey::generate().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, master) = (s.clone(), master.clone());
        tasks.push(tokio::spawn(async move {
            store
                .credentials()
                .rotate_signing_key(&master, &Actor::system("cli"), now, Duration::minutes(20))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(TokenError::ConcurrentRotation) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok >= 1);
    let ring = s.credentials().load_keyring(&master, now).await.unwrap();
    assert!(ring.active_kid().is_some());
    assert_eq!(ring.kids().len(), ok);
}

crate::store_suite!(
    rotation_keeps_old_keys_verifying,
    wrong_master_key_is_detected,
    concurrent_rotations_leave_one_active_key,
);

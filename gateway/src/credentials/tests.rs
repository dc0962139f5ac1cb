use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use super::*;

const NOW: u64 = 1_800_000_000;
const SEED: [u8; 32] = [7; 32];
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn clock() -> u64 {
    NOW
}

fn encoding_key() -> EncodingKey {
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(&SEED);
    EncodingKey::from_ed_der(&der)
}

fn decoding_key() -> DecodingKey {
    let public = ed25519_dalek::SigningKey::from_bytes(&SEED).verifying_key();
    DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public.as_bytes())).unwrap()
}

fn token_with(alg: Algorithm, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    match alg {
        Algorithm::EdDSA => encode(&header, &claims, &encoding_key()).unwrap(),
        _ => encode(
            &header,
            &claims,
            &EncodingKey::from_secret(b"public-key-bytes"),
        )
        .unwrap(),
    }
}

fn claims(sub: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({"iss": "cg", "aud": "api", "sub": sub, "iat": NOW - 10, "nbf": NOW - 10,
        "exp": exp, "jti": format!("jti-{sub}-{exp}"), "tier": "unverified", "status": "active"})
}

fn good_token(sub: &str) -> String {
    token_with(Algorithm::EdDSA, Some("k1"), claims(sub, NOW + 600))
}

#[derive(Default)]
struct FakeDirectory {
    records: Mutex<HashMap<String, PrincipalRecord>>,
    keys: Mutex<HashMap<String, ApiKeyGrant>>,
    principal_calls: AtomicUsize,
    key_calls: AtomicUsize,
    id_calls: AtomicUsize,
    /// Token ids `revoked_token_ids` reports.
    revoked: Mutex<Vec<(String, u64)>>,
    /// Every call answers `Unavailable` (the store is down).
    down: std::sync::atomic::AtomicBool,
}

impl FakeDirectory {
    fn put(&self, id: &str, tier: &str, status: AccountStatus) {
        self.put_in(id, tier, status, &[]);
    }

    fn put_in(&self, id: &str, tier: &str, status: AccountStatus, countries: &[&str]) {
        self.records.lock().unwrap().insert(
            id.into(),
            PrincipalRecord {
                customer_id: id.into(),
                tier: tier.into(),
                status,
                status_reason: None,
                organization_id: None,
                jurisdictions: countries.iter().map(|c| c.to_string()).collect(),
            },
        );
    }
}

impl IdentityDirectory for FakeDirectory {
    fn principal(&self, id: String) -> BoxFuture<Result<Option<PrincipalRecord>, DirectoryError>> {
        self.principal_calls.fetch_add(1, Ordering::SeqCst);
        let r = self.records.lock().unwrap().get(&id).cloned();
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(DirectoryError::Unavailable);
            }
            Ok(r)
        })
    }
    fn verify_api_key(
        &self,
        key: String,
        _ip: IpAddr,
    ) -> BoxFuture<Result<ApiKeyGrant, DirectoryError>> {
        self.key_calls.fetch_add(1, Ordering::SeqCst);
        let r = self
            .keys
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .ok_or(DirectoryError::Rejected);
        Box::pin(async move { r })
    }
    fn api_key_id_known(&self, key_id: String) -> BoxFuture<Result<bool, DirectoryError>> {
        self.id_calls.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("cg_{key_id}_");
        let known = self
            .keys
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(&prefix));
        Box::pin(async move { Ok(known) })
    }
    fn verification_keys(&self) -> BoxFuture<Result<Vec<(String, DecodingKey)>, DirectoryError>> {
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(DirectoryError::Unavailable);
            }
            Ok(vec![("k1".to_string(), decoding_key())])
        })
    }
    fn revoked_token_ids(&self) -> BoxFuture<Result<Vec<(String, u64)>, DirectoryError>> {
        let r = self.revoked.lock().unwrap().clone();
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(DirectoryError::Unavailable);
            }
            Ok(r)
        })
    }
}

async fn verifier() -> (Arc<CredentialVerifier>, Arc<FakeDirectory>) {
    verifier_with(Duration::from_secs(60), Duration::ZERO).await
}

async fn verifier_with(
    principal_ttl: Duration,
    store_outage_grace: Duration,
) -> (Arc<CredentialVerifier>, Arc<FakeDirectory>) {
    let dir = Arc::new(FakeDirectory::default());
    let settings = VerifierSettings {
        issuer: "cg".into(),
        audience: "api".into(),
        leeway: Duration::from_secs(5),
        failures: FailureLimits::default(),
        principal_ttl,
        store_outage_grace,
    };
    let v = CredentialVerifier::with_clock(settings, dir.clone(), &mut Registry::default(), clock);
    v.resync().await.unwrap();
    (v, dir)
}

async fn run(v: &CredentialVerifier, cred: &str) -> (Result<Principal, AuthError>, bool) {
    match v.authenticate(cred, "127.0.0.1".parse().unwrap()) {
        AuthOutcome::Ready(r) => (r, true),
        AuthOutcome::Pending(f) => (f.await, false),
    }
}

#[tokio::test]
async fn valid_token_uses_current_tier_and_is_served_from_memory_next_time() {
    let (v, dir) = verifier().await;
    dir.put("c1", "identity_verified", AccountStatus::Active);
    let tok = good_token("c1");
    let (first, ready) = run(&v, &tok).await;
    let p = first.unwrap();
    assert!(!ready, "first use needs the directory");
    assert_eq!(
        &*p.tier, "identity_verified",
        "tier comes from the directory, not the token"
    );
    assert_eq!(p.method, AuthMethod::Jwt);
    let (second, ready) = run(&v, &tok).await;
    assert!(ready, "second use is answered from memory");
    assert_eq!(second.unwrap(), p);
    assert_eq!(dir.principal_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_tokens_are_invalid_not_errors() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let mut wrong_aud = claims("c1", NOW + 600);
    wrong_aud["aud"] = "other".into();
    let mut wrong_iss = claims("c1", NOW + 600);
    wrong_iss["iss"] = "evil".into();
    let mut immature = claims("c1", NOW + 600);
    immature["nbf"] = (NOW + 120).into();
    let none_alg = {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let c = URL_SAFE_NO_PAD.encode(claims("c1", NOW + 600).to_string());
        format!("{h}.{c}.")
    };
    let cases = [
        (
            "expired",
            token_with(Algorithm::EdDSA, Some("k1"), claims("c1", NOW - 60)),
        ),
        (
            "wrong aud",
            token_with(Algorithm::EdDSA, Some("k1"), wrong_aud),
        ),
        (
            "wrong iss",
            token_with(Algorithm::EdDSA, Some("k1"), wrong_iss),
        ),
        (
            "not yet valid",
            token_with(Algorithm::EdDSA, Some("k1"), immature),
        ),
        (
            "hs256",
            token_with(Algorithm::HS256, Some("k1"), claims("c1", NOW + 600)),
        ),
        (
            "unknown kid",
            token_with(Algorithm::EdDSA, Some("k9"), claims("c1", NOW + 600)),
        ),
        (
            "no kid",
            token_with(Algorithm::EdDSA, None, claims("c1", NOW + 600)),
        ),
        ("none alg", none_alg),
        ("garbage", "a.b.c".to_string()),
        ("not a credential", "hello world".to_string()),
        ("bad api key", "cg_x".to_string()),
        ("sql", "cg_abc_' OR 1=1 --".to_string()),
    ];
    for (name, tok) in cases {
        let (r, _) = run(&v, &tok).await;
        assert!(matches!(r, Err(AuthError::Invalid(_))), "{name}: {r:?}");
    }
    // Flip a signature character well inside (the last one carries padding bits).
    let mut tampered = good_token("c1").into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        run(&v, &tampered).await.0,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn suspension_takes_effect_on_notice() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    assert!(run(&v, &tok).await.0.is_ok());
    dir.put("c1", "unverified", AccountStatus::Suspended);
    assert!(run(&v, &tok).await.0.is_ok(), "cached until told");
    v.apply(&CredentialNotice::CustomerChanged {
        customer_id: "c1".into(),
    });
    assert_eq!(
        run(&v, &tok).await.0,
        Err(AuthError::AccountInactive {
            state: "suspended",
            reason: None
        })
    );
}

#[tokio::test]
async fn tier_change_takes_effect_on_notice() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    assert_eq!(&*run(&v, &tok).await.0.unwrap().tier, "unverified");
    dir.put("c1", "organization_verified", AccountStatus::Active);
    v.apply(&CredentialNotice::CustomerChanged {
        customer_id: "c1".into(),
    });
    assert_eq!(
        &*run(&v, &tok).await.0.unwrap().tier,
        "organization_verified"
    );
}

#[tokio::test]
async fn verified_jurisdictions_are_cached_and_refreshed_on_notice() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    assert!(run(&v, &tok).await.0.unwrap().jurisdictions.is_empty());
    dir.put_in(
        "c1",
        "identity_verified",
        AccountStatus::Active,
        &["SE", "FI"],
    );
    let (cached, ready) = run(&v, &tok).await;
    assert!(
        ready && cached.unwrap().jurisdictions.is_empty(),
        "cached until told"
    );
    v.apply(&CredentialNotice::CustomerChanged {
        customer_id: "c1".into(),
    });
    let p = run(&v, &tok).await.0.unwrap();
    assert_eq!(&*p.jurisdictions, ["SE".to_string(), "FI".to_string()]);
    assert_eq!(&*p.tier, "identity_verified");
    let (again, ready) = run(&v, &tok).await;
    assert!(ready);
    assert_eq!(again.unwrap().jurisdictions, p.jurisdictions);
}

#[tokio::test]
async fn revoked_token_refused() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    assert!(run(&v, &tok).await.0.is_ok());
    v.apply(&CredentialNotice::TokenRevoked {
        jti: format!("jti-c1-{}", NOW + 600),
        exp: NOW + 600,
    });
    assert_eq!(
        run(&v, &tok).await.0,
        Err(AuthError::Invalid("token revoked"))
    );
}

#[tokio::test]
async fn api_keys_cached_after_one_verification_and_dropped_on_revocation() {
    let (v, dir) = verifier().await;
    dir.put("c2", "unverified", AccountStatus::Active);
    let key = "cg_abcdefghijklmnop_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    dir.keys.lock().unwrap().insert(
        key.into(),
        ApiKeyGrant {
            key_id: "abcdefghijklmnop".into(),
            customer_id: "c2".into(),
            expires_at: None,
            scopes: Vec::new(),
        },
    );
    let (r, ready) = run(&v, key).await;
    assert_eq!(r.unwrap().method, AuthMethod::ApiKey);
    assert!(!ready);
    let (r, ready) = run(&v, key).await;
    assert!(r.is_ok() && ready);
    assert_eq!(dir.key_calls.load(Ordering::SeqCst), 1);

    dir.keys.lock().unwrap().clear();
    v.apply(&CredentialNotice::KeyRevoked {
        key_id: "abcdefghijklmnop".into(),
    });
    assert!(matches!(run(&v, key).await.0, Err(AuthError::Invalid(_))));
    // A rejected key is remembered briefly: guessing again costs no directory call.
    assert!(matches!(run(&v, key).await.0, Err(AuthError::Invalid(_))));
    assert_eq!(dir.key_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_api_key_verified_on_the_slow_path_carries_its_scopes_and_id() {
    let (v, dir) = verifier().await;
    dir.put("c5", "unverified", AccountStatus::Active);
    // A session of the same customer fills the principal cache with every scope first.
    let session = run(&v, &good_token("c5")).await.0.unwrap();
    assert_eq!(session.scopes, Scopes::ALL);
    let key = "cg_scopedkeyid0001_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    dir.keys.lock().unwrap().insert(
        key.into(),
        ApiKeyGrant {
            key_id: "scopedkeyid0001".into(),
            customer_id: "c5".into(),
            expires_at: None,
            scopes: vec!["read".into()],
        },
    );
    let read_only = Scopes::of_key(&["read"]);
    // Slow path (known id, hash): the cached principal is presented with the key's scopes.
    let (r, ready) = run(&v, key).await;
    let p = r.unwrap();
    assert!(!ready);
    assert_eq!(p.scopes, read_only);
    assert_eq!(p.credential_id.as_deref(), Some("scopedkeyid0001"));
    // Served from memory next time, same scopes; the session keeps all of its own.
    let (r, ready) = run(&v, key).await;
    assert!(ready);
    assert_eq!(r.unwrap().scopes, read_only);
    assert_eq!(
        run(&v, &good_token("c5")).await.0.unwrap().scopes,
        Scopes::ALL
    );
}

#[tokio::test]
async fn an_api_key_of_an_uncached_customer_carries_its_scopes() {
    let (v, dir) = verifier().await;
    dir.put("c6", "unverified", AccountStatus::Active);
    let key = "cg_scopedkeyid0002_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    dir.keys.lock().unwrap().insert(
        key.into(),
        ApiKeyGrant {
            key_id: "scopedkeyid0002".into(),
            customer_id: "c6".into(),
            expires_at: None,
            scopes: vec!["jobs".into()],
        },
    );
    let p = run(&v, key).await.0.unwrap();
    assert_eq!(p.scopes, Scopes::of_key(&["jobs"]));
    assert_eq!(p.credential_id.as_deref(), Some("scopedkeyid0002"));
}

#[tokio::test]
async fn expired_api_key_refused() {
    let (v, dir) = verifier().await;
    dir.put("c3", "unverified", AccountStatus::Active);
    let key = "cg_qrstuvwxyzabcdef_c2VjcmV0";
    dir.keys.lock().unwrap().insert(
        key.into(),
        ApiKeyGrant {
            key_id: "qrstuvwxyzabcdef".into(),
            customer_id: "c3".into(),
            expires_at: Some(NOW - 1),
            scopes: Vec::new(),
        },
    );
    assert_eq!(
        run(&v, key).await.0,
        Err(AuthError::Invalid("API key expired"))
    );
}

async fn run_from(v: &CredentialVerifier, cred: &str, ip: &str) -> Result<Principal, AuthError> {
    match v.authenticate(cred, ip.parse().unwrap()) {
        AuthOutcome::Ready(r) => r,
        AuthOutcome::Pending(f) => f.await,
    }
}

#[tokio::test]
async fn unknown_key_ids_are_refused_without_verification_and_remembered() {
    let (v, dir) = verifier().await;
    for i in 0..5 {
        let forged = format!("cg_forgedkeyid{i:04}_c2VjcmV0LXNlY3JldC1zZWNyZXQ");
        let ip = format!("192.0.2.{i}");
        assert_eq!(
            run_from(&v, &forged, &ip).await,
            Err(AuthError::Invalid("unknown API key"))
        );
        // The same id again (another secret): answered from the id cache.
        let again = format!("cg_forgedkeyid{i:04}_b3RoZXItc2VjcmV0");
        assert!(run_from(&v, &again, &ip).await.is_err());
    }
    assert_eq!(
        dir.key_calls.load(Ordering::SeqCst),
        0,
        "no hash for unknown ids"
    );
    assert_eq!(dir.id_calls.load(Ordering::SeqCst), 5, "one lookup per id");
}

#[tokio::test]
async fn a_key_id_that_keeps_failing_is_throttled_before_the_hash() {
    let (v, dir) = verifier().await;
    dir.put("c4", "unverified", AccountStatus::Active);
    let real = "cg_realkeyid00000001_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    dir.keys.lock().unwrap().insert(
        real.into(),
        ApiKeyGrant {
            key_id: "realkeyid00000001".into(),
            customer_id: "c4".into(),
            expires_at: None,
            scopes: Vec::new(),
        },
    );
    // The owner's key is verified (and cached) before the attack.
    assert!(run_from(&v, real, "198.51.100.1").await.is_ok());
    let limit = FailureLimits::default().per_key;
    for i in 0..limit {
        // Each guess from another address, so only the per-key throttle applies.
        let guess = format!("cg_realkeyid00000001_Z3Vlc3M{i}");
        let r = run_from(&v, &guess, &format!("203.0.113.{i}")).await;
        assert_eq!(r, Err(AuthError::Invalid("unknown API key")));
    }
    let calls = dir.key_calls.load(Ordering::SeqCst);
    let r = run_from(&v, "cg_realkeyid00000001_b25lbW9yZQ", "203.0.113.200").await;
    assert!(matches!(r, Err(AuthError::Throttled(_))), "{r:?}");
    assert_eq!(
        dir.key_calls.load(Ordering::SeqCst),
        calls,
        "no hash once throttled"
    );
    // The owner, whose key is cached, is not affected.
    assert!(run_from(&v, real, "198.51.100.1").await.is_ok());
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_throttled_before_any_signature_check() {
    let (v, dir) = verifier().await;
    dir.put("c5", "unverified", AccountStatus::Active);
    let valid = good_token("c5");
    let attacker = "203.0.113.9";
    // A valid token verified before the flood stays usable from the same address.
    assert!(run_from(&v, &valid, attacker).await.is_ok());
    let mut forged = claims("c5", NOW + 600);
    forged["sub"] = "someone".into();
    let forged = token_with(Algorithm::EdDSA, Some("k1"), forged);
    let tampered = format!("{}x", &forged[..forged.len() - 1]);
    for _ in 0..FailureLimits::default().per_address {
        assert!(matches!(
            run_from(&v, &tampered, attacker).await,
            Err(AuthError::Invalid(_))
        ));
    }
    let r = run_from(&v, &tampered, attacker).await;
    assert!(matches!(r, Err(AuthError::Throttled(_))), "{r:?}");
    let fresh = token_with(Algorithm::EdDSA, Some("k1"), claims("c5", NOW + 601));
    assert!(
        matches!(
            run_from(&v, &fresh, attacker).await,
            Err(AuthError::Throttled(_))
        ),
        "an uncached credential from a throttled address is not checked"
    );
    assert!(
        run_from(&v, &valid, attacker).await.is_ok(),
        "cached: served"
    );
    assert!(
        run_from(&v, &fresh, "198.51.100.7").await.is_ok(),
        "other addresses unaffected"
    );
}

/// Refusals to a throttled address are sent late (tokio's clock is paused: the sleep is
/// observed, not waited); cached credentials from it and other addresses are not delayed.
#[tokio::test(start_paused = true)]
async fn refusals_to_a_throttled_address_wait_and_nothing_else_does() {
    let (v, dir) = verifier().await;
    dir.put("c6", "unverified", AccountStatus::Active);
    let valid = good_token("c6");
    let attacker = "203.0.113.10";
    assert!(run_from(&v, &valid, attacker).await.is_ok());
    let timed = |cred: String, ip: &'static str| {
        let v = &v;
        async move {
            let start = tokio::time::Instant::now();
            let r = run_from(v, &cred, ip).await;
            (r, start.elapsed())
        }
    };
    let delay = FailureLimits::default().throttled_delay;
    for _ in 0..FailureLimits::default().per_address {
        let (r, took) = timed("not-a-credential".into(), attacker).await;
        assert!(matches!(r, Err(AuthError::Invalid(_))));
        assert!(took < delay, "under the limit: answered at once");
    }
    let (r, took) = timed("not-a-credential".into(), attacker).await;
    assert!(matches!(r, Err(AuthError::Invalid(_))), "{r:?}");
    assert!(took >= delay, "malformed, over the limit: late ({took:?})");
    let forged = format!("cg_forgedkeyid9999_{}", "A".repeat(43));
    let (r, took) = timed(forged, attacker).await;
    assert!(matches!(r, Err(AuthError::Throttled(_))), "{r:?}");
    assert!(took >= delay, "throttled: late ({took:?})");
    let (r, took) = timed(valid.clone(), attacker).await;
    assert!(r.is_ok() && took < delay, "cached: at once ({took:?})");
    let (r, took) = timed("not-a-credential".into(), "198.51.100.8").await;
    assert!(
        r.is_err() && took < delay,
        "another address: at once ({took:?})"
    );
}

proptest::proptest! {
    #[test]
    fn classify_never_panics(s in "\\PC{0,300}") {
        let _ = classify(&s);
    }
}

/// Without notices, `recheck` is what brings a logout and a key revocation to this replica.
#[tokio::test]
async fn recheck_applies_revocations_a_lost_notice_carried() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    dir.keys.lock().unwrap().insert(
        "cg_k1_secret".into(),
        ApiKeyGrant {
            key_id: "k1".into(),
            customer_id: "c1".into(),
            expires_at: None,
            scopes: Vec::new(),
        },
    );
    assert!(run(&v, &tok).await.0.is_ok());
    assert!(run(&v, "cg_k1_secret").await.0.is_ok());
    // Revoked in the store; the notices never came.
    dir.revoked
        .lock()
        .unwrap()
        .push((format!("jti-c1-{}", NOW + 600), NOW + 600));
    dir.keys.lock().unwrap().clear();
    assert!(run(&v, &tok).await.0.is_ok(), "cached until the recheck");
    assert!(
        run(&v, "cg_k1_secret").await.0.is_ok(),
        "cached until the recheck"
    );
    v.recheck().await.unwrap();
    assert!(matches!(
        run(&v, &tok).await.0,
        Err(AuthError::Invalid("token revoked"))
    ));
    assert!(matches!(
        run(&v, "cg_k1_secret").await.0,
        Err(AuthError::Invalid(_))
    ));
}

/// A recheck while the store is down keeps every cache (and says so).
#[tokio::test]
async fn recheck_with_the_store_down_keeps_the_caches() {
    let (v, dir) = verifier().await;
    dir.put("c1", "unverified", AccountStatus::Active);
    let tok = good_token("c1");
    assert!(run(&v, &tok).await.0.is_ok());
    dir.down.store(true, Ordering::SeqCst);
    assert_eq!(v.recheck().await, Err(DirectoryError::Unavailable));
    assert_eq!(v.resync().await, Err(DirectoryError::Unavailable));
    let (r, ready) = run(&v, &tok).await;
    assert!(r.is_ok() && ready, "served from memory: {r:?}");
}

/// With the store down, a principal past its TTL is served in its last known state for the
/// grace, then refused as unavailable; without grace, at once.
#[tokio::test]
async fn store_outage_grace_serves_the_last_known_state_then_stops() {
    let ttl = Duration::from_millis(50);
    let (v, dir) = verifier_with(ttl, Duration::from_millis(400)).await;
    dir.put("c1", "identity_verified", AccountStatus::Active);
    dir.put("c2", "unverified", AccountStatus::Suspended);
    let tok = good_token("c1");
    let suspended = good_token("c2");
    assert!(run(&v, &tok).await.0.is_ok());
    assert!(matches!(
        run(&v, &suspended).await.0,
        Err(AuthError::AccountInactive { .. })
    ));
    dir.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(ttl * 2).await;
    let p = run(&v, &tok).await.0.expect("served within the grace");
    assert_eq!(&*p.tier, "identity_verified");
    assert!(
        matches!(
            run(&v, &suspended).await.0,
            Err(AuthError::AccountInactive { .. })
        ),
        "the last known state includes a suspension"
    );
    // A notice about the customer drops the entry: no grace for a changed principal.
    v.apply(&CredentialNotice::CustomerChanged {
        customer_id: "c1".into(),
    });
    assert!(matches!(run(&v, &tok).await.0, Err(AuthError::Unavailable)));

    let (v, dir) = verifier_with(ttl, Duration::ZERO).await;
    dir.put("c1", "identity_verified", AccountStatus::Active);
    assert!(run(&v, &tok).await.0.is_ok());
    dir.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(ttl * 2).await;
    assert!(matches!(run(&v, &tok).await.0, Err(AuthError::Unavailable)));
}

#[tokio::test]
async fn grace_ends() {
    let ttl = Duration::from_millis(30);
    let (v, dir) = verifier_with(ttl, Duration::from_millis(60)).await;
    dir.put("c1", "identity_verified", AccountStatus::Active);
    let tok = good_token("c1");
    assert!(run(&v, &tok).await.0.is_ok());
    dir.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(run(&v, &tok).await.0, Err(AuthError::Unavailable)));
}

/// A principal served from its last known state during a store outage is still presented with
/// the API key's own scopes, never a session's.
#[tokio::test]
async fn an_api_key_served_in_a_store_outage_keeps_its_scopes() {
    let ttl = Duration::from_millis(50);
    let (v, dir) = verifier_with(ttl, Duration::from_secs(5)).await;
    dir.put("c7", "unverified", AccountStatus::Active);
    let key = "cg_scopedkeyid0003_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    dir.keys.lock().unwrap().insert(
        key.into(),
        ApiKeyGrant {
            key_id: "scopedkeyid0003".into(),
            customer_id: "c7".into(),
            expires_at: None,
            scopes: vec!["read".into()],
        },
    );
    assert!(run(&v, key).await.0.is_ok());
    dir.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(ttl * 2).await;
    let p = run(&v, key).await.0.expect("served within the grace");
    assert_eq!(p.scopes, Scopes::of_key(&["read"]));
    assert_eq!(p.credential_id.as_deref(), Some("scopedkeyid0003"));
}

//! Criterion bench of the data-plane authentication decision on the cached paths: an access JWT
//! already verified once, and an API key already verified once (argon2 only on the first use).
//! The directory below answers only cache misses, which the measured loop never makes.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use computegate_gateway::auth::{AuthOutcome, Authenticator, BoxFuture};
use computegate_gateway::credentials::{
    AccountStatus, ApiKeyGrant, CredentialVerifier, DirectoryError, FailureLimits,
    IdentityDirectory, PrincipalRecord, VerifierSettings,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

const SEED: [u8; 32] = [9; 32];
const API_KEY: &str = "cg_abcdefghijklmnop_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

struct MissOnlyDirectory;

impl IdentityDirectory for MissOnlyDirectory {
    fn principal(&self, id: String) -> BoxFuture<Result<Option<PrincipalRecord>, DirectoryError>> {
        Box::pin(async move {
            Ok(Some(PrincipalRecord {
                customer_id: id,
                tier: "identity_verified".into(),
                status: AccountStatus::Active,
                status_reason: None,
                organization_id: None,
                jurisdictions: vec!["DE".into()],
            }))
        })
    }
    fn verify_api_key(
        &self,
        key: String,
        _: IpAddr,
    ) -> BoxFuture<Result<ApiKeyGrant, DirectoryError>> {
        Box::pin(async move {
            if key == API_KEY {
                Ok(ApiKeyGrant {
                    key_id: "abcdefghijklmnop".into(),
                    customer_id: "c-key".into(),
                    expires_at: None,
                    scopes: Vec::new(),
                })
            } else {
                Err(DirectoryError::Rejected)
            }
        })
    }
    fn verification_keys(&self) -> BoxFuture<Result<Vec<(String, DecodingKey)>, DirectoryError>> {
        let public = ed25519_dalek::SigningKey::from_bytes(&SEED).verifying_key();
        let key = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public.as_bytes()));
        Box::pin(async move {
            Ok(vec![(
                "k1".into(),
                key.map_err(|_| DirectoryError::Unavailable)?,
            )])
        })
    }
    fn revoked_token_ids(&self) -> BoxFuture<Result<Vec<(String, u64)>, DirectoryError>> {
        Box::pin(async { Ok(HashMap::new().into_iter().collect()) })
    }
}

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&SEED);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({"iss": "computegate", "aud": "computegate-api", "sub": "c-jwt",
        "iat": now, "nbf": now, "exp": now + 3600, "jti": "j1", "tier": "unverified", "status": "active"});
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let settings = VerifierSettings {
        issuer: "computegate".into(),
        audience: "computegate-api".into(),
        leeway: Duration::from_secs(30),
        principal_ttl: Duration::from_secs(3600),
        failures: FailureLimits::default(),
        store_outage_grace: Duration::ZERO,
    };
    let verifier = CredentialVerifier::new(
        settings,
        Arc::new(MissOnlyDirectory),
        &mut Default::default(),
    );
    rt.block_on(verifier.resync()).unwrap();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let jwt = token();
    for cred in [jwt.as_str(), API_KEY] {
        // Warm the caches (the slow path runs once per credential).
        if let AuthOutcome::Pending(f) = verifier.authenticate(cred, ip) {
            rt.block_on(f).unwrap();
        }
    }
    let decide = |cred: &str| match verifier.authenticate(cred, ip) {
        AuthOutcome::Ready(r) => r.is_ok(),
        AuthOutcome::Pending(_) => panic!("cached credential took the slow path"),
    };
    c.bench_function("auth_cached_jwt", |b| {
        b.iter(|| black_box(decide(black_box(&jwt))))
    });
    c.bench_function("auth_cached_api_key", |b| {
        b.iter(|| black_box(decide(black_box(API_KEY))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

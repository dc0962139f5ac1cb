use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode};
use time::{Duration, OffsetDateTime};

use super::*;

const ISS: &str = "https://gateway.test";
const AUD: &str = "computegate";

fn claims(now: OffsetDateTime, ttl: Duration) -> AccessClaims {
    AccessClaims {
        iss: ISS.into(),
        aud: AUD.into(),
        sub: Uuid::now_v7().to_string(),
        tier: "identity_verified".into(),
        status: "active".into(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: (now + ttl).unix_timestamp(),
        jti: Uuid::new_v4().to_string(),
        org: None,
        role: None,
    }
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.validate_nbf = true;
    v.leeway = 0;
    v
}

fn keyring() -> (Keyring, KeyMaterial) {
    let material = KeyMaterial::generate().unwrap();
    let ring = Keyring::new(Some(&material), []).unwrap();
    (ring, material)
}

/// The key for `kid`, found through the published JWKS the way an upstream would.
fn key_from_jwks(ring: &Keyring, kid: &str) -> DecodingKey {
    let set: JwkSet = serde_json::from_value(ring.jwks()).unwrap();
    DecodingKey::from_jwk(set.find(kid).unwrap()).unwrap()
}

#[test]
fn signed_token_verifies_through_jwks() {
    let (ring, material) = keyring();
    let now = OffsetDateTime::now_utc();
    let c = claims(now, Duration::minutes(15));
    let token = ring.sign_access(&c).unwrap();

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(material.kid()));

    let key = key_from_jwks(&ring, material.kid());
    let data = decode::<AccessClaims>(&token, &key, &validation()).unwrap();
    assert_eq!(data.claims, c);

    // Straight from the JWKS `x` member.
    let x = ring.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
    let key = DecodingKey::from_ed_components(&x).unwrap();
    decode::<AccessClaims>(&token, &key, &validation()).unwrap();

    // The gateway's path: decoding_keys() by kid.
    let keys = ring.decoding_keys().unwrap();
    let (_, key) = keys.iter().find(|(kid, _)| kid == material.kid()).unwrap();
    decode::<AccessClaims>(&token, key, &validation()).unwrap();
}

#[test]
fn jwks_shape_follows_rfc_8037() {
    let (ring, material) = keyring();
    let jwks = ring.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kid"], material.kid());
    let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
    assert_eq!(x, material.public());
    // Only public members.
    assert!(k.get("d").is_none());
}

#[test]
fn kid_is_the_rfc_7638_thumbprint() {
    // RFC 8037 appendix A.3 example key and thumbprint.
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let x: [u8; 32] = x.try_into().unwrap();
    assert_eq!(
        thumbprint(&x),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn seed_round_trip_keeps_kid_and_public_key() {
    let a = KeyMaterial::generate().unwrap();
    let b = KeyMaterial::from_seed(a.seed());
    assert_eq!(a.kid(), b.kid());
    assert_eq!(a.public(), b.public());
}

#[test]
fn expired_token_is_rejected() {
    let (ring, material) = keyring();
    let past = OffsetDateTime::now_utc() - Duration::hours(2);
    let token = ring
        .sign_access(&claims(past, Duration::minutes(15)))
        .unwrap();
    let err = decode::<AccessClaims>(&token, &key_from_jwks(&ring, material.kid()), &validation())
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ExpiredSignature);
}

#[test]
fn not_yet_valid_token_is_rejected() {
    let (ring, material) = keyring();
    let future = OffsetDateTime::now_utc() + Duration::hours(1);
    let token = ring
        .sign_access(&claims(future, Duration::minutes(15)))
        .unwrap();
    let err = decode::<AccessClaims>(&token, &key_from_jwks(&ring, material.kid()), &validation())
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ImmatureSignature);
}

#[test]
fn wrong_audience_and_issuer_are_rejected() {
    let (ring, material) = keyring();
    let key = key_from_jwks(&ring, material.kid());
    let now = OffsetDateTime::now_utc();
    let mut c = claims(now, Duration::minutes(15));
    c.aud = "computegate-staff".into();
    let token = ring.sign_access(&c).unwrap();
    let err = decode::<AccessClaims>(&token, &key, &validation()).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidAudience);

    let mut c = claims(now, Duration::minutes(15));
    c.iss = "https://evil.test".into();
    let token = ring.sign_access(&c).unwrap();
    let err = decode::<AccessClaims>(&token, &key, &validation()).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidIssuer);
}

#[test]
fn alg_none_is_rejected() {
    let (ring, material) = keyring();
    let c = claims(OffsetDateTime::now_utc(), Duration::minutes(15));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert!(
            decode::<AccessClaims>(&token, &key_from_jwks(&ring, material.kid()), &validation())
                .is_err()
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let (ring, material) = keyring();
    let c = claims(OffsetDateTime::now_utc(), Duration::minutes(15));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(material.kid().to_owned());
    // The classic confusion attack: the attacker knows the public key and uses it as an
    // HMAC secret, both as raw bytes and as the JWKS text.
    for secret in [
        material.public().to_vec(),
        URL_SAFE_NO_PAD.encode(material.public()).into_bytes(),
    ] {
        let token = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&secret)).unwrap();
        let err =
            decode::<AccessClaims>(&token, &key_from_jwks(&ring, material.kid()), &validation())
                .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm);
    }
}

#[test]
fn tampered_or_foreign_tokens_are_rejected() {
    let (ring, material) = keyring();
    let key = key_from_jwks(&ring, material.kid());
    let c = claims(OffsetDateTime::now_utc(), Duration::minutes(15));
    let token = ring.sign_access(&c).unwrap();

    // Change the payload, keep the signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut forged = c.clone();
    forged.tier = "validated_end_user".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    parts[1] = &forged_payload;
    let err = decode::<AccessClaims>(parts.join("."), &key, &validation()).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidSignature);

    // Signed by another key that claims the same kid.
    let other = KeyMaterial::generate().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(material.kid().to_owned());
    let foreign = jsonwebtoken::encode(&header, &c, &other.encoding_key().unwrap()).unwrap();
    let err = decode::<AccessClaims>(&foreign, &key, &validation()).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidSignature);

    // Garbage never panics.
    for junk in ["", ".", "..", "a.b.c", "eyJ.eyJ.sig", &"x".repeat(10_000)] {
        assert!(decode::<AccessClaims>(junk, &key, &validation()).is_err());
    }
}

#[test]
fn verify_only_keys_are_published_but_do_not_sign() {
    let old = KeyMaterial::generate().unwrap();
    let new = KeyMaterial::generate().unwrap();
    let ring = Keyring::new(
        Some(&new),
        [
            (old.kid().to_owned(), old.public()),
            (new.kid().to_owned(), new.public()),
        ],
    )
    .unwrap();
    assert_eq!(ring.active_kid(), Some(new.kid()));
    assert_eq!(ring.kids().len(), 2);
    assert_eq!(ring.decoding_keys().unwrap().len(), 2);

    let empty = Keyring::new(None, [(old.kid().to_owned(), old.public())]).unwrap();
    let c = claims(OffsetDateTime::now_utc(), Duration::minutes(15));
    assert!(matches!(
        empty.sign_access(&c),
        Err(TokenError::NoActiveKey)
    ));
    assert!(!format!("{empty:?}").is_empty());
}

#[test]
fn customer_claims_carry_identity() {
    let now = OffsetDateTime::now_utc();
    let org = Uuid::now_v7();
    let customer = Customer {
        id: Uuid::now_v7(),
        email: "a@example.com".into(),
        kind: crate::accounts::CustomerKind::Organization,
        status: crate::accounts::CustomerStatus::Active,
        tier: crate::accounts::Tier::unverified(),
        organization_id: Some(org),
        created_at: now,
        updated_at: now,
    };
    let c = AccessClaims::for_customer(&customer, ISS, AUD, now, Duration::minutes(15));
    assert_eq!(c.sub, customer.id.to_string());
    assert_eq!(c.tier, "unverified");
    assert_eq!(c.org, Some(org.to_string()));
    assert_eq!(c.exp - c.iat, 900);
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("role").is_none());
}

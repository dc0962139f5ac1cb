//! Fuzzes what the data plane does with an untrusted `Authorization: Bearer …` value before any
//! cache or store: telling API keys from access tokens, reading a key id, and checking an access
//! token's header, signature and claims against an Ed25519 key set. Any text must be classified
//! or refused and checked or refused — never panic — and a token signed with the real key over
//! claims taken from the input must always verify.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use computegate_gateway::auth::AuthMethod;
use computegate_gateway::credentials::bearer::{
    TokenCheck, access_token_validation, api_key_id, check_access_token, classify,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;
const SEED: [u8; 32] = [7; 32];
/// PKCS#8 v1 wrapping of a raw Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

struct Keys {
    decoding: HashMap<String, DecodingKey>,
    encoding: EncodingKey,
    validation: Validation,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let public = ed25519_dalek::SigningKey::from_bytes(&SEED).verifying_key();
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public.as_bytes()))
            .expect("an Ed25519 public key");
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&SEED);
        Keys {
            decoding: HashMap::from([("k1".to_string(), decoding)]),
            encoding: EncodingKey::from_ed_der(&der),
            validation: access_token_validation("cg", "api", Duration::from_secs(30)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = keys();
    match classify(text) {
        Ok(AuthMethod::ApiKey) => {
            assert!(api_key_id(text).is_some_and(|id| !id.is_empty()));
        }
        Ok(AuthMethod::Jwt) => {
            // Forged or mangled: refused, or (a real key's signature cannot be forged) an
            // unknown key id; a panic or a hang is the bug.
            let _ = check_access_token(text, &keys.decoding, &keys.validation, NOW);
        }
        Ok(_) | Err(_) => {}
    }
    // Whatever the shape, the checker never panics on it.
    let _ = check_access_token(text, &keys.decoding, &keys.validation, NOW);

    // A genuine token whose subject and token id come from the input verifies, and yields them.
    let claims = serde_json::json!({"iss": "cg", "aud": "api", "sub": text, "iat": NOW - 10,
        "nbf": NOW - 10, "exp": NOW + 600, "jti": text});
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_string());
    let token = jsonwebtoken::encode(&header, &claims, &keys.encoding).expect("signs");
    assert_eq!(classify(&token).ok(), Some(AuthMethod::Jwt));
    match check_access_token(&token, &keys.decoding, &keys.validation, NOW) {
        Ok(TokenCheck::Verified(c)) => assert_eq!(c.sub, text),
        other => panic!("a genuine token was not verified: {other:?}"),
    }
});

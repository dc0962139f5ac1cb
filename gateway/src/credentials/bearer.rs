//! What a bearer credential is, decided without cache or store: an API key or an access token
//! by its shape, and an access token's header, signature and time window against a key set.
//!
//! Pure functions over the credential text (and `now`), so the fuzz targets in `fuzz/` drive
//! exactly the code the data plane runs on untrusted `Authorization` headers.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::auth::{AuthError, AuthMethod};

/// Longest `cg_…` credential body looked at; real keys are far shorter.
const MAX_API_KEY_CHARS: usize = 200;

/// The claims the gateway reads from a verified access token.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct AccessClaims {
    /// Customer id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Token id (revocable).
    #[serde(default)]
    pub jti: Option<String>,
}

/// The outcome of checking an access token that is not refused outright.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenCheck {
    /// Signature, algorithm and time window hold.
    Verified(AccessClaims),
    /// The header names a key id outside the key set: the caller may reload keys and retry.
    UnknownKey,
}

/// Tells API keys (`cg_<id>_<secret>`) from JWTs (three base64url parts) without parsing further.
pub fn classify(bearer: &str) -> Result<AuthMethod, AuthError> {
    if let Some(rest) = bearer.strip_prefix("cg_") {
        let well_formed = rest.len() <= MAX_API_KEY_CHARS
            && rest.split_once('_').is_some_and(|(id, secret)| {
                !id.is_empty() && !secret.is_empty() && rest.bytes().all(is_base64url_byte)
            });
        return if well_formed {
            Ok(AuthMethod::ApiKey)
        } else {
            Err(AuthError::Invalid("malformed API key"))
        };
    }
    let parts = bearer.split('.').count();
    if parts == 3 && bearer.bytes().all(|b| b == b'.' || is_base64url_byte(b)) {
        Ok(AuthMethod::Jwt)
    } else {
        Err(AuthError::Invalid(
            "credential is neither an access token nor an API key",
        ))
    }
}

/// The key id of an API key (`cg_<id>_<secret>`), the part looked up before any hash.
pub fn api_key_id(credential: &str) -> Option<&str> {
    credential
        .strip_prefix("cg_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
}

/// The claim checks of access tokens: EdDSA, this issuer and audience, the spec claims required,
/// and `leeway` for the time window — which [`check_access_token`] applies itself, against the
/// caller's clock (time is an input, also in tests and fuzzing).
pub fn access_token_validation(issuer: &str, audience: &str, leeway: Duration) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "aud", "iss"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = leeway.as_secs();
    validation
}

/// Checks an access token: EdDSA only, a `kid` in `keys`, a valid signature and claims under
/// `validation`, and `nbf`/`exp` around `now` (Unix seconds) within the leeway.
pub fn check_access_token(
    token: &str,
    keys: &HashMap<String, DecodingKey>,
    validation: &Validation,
    now: u64,
) -> Result<TokenCheck, AuthError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed token"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(AuthError::Invalid("token algorithm not accepted"));
    }
    let kid = header
        .kid
        .ok_or(AuthError::Invalid("token has no key id"))?;
    let Some(key) = keys.get(&kid) else {
        return Ok(TokenCheck::UnknownKey);
    };
    let claims = jsonwebtoken::decode::<AccessClaims>(token, key, validation)
        .map_err(|e| AuthError::Invalid(jwt_reason(&e)))?
        .claims;
    let leeway = validation.leeway;
    if claims.exp.saturating_add(leeway) <= now {
        return Err(AuthError::Invalid("token expired"));
    }
    if claims.nbf > now.saturating_add(leeway) {
        return Err(AuthError::Invalid("token not yet valid"));
    }
    Ok(TokenCheck::Verified(claims))
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn jwt_reason(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind::*;
    match err.kind() {
        ExpiredSignature => "token expired",
        ImmatureSignature => "token not yet valid",
        InvalidAudience => "token audience not accepted",
        InvalidIssuer => "token issuer not accepted",
        InvalidSignature => "token signature invalid",
        InvalidAlgorithm => "token algorithm not accepted",
        MissingRequiredClaim(_) => "token lacks a required claim",
        _ => "malformed token",
    }
}

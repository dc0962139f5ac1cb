//! CSRF tokens: `base64url(HMAC-SHA256(key, session id))`, put in a hidden `csrf` field of every
//! form and checked on every POST. The session id is random, lives only in the `HttpOnly`,
//! `SameSite=Strict` cookie and changes at sign-in and sign-out, so a token cannot be guessed,
//! cannot be read by another site, and dies with its session. `SameSite=Strict` alone would stop
//! most cross-site posts; the token also stops a same-site attacker (a sibling subdomain) and
//! login CSRF (the anonymous session has a token too).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use computegate_kyc::crypto::MasterKey;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::error::WebError;
use super::session::Browser;

/// The key CSRF tokens are signed with (one per surface, derived from the master key, so every
/// replica computes the same tokens). `Debug` hides it.
#[derive(Clone, Copy)]
pub struct CsrfKey([u8; 32]);

/// A `application/x-www-form-urlencoded` form whose `csrf` field matched the session's token;
/// anything else is refused with 403 before `T` is even parsed. `T` ignores the `csrf` field
/// (serde skips unknown fields unless told otherwise); a `Vec<(String, String)>` takes every
/// field in order.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

// === impl CsrfKey ===

impl CsrfKey {
    /// The key of the surface named `label` (`portal`, `console`), derived from the master key.
    pub fn derive(master: &MasterKey, label: &str) -> CsrfKey {
        CsrfKey(master.derive_subkey(format!("computegate web csrf {label}").as_bytes()))
    }

    /// The token of session `sid`.
    pub fn token(&self, sid: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(sid).finalize().into_bytes())
    }

    /// Whether `presented` is the token of session `sid` (constant-time comparison).
    pub fn verify(&self, sid: &str, presented: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(presented) {
            Ok(tag) => self.mac(sid).verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    }

    fn mac(&self, sid: &str) -> Hmac<Sha256> {
        // Cannot fail: HMAC takes a key of any length.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(sid.as_bytes());
        mac
    }
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

// === impl CsrfForm ===

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(WebError::BadRequest(
                "this page takes a form; send it from the page itself".into(),
            ));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    WebError::TooLarge("the form is larger than this page accepts".into())
                } else {
                    WebError::BadRequest("the form could not be read".into())
                }
            })?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        browser.check_csrf(&csrf)?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))?;
        Ok(CsrfForm(form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CsrfKey {
        CsrfKey([7; 32])
    }

    #[test]
    fn a_token_verifies_only_for_its_own_session_and_key() {
        let token = key().token("session-a");
        assert!(key().verify("session-a", &token));
        assert!(!key().verify("session-b", &token));
        assert!(!CsrfKey([8; 32]).verify("session-a", &token));
        assert!(!key().verify("session-a", ""));
        assert!(!key().verify("session-a", "not base64!"));
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
        assert!(!key().verify("session-a", &tampered));
    }

    #[test]
    fn surfaces_get_independent_keys() {
        let master = MasterKey::from_base64(&URL_SAFE_NO_PAD.encode([3u8; 32])).unwrap();
        let portal = CsrfKey::derive(&master, "portal");
        let console = CsrfKey::derive(&master, "console");
        assert!(!console.verify("s", &portal.token("s")));
        assert!(portal.verify("s", &portal.token("s")));
    }
}

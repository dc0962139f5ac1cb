//! CSRF tokens: `base64url(HMAC-SHA256(key, session id))`, put in a hidden `csrf` field of every
//! form and checked on every POST (`forms::CsrfForm`, `Browser::check_csrf`). The session id is random, lives only in the `HttpOnly`,
//! `SameSite=Strict` cookie and changes at sign-in and sign-out, so a token cannot be guessed,
//! cannot be read by another site, and dies with its session. `SameSite=Strict` alone would stop
//! most cross-site posts; the token also stops a same-site attacker (a sibling subdomain) and
//! login CSRF (the anonymous session has a token too).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use computegate_kyc::crypto::MasterKey;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The key CSRF tokens are signed with (one per surface, derived from the master key, so every
/// replica computes the same tokens). `Debug` hides it.
#[derive(Clone, Copy)]
pub struct CsrfKey([u8; 32]);

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

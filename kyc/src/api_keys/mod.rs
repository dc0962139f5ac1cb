//! Customer API keys: `cg_<key id>_<secret>`, where the key id is 16 ASCII alphanumerics and
//! the secret 32 random bytes as unpadded base64url (43 characters). Only an argon2id hash of
//! the secret is stored; the full key is shown once, at creation.
//!
//! Verification parses strictly before touching the store, refuses an unknown key id without
//! any argon2 work (key ids are public: listings show them; hashing for them would only let
//! forgers buy CPU time with random ids), answers [`KeyError::Invalid`] for an unknown id and a
//! wrong secret alike, and only then reports revocation or expiry, so key state is never
//! revealed to someone without the secret.
//! Each verification writes one `api_key_use` access-log row; the gateway verifies against the
//! store only on a cache miss, so key use is recorded once per cache fill.

mod lifecycle;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{CryptoError, random_bytes};
use crate::password::PasswordError;
use crate::store::StoreError;

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "cg_";

/// Length of the key id.
pub const KEY_ID_LEN: usize = 16;

/// Length of the secret: 32 bytes as unpadded base64url.
const SECRET_LEN: usize = 43;

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// Most scopes on one key.
pub const MAX_SCOPES: usize = 32;

/// Most unrevoked keys one customer may hold.
pub const MAX_KEYS_PER_CUSTOMER: i64 = 100;

/// A syntactically valid API key, split into its parts. `Debug` hides the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedApiKey<'a> {
    /// The public key id.
    pub key_id: &'a str,
    /// The secret part.
    pub secret: &'a str,
}

/// What a new key should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Label chosen by the customer, 1..=100 characters, stored verbatim.
    pub name: String,
    /// When the key stops working; must be in the future. `None`: until revoked.
    pub expires_at: Option<OffsetDateTime>,
    /// Scope names, each 1–64 characters of `a-z 0-9 : . _ -`; at most [`MAX_SCOPES`].
    pub scopes: Vec<String>,
}

/// A key just created: its id and the full key, to be shown once. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// The key id (public).
    pub id: String,
    /// `cg_<id>_<secret>`.
    pub key: String,
}

/// A stored key without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// The key id.
    pub id: String,
    /// Owner.
    pub customer_id: Uuid,
    /// Label.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Revocation time, if revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Whether a key works at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Active,
    /// Revoked by its owner or staff.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// Who a verified key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    /// The key id.
    pub key_id: String,
    /// Owner.
    pub customer_id: Uuid,
    /// Scopes granted to the key.
    pub scopes: Vec<String>,
    /// Expiry, so a cache entry never outlives the key.
    pub expires_at: Option<OffsetDateTime>,
}

/// Why an API-key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not of the form `cg_<16 alphanumerics>_<43 base64url characters>`.
    #[error("malformed API key")]
    Malformed,
    /// Unknown key id or wrong secret (deliberately indistinguishable).
    #[error("invalid API key")]
    Invalid,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// The key is past its expiry.
    #[error("API key expired")]
    Expired,
    /// No such key among the customer's keys.
    #[error("API key not found")]
    NotFound,
    /// No such customer.
    #[error("customer not found")]
    CustomerNotFound,
    /// The name is empty or longer than [`MAX_KEY_NAME_CHARS`].
    #[error("key name must be 1..={MAX_KEY_NAME_CHARS} characters")]
    InvalidName,
    /// A scope is malformed or there are more than [`MAX_SCOPES`].
    #[error("invalid scope list")]
    InvalidScope,
    /// The expiry is not in the future.
    #[error("expiry must be in the future")]
    ExpiryInPast,
    /// The customer already holds [`MAX_KEYS_PER_CUSTOMER`] unrevoked keys.
    #[error("too many API keys")]
    TooManyKeys,
    /// Hashing the secret failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The random number generator failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(KeyError);
// === impl ParsedApiKey ===

impl std::fmt::Debug for ParsedApiKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedApiKey")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Splits `cg_<id>_<secret>` strictly: exact prefix, 16 ASCII alphanumerics, `_`, 43
/// base64url characters that decode canonically to 32 bytes. Never panics.
pub fn parse_api_key(text: &str) -> Result<ParsedApiKey<'_>, KeyError> {
    let rest = text
        .strip_prefix(API_KEY_PREFIX)
        .ok_or(KeyError::Malformed)?;
    if rest.len() != KEY_ID_LEN + 1 + SECRET_LEN || !rest.is_ascii() {
        return Err(KeyError::Malformed);
    }
    // ASCII was checked, so these byte offsets are character boundaries.
    let (key_id, tail) = rest.split_at(KEY_ID_LEN);
    let secret = tail.strip_prefix('_').ok_or(KeyError::Malformed)?;
    if !is_key_id(key_id) {
        return Err(KeyError::Malformed);
    }
    match URL_SAFE_NO_PAD.decode(secret) {
        Ok(bytes) if bytes.len() == 32 => Ok(ParsedApiKey { key_id, secret }),
        _ => Err(KeyError::Malformed),
    }
}

/// Whether `text` has the shape of a key id.
pub fn is_key_id(text: &str) -> bool {
    text.len() == KEY_ID_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks a new key's name, scopes and expiry against `now`.
pub fn validate_new_key(new: &NewApiKey, now: OffsetDateTime) -> Result<(), KeyError> {
    let name_chars = new.name.chars().count();
    if new.name.trim().is_empty() || name_chars > MAX_KEY_NAME_CHARS {
        return Err(KeyError::InvalidName);
    }
    let scope_ok = |s: &String| {
        (1..=64).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b':' | b'.' | b'_' | b'-')
            })
    };
    if new.scopes.len() > MAX_SCOPES || !new.scopes.iter().all(scope_ok) {
        return Err(KeyError::InvalidScope);
    }
    if new.expires_at.is_some_and(|at| at <= now) {
        return Err(KeyError::ExpiryInPast);
    }
    Ok(())
}

// === impl KeyState ===

impl KeyState {
    /// The state's name in API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        }
    }
}

// === impl ApiKey ===

impl ApiKey {
    /// The key's state at `now`; revocation wins over expiry.
    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}
/// 16 ASCII alphanumerics from the CSPRNG (rejection sampling keeps them uniform).
pub(crate) fn new_key_id() -> Result<String, CryptoError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 × 62: bytes at or above it would bias the first symbols.
    const LIMIT: u8 = 248;
    let mut id = String::with_capacity(KEY_ID_LEN);
    while id.len() < KEY_ID_LEN {
        for b in random_bytes::<32>()? {
            if b < LIMIT && id.len() < KEY_ID_LEN {
                id.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests;

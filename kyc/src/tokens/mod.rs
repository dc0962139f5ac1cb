//! Access tokens: Ed25519 signing keys, the [`Keyring`] that signs EdDSA JWTs with the active
//! key and publishes every still-valid public key as a JWKS (RFC 7517, OKP keys per RFC 8037),
//! and the [`AccessClaims`] a token carries.
//!
//! Keys live in the store with the private half sealed by the master key (`signing_keys`).
//! Rotation adds a new active key; the previous one stays in the JWKS and in
//! [`Keyring::decoding_keys`] until every token it signed has expired, after which it may be
//! pruned. Key ids are RFC 7638 JWK thumbprints, so a kid names exactly one public key.
//!
//! Verification belongs to the gateway (it builds a `jsonwebtoken::Validation` for
//! `Algorithm::EdDSA` with issuer and audience set, and looks keys up by `kid`).

mod signing_keys;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::accounts::{Customer, StaffUser};
use crate::crypto::{CryptoError, random_bytes};
use crate::store::StoreError;

/// Claims of an access JWT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessClaims {
    /// Issuer (the gateway's public URL or name).
    pub iss: String,
    /// Audience: the customer API or the staff API.
    pub aud: String,
    /// Subject: the customer's or staff user's UUID.
    pub sub: String,
    /// Customer tier at issue time (`staff` for staff tokens).
    pub tier: String,
    /// Account status at issue time.
    pub status: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Unique token id (UUID v4).
    pub jti: String,
    /// Organization UUID, for customers that belong to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Staff role, for staff tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Signing and verification keys loaded from the store. Cheap to share behind an `Arc`;
/// reload it after a rotation notice.
pub struct Keyring {
    active: Option<ActiveKey>,
    verifying: Vec<PublicKey>,
}

/// Why a key or token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// There is no active signing key; run `computegate keys rotate` (or
    /// [`crate::store::CredentialsStore::ensure_signing_key`]).
    #[error("no active signing key")]
    NoActiveKey,
    /// Another replica rotated at the same moment; reload the keyring.
    #[error("signing key rotated concurrently")]
    ConcurrentRotation,
    /// A stored key failed to decrypt or does not match its public half.
    #[error("signing key {kid} is corrupt or sealed with another master key")]
    CorruptKey {
        /// The key id.
        kid: String,
    },
    /// Sealing, opening or randomness failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// jsonwebtoken refused to build a key or sign.
    #[error("JWT operation failed")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(TokenError);

/// The signing half of the active key, ready for jsonwebtoken.
struct ActiveKey {
    kid: String,
    encoding: EncodingKey,
}

/// A public key that still verifies tokens.
#[derive(Clone)]
struct PublicKey {
    kid: String,
    x: [u8; 32],
}

/// A freshly generated or unsealed Ed25519 key pair with its kid.
pub(crate) struct KeyMaterial {
    kid: String,
    signing: SigningKey,
}

// === impl AccessClaims ===

impl AccessClaims {
    /// Claims for a customer, valid from `now` for `ttl`.
    pub fn for_customer(
        customer: &Customer,
        iss: &str,
        aud: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> AccessClaims {
        AccessClaims {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            sub: customer.id.to_string(),
            tier: customer.tier.as_str().to_owned(),
            status: customer.status.as_str().to_owned(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            jti: Uuid::new_v4().to_string(),
            org: customer.organization_id.map(|id| id.to_string()),
            role: None,
        }
    }

    /// Claims for a staff user (tier `staff`, role set), valid from `now` for `ttl`.
    pub fn for_staff(
        staff: &StaffUser,
        iss: &str,
        aud: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> AccessClaims {
        AccessClaims {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            sub: staff.id.to_string(),
            tier: "staff".to_owned(),
            status: if staff.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }
            .to_owned(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            jti: Uuid::new_v4().to_string(),
            org: None,
            role: Some(staff.role.as_str().to_owned()),
        }
    }
}

// === impl Keyring ===

impl Keyring {
    /// Builds a keyring from an optional active key and every public key that still verifies
    /// (the active one is added to the verification set if missing).
    pub(crate) fn new(
        active: Option<&KeyMaterial>,
        verifying: impl IntoIterator<Item = (String, [u8; 32])>,
    ) -> Result<Keyring, TokenError> {
        let mut keys: Vec<PublicKey> = verifying
            .into_iter()
            .map(|(kid, x)| PublicKey { kid, x })
            .collect();
        let active = match active {
            Some(material) => {
                if !keys.iter().any(|k| k.kid == material.kid) {
                    keys.push(PublicKey {
                        kid: material.kid.clone(),
                        x: material.public(),
                    });
                }
                Some(ActiveKey {
                    kid: material.kid.clone(),
                    encoding: material.encoding_key()?,
                })
            }
            None => None,
        };
        Ok(Keyring {
            active,
            verifying: keys,
        })
    }

    /// The kid new tokens are signed with.
    pub fn active_kid(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.kid.as_str())
    }

    /// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","kid":…,"typ":"JWT"}`.
    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let active = self.active.as_ref().ok_or(TokenError::NoActiveKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &active.encoding)?)
    }

    /// The public keys as a JWK Set (RFC 7517 §5; OKP/Ed25519 members per RFC 8037 §2).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .verifying
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.x),
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// `(kid, key)` for every public key that still verifies, for the gateway's validator.
    pub fn decoding_keys(&self) -> Result<Vec<(String, DecodingKey)>, TokenError> {
        self.verifying
            .iter()
            .map(|k| {
                let key = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(k.x))?;
                Ok((k.kid.clone(), key))
            })
            .collect()
    }

    /// Kids of every key in the verification set.
    pub fn kids(&self) -> Vec<&str> {
        self.verifying.iter().map(|k| k.kid.as_str()).collect()
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("active_kid", &self.active_kid())
            .field("kids", &self.kids())
            .finish()
    }
}

// === impl KeyMaterial ===

impl KeyMaterial {
    /// A new key pair from the operating system's CSPRNG.
    pub(crate) fn generate() -> Result<KeyMaterial, TokenError> {
        Ok(KeyMaterial::from_seed(random_bytes::<32>()?))
    }

    /// Rebuilds a key pair from its 32-byte seed.
    pub(crate) fn from_seed(seed: [u8; 32]) -> KeyMaterial {
        let signing = SigningKey::from_bytes(&seed);
        let kid = thumbprint(&signing.verifying_key().to_bytes());
        KeyMaterial { kid, signing }
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub(crate) fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// jsonwebtoken wants the private key as PKCS#8 DER for EdDSA.
    fn encoding_key(&self) -> Result<EncodingKey, TokenError> {
        let der = self
            .signing
            .to_pkcs8_der()
            .map_err(|_| TokenError::CorruptKey {
                kid: self.kid.clone(),
            })?;
        Ok(EncodingKey::from_ed_der(der.as_bytes()))
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: base64url(SHA-256 of the canonical JWK with
/// members `crv`, `kty`, `x` in lexicographic order and no whitespace).
fn thumbprint(x: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests;

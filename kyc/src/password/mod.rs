//! Password hashing: argon2id PHC strings with configurable cost (OWASP minimum by default),
//! rehash detection when the configured cost changes, equal work for unknown users so a login
//! answer never tells whether an account exists, and the length policy for human passwords.
//!
//! Argon2 takes tens of milliseconds by design; async callers use the `*_async` wrappers, which
//! run it on tokio's blocking pool instead of stalling a runtime worker.

use std::sync::Arc;

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::PasswordVerifier as _;
use argon2::{Algorithm, Argon2, PasswordHash, Version};

/// Shortest accepted human password, in characters (NIST SP 800-63B allows 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Longest accepted human password, in characters; bounds the work one request can cause.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// The input the dummy hash is made from; its value is irrelevant, it is never compared.
const DUMMY_PASSWORD: &[u8] = b"computegate unknown-user dummy";

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordParams {
    /// Memory cost in KiB. Default 19456 (19 MiB, OWASP minimum).
    pub memory_kib: u32,
    /// Number of passes. Default 2.
    pub iterations: u32,
    /// Degree of parallelism (lanes). Default 1.
    pub parallelism: u32,
}

/// Outcome of a successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The stored hash used other parameters (or another argon2 variant) than the current
    /// configuration: store a fresh [`Hasher::hash`] of the password just verified.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with one parameter set. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

/// Why hashing or verification did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Longer than [`MAX_PASSWORD_CHARS`].
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// The password does not match the stored hash.
    #[error("password does not match")]
    Mismatch,
    /// The stored value is not an argon2 PHC string this crate can verify.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// The configured parameters are outside argon2's limits.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(argon2::Error),
    /// Hashing failed (salt generation or an argon2 internal limit).
    #[error("password hashing failed")]
    HashFailed,
    /// The blocking task running argon2 panicked or was cancelled.
    #[error("password hashing task failed")]
    TaskFailed,
}

struct Inner {
    params: PasswordParams,
    argon2: Argon2<'static>,
    /// A hash of [`DUMMY_PASSWORD`] with the current parameters, verified against when the
    /// account does not exist so the answer takes as long as for a real account.
    dummy: String,
}

// === impl PasswordParams ===

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// Checks the parameters against argon2's limits.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.to_argon2().map(|_| ())
    }

    fn to_argon2(self) -> Result<argon2::Params, PasswordError> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(PasswordError::InvalidParams)
    }
}

// === impl Hasher ===

impl Hasher {
    /// Builds a hasher. Computes one dummy hash up front (one hash worth of time) so that the
    /// first unknown-user login costs the same as every later one.
    pub fn new(params: PasswordParams) -> Result<Hasher, PasswordError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        let dummy = argon2
            .hash_password(DUMMY_PASSWORD)
            .map_err(|_| PasswordError::HashFailed)?
            .to_string();
        Ok(Hasher {
            inner: Arc::new(Inner {
                params,
                argon2,
                dummy,
            }),
        })
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> PasswordParams {
        self.inner.params
    }

    /// Hashes `secret` with a fresh random salt into a PHC string (`$argon2id$v=19$m=…`).
    /// Blocking; see [`Hasher::hash_async`].
    pub fn hash(&self, secret: &str) -> Result<String, PasswordError> {
        self.inner
            .argon2
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::HashFailed)
    }

    /// Verifies `secret` against a stored PHC string using the parameters recorded in it.
    /// Blocking; see [`Hasher::verify_async`].
    pub fn verify(&self, secret: &str, phc: &str) -> Result<Verified, PasswordError> {
        let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
        match self
            .inner
            .argon2
            .verify_password(secret.as_bytes(), &parsed)
        {
            Ok(()) => Ok(Verified {
                needs_rehash: self.needs_rehash(&parsed),
            }),
            Err(argon2::password_hash::Error::PasswordInvalid) => Err(PasswordError::Mismatch),
            Err(_) => Err(PasswordError::MalformedHash),
        }
    }

    /// Spends the same work as [`Hasher::verify`] against a fixed dummy hash and discards the
    /// result: call it when the account does not exist.
    pub fn verify_unknown_user(&self, secret: &str) {
        // The result is meaningless by construction; only the time spent matters.
        let _ = self.verify(secret, &self.inner.dummy);
    }

    /// [`Hasher::hash`] on tokio's blocking pool.
    pub async fn hash_async(&self, secret: String) -> Result<String, PasswordError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash(&secret))
            .await
            .map_err(|_| PasswordError::TaskFailed)?
    }

    /// [`Hasher::verify`] on tokio's blocking pool.
    pub async fn verify_async(
        &self,
        secret: String,
        phc: String,
    ) -> Result<Verified, PasswordError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.verify(&secret, &phc))
            .await
            .map_err(|_| PasswordError::TaskFailed)?
    }

    /// [`Hasher::verify_unknown_user`] on tokio's blocking pool.
    pub async fn verify_unknown_user_async(&self, secret: String) {
        let this = self.clone();
        // A failed join only means the dummy work was cut short; there is nothing to report.
        let _ = tokio::task::spawn_blocking(move || this.verify_unknown_user(&secret)).await;
    }

    fn needs_rehash(&self, stored: &PasswordHash) -> bool {
        if stored.algorithm != Algorithm::Argon2id.ident() {
            return true;
        }
        match argon2::Params::try_from(stored) {
            Ok(p) => {
                let current = self.inner.params;
                p.m_cost() != current.memory_kib
                    || p.t_cost() != current.iterations
                    || p.p_cost() != current.parallelism
            }
            Err(_) => true,
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

/// The length policy for human passwords: [`MIN_PASSWORD_CHARS`]..=[`MAX_PASSWORD_CHARS`]
/// characters (Unicode scalar values), nothing else (NIST SP 800-63B: no composition rules).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(PasswordError::TooShort {
            min: MIN_PASSWORD_CHARS,
        })
    } else if chars > MAX_PASSWORD_CHARS {
        Err(PasswordError::TooLong {
            max: MAX_PASSWORD_CHARS,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

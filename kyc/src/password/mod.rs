//! Password hashing: argon2id PHC strings with configurable cost (OWASP minimum by default),
//! rehash detection when the configured cost changes, equal work for unknown users so a login
//! answer never tells whether an account exists, and the length policy for human passwords.
//!
//! Argon2 takes tens of milliseconds and ~19 MiB by design; async callers use the `*_async`
//! wrappers, which run it on a fixed set of argon2 threads (see `workers`) instead of stalling a
//! runtime worker, under a concurrency bound (one hash per core by default) with a short queue. Past the queue, or
//! after waiting [`MAX_QUEUE_WAIT`], the call fails with [`PasswordError::Busy`] (answered 503
//! with `Retry-After`), so the memory argon2 holds is bounded whatever the number of concurrent
//! logins, sign-ups or API-key checks an attacker opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::PasswordVerifier as _;
use argon2::{Algorithm, Argon2, PasswordHash, Version};

/// Shortest accepted human password, in characters (NIST SP 800-63B allows 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Longest accepted human password, in characters; bounds the work one request can cause.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Longest a hash waits for its turn before the caller is told the service is busy.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(2);

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
    /// Every argon2 slot is taken and the queue is full (or the wait was too long): try later.
    #[error("password hashing is busy")]
    Busy,
}

/// How many argon2 computations may run at once, and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Hashes running at once (0 = one per CPU the process may use).
    pub running: usize,
    /// Hashes waiting for a slot beyond those (0 = four per running slot).
    pub queued: usize,
}

struct Inner {
    params: PasswordParams,
    /// Slots for running hashes.
    slots: Arc<Semaphore>,
    /// Calls waiting for a slot now.
    waiting: AtomicUsize,
    /// Most calls allowed to wait.
    queue: usize,
    argon2: Argon2<'static>,
    /// The threads hashes run on, one per slot (see the `workers` module).
    workers: Workers,
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
        Self::with_concurrency(
            params,
            Concurrency {
                running: 0,
                queued: 0,
            },
        )
    }

    /// As [`Hasher::new`], with an explicit bound on concurrent argon2 work.
    pub fn with_concurrency(
        params: PasswordParams,
        concurrency: Concurrency,
    ) -> Result<Hasher, PasswordError> {
        let running = match concurrency.running {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let queue = match concurrency.queued {
            0 => running * 4,
            n => n,
        };
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        let dummy = argon2
            .hash_password(DUMMY_PASSWORD)
            .map_err(|_| PasswordError::HashFailed)?
            .to_string();
        let workers = Workers::new(running).map_err(|_| PasswordError::TaskFailed)?;
        Ok(Hasher {
            inner: Arc::new(Inner {
                params,
                workers,
                slots: Arc::new(Semaphore::new(running)),
                waiting: AtomicUsize::new(0),
                queue,
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

    /// [`Hasher::hash`] on the argon2 threads, within the concurrency bound.
    pub async fn hash_async(&self, secret: String) -> Result<String, PasswordError> {
        self.run(move |this| this.hash(&secret)).await?
    }

    /// [`Hasher::verify`] on the argon2 threads, within the concurrency bound.
    pub async fn verify_async(
        &self,
        secret: String,
        phc: String,
    ) -> Result<Verified, PasswordError> {
        self.run(move |this| this.verify(&secret, &phc)).await?
    }

    /// [`Hasher::verify_unknown_user`] on the argon2 threads, within the concurrency bound;
    /// fails only with [`PasswordError::Busy`] or [`PasswordError::TaskFailed`].
    pub async fn verify_unknown_user_async(&self, secret: String) -> Result<(), PasswordError> {
        self.run(move |this| this.verify_unknown_user(&secret))
            .await
    }

    /// Runs `work` on the argon2 threads once a slot is free: at once when one is, after a
    /// queued wait of at most [`MAX_QUEUE_WAIT`] when the queue has room, else never (`Busy`).
    async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Hasher) -> R + Send + 'static,
    ) -> Result<R, PasswordError> {
        let inner = &self.inner;
        let permit = match inner.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.queue {
                    inner.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PasswordError::Busy);
                }
                let waited =
                    tokio::time::timeout(MAX_QUEUE_WAIT, inner.slots.clone().acquire_owned()).await;
                inner.waiting.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(p)) => p,
                    // Timed out, or the semaphore was closed (never done): busy either way.
                    _ => return Err(PasswordError::Busy),
                }
            }
        };
        let this = self.clone();
        self.inner
            .workers
            .run(move || {
                // The slot is held until the hash is done, even if the caller went away.
                let _permit = permit;
                work(&this)
            })
            .await
            .map_err(|_| PasswordError::TaskFailed)
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
mod workers;

use self::workers::Workers;

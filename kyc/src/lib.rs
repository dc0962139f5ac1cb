//! Computegate control plane: identities and credentials.
//!
//! - [`store`]: the system of record over SQLite or PostgreSQL, with embedded migrations.
//! - [`accounts`]: customers, organizations and staff users.
//! - [`access_log`]: who did what from which IP, for every login, key use and admin action.
//! - [`password`]: argon2id hashing and the password policy.
//! - [`crypto`]: the master key and AES-256-GCM sealing of secrets at rest.
//! - [`tokens`]: Ed25519 signing keys, access JWTs and the JWKS.
//! - [`refresh`]: rotating refresh tokens with reuse detection.
//! - [`revocation`]: access tokens revoked before expiry (logout); the store's liveness probe.
//! - [`api_keys`]: customer API keys (`cg_<id>_<secret>`).
//! - [`login`]: password authentication with the enumeration and rehash rules applied.
//! - [`cluster`]: notices between replicas and login throttling (Redis or in process).
//!
//! Decisions are plain functions over values with the time passed in; the [`Store`] methods
//! do the I/O around them.

pub mod access_log;
pub mod accounts;
pub mod api_keys;
pub mod cluster;
pub mod crypto;
pub mod login;
pub mod password;
pub mod refresh;
pub mod revocation;
pub mod store;
pub mod tokens;

pub use store::{Store, StoreError};

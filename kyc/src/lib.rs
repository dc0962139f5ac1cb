//! Computegate control plane: identities and credentials.
//!
//! - [`names`]: the one enum ↔ stored-text mapping (`stored_enum!`).
//! - [`store`]: the system of record over SQLite or PostgreSQL, with embedded migrations, and
//!   the domain handles (`store.accounts()`, `store.ledger()`, …) that say where a record lives.
//! - [`accounts`]: customers, organizations and staff users.
//! - [`access_log`]: who did what from which IP, for every login, key use and admin action.
//! - [`audit`]: the tamper-evident audit chain (hash-linked records, verify, export).
//! - [`password`]: argon2id hashing and the password policy.
//! - [`crypto`]: the master key and AES-256-GCM sealing of secrets at rest.
//! - [`tokens`]: Ed25519 signing keys, access JWTs and the JWKS.
//! - [`refresh`]: rotating refresh tokens with reuse detection.
//! - [`revocation`]: access tokens revoked before expiry (logout).
//! - [`api_keys`]: customer API keys (`cg_<id>_<secret>`).
//! - [`login`]: password authentication with the enumeration and rehash rules applied.
//! - [`cluster`]: notices between replicas and login throttling (Redis or in process).
//! - [`ledger`]: the compute ledger: runs and lineage, atomic admission against budgets and
//!   thresholds, usage events, linked account groups, review holds and training-run reports.
//! - [`verification`]: KYC/KYB applications, their state machine, encrypted documents, IDV
//!   webhooks, risk scores and staff review.
//! - [`incidents`]: abuse incidents, their STIX 2.1 export, and partners' bundles imported
//!   into review flags.
//! - [`retention`]: purging and redacting records whose retention period ran out, once a day
//!   across the cluster, with one audit record of the counts.
//! - [`screening`]: denied-party lists (CSL, OFAC SDN, OpenSanctions): parsing, name
//!   normalization, the candidate index and the explainable match score.
//!
//! Decisions are plain functions over values with the time passed in; the [`Store`] methods
//! do the I/O around them.

pub mod access_log;
pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod cluster;
pub mod crypto;
pub mod incidents;
pub mod ledger;
pub mod login;
pub mod names;
pub mod password;
pub mod refresh;
pub mod retention;
pub mod revocation;
pub mod screening;
pub mod store;
pub mod tokens;
pub mod verification;

pub use store::{Store, StoreError};

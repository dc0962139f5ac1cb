//! The system of record: one [`Store`] over SQLite (the embedded default) or PostgreSQL (several
//! replicas), with embedded migrations and a refusal to run against a schema newer than this
//! binary.
//!
//! The two backends keep separate pools because sqlx's `Any` driver cannot carry uuid or time
//! values. Query text is shared: SQLite accepts `$1` placeholders, and the crate-private
//! `on_pool!` / `in_transaction!` macros expand one body once per backend, so a query is
//! written once and type-checked against both. Backend-specific SQL is the exception and lives
//! next to the shared text it replaces. Timestamps are bound through [`DbTime`], which stores UTC
//! with microsecond precision in a form both databases order correctly.
//!
//! Domain operations are reached through handles that name their domain: [`Store::accounts`],
//! [`Store::credentials`], [`Store::verification`], [`Store::screening`], [`Store::ledger`],
//! [`Store::audit`] and [`Store::access`] (see `handles`); their methods live in `impl` blocks
//! next to each domain. Only infrastructure stays on `Store` itself: connecting (`backend`),
//! migrations (`schema`), health and the circuit (`health`, `circuit`), the backend kind.
//!
//! # Modules
//! This file only declares modules and re-exports, so no store module imports back from one
//! that imports it (`scripts/import_cycles.py kyc/src --within store`). `error` and `macros` are
//! leaves; `backend` holds the [`Store`] value and its pools; `schema`, `health` and `handles`
//! add to it.

// `pub(crate)` only so the query macros name `Backend` by its home, not through this file.
pub(crate) mod backend;
mod circuit;
mod error;
mod extensions;
mod handles;
mod health;
mod macros;
mod schema;
mod timestamp;

pub(crate) use self::backend::Backend;
pub use self::backend::{BackendKind, Store};
pub use self::circuit::HealthProbe;
pub use self::error::StoreError;
pub use self::handles::{
    AccessStore, AccountsStore, AuditStore, CredentialsStore, IncidentsStore, LedgerStore,
    RetentionStore, ScreeningStore, VerificationStore,
};
pub(crate) use self::macros::{from_sqlx, in_transaction, on_pool};
pub use self::schema::{AppliedMigration, MigrationState, MigrationStatus, SchemaState};
pub use self::timestamp::DbTime;

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
//! The domain modules ([`crate::accounts`], [`crate::tokens`], [`crate::refresh`],
//! [`crate::api_keys`], [`crate::access_log`]) add their own `impl Store` blocks.

mod circuit;
mod extensions;
mod schema;
mod timestamp;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use self::circuit::HealthProbe;
pub(crate) use self::extensions::Extensions;
pub use self::schema::SchemaState;
pub use self::timestamp::DbTime;

/// How long a SQLite connection waits for another writer before giving up.
///
/// Writers of this process queue on [`Store`]'s writer lock first (see `in_transaction!`), so
/// this only covers other processes (the CLI) and writes outside a transaction.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound on pooled connections per backend. SQLite serializes writers anyway; PostgreSQL
/// replicas share the server's `max_connections`.
const MAX_CONNECTIONS: u32 = 10;

/// How long a request waits for a pooled connection before failing with [`StoreError`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle to the system of record. Cheap to clone: both pools are reference counted.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite only: write transactions of this process take it before `BEGIN IMMEDIATE`, so
    /// they queue in FIFO order here instead of polling in SQLite's busy handler (which sleeps
    /// in growing steps and let waits reach seconds under load). Unused on PostgreSQL, where
    /// row locks serialize only the writers that conflict.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// State that domain modules keep per store (e.g. the ledger's SQLite admission queue),
    /// typed by them and opaque here.
    extensions: Arc<Extensions>,
    /// Fails calls at once while the database is known down (see [`circuit`]).
    circuit: Arc<circuit::Circuit>,
}

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// SQLite file (single node).
    Sqlite,
    /// PostgreSQL server (one or more replicas).
    Postgres,
}

/// Failures of the store itself, shared by every domain error that touches the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no supported backend. Only the scheme is kept: URLs carry passwords.
    #[error("unsupported database URL scheme {scheme:?} (expected sqlite: or postgres://)")]
    UnsupportedUrl {
        /// The part before `:` (or the first 16 characters when there is none).
        scheme: String,
    },
    /// The URL has a supported scheme but its options did not parse.
    #[error("invalid database URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The database holds a migration this binary does not know: it was written by a newer
    /// version and running against it could corrupt data.
    #[error(
        "database holds schema migration {found}, unknown to this binary (newest known {known}); \
         upgrade the binary"
    )]
    SchemaTooNew {
        /// Highest migration version recorded in the database that this binary does not know.
        found: i64,
        /// Highest migration version embedded in this binary.
        known: i64,
    },
    /// Migrations are pending; run `computegate migrate`.
    #[error("database schema is at version {found:?}, this binary needs {known}; run migrations")]
    SchemaBehind {
        /// Highest applied migration version, `None` on an empty database.
        found: Option<i64>,
        /// Highest migration version embedded in this binary.
        known: i64,
    },
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A row holds a value this binary cannot interpret (for example an unknown status).
    #[error("stored {column} holds an unexpected value")]
    CorruptRow {
        /// Table and column, e.g. `customers.status`.
        column: &'static str,
    },
    /// Any other database failure (connection lost, constraint, timeout).
    #[error("database operation failed")]
    Database(#[from] sqlx::Error),
    /// The database is known to be down (the health probe failed): refused without trying.
    #[error("database unavailable (known down; failing fast)")]
    Down,
}

/// The pools; one variant per backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool. The body is compiled once per backend,
/// so one query text serves both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.backend_checked()? {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside one write transaction bound to `$tx` and commits its value. A `?` inside
/// the body returns early and drops the transaction, which rolls it back; a value the body
/// returns (including a domain `Err` held as a value) is committed first.
///
/// SQLite transactions first take the store's in-process writer lock (FIFO, waiting at most the
/// pool's acquire timeout), then start with
/// `BEGIN IMMEDIATE`: taking SQLite's write lock up front means a read lock is never upgraded
/// (which fails instead of waiting), and other processes queue on the busy timeout. Never
/// nest `in_transaction!` on SQLite: the inner one would wait for the outer one's lock.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store.backend_checked()? {
            $crate::store::Backend::Sqlite(pool) => {
                let _writer = $store.sqlite_write_turn().await?;
                let mut $tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::store::StoreError::from)?;
                let value = $body;
                $tx.commit()
                    .await
                    .map_err($crate::store::StoreError::from)?;
                value
            }
            $crate::store::Backend::Postgres(pool) => {
                let mut $tx = pool
                    .begin()
                    .await
                    .map_err($crate::store::StoreError::from)?;
                let value = $body;
                $tx.commit()
                    .await
                    .map_err($crate::store::StoreError::from)?;
                value
            }
        }
    };
}

/// `impl From<sqlx::Error>` for a domain error with a `Store(StoreError)` variant, so `?`
/// works on queries inside its functions.
macro_rules! from_sqlx {
    ($($ty:ty),+ $(,)?) => {$(
        impl From<sqlx::Error> for $ty {
            fn from(e: sqlx::Error) -> Self {
                Self::Store($crate::store::StoreError::Database(e))
            }
        }
    )+};
}

pub(crate) use {from_sqlx, in_transaction, on_pool};

// === impl Store ===

impl Store {
    /// Opens pools for `url`: `sqlite://PATH?mode=rwc` (WAL, foreign keys on, busy timeout) or
    /// `postgres://…`. Does not migrate; call [`Store::migrate`] or [`Store::check_schema`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::InvalidUrl)?
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed write (a decision, an audit record) survives power loss;
                // NORMAL could lose the last commits in WAL mode.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
            let pool = PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl {
                scheme: url_scheme(url),
            });
        };
        Ok(Store {
            backend,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            extensions: Arc::default(),
            circuit: Arc::default(),
        })
    }

    /// Which backend this store talks to.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Closes every pooled connection; later calls fail. Used before dropping a test database
    /// and on shutdown.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// The pools, for the query macros.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The pools unless the circuit is open ([`StoreError::Down`]): what the query macros use,
    /// so every store call fails fast while the database is known down.
    pub(crate) fn backend_checked(&self) -> Result<&Backend, StoreError> {
        self.circuit.check()?;
        Ok(&self.backend)
    }

    /// The in-process SQLite writer lock (tests hold it to line admissions up behind it).
    #[cfg(test)]
    pub(crate) fn sqlite_writer(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.writer
    }

    /// Waits for this process's SQLite write turn, at most as long as for a pooled connection:
    /// a writer stuck behind a long transaction fails like an exhausted pool
    /// ([`sqlx::Error::PoolTimedOut`], an unavailable store) instead of waiting without bound.
    pub(crate) async fn sqlite_write_turn(
        &self,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, StoreError> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreError::from(sqlx::Error::PoolTimedOut))
    }

    /// Per-store state of the domain modules (see [`Extensions`]).
    pub(crate) fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.kind())
            .finish()
    }
}

/// The scheme of a URL for error messages, never the rest (which may hold a password).
fn url_scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => scheme.chars().take(16).collect(),
        None => url.chars().take(16).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_keeps_no_secret() {
        assert_eq!(url_scheme("mysql://root:hunter2@db/x"), "mysql");
        assert_eq!(
            url_scheme("no-scheme-but-a-long-string"),
            "no-scheme-but-a-"
        );
    }

    #[tokio::test]
    async fn unsupported_url_is_refused_without_echoing_it() {
        let err = Store::connect("mysql://root:hunter2@db/x")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
        assert!(!err.to_string().contains("hunter2"));
    }
}

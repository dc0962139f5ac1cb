//! The [`Store`] value itself: the pools of one backend ([`Backend`], [`BackendKind`]), the
//! SQLite writer lock, the per-store extensions and the circuit, and opening them
//! ([`Store::connect`]). Migrations live in `schema`, health probing in `health`, and the domain
//! operations behind the handles of `handles`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::circuit::Circuit;
use super::error::StoreError;
use super::extensions::Extensions;

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
    /// Fails calls at once while the database is known down (see `circuit`).
    pub(super) circuit: Arc<Circuit>,
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

/// The pools; one variant per backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

// === impl Store ===

impl Store {
    /// Opens pools for `url`: `sqlite://PATH?mode=rwc` (WAL, foreign keys on, busy timeout) or
    /// `postgres://…`. Does not migrate; call [`Store::migrate`] or [`Store::check_schema`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::open(url, true).await
    }

    /// Opens the store at `url` only if it is already there, creating nothing: a SQLite file
    /// that does not exist is [`StoreError::Missing`] (whatever `mode=` the URL gives). For
    /// commands that only read; they then check the schema instead of migrating.
    pub async fn connect_existing(url: &str) -> Result<Store, StoreError> {
        Store::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
            let options = if create {
                options
            } else if options.get_filename().exists() {
                options.create_if_missing(false)
            } else {
                return Err(StoreError::Missing {
                    path: options.get_filename().to_path_buf(),
                });
            };
            let options = options
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
    async fn an_existing_store_is_never_created() {
        let path = std::env::temp_dir().join(format!("cg-missing-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let err = Store::connect_existing(&url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Missing { path: p } if *p == path),
            "{err:?}"
        );
        assert!(!path.exists());
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

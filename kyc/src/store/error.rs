//! [`StoreError`]: the failures of the store itself, shared by every domain error that touches
//! the database. A leaf: every other store module may import it.

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
    /// A command that only reads found no SQLite database file (it never creates one).
    #[error("no database at {}: create it with `computegate migrate`", path.display())]
    Missing {
        /// The SQLite file looked for.
        path: std::path::PathBuf,
    },
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

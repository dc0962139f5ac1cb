//! Embedded migrations and the schema-version guard: `migrate` applies what is missing, and both
//! `migrate` and `check_schema` refuse a database that a newer binary has already migrated.

use sqlx::migrate::Migrator;

use super::backend::{Backend, Store};
use super::error::StoreError;
use super::macros::on_pool;

/// SQLite migrations, embedded at compile time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// PostgreSQL migrations, embedded at compile time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Where a database's schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaState {
    /// Every embedded migration is applied and nothing newer is.
    Current {
        /// The version both sides agree on.
        version: i64,
    },
    /// Some embedded migrations are not applied yet.
    Behind {
        /// Highest applied version, `None` for an empty database.
        found: Option<i64>,
        /// Highest embedded version.
        known: i64,
    },
    /// The database holds a migration this binary does not know.
    TooNew {
        /// Highest applied version this binary does not know.
        found: i64,
        /// Highest embedded version.
        known: i64,
    },
}

/// Compares applied versions with the embedded ones. Pure, for the guard and its tests.
fn classify(applied: &[i64], embedded: &[i64]) -> SchemaState {
    let known = embedded.iter().copied().max().unwrap_or(0);
    let unknown = applied
        .iter()
        .copied()
        .filter(|v| !embedded.contains(v))
        .max();
    if let Some(found) = unknown {
        return SchemaState::TooNew { found, known };
    }
    if embedded.iter().all(|v| applied.contains(v)) {
        SchemaState::Current { version: known }
    } else {
        SchemaState::Behind {
            found: applied.iter().copied().max(),
            known,
        }
    }
}

// === impl Store ===

impl Store {
    /// Applies every embedded migration that is missing. Idempotent; safe to run from several
    /// replicas at once (sqlx takes an advisory lock on PostgreSQL). Refuses with
    /// [`StoreError::SchemaTooNew`] when the database was migrated by a newer binary.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if let SchemaState::TooNew { found, known } = self.schema_state().await? {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        let result = match self.backend() {
            Backend::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
            Backend::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
        };
        result.map_err(StoreError::Migration)
    }

    /// Start-up check without changing anything: `Ok` only when the schema is exactly what this
    /// binary expects; otherwise [`StoreError::SchemaTooNew`] or [`StoreError::SchemaBehind`].
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        match self.schema_state().await? {
            SchemaState::Current { .. } => Ok(()),
            SchemaState::Behind { found, known } => Err(StoreError::SchemaBehind { found, known }),
            SchemaState::TooNew { found, known } => Err(StoreError::SchemaTooNew { found, known }),
        }
    }

    /// Reads the applied migration versions and classifies them.
    pub async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        let (exists_sql, migrator) = match self.backend() {
            Backend::Sqlite(_) => (
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                &SQLITE_MIGRATOR,
            ),
            Backend::Postgres(_) => (
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                &POSTGRES_MIGRATOR,
            ),
        };
        let embedded: Vec<i64> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let applied: Vec<i64> = on_pool!(self, |pool| {
            let tables: i64 = sqlx::query_scalar(exists_sql).fetch_one(pool).await?;
            if tables == 0 {
                Vec::new()
            } else {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                    .fetch_all(pool)
                    .await?
            }
        });
        Ok(classify(&applied, &embedded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_cases() {
        assert_eq!(
            classify(&[], &[1, 2]),
            SchemaState::Behind {
                found: None,
                known: 2
            }
        );
        assert_eq!(
            classify(&[1], &[1, 2]),
            SchemaState::Behind {
                found: Some(1),
                known: 2
            }
        );
        assert_eq!(
            classify(&[1, 2], &[1, 2]),
            SchemaState::Current { version: 2 }
        );
        assert_eq!(
            classify(&[1, 2, 3], &[1, 2]),
            SchemaState::TooNew { found: 3, known: 2 }
        );
        // An unknown version below the newest known one still means another binary wrote it.
        assert_eq!(
            classify(&[1, 2, 20240101], &[1, 2, 20250101]),
            SchemaState::TooNew {
                found: 20240101,
                known: 20250101
            }
        );
    }
}

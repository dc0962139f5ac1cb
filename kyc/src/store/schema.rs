//! Embedded migrations and the schema-version guard: `migrate` applies what is missing (one
//! migration at a time, reporting each), both `migrate` and `check_schema` refuse a database
//! that a newer binary has already migrated, and `migration_status` lists every migration with
//! when it was applied, for `computegate migrate status`.

use sqlx::migrate::Migrator;
use time::OffsetDateTime;
use time::macros::format_description;

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

/// One migration as `computegate migrate status` lists it (plain data: callers build them in
/// their tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The version (the file name's number).
    pub version: i64,
    /// The description (the file name's words).
    pub description: String,
    /// Applied, pending, or unknown to this binary.
    pub state: MigrationState,
}

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationState {
    /// Applied at this time (UTC, to the second; `None` if the database's record is unreadable).
    Applied {
        /// When.
        at: Option<OffsetDateTime>,
    },
    /// Embedded in this binary, not applied yet.
    Pending,
    /// Applied by a newer binary; this one does not know it.
    Unknown {
        /// When.
        at: Option<OffsetDateTime>,
    },
}

/// A migration just applied by [`Store::migrate_reporting`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedMigration {
    /// The version.
    pub version: i64,
    /// The description.
    pub description: String,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// A row of `_sqlx_migrations`: version, description and `installed_on` as UTC text.
type AppliedRow = (i64, String, String);

/// Merges the embedded migrations with the applied rows, ordered by version. Pure, for
/// `migration_status` and its tests.
fn merge_status(embedded: &[(i64, String)], applied: &[AppliedRow]) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = embedded
        .iter()
        .map(|(version, description)| {
            let state = match applied.iter().find(|(v, _, _)| v == version) {
                Some((_, _, at)) => MigrationState::Applied {
                    at: parse_installed_on(at),
                },
                None => MigrationState::Pending,
            };
            MigrationStatus {
                version: *version,
                description: description.clone(),
                state,
            }
        })
        .collect();
    for (version, description, at) in applied {
        if !embedded.iter().any(|(v, _)| v == version) {
            out.push(MigrationStatus {
                version: *version,
                description: description.clone(),
                state: MigrationState::Unknown {
                    at: parse_installed_on(at),
                },
            });
        }
    }
    out.sort_by_key(|m| m.version);
    out
}

/// `installed_on` as both backends' queries render it: `YYYY-MM-DD HH:MM:SS` in UTC.
fn parse_installed_on(text: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let seconds = text.get(..19)?;
    time::PrimitiveDateTime::parse(seconds, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
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
        self.migrate_reporting(|_| {}).await
    }

    /// [`Store::migrate`], applying the pending migrations one at a time in version order and
    /// calling `applied` after each (the CLI's progress lines: a long migration shows which one
    /// is running by the last line printed).
    pub async fn migrate_reporting(
        &self,
        mut applied: impl FnMut(&AppliedMigration),
    ) -> Result<(), StoreError> {
        if let SchemaState::TooNew { found, known } = self.schema_state().await? {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        let pending: Vec<MigrationStatus> = self
            .migration_status()
            .await?
            .into_iter()
            .filter(|m| m.state == MigrationState::Pending)
            .collect();
        for migration in pending {
            let started = std::time::Instant::now();
            // `run_to` applies everything up to the version, so a migration that another
            // replica applied meanwhile is skipped rather than repeated.
            let result = match self.backend() {
                Backend::Sqlite(pool) => SQLITE_MIGRATOR.run_to(migration.version, pool).await,
                Backend::Postgres(pool) => POSTGRES_MIGRATOR.run_to(migration.version, pool).await,
            };
            result.map_err(StoreError::Migration)?;
            applied(&AppliedMigration {
                version: migration.version,
                description: migration.description,
                elapsed: started.elapsed(),
            });
        }
        Ok(())
    }

    /// Every migration, embedded or applied, in version order, with when it was applied.
    /// Reads only: an empty database lists every migration as pending.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let embedded: Vec<(i64, String)> = self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        Ok(merge_status(&embedded, &self.applied_migrations().await?))
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
        let embedded: Vec<i64> = self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let applied: Vec<i64> = self
            .applied_migrations()
            .await?
            .into_iter()
            .map(|(version, _, _)| version)
            .collect();
        Ok(classify(&applied, &embedded))
    }

    /// This backend's embedded migrations.
    fn migrator(&self) -> &'static Migrator {
        match self.backend() {
            Backend::Sqlite(_) => &SQLITE_MIGRATOR,
            Backend::Postgres(_) => &POSTGRES_MIGRATOR,
        }
    }

    /// The successfully applied migrations; none when the bookkeeping table does not exist
    /// (checked first, so reading never creates it).
    async fn applied_migrations(&self) -> Result<Vec<AppliedRow>, StoreError> {
        let (exists_sql, rows_sql) = match self.backend() {
            Backend::Sqlite(_) => (
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                "SELECT version, description, strftime('%Y-%m-%d %H:%M:%S', installed_on) \
                 FROM _sqlx_migrations WHERE success = TRUE",
            ),
            Backend::Postgres(_) => (
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                "SELECT version, description, \
                 to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                 FROM _sqlx_migrations WHERE success = TRUE",
            ),
        };
        Ok(on_pool!(self, |pool| {
            let tables: i64 = sqlx::query_scalar(exists_sql).fetch_one(pool).await?;
            if tables == 0 {
                Vec::new()
            } else {
                sqlx::query_as::<_, AppliedRow>(rows_sql)
                    .fetch_all(pool)
                    .await?
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_merges_embedded_and_applied() {
        let embedded = vec![(1, "identity".to_string()), (2, "audit".to_string())];
        let applied = vec![
            (1, "identity".to_string(), "2026-12-07 07:01:23".to_string()),
            (9, "from a newer binary".to_string(), "garbled".to_string()),
        ];
        let status = merge_status(&embedded, &applied);
        let at = time::macros::datetime!(2026-12-07 07:01:23 UTC);
        assert_eq!(
            status
                .iter()
                .map(|m| (m.version, m.description.as_str(), m.state))
                .collect::<Vec<_>>(),
            vec![
                (1, "identity", MigrationState::Applied { at: Some(at) }),
                (2, "audit", MigrationState::Pending),
                (
                    9,
                    "from a newer binary",
                    MigrationState::Unknown { at: None }
                ),
            ]
        );
    }

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

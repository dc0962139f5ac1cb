//! Shared fixtures: a fresh database per test on either backend, fast argon2 parameters, a
//! fixed clock value, and the runner that cleans up even when a test panics.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;

use computegate_kyc::Store;
use computegate_kyc::password::{Hasher, PasswordParams};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Default admin URL for PostgreSQL tests; override with `COMPUTEGATE_TEST_DATABASE_URL`.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which backend a suite run targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a suite test receives.
pub struct Ctx {
    pub store: Store,
    pub backend: Backend,
    /// URL of this test's own database (for raw SQL in schema tests).
    pub url: String,
}

/// A database that exists only for one test.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    /// An empty (unmigrated) database.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let path =
                    std::env::temp_dir().join(format!("cg-test-{}.db", Uuid::new_v4().simple()));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let store = Store::connect(&url).await.expect("open sqlite");
                TestDb {
                    store,
                    url,
                    backend,
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("COMPUTEGATE_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
                let name = format!("cg_{}", Uuid::new_v4().simple());
                let admin = admin_pool(&admin_url).await;
                // The name is generated above from a UUID, never input.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let url = with_database(&admin_url, &name);
                let store = Store::connect(&url).await.expect("open postgres");
                TestDb {
                    store,
                    url,
                    backend,
                    cleanup: Cleanup::Database { admin_url, name },
                }
            }
        }
    }

    /// Closes the store and removes the database.
    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Database { admin_url, name } => {
                let admin = admin_pool(&admin_url).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await
                .expect("drop test database");
                admin.close().await;
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

async fn admin_pool(url: &str) -> sqlx::PgPool {
    let options = PgConnectOptions::from_str(url).expect("admin URL");
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect to PostgreSQL (is it running? see scripts/test.sh)")
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{name}{query}")
}

/// Creates a migrated database, runs `test` on it in its own task, removes the database,
/// then re-raises the test's panic if it had one.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDb::new(backend).await;
    db.store.migrate().await.expect("migrate");
    let ctx = Ctx {
        store: db.store.clone(),
        backend,
        url: db.url.clone(),
    };
    let outcome = tokio::spawn(test(ctx)).await;
    db.finish().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Argon2 parameters small enough for a fast suite.
pub fn fast_params() -> PasswordParams {
    PasswordParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
}

pub fn hasher() -> Hasher {
    Hasher::new(fast_params()).expect("valid params")
}

/// A fixed "now" for tests that do not involve jsonwebtoken's own clock.
pub fn t0() -> OffsetDateTime {
    datetime!(2030-01-01 00:00:00 UTC)
}

/// Expands to one `#[tokio::test]` per listed async fn for SQLite, and an ignored one for
/// PostgreSQL (run with `--include-ignored` when a server is available).
#[macro_export]
macro_rules! store_suite {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run($crate::support::Backend::Sqlite, super::$name).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL (scripts/test.sh)"]
                async fn $name() {
                    $crate::support::run($crate::support::Backend::Postgres, super::$name).await;
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "cg_x"),
            "postgres://u:p@h:5432/cg_x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "cg_x"), "postgres://h/cg_x");
    }
}

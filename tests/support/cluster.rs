//! The servers of the cluster tests: a PostgreSQL database per test, created with `psql` (the
//! gateway migrates but never creates a database) and dropped with its guard, and Redis, where
//! each test isolates itself with a key prefix of its own.

use std::process::Command;

use serde_json::Value;

/// Default PostgreSQL server of the test script (`COMPUTEGATE_TEST_DATABASE_URL`).
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Default Redis server of the test script (`COMPUTEGATE_TEST_REDIS_URL`).
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A PostgreSQL database of one test, dropped (forcibly) with the guard.
#[derive(Debug)]
pub(crate) struct PgDatabase {
    server_url: String,
    name: String,
    /// URL of the new database.
    pub(crate) url: String,
}

/// `COMPUTEGATE_TEST_REDIS_URL` or the test script's default.
pub(crate) fn redis_url() -> String {
    std::env::var("COMPUTEGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

/// A Redis key prefix no other test uses.
pub(crate) fn redis_prefix() -> String {
    format!("cgtest:{}:", uuid::Uuid::new_v4().simple())
}

/// Publishes `notice` (JSON) on the notice channel of `prefix`, as another replica would.
pub(crate) async fn publish_notice(prefix: &str, notice: &Value) {
    let client = redis::Client::open(redis_url()).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}notices"))
        .arg(notice.to_string())
        .query_async(&mut conn)
        .await
        .expect("PUBLISH");
}

impl PgDatabase {
    /// Creates a new empty database on the test server.
    pub(crate) fn create() -> Self {
        let server_url = std::env::var("COMPUTEGATE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let name = format!("cg_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&server_url, &name);
        psql(&server_url, &format!("CREATE DATABASE {name}"));
        Self {
            server_url,
            name,
            url,
        }
    }

    /// Runs `sql` in this database; returns psql's unaligned, tuples-only output.
    pub(crate) fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.server_url.as_str(), "-qtA", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs `sql` with psql against `url`, failing the test on an error.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql])
        .output()
        .expect("run psql (scripts/test.sh installs PostgreSQL)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let query = url[path_start..]
        .find('?')
        .map_or("", |i| &url[path_start + i..]);
    format!("{}/{name}{query}", &url[..path_start])
}

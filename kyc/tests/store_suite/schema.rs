//! Migrations: idempotent, and refused on a schema newer than the binary.

use computegate_kyc::StoreError;
use computegate_kyc::store::{MigrationState, SchemaState};

use crate::support::{Backend, Ctx, TestDb};

async fn migrations_are_idempotent(ctx: Ctx) {
    // `run` already migrated once.
    ctx.store.migrate().await.unwrap();
    ctx.store.migrate().await.unwrap();
    ctx.store.check_schema().await.unwrap();
    assert!(matches!(
        ctx.store.schema_state().await.unwrap(),
        SchemaState::Current { .. }
    ));
}

async fn empty_database_is_behind(ctx: Ctx) {
    let fresh = TestDb::new(ctx.backend).await;
    let state = fresh.store.check_schema().await;
    assert!(
        matches!(state, Err(StoreError::SchemaBehind { found: None, .. })),
        "{state:?}"
    );
    fresh.store.migrate().await.unwrap();
    fresh.store.check_schema().await.unwrap();
    fresh.finish().await;
}

async fn newer_schema_is_refused(ctx: Ctx) {
    const FUTURE: i64 = 99_990_101_000_000;
    let insert = "INSERT INTO _sqlx_migrations \
        (version, description, success, checksum, execution_time) \
        VALUES ($1, 'from a newer binary', TRUE, $2, 0)";
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            sqlx::query(insert)
                .bind(FUTURE)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            sqlx::query(insert)
                .bind(FUTURE)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let err = ctx.store.migrate().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: FUTURE, known } if known < FUTURE),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade the binary"));
    let err = ctx.store.check_schema().await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err:?}");
}

async fn status_lists_pending_then_applied_migrations(ctx: Ctx) {
    let fresh = TestDb::new(ctx.backend).await;
    let before = fresh.store.migration_status().await.unwrap();
    assert!(before.len() > 10, "{before:?}");
    assert!(before.iter().all(|m| m.state == MigrationState::Pending));
    assert!(before.windows(2).all(|w| w[0].version < w[1].version));
    // Listing read only: the database is still empty.
    assert!(matches!(
        fresh.store.schema_state().await.unwrap(),
        SchemaState::Behind { found: None, .. }
    ));
    let mut applied = Vec::new();
    fresh
        .store
        .migrate_reporting(|m| applied.push((m.version, m.description.clone())))
        .await
        .unwrap();
    let expected: Vec<(i64, String)> = before
        .iter()
        .map(|m| (m.version, m.description.clone()))
        .collect();
    assert_eq!(applied, expected, "each migration reported once, in order");
    let after = fresh.store.migration_status().await.unwrap();
    assert_eq!(after.len(), before.len());
    assert!(
        after
            .iter()
            .all(|m| matches!(m.state, MigrationState::Applied { at: Some(_) })),
        "{after:?}"
    );
    fresh.finish().await;
}

crate::store_suite!(
    status_lists_pending_then_applied_migrations,
    migrations_are_idempotent,
    empty_database_is_behind,
    newer_schema_is_refused,
);

/// Migration 0006 rebuilds `ledger_jobs` on SQLite (a CHECK constraint cannot change in place,
/// and other tables reference the table): jobs written under 0005 must survive with every column
/// and every reference, and the new status and column must work afterwards. SQLite only: on
/// PostgreSQL 0006 is plain `ALTER TABLE`.
#[tokio::test]
async fn the_ledger_rebuild_keeps_jobs_and_their_references_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    migrator.run_to(5, &pool).await.unwrap();

    let (customer, run, job) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let at = "2026-01-01T00:00:00.000000Z";
    let statements: [(&str, Vec<uuid::Uuid>); 5] = [
        (
            "INSERT INTO customers (id, email, password_hash, kind, status, tier, created_at, \
             updated_at) VALUES ($1, 'c@example.com', 'x', 'individual', 'active', 'unverified', \
             $2, $2)",
            vec![customer],
        ),
        (
            "INSERT INTO ledger_runs (id, customer_id, run_id, lineage_root, first_seen_at) \
             VALUES ($1, $3, 'run-1', $1, $2)",
            vec![run, customer],
        ),
        (
            "INSERT INTO ledger_jobs (id, customer_id, run, lineage_root, status, decision, \
             request_id, route, estimate_flop, hardware_flop, basis, table_version, accelerators, \
             accelerator_type, bio_sequence, reserved_flop, used_flop, accelerator_seconds, \
             decided_at) VALUES ($1, $3, $4, $4, 'running', 'admitted', 'req-1', '/v1/jobs', \
             1e21, 1e21, 'hardware', '2025-06', 8, 'h100', 0, 4e20, 6e20, 1234.5, $2)",
            vec![job, customer, run],
        ),
        (
            "INSERT INTO ledger_usage_events (event_id, job_id, kind, occurred_at, \
             accelerator_seconds_total, flop_per_accelerator_second, used_flop_after) \
             VALUES ('ev-1', $1, 'heartbeat', $2, 1234.5, 4e14, 6e20)",
            vec![job],
        ),
        (
            "INSERT INTO ledger_crossings (id, job_id, phase, label, threshold_flop, scope, \
             scope_id, action, previous_flop, projected_flop, occurred_at) \
             VALUES ($3, $1, 'admission', 'l', 1e20, 'run', $1, 'notify', 0, 1e21, $2)",
            vec![job, uuid::Uuid::new_v4()],
        ),
    ];
    for (sql, ids) in statements {
        let mut ids = ids.into_iter();
        let first = ids.next().unwrap();
        let mut q = sqlx::query(sql).bind(first).bind(at);
        for id in ids {
            q = q.bind(id);
        }
        q.execute(&pool).await.unwrap();
    }
    pool.close().await;

    db.store.migrate().await.unwrap();
    db.store.check_schema().await.unwrap();

    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let row: (String, f64, f64, f64, String, Option<f64>) = sqlx::query_as(
        "SELECT status, reserved_flop, used_flop, accelerator_seconds, accelerator_type, \
         flop_per_accelerator_second FROM ledger_jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("running".into(), 4e20, 6e20, 1234.5, "h100".into(), None),
        "the job survives the rebuild unchanged"
    );
    let referencing: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM ledger_usage_events e JOIN ledger_jobs j ON j.id = e.job_id) \
              + (SELECT COUNT(*) FROM ledger_crossings c JOIN ledger_jobs j ON j.id = c.job_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(referencing, 2, "events and crossings still reach their job");
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "dangling references: {broken:?}");
    sqlx::query("UPDATE ledger_jobs SET status = 'released', flop_per_accelerator_second = 4e14 WHERE id = $1")
        .bind(job)
        .execute(&pool)
        .await
        .expect("the new status and column are accepted");
    let refused = sqlx::query("UPDATE ledger_jobs SET status = 'bogus' WHERE id = $1")
        .bind(job)
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the status CHECK is still there");
    pool.close().await;
    db.finish().await;
}

//! Migrations: idempotent, and refused on a schema newer than the binary.

use computegate_kyc::StoreError;
use computegate_kyc::store::SchemaState;

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

crate::store_suite!(
    migrations_are_idempotent,
    empty_database_is_behind,
    newer_schema_is_refused,
);

//! Appends, tampering and concurrency.

use std::net::IpAddr;

use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::audit::{
    AuditAction, AuditEntry, AuditFilter, BrokenReason, ExportFormat, GENESIS_HASH,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use time::Duration;

use crate::support::{Backend, Ctx, t0};

/// Runs raw SQL statements against the test's database, bypassing the store (the attacker).
async fn raw(ctx: &Ctx, statements: &[&str]) {
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
}

/// Drops the append-only guard, as someone with DDL rights could.
async fn disable_guard(ctx: &Ctx) {
    match ctx.backend {
        Backend::Sqlite => {
            raw(
                ctx,
                &[
                    "DROP TRIGGER audit_log_no_update",
                    "DROP TRIGGER audit_log_no_delete",
                ],
            )
            .await
        }
        Backend::Postgres => raw(ctx, &["ALTER TABLE audit_log DISABLE TRIGGER USER"]).await,
    }
}

/// Appends `n` records at `t0()`, `t0() + 1 s`, ….
pub(crate) async fn append_n(store: &Store, n: usize) {
    let ip: IpAddr = "2001:db8::7".parse().unwrap();
    for i in 0..n {
        let actor = if i % 2 == 0 {
            Actor::staff(uuid::Uuid::now_v7(), Some(ip))
        } else {
            Actor::system("test")
        };
        let entry = AuditEntry::new(
            t0() + Duration::seconds(i as i64),
            &actor,
            if i % 3 == 0 {
                AuditAction::ApplicationSubmitted
            } else {
                AuditAction::ApplicationViewed
            },
            format!("customer:{}", i % 4),
        )
        .with_detail(json!({ "i": i, "reason": "ünïcode, \"quoted\"\nline", "z": [1, 2] }));
        store.audit().record_audit(&entry).await.unwrap();
    }
}

async fn append_page_and_verify(ctx: Ctx) {
    let s = &ctx.store;
    let v = s.audit().verify_audit_chain().await.unwrap();
    assert_eq!(v.records, 0);
    assert_eq!(v.head.seq, 0);
    assert_eq!(v.head.hash.0, GENESIS_HASH);
    assert!(v.first_broken.is_none());

    let first = s
        .audit()
        .record_audit(
            &AuditEntry::new(
                t0(),
                &Actor::system("cli"),
                AuditAction::ScreeningListImported,
                "policy",
            )
            .with_detail(json!({"version": 3})),
        )
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash.0, GENESIS_HASH);
    append_n(s, 11).await;

    let v = s.audit().verify_audit_chain().await.unwrap();
    assert_eq!(v.records, 12);
    assert_eq!(v.head.seq, 12);
    assert!(v.first_broken.is_none(), "{v:?}");

    // Pages: ascending, filterable, cursor-able.
    let all = s.audit().audit_page(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all[0], first);
    assert!(
        all.windows(2)
            .all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1)
    );
    assert_eq!(all[1].actor_ip, Some("2001:db8::7".parse().unwrap()));
    assert_eq!(all[1].detail["reason"], "ünïcode, \"quoted\"\nline");
    let logins = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("kyc.application.viewed".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(logins.iter().all(|r| r.action == "kyc.application.viewed"));
    assert_eq!(logins.len(), 7);
    let page = s
        .audit()
        .audit_page(&AuditFilter {
            subject: Some("customer:1".into()),
            since: Some(t0() + Duration::seconds(2)),
            after_seq: Some(3),
            limit: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|r| r.subject == "customer:1" && r.seq > 3));
}

async fn export_formats(ctx: Ctx) {
    let s = &ctx.store;
    append_n(s, 5).await;
    let mut jsonl = Vec::new();
    let n = s
        .audit()
        .audit_export(t0() + Duration::seconds(1), ExportFormat::Jsonl, &mut jsonl)
        .await
        .unwrap();
    assert_eq!(n, 4);
    let text = String::from_utf8(jsonl).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    // Each line re-verifies without the store: hash = SHA-256(prev ‖ line without "hash").
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let hash = v["hash"].as_str().unwrap().to_owned();
        let prev = hex::decode(v["prev_hash"].as_str().unwrap()).unwrap();
        let (body, _) = line.rsplit_once(",\"hash\":").unwrap();
        let mut h = Sha256::new();
        h.update(&prev);
        h.update(format!("{body}}}").as_bytes());
        assert_eq!(hex::encode(h.finalize()), hash);
    }

    let mut csv = Vec::new();
    let n = s
        .audit()
        .audit_export(t0(), ExportFormat::Csv, &mut csv)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("seq,at,actor,actor_ip,action,subject,detail,prev_hash,hash\r\n"));
    assert!(csv.contains("1,2030-01-01T00:00:00.000000Z,staff:"));
    // The detail has a comma, quotes and a newline: quoted and doubled.
    assert!(
        csv.contains("\"{\"\"i\"\":0,\"\"reason\"\":\"\"ünïcode, \\\"\"quoted\\\"\"\\nline\"\"")
    );
}

/// Whether the database refuses `sql` (run outside the store, as an attacker would).
pub(crate) async fn refused(ctx: &Ctx, sql: &'static str) -> bool {
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            let r = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            r.is_err()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            let r = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            r.is_err()
        }
    }
}

async fn append_only_guard_refuses_plain_updates(ctx: Ctx) {
    append_n(&ctx.store, 2).await;
    let update = "UPDATE audit_log SET subject = 'x' WHERE seq = 1";
    let delete = "DELETE FROM audit_log WHERE seq = 2";
    for sql in [update, delete] {
        assert!(refused(&ctx, sql).await, "{sql} should be refused");
    }
    assert!(
        ctx.store
            .audit()
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .is_none()
    );
}

async fn verify_catches_an_edit(ctx: Ctx) {
    append_n(&ctx.store, 8).await;
    disable_guard(&ctx).await;
    raw(
        &ctx,
        &["UPDATE audit_log SET detail = '{\"i\":99}' WHERE seq = 5"],
    )
    .await;
    let v = ctx.store.audit().verify_audit_chain().await.unwrap();
    let broken = v.first_broken.unwrap();
    assert_eq!((broken.seq, broken.reason), (5, BrokenReason::Edited));
    assert_eq!(v.records, 4);
}

async fn verify_catches_an_actor_ip_edit(ctx: Ctx) {
    append_n(&ctx.store, 3).await;
    disable_guard(&ctx).await;
    raw(
        &ctx,
        &["UPDATE audit_log SET actor_ip = '192.0.2.66' WHERE seq = 3"],
    )
    .await;
    let broken = ctx
        .store
        .audit()
        .verify_audit_chain()
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!((broken.seq, broken.reason), (3, BrokenReason::Edited));
}

async fn verify_catches_a_deletion(ctx: Ctx) {
    append_n(&ctx.store, 8).await;
    disable_guard(&ctx).await;
    raw(&ctx, &["DELETE FROM audit_log WHERE seq = 4"]).await;
    let broken = ctx
        .store
        .audit()
        .verify_audit_chain()
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!((broken.seq, broken.reason), (4, BrokenReason::Deleted));
}

async fn verify_catches_a_truncated_tail(ctx: Ctx) {
    append_n(&ctx.store, 6).await;
    disable_guard(&ctx).await;
    raw(&ctx, &["DELETE FROM audit_log WHERE seq >= 5"]).await;
    let v = ctx.store.audit().verify_audit_chain().await.unwrap();
    let broken = v.first_broken.unwrap();
    assert_eq!((broken.seq, broken.reason), (5, BrokenReason::Deleted));
    assert_eq!(v.records, 4);
}

async fn verify_catches_a_reorder(ctx: Ctx) {
    append_n(&ctx.store, 8).await;
    disable_guard(&ctx).await;
    raw(
        &ctx,
        &[
            "UPDATE audit_log SET seq = 100003 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 6",
            "UPDATE audit_log SET seq = 6 WHERE seq = 100003",
        ],
    )
    .await;
    let broken = ctx
        .store
        .audit()
        .verify_audit_chain()
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!((broken.seq, broken.reason), (3, BrokenReason::Reordered));
}

/// Fifty writers on two independent stores (as two replicas would be) keep one chain.
async fn concurrent_appends_stay_one_chain(ctx: Ctx) {
    let other = Store::connect(&ctx.url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let store = if i % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let entry = AuditEntry::new(
                t0(),
                &Actor::system("load"),
                AuditAction::ScreeningListImported,
                format!("task:{i}"),
            )
            .with_detail(json!({ "i": i }));
            store.audit().record_audit(&entry).await.unwrap().seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<i64>>());
    let v = ctx.store.audit().verify_audit_chain().await.unwrap();
    assert_eq!(v.records, 50);
    assert!(v.first_broken.is_none(), "{v:?}");
    other.close().await;
}

crate::store_suite!(
    append_page_and_verify,
    export_formats,
    append_only_guard_refuses_plain_updates,
    verify_catches_an_edit,
    verify_catches_an_actor_ip_edit,
    verify_catches_a_deletion,
    verify_catches_a_truncated_tail,
    verify_catches_a_reorder,
    concurrent_appends_stay_one_chain,
);

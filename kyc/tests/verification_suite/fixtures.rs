//! Fixtures for the verification suite.

#![allow(dead_code, unreachable_pub)]

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerKind, StaffRole};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::verification::{
    ApplicationPayload, CustomerCaller, JurisdictionRules, PartyScreening, ScreeningDecision,
    ScreeningSummary, StaffCaller,
};
use uuid::Uuid;

use crate::support::t0;

pub const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

pub const INDIVIDUAL: &str = include_str!("../data/verification/individual.json");
pub const ORGANIZATION: &str = include_str!("../data/verification/organization.json");

/// A minimal PDF header and PNG header: enough for magic-byte sniffing.
pub const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01";

pub fn individual() -> ApplicationPayload {
    ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap()
}

pub fn organization() -> ApplicationPayload {
    ApplicationPayload::from_json(ORGANIZATION.as_bytes()).unwrap()
}

pub fn rules() -> JurisdictionRules {
    JurisdictionRules {
        embargoed: vec!["KP".into(), "IR".into()],
        high_risk: vec!["RU".into()],
    }
}

pub fn screening(decision: ScreeningDecision, score: f64) -> ScreeningSummary {
    ScreeningSummary {
        list_version: "0197a3b2-test-list".into(),
        parties: vec![PartyScreening {
            role: "applicant".into(),
            score,
            decision,
            best: (decision != ScreeningDecision::Clear)
                .then(|| serde_json::json!({"entry": "SDN-1234", "name_similarity": score})),
        }],
    }
}

pub async fn customer(store: &Store, email: &str, kind: CustomerKind) -> CustomerCaller {
    let c = store
        .accounts()
        .create_customer(email, HASH, kind, t0())
        .await
        .unwrap();
    CustomerCaller {
        customer_id: c.id,
        client_ip: Some("198.51.100.7".parse().unwrap()),
    }
}

pub async fn staff(store: &Store, email: &str, role: StaffRole) -> StaffCaller {
    let s = store
        .accounts()
        .create_staff(email, role, HASH, &Actor::system("test"), t0())
        .await
        .unwrap();
    StaffCaller {
        staff_id: s.id,
        organization_ids: vec![],
        client_ip: Some("203.0.113.9".parse().unwrap()),
    }
}

pub fn key() -> MasterKey {
    MasterKey::generate().unwrap()
}

/// Creates, submits and screens an application; returns its id, left in `pending_review`.
pub async fn pending(
    store: &Store,
    key: &MasterKey,
    caller: &CustomerCaller,
    payload: &ApplicationPayload,
    decision: ScreeningDecision,
) -> Uuid {
    let app = store
        .verification()
        .create_draft(key, caller, payload, t0())
        .await
        .unwrap();
    store
        .verification()
        .submit_application(key, caller, app.id, &rules(), t0())
        .await
        .unwrap();
    store
        .verification()
        .begin_application_screening(key, app.id, t0())
        .await
        .unwrap();
    store
        .verification()
        .record_application_screening(
            key,
            app.id,
            &screening(decision, 0.1),
            Some("GB"),
            &rules(),
            t0(),
        )
        .await
        .unwrap();
    app.id
}

/// Audit actions recorded about `subject`, in order.
pub async fn actions(store: &Store, subject: &str) -> Vec<String> {
    store
        .audit()
        .audit_page(&AuditFilter {
            subject: Some(subject.into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

/// The chain verifies.
pub async fn chain_intact(store: &Store) {
    let v = store.audit().verify_audit_chain().await.unwrap();
    assert!(v.first_broken.is_none(), "{v:?}");
    assert!(v.records > 0);
}

/// `SELECT COUNT(*) …` on the test's database.
pub async fn count(ctx: &crate::support::Ctx, sql: &'static str) -> i64 {
    use crate::support::Backend;
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

/// Raw bytes of every stored column of the application tables, for at-rest checks.
pub async fn raw_dump(ctx: &crate::support::Ctx) -> Vec<u8> {
    use crate::support::Backend;
    const SQL: &str = "SELECT COALESCE(requested_tier, '') || COALESCE(country, '') FROM verification_applications";
    let mut out = Vec::new();
    let blobs = "SELECT payload_sealed FROM verification_applications \
                 UNION ALL SELECT ciphertext FROM verification_documents \
                 UNION ALL SELECT wrapped_key FROM verification_documents";
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            for b in sqlx::query_scalar::<_, Vec<u8>>(blobs)
                .fetch_all(&pool)
                .await
                .unwrap()
            {
                out.extend(b);
            }
            for s in sqlx::query_scalar::<_, String>(SQL)
                .fetch_all(&pool)
                .await
                .unwrap()
            {
                out.extend(s.into_bytes());
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            for b in sqlx::query_scalar::<_, Vec<u8>>(blobs)
                .fetch_all(&pool)
                .await
                .unwrap()
            {
                out.extend(b);
            }
            for s in sqlx::query_scalar::<_, String>(SQL)
                .fetch_all(&pool)
                .await
                .unwrap()
            {
                out.extend(s.into_bytes());
            }
            pool.close().await;
        }
    }
    out
}

//! Incidents: values sealed at rest with their keyed hashes beside them, targets that must
//! exist, the status machine under two concurrent moves, the incident page, and partners'
//! bundles raising each flag once.

use computegate_kyc::accounts::{Actor, CustomerKind};
use computegate_kyc::audit::{AuditAction, AuditFilter};
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::incidents::indicators::{Indicator, IndicatorKey, IndicatorKind};
use computegate_kyc::incidents::{
    IncidentError, IncidentStatus, IndicatorInput, NewIncident, Provider,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Backend, Ctx, t0};

const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

fn request(customer: Uuid, domain: &str) -> NewIncident {
    NewIncident {
        kind: "fraud".into(),
        description: "card testing".into(),
        customers: vec![customer],
        indicators: vec![IndicatorInput {
            kind: "email_domain".into(),
            value: domain.into(),
        }],
        ..NewIncident::default()
    }
}

/// `(value_sealed, value_hash)` of every indicator row, read behind the store's back.
async fn indicator_rows(ctx: &Ctx) -> Vec<(Vec<u8>, Vec<u8>)> {
    const SQL: &str = "SELECT value_sealed, value_hash FROM incident_indicators";
    match ctx.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

async fn values_are_sealed_and_targets_must_exist(ctx: Ctx) {
    let s = &ctx.store;
    let master = MasterKey::generate().unwrap();
    let actor = Actor::system("test");
    let c = s
        .accounts()
        .create_customer("a@incidents.example", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let mut unknown_run = request(c.id, "resold.example");
    unknown_run.runs = vec![Uuid::now_v7()];
    let valid = unknown_run.validate().unwrap();
    let err = s
        .incidents()
        .create_incident(&master, &valid, &actor, t0())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IncidentError::Invalid(f) if f[0].0 == "runs"),
        "{err:?}"
    );
    assert!(
        s.incidents()
            .incident_page(None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let valid = request(c.id, "Resold.Example").validate().unwrap();
    let created = s
        .incidents()
        .create_incident(&master, &valid, &actor, t0())
        .await
        .unwrap();
    let rows = indicator_rows(&ctx).await;
    assert_eq!(rows.len(), 1);
    let (sealed, hash) = &rows[0];
    assert!(
        !String::from_utf8_lossy(sealed).contains("resold"),
        "sealed at rest"
    );
    let expected = Indicator::parse(IndicatorKind::EmailDomain, "resold.example").unwrap();
    assert_eq!(
        hash.as_slice(),
        IndicatorKey::derive(&master).hash(&expected).as_bytes()
    );
    let read = s
        .incidents()
        .incident(&master, created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.indicators[0].indicator, expected);
    assert_eq!(read.customers, [c.id]);
    // Another master key cannot open it.
    let other = MasterKey::generate().unwrap();
    assert!(matches!(
        s.incidents().incident(&other, created.id).await,
        Err(IncidentError::Crypto(_))
    ));
    let history = s
        .audit()
        .audit_page(&AuditFilter {
            subject: Some(format!("incident:{}", created.id)),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].action, AuditAction::IncidentCreated.as_str());
    assert!(!history[0].detail.to_string().contains("resold"));
}

async fn two_concurrent_moves_one_wins(ctx: Ctx) {
    let s = &ctx.store;
    let master = MasterKey::generate().unwrap();
    let actor = Actor::system("test");
    let c = s
        .accounts()
        .create_customer("b@incidents.example", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let valid = request(c.id, "race.example").validate().unwrap();
    let id = s
        .incidents()
        .create_incident(&master, &valid, &actor, t0())
        .await
        .unwrap()
        .id;
    let incidents = s.incidents();
    let (a, b) = tokio::join!(
        incidents.set_incident_status(id, IncidentStatus::Reported, &actor, t0()),
        incidents.set_incident_status(id, IncidentStatus::Reported, &actor, t0()),
    );
    let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{a:?} {b:?}");
    assert!(
        [a, b].into_iter().any(|r| matches!(
            r,
            Err(IncidentError::Transition {
                to: IncidentStatus::Reported,
                ..
            })
        )),
        "the other move is refused"
    );
    let page = s.incidents().incident_page(None, 10).await.unwrap();
    assert_eq!(page[0].status, "reported");
}

async fn a_bundle_flags_each_customer_once(ctx: Ctx) {
    let s = &ctx.store;
    let master = MasterKey::generate().unwrap();
    let provider = Provider::of(&master, "Us");
    let actor = Actor::system("test");
    let flagged = s
        .accounts()
        .create_customer("x@flagged.example", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let clean = s
        .accounts()
        .create_customer("y@clean.example", HASH, CustomerKind::Individual, t0())
        .await
        .unwrap();
    let digest = Indicator::parse(IndicatorKind::EmailDomain, "flagged.example")
        .unwrap()
        .shared_sha256();
    let bundle = json!({
        "type": "bundle",
        "id": "bundle--55555555-5555-4555-8555-555555555555",
        "objects": [
            {"type": "identity", "id": "identity--11111111-1111-4111-8111-111111111111",
             "name": "Partner"},
            {"type": "indicator", "id": "indicator--33333333-3333-4333-8333-333333333333",
             "pattern_type": "stix", "description": "fake sign-ups",
             "pattern": format!("[x-computegate-hashed-indicator:type = 'email_domain' AND \
                 x-computegate-hashed-indicator:sha256 = '{digest}']")},
        ]
    })
    .to_string();
    let incidents = s.incidents();
    let import = || incidents.import_bundle(&master, &provider, bundle.as_bytes(), &actor, t0());
    let first = import().await.unwrap();
    assert_eq!((first.matched, first.flags_raised), (1, 1));
    assert_eq!(first.customers, [flagged.id]);
    let again = import().await.unwrap();
    assert_eq!((again.matched, again.flags_raised), (1, 0));
    let flags = s.incidents().flags_of_customer(flagged.id).await.unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].partner, "Partner");
    assert_eq!(flags[0].context, "fake sign-ups");
    assert_eq!(flags[0].indicator_type, "email_domain");
    assert!(
        s.incidents()
            .flags_of_customer(clean.id)
            .await
            .unwrap()
            .is_empty()
    );
    let imports = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some(AuditAction::IncidentBundleImported.as_str().into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(imports.len(), 2, "each import is audited");
}

crate::store_suite!(
    values_are_sealed_and_targets_must_exist,
    two_concurrent_moves_one_wins,
    a_bundle_flags_each_customer_once,
);

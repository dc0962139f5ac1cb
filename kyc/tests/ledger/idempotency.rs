//! Idempotency keys of job submissions: a key is held by exactly one admitted job (also when
//! attempts race through two pools on one database), a hold, a denial or a release gives it
//! back, the stored answer is read back as written, and expired keys are replaced and purged.

use std::sync::Arc;

use computegate_kyc::Store;
use computegate_kyc::ledger::{
    AdmissionOptions, AdmissionRequest, IdempotencyClaim, IdempotentAnswer, LedgerError, Verdict,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use super::fixtures::{admitted, customer, job, lineage_total};
use crate::support::{Ctx, t0};

const DAY: time::Duration = time::Duration::days(1);

fn keyed(key: &str) -> AdmissionOptions {
    AdmissionOptions {
        idempotency: Some(IdempotencyClaim {
            key: key.into(),
            fingerprint: "0f".repeat(32),
            expires_at: t0() + DAY,
            owner: None,
        }),
        ..AdmissionOptions::default()
    }
}

async fn admit_keyed(s: &Store, req: &AdmissionRequest, key: &str) -> Result<Verdict, LedgerError> {
    s.ledger()
        .admit_with(req, &keyed(key))
        .await
        .map(|d| d.verdict)
}

async fn held_key(s: &Store, c: Uuid, key: &str) -> Option<Uuid> {
    let found = s.ledger().idempotency_key(c, "/v1/jobs", key, t0()).await;
    found.expect("key lookup").map(|k| k.job_id)
}

async fn a_key_is_held_by_one_admitted_job(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "keyed", 100.0);
    let d = s.ledger().admit_with(&req, &keyed("k-1")).await.unwrap();
    assert_eq!(d.verdict, Verdict::Admitted);
    let stored = s
        .ledger()
        .idempotency_key(c, "/v1/jobs", "k-1", t0())
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(stored.job_id, d.job_id);
    assert_eq!(stored.fingerprint, "0f".repeat(32));
    assert_eq!(stored.answer, None, "in flight");

    let again = admit_keyed(s, &req, "k-1").await;
    assert!(
        matches!(again, Err(LedgerError::IdempotencyKeyTaken)),
        "{again:?}"
    );
    assert_eq!(lineage_total(s, c, "keyed").await, 100.0, "one reservation");
    // Another customer, or another route, has keys of its own.
    let other = customer(s).await;
    assert_eq!(
        admit_keyed(s, &job(other, "keyed", 1.0), "k-1")
            .await
            .unwrap(),
        Verdict::Admitted
    );
    let mut elsewhere = job(c, "keyed", 1.0);
    elsewhere.route = "/v1/other".into();
    assert_eq!(
        admit_keyed(s, &elsewhere, "k-1").await.unwrap(),
        Verdict::Admitted
    );

    let answer = IdempotentAnswer {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(b"{\"id\":\"job-1\"}".to_vec()),
    };
    assert!(
        s.ledger()
            .record_idempotent_answer(d.job_id, &answer)
            .await
            .unwrap()
    );
    assert!(
        !s.ledger()
            .record_idempotent_answer(d.job_id, &answer)
            .await
            .unwrap(),
        "answered once"
    );
    let stored = s.ledger().idempotency_key(c, "/v1/jobs", "k-1", t0()).await;
    assert_eq!(stored.unwrap().expect("kept").answer, Some(answer));
}

async fn a_hold_a_denial_or_a_release_gives_the_key_back(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "gap", 100.0);
    let mut options = keyed("held");
    options.hold_for_review = Some("declared estimate far above the hardware".into());
    let d = s.ledger().admit_with(&req, &options).await.unwrap();
    assert!(matches!(d.verdict, Verdict::HeldForReview { .. }), "{d:?}");
    assert_eq!(held_key(s, c, "held").await, None);

    let mut capped = job(c, "capped", 100.0);
    capped.limits.max_flop_per_run = Some(10.0);
    let verdict = admit_keyed(s, &capped, "denied").await.unwrap();
    assert!(matches!(verdict, Verdict::Denied(_)), "{verdict:?}");
    assert_eq!(held_key(s, c, "denied").await, None);

    let released = job(c, "released", 100.0);
    let d = s.ledger().admit_with(&released, &keyed("r")).await.unwrap();
    assert_eq!(held_key(s, c, "r").await, Some(d.job_id));
    s.ledger()
        .release_job(d.job_id, "upstream answered 409", t0())
        .await
        .unwrap();
    assert_eq!(held_key(s, c, "r").await, None, "the job never ran");
    assert_eq!(
        admit_keyed(s, &released, "r").await.unwrap(),
        Verdict::Admitted,
        "the retry is judged anew"
    );
}

async fn expired_keys_are_replaced_and_purged(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let req = job(c, "expiring", 1.0);
    let first = s.ledger().admit_with(&req, &keyed("old")).await.unwrap();
    let later = t0() + DAY + time::Duration::seconds(1);
    let gone = s
        .ledger()
        .idempotency_key(c, "/v1/jobs", "old", later)
        .await;
    assert_eq!(gone.unwrap(), None, "expired keys are not answered");
    let mut retry = req.clone();
    retry.now = later;
    let mut options = keyed("old");
    if let Some(claim) = options.idempotency.as_mut() {
        claim.expires_at = later + DAY;
    }
    let second = s.ledger().admit_with(&retry, &options).await.unwrap();
    assert_ne!(second.job_id, first.job_id);
    let held = s
        .ledger()
        .idempotency_key(c, "/v1/jobs", "old", later)
        .await;
    assert_eq!(held.unwrap().expect("claimed anew").job_id, second.job_id);

    let purged = s
        .ledger()
        .purge_idempotency_keys(later + DAY)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        s.ledger()
            .purge_idempotency_keys(later + DAY)
            .await
            .unwrap(),
        0
    );
}

async fn racing_attempts_of_one_key_reserve_once(ctx: Ctx) {
    const RACERS: usize = 20;
    let s = &ctx.store;
    let c = customer(s).await;
    admitted(s, &job(c, "warmup", 1.0)).await;
    let replica = Store::connect(&ctx.url).await.expect("second pool");
    let start = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let store = if i % 2 == 0 {
            s.clone()
        } else {
            replica.clone()
        };
        let start = start.clone();
        let req = job(c, "raced", 10.0);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            admit_keyed(&store, &req, "same").await
        }));
    }
    let mut admitted_count = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Verdict::Admitted) => admitted_count += 1,
            Err(LedgerError::IdempotencyKeyTaken) => {}
            other => panic!("{other:?}"),
        }
    }
    replica.close().await;
    assert_eq!(admitted_count, 1);
    assert_eq!(lineage_total(s, c, "raced").await, 10.0);
}

crate::store_suite!(
    a_key_is_held_by_one_admitted_job,
    a_hold_a_denial_or_a_release_gives_the_key_back,
    expired_keys_are_replaced_and_purged,
    racing_attempts_of_one_key_reserve_once,
);

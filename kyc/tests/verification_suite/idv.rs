//! IDV webhooks end to end below HTTP: signature, mapping, idempotent recording.

use computegate_kyc::accounts::{CustomerKind, StaffRole};
use computegate_kyc::verification::webhooks::{
    self, DEFAULT_TOLERANCE, IdvEvent, WebhookError, WebhookSecret, WebhookSecrets,
};
use computegate_kyc::verification::{
    IdvOutcome, IdvProvider, IdvRecorded, ScreeningDecision, VerificationError,
};

use crate::fixtures::*;
use crate::support::{Ctx, t0};

async fn webhook_events_are_idempotent(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let app = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0())
        .await
        .unwrap();

    let secret = WebhookSecret::new("whsec_suite");
    let secrets = WebhookSecrets::single(secret.clone());
    let body = serde_json::json!({
        "id": "evt_100",
        "type": "identity.verification_session.verified",
        "data": {"object": {"id": "vs_1", "metadata": {"reference_id": app.id.to_string()}}}
    })
    .to_string();
    let t = t0().unix_timestamp();
    let header = format!(
        "t={t},v1={}",
        webhooks::sign_timestamped(&secret, t, body.as_bytes())
    );
    webhooks::verify_signature(
        IdvProvider::Stripe,
        Some(&header),
        body.as_bytes(),
        &secrets,
        t0(),
        DEFAULT_TOLERANCE,
    )
    .unwrap();
    let Some(webhooks::ParsedWebhook::Outcome(event)) =
        webhooks::parse_event(IdvProvider::Stripe, body.as_bytes()).unwrap()
    else {
        panic!("a Stripe verification carries its outcome")
    };
    assert_eq!(
        s.verification()
            .record_idv_event(&event, t0())
            .await
            .unwrap(),
        IdvRecorded::Recorded
    );
    // The same delivery again (a replay) stores nothing new.
    assert_eq!(
        s.verification()
            .record_idv_event(&event, t0())
            .await
            .unwrap(),
        IdvRecorded::Duplicate
    );
    // A forged one never gets this far.
    let forged = format!("t={t},v1={}", "ab".repeat(32));
    assert_eq!(
        webhooks::verify_signature(
            IdvProvider::Stripe,
            Some(&forged),
            body.as_bytes(),
            &secrets,
            t0(),
            DEFAULT_TOLERANCE
        ),
        Err(WebhookError::BadSignature)
    );
    // Same event id from another provider is a different event.
    let persona = IdvEvent {
        provider: IdvProvider::Persona,
        outcome: IdvOutcome::Failed,
        ..event.clone()
    };
    assert_eq!(
        s.verification()
            .record_idv_event(&persona, t0())
            .await
            .unwrap(),
        IdvRecorded::Recorded
    );
    // Unknown application: refused, nothing stored.
    let stray = IdvEvent {
        application_id: uuid::Uuid::now_v7(),
        event_id: "evt_x".into(),
        ..event
    };
    assert!(matches!(
        s.verification().record_idv_event(&stray, t0()).await,
        Err(VerificationError::NotFound)
    ));
    assert_eq!(
        actions(s, &format!("application:{}", app.id)).await,
        vec![
            "kyc.application.created",
            "kyc.idv.recorded",
            "kyc.idv.recorded"
        ]
    );

    // The latest outcome feeds risk and the case file.
    s.verification()
        .submit_application(&key, &alice, app.id, &rules(), t0())
        .await
        .unwrap();
    s.verification()
        .begin_application_screening(&key, app.id, t0())
        .await
        .unwrap();
    let recorded = s
        .verification()
        .record_application_screening(
            &key,
            app.id,
            &screening(ScreeningDecision::Clear, 0.0),
            Some("GB"),
            &rules(),
            t0(),
        )
        .await
        .unwrap();
    assert!(
        recorded.risk.factors.iter().any(|f| f.code == "idv_failed"),
        "{recorded:?}"
    );
    chain_intact(s).await;
}

/// The durable queue behind Onfido's notices: queued once per delivery, claimed by one worker
/// per lease, retried when told, done or failed for good.
async fn onfido_notices_queue_once_and_claim_once(ctx: Ctx) {
    use computegate_kyc::verification::onfido::{OnfidoNotice, OnfidoResource};
    let s = &ctx.store;
    let check = uuid::Uuid::parse_str("f2302f45-227d-413d-ad61-09ec077a086a").unwrap();
    let notice = OnfidoNotice {
        resource: OnfidoResource::Check,
        id: check,
        event_id: format!("check.completed:{check}"),
    };
    let onfido = IdvProvider::Onfido;
    assert_eq!(
        s.verification()
            .queue_idv_fetch(onfido, &notice, t0())
            .await
            .unwrap(),
        IdvRecorded::Recorded
    );
    assert_eq!(
        s.verification()
            .queue_idv_fetch(onfido, &notice, t0())
            .await
            .unwrap(),
        IdvRecorded::Duplicate
    );
    assert_eq!(
        s.verification().idv_fetch_counts().await.unwrap().pending,
        1
    );

    // Not due before it was received; due at once after.
    let lease = time::Duration::seconds(30);
    let early = t0() - time::Duration::seconds(1);
    assert!(
        s.verification()
            .claim_idv_fetches(early, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = s
        .verification()
        .claim_idv_fetches(t0(), lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (
            claimed[0].resource,
            claimed[0].resource_id,
            claimed[0].attempts
        ),
        (OnfidoResource::Check, check, 0)
    );
    // Another worker finds nothing while the lease runs; after it the row is claimable again.
    assert!(
        s.verification()
            .claim_idv_fetches(t0(), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let after_lease = t0() + lease;
    let again = s
        .verification()
        .claim_idv_fetches(after_lease, lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);

    // A failure that may pass: retried at the given time, attempts counted.
    let retry_at = after_lease + time::Duration::seconds(5);
    s.verification()
        .idv_fetch_failed(
            &again[0],
            "Onfido API answered 503",
            Some(retry_at),
            after_lease,
        )
        .await
        .unwrap();
    assert!(
        s.verification()
            .claim_idv_fetches(retry_at - time::Duration::seconds(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let third = s
        .verification()
        .claim_idv_fetches(retry_at, lease, 10)
        .await
        .unwrap();
    assert_eq!(third[0].attempts, 1);
    s.verification()
        .idv_fetch_done(&third[0], retry_at)
        .await
        .unwrap();
    assert!(
        s.verification()
            .claim_idv_fetches(retry_at + lease, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Done rows keep later replays duplicates.
    assert_eq!(
        s.verification()
            .queue_idv_fetch(onfido, &notice, t0())
            .await
            .unwrap(),
        IdvRecorded::Duplicate
    );

    // A failure that cannot pass: kept as failed, never claimed again.
    let run = OnfidoNotice {
        resource: OnfidoResource::WorkflowRun,
        id: uuid::Uuid::now_v7(),
        event_id: "workflow_run.completed:x".into(),
    };
    s.verification()
        .queue_idv_fetch(onfido, &run, t0())
        .await
        .unwrap();
    let claimed = s
        .verification()
        .claim_idv_fetches(t0(), lease, 10)
        .await
        .unwrap();
    s.verification()
        .idv_fetch_failed(&claimed[0], "Onfido API answered 404 Not Found", None, t0())
        .await
        .unwrap();
    let far = t0() + time::Duration::days(1);
    assert!(
        s.verification()
            .claim_idv_fetches(far, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = s.verification().idv_fetch_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 1));
}

/// A verified outcome is about one person: replacing the person's identity in the application
/// clears it (IDV must be done again); a new phone number or address does not.
async fn an_identity_change_clears_the_idv_outcome(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let app = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0())
        .await
        .unwrap();
    let verified = IdvEvent {
        provider: IdvProvider::Stripe,
        event_id: "evt_verified".into(),
        application_id: app.id,
        outcome: IdvOutcome::Verified,
    };
    s.verification()
        .record_idv_event(&verified, t0())
        .await
        .unwrap();
    let outcome = || async {
        s.verification()
            .application_for_staff(&key, &reviewer, app.id, t0())
            .await
            .unwrap()
            .idv_outcome
    };
    assert_eq!(outcome().await, Some(IdvOutcome::Verified));
    let mut p = individual();
    p.individual.as_mut().unwrap().phone = Some("+44 20 7946 0000".into());
    s.verification()
        .update_draft(&key, &alice, app.id, &p, t0())
        .await
        .unwrap();
    assert_eq!(
        outcome().await,
        Some(IdvOutcome::Verified),
        "contact details only"
    );
    p.individual.as_mut().unwrap().legal_name = Some("Somebody Else".into());
    s.verification()
        .update_draft(&key, &alice, app.id, &p, t0())
        .await
        .unwrap();
    assert_eq!(outcome().await, None, "another person: verify again");
}

crate::store_suite!(
    webhook_events_are_idempotent,
    onfido_notices_queue_once_and_claim_once,
    an_identity_change_clears_the_idv_outcome
);

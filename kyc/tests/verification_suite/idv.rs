//! IDV webhooks end to end below HTTP: signature, mapping, idempotent recording.

use computegate_kyc::accounts::CustomerKind;
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
    let event = webhooks::parse_event(IdvProvider::Stripe, body.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        s.record_idv_event(&event, t0()).await.unwrap(),
        IdvRecorded::Recorded
    );
    // The same delivery again (a replay) stores nothing new.
    assert_eq!(
        s.record_idv_event(&event, t0()).await.unwrap(),
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
        s.record_idv_event(&persona, t0()).await.unwrap(),
        IdvRecorded::Recorded
    );
    // Unknown application: refused, nothing stored.
    let stray = IdvEvent {
        application_id: uuid::Uuid::now_v7(),
        event_id: "evt_x".into(),
        ..event
    };
    assert!(matches!(
        s.record_idv_event(&stray, t0()).await,
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
    s.submit_application(&key, &alice, app.id, &rules(), t0())
        .await
        .unwrap();
    s.begin_application_screening(&key, app.id, t0())
        .await
        .unwrap();
    let recorded = s
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

crate::store_suite!(webhook_events_are_idempotent);

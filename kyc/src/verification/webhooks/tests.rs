use serde_json::json;
use time::macros::datetime;

use super::*;

/// 2030-01-01T00:00:00Z.
const T: i64 = 1_893_456_000;

fn now() -> OffsetDateTime {
    datetime!(2030-01-01 0:00 UTC)
}

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::new(s)
}

fn check(
    provider: IdvProvider,
    header: &str,
    body: &[u8],
    secrets: &WebhookSecrets,
) -> Result<(), WebhookError> {
    verify_signature(
        provider,
        Some(header),
        body,
        secrets,
        now(),
        DEFAULT_TOLERANCE,
    )
}

#[test]
fn fixed_vectors() {
    // Computed once with an independent HMAC implementation and pasted.
    let body = br#"{"id":"evt_1","type":"identity.verification_session.verified"}"#;
    let s = secret("whsec_test_secret");
    let expected = "93abb6e9181a3821e66e0930b348fd1c6d82c42500c6ee918aa46e76b6df2b00";
    assert_eq!(sign_timestamped(&s, T, body), expected);
    let secrets = WebhookSecrets::single(s);
    check(
        IdvProvider::Stripe,
        &format!("t={T},v1={expected}"),
        body,
        &secrets,
    )
    .unwrap();
    check(
        IdvProvider::Persona,
        &format!("t={T},v1={expected}"),
        body,
        &secrets,
    )
    .unwrap();

    let onfido = secret("onfido_token");
    let expected = "6e96a1131246c7b5c516d7184fc9ac99977e60bf36dcffb947accde72357ab83";
    assert_eq!(sign_body(&onfido, br#"{"payload":{}}"#), expected);
    check(
        IdvProvider::Onfido,
        expected,
        br#"{"payload":{}}"#,
        &WebhookSecrets::single(onfido),
    )
    .unwrap();
}

#[test]
fn forged_or_altered_signatures_fail() {
    let s = secret("whsec_a");
    let body = b"{\"a\":1}";
    let sig = sign_timestamped(&s, T, body);
    let secrets = WebhookSecrets::single(s.clone());
    // Body altered.
    assert_eq!(
        check(
            IdvProvider::Stripe,
            &format!("t={T},v1={sig}"),
            b"{\"a\":2}",
            &secrets
        ),
        Err(WebhookError::BadSignature)
    );
    // Timestamp altered (the signature covers it).
    let t2 = T + 1;
    assert_eq!(
        check(
            IdvProvider::Stripe,
            &format!("t={t2},v1={sig}"),
            body,
            &secrets
        ),
        Err(WebhookError::BadSignature)
    );
    // Wrong secret.
    let other = WebhookSecrets::single(secret("whsec_b"));
    assert_eq!(
        check(
            IdvProvider::Stripe,
            &format!("t={T},v1={sig}"),
            body,
            &other
        ),
        Err(WebhookError::BadSignature)
    );
    // Only a v0 (legacy) signature: nothing we accept.
    assert_eq!(
        check(
            IdvProvider::Stripe,
            &format!("t={T},v0={sig}"),
            body,
            &secrets
        ),
        Err(WebhookError::MalformedSignature)
    );
    for bad in ["", "garbage", "t=abc,v1=00", "v1=00", &format!("t={T}")] {
        assert!(
            check(IdvProvider::Stripe, bad, body, &secrets).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        verify_signature(
            IdvProvider::Stripe,
            None,
            body,
            &secrets,
            now(),
            DEFAULT_TOLERANCE
        ),
        Err(WebhookError::MissingSignature)
    );
    // Onfido: a signature of another body.
    let onfido = WebhookSecrets::single(s.clone());
    assert_eq!(
        check(IdvProvider::Onfido, &sign_body(&s, b"x"), body, &onfido),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        check(IdvProvider::Onfido, "zz", body, &onfido),
        Err(WebhookError::MalformedSignature)
    );
}

#[test]
fn tolerance_window() {
    let s = secret("whsec_a");
    let secrets = WebhookSecrets::single(s.clone());
    let body = b"{}";
    for (offset, ok) in [
        (0, true),
        (-300, true),
        (300, true),
        (-301, false),
        (301, false),
    ] {
        let t = T + offset;
        let header = format!("t={t},v1={}", sign_timestamped(&s, t, body));
        let r = check(IdvProvider::Stripe, &header, body, &secrets);
        assert_eq!(r.is_ok(), ok, "{offset}: {r:?}");
        if !ok {
            assert_eq!(r, Err(WebhookError::StaleTimestamp));
        }
    }
}

#[test]
fn signature_work_is_bounded_before_any_mac() {
    let key = secret("whsec_new");
    let body = b"{\"x\":true}";
    let good = sign_timestamped(&key, T, body);
    let secrets = WebhookSecrets::single(key);
    // Up to MAX_SIGNATURES candidates, the valid one last: accepted.
    let mut few = format!("t={T}");
    for _ in 1..MAX_SIGNATURES {
        few.push_str(&format!(",v1={}", "00".repeat(32)));
    }
    few.push_str(&format!(",v1={good}"));
    check(IdvProvider::Stripe, &few, body, &secrets).unwrap();
    // One more, even with a valid one among them: malformed, nothing hashed per entry.
    let many = format!("{few},v1={good}");
    assert_eq!(
        check(IdvProvider::Stripe, &many, body, &secrets),
        Err(WebhookError::MalformedSignature)
    );
    // 470 entries (the reported attack) and an over-long header both fail fast.
    let flood = format!("t={T}{}", format!(",v1={}", "ab".repeat(32)).repeat(470));
    assert_eq!(
        check(IdvProvider::Stripe, &flood, body, &secrets),
        Err(WebhookError::MalformedSignature)
    );
    let long = format!("t={T},v1={good},x={}", "a".repeat(MAX_SIGNATURE_HEADER));
    assert_eq!(
        check(IdvProvider::Persona, &long, body, &secrets),
        Err(WebhookError::MalformedSignature)
    );
    assert_eq!(
        check(IdvProvider::Onfido, &"a".repeat(2000), body, &secrets),
        Err(WebhookError::MalformedSignature)
    );
}

#[test]
fn multiple_signatures_and_rotation() {
    let old = secret("whsec_old");
    let new = secret("whsec_new");
    let body = b"{\"x\":true}";
    let rotating = WebhookSecrets {
        current: new.clone(),
        previous: Some(old.clone()),
    };
    // Signed with the old secret only: still accepted during rotation.
    let by_old = format!("t={T},v1={}", sign_timestamped(&old, T, body));
    check(IdvProvider::Stripe, &by_old, body, &rotating).unwrap();
    assert_eq!(
        check(
            IdvProvider::Stripe,
            &by_old,
            body,
            &WebhookSecrets::single(new.clone())
        ),
        Err(WebhookError::BadSignature)
    );
    // Stripe: several v1 values in one header; one valid suffices.
    let multi = format!(
        "t={T},v1={},v1={}",
        "00".repeat(32),
        sign_timestamped(&new, T, body)
    );
    check(
        IdvProvider::Stripe,
        &multi,
        body,
        &WebhookSecrets::single(new.clone()),
    )
    .unwrap();
    // Persona during rotation: space-separated groups.
    let persona = format!(
        "t={T},v1={} t={T},v1={}",
        sign_timestamped(&old, T, body),
        sign_timestamped(&new, T, body)
    );
    check(
        IdvProvider::Persona,
        &persona,
        body,
        &WebhookSecrets::single(new.clone()),
    )
    .unwrap();
    // Groups disagreeing on the timestamp are refused.
    let split = format!(
        "t={T},v1={} t={},v1=00",
        sign_timestamped(&new, T, body),
        T + 5
    );
    assert_eq!(
        check(IdvProvider::Persona, &split, body, &rotating),
        Err(WebhookError::MalformedSignature)
    );
    // Onfido with rotation.
    check(IdvProvider::Onfido, &sign_body(&old, body), body, &rotating).unwrap();
}

#[test]
fn provider_payloads_map_to_outcomes() {
    let app = Uuid::from_u128(42);
    let stripe = |kind: &str| {
        json!({"id": "evt_9", "type": kind, "data": {"object": {"id": "vs_1",
            "metadata": {"reference_id": app.to_string()}}}})
    };
    let parse = |p, v: serde_json::Value| {
        parse_event(p, v.to_string().as_bytes()).map(|e| {
            e.map(|e| match e {
                ParsedWebhook::Outcome(e) => e,
                ParsedWebhook::Fetch(n) => panic!("not an outcome: {n:?}"),
            })
        })
    };
    let e = parse(
        IdvProvider::Stripe,
        stripe("identity.verification_session.verified"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        e,
        IdvEvent {
            provider: IdvProvider::Stripe,
            event_id: "evt_9".into(),
            application_id: app,
            outcome: IdvOutcome::Verified
        }
    );
    let e = parse(
        IdvProvider::Stripe,
        stripe("identity.verification_session.requires_input"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(e.outcome, IdvOutcome::RequiresInput);
    assert_eq!(
        parse(
            IdvProvider::Stripe,
            stripe("identity.verification_session.processing")
        )
        .unwrap(),
        None
    );

    let persona = |name: &str| {
        json!({"data": {"type": "event", "id": "evt_p", "attributes": {"name": name,
            "payload": {"data": {"type": "inquiry", "id": "inq_1",
                "attributes": {"status": "x", "reference-id": app.to_string()}}}}}})
    };
    for (name, outcome) in [
        ("inquiry.approved", IdvOutcome::Verified),
        ("inquiry.declined", IdvOutcome::Failed),
        ("inquiry.failed", IdvOutcome::Failed),
    ] {
        let e = parse(IdvProvider::Persona, persona(name)).unwrap().unwrap();
        assert_eq!((e.outcome, e.application_id), (outcome, app), "{name}");
    }
    assert_eq!(
        parse(IdvProvider::Persona, persona("inquiry.created")).unwrap(),
        None
    );

    // Onfido's body carries no result: it names the resource to fetch (see `onfido::tests`).
    let onfido = json!({"payload": {"resource_type": "check", "action": "check.completed",
        "object": {"id": app.to_string(), "status": "complete",
            "href": format!("https://api.onfido.com/v3.6/checks/{app}")}}});
    match parse_event(IdvProvider::Onfido, onfido.to_string().as_bytes()) {
        Ok(Some(ParsedWebhook::Fetch(n))) => {
            assert_eq!(n.event_id, format!("check.completed:{app}"))
        }
        other => panic!("{other:?}"),
    }

    // No reference, bad JSON, unknown provider.
    let no_ref = json!({"id": "evt", "type": "identity.verification_session.verified",
        "data": {"object": {}}});
    assert_eq!(
        parse(IdvProvider::Stripe, no_ref),
        Err(WebhookError::MissingReference)
    );
    assert_eq!(
        parse_event(IdvProvider::Stripe, b"not json").map(|_| ()),
        Err(WebhookError::MalformedPayload)
    );
    assert_eq!(
        "acme".parse::<IdvProvider>(),
        Err(WebhookError::UnknownProvider)
    );
    assert_eq!(format!("{:?}", secret("whsec_x")), "WebhookSecret(..)");
}

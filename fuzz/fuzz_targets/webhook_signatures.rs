//! Fuzzes what reaches the control plane before any signature is trusted: the signature headers
//! of IDV webhooks (Stripe, Persona, Onfido) and of usage events (`t=…,v1=…`), and the IDV event
//! bodies. Any header and body must verify or fail with a `WebhookError` — never panic — and a
//! header made with the real secret over the same body must always verify.

#![no_main]

use computegate_kyc::verification::IdvProvider;
use computegate_kyc::verification::webhooks::{
    WebhookSecret, WebhookSecrets, parse_event, sign_timestamped, verify_signature,
    verify_timestamped,
};
use libfuzzer_sys::fuzz_target;

const PROVIDERS: [IdvProvider; 3] = [IdvProvider::Stripe, IdvProvider::Persona, IdvProvider::Onfido];

fuzz_target!(|data: &[u8]| {
    // Header up to the first newline, body after it.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let body = body.get(1..).unwrap_or_default();
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let secrets = WebhookSecrets::single(WebhookSecret::new("whsec_fuzz"));
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .expect("a valid time");
    let tolerance = time::Duration::seconds(300);
    for provider in PROVIDERS {
        let _ = verify_signature(provider, Some(header), body, &secrets, now, tolerance);
        let _ = parse_event(provider, body);
    }
    let _ = verify_timestamped(header, body, &secrets, now, tolerance);
    // The genuine signature over this body verifies, whatever the body.
    let signature = sign_timestamped(&WebhookSecret::new("whsec_fuzz"), 1_800_000_000, body);
    let genuine = format!("t=1800000000,v1={signature}");
    assert!(verify_timestamped(&genuine, body, &secrets, now, tolerance).is_ok());
});

//! Router tests of the usage intake: a signed event for an admitted job is recorded once (a
//! replay is a duplicate); unsigned, forged, malformed and unknown-job events are refused.

use computegate_kyc::ledger::Verdict;
use http::HeaderName;
use serde_json::{Value, json};

use crate::api::metering::fixtures::admit;
use crate::api::test_support::{Api, Call, USAGE_SECRET, post, signature, unix_now};

const PATH: &str = "/computegate/v1/meter/usage";

fn signed(secret: &str, body: &Value) -> Call {
    let body = body.to_string();
    let sig = signature(secret, unix_now(), &body);
    post(PATH)
        .header(HeaderName::from_static(super::SIGNATURE_HEADER), &sig)
        .raw("application/json", body.into_bytes())
}

fn event(job_id: uuid::Uuid, kind: &str, accelerator: &str) -> Value {
    json!({
        "event_id": format!("evt-{}", uuid::Uuid::now_v7().simple()),
        "job_id": job_id,
        "kind": kind,
        "accelerator_seconds": 3600.0,
        "accelerator_type": accelerator,
        "at": "2026-01-02T03:04:05Z",
    })
}

#[tokio::test]
async fn a_signed_event_is_recorded_once() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let decision = admit(&api, c.id, 1e20, None).await;
    assert_eq!(decision.verdict, Verdict::Admitted);
    let started = event(decision.job_id, "started", "h100");
    let answer = api.customer(signed(USAGE_SECRET, &started)).await;
    assert_eq!(answer.ok(200)["status"], "recorded");
    let replay = api.customer(signed(USAGE_SECRET, &started)).await;
    assert_eq!(replay.ok(200)["status"], "duplicate");
    let heartbeat = event(decision.job_id, "heartbeat", "h100");
    let answer = api.customer(signed(USAGE_SECRET, &heartbeat)).await;
    assert_eq!(answer.ok(200)["status"], "recorded");
}

#[tokio::test]
async fn unsigned_forged_malformed_and_unknown_events_are_refused() {
    let api = Api::start().await;
    let job = uuid::Uuid::now_v7();
    let body = event(job, "started", "h100");
    api.customer(post(PATH).json(&body))
        .await
        .problem(401, "bad-signature");
    api.customer(signed("not-our-secret", &body))
        .await
        .problem(401, "bad-signature");
    api.customer(signed(USAGE_SECRET, &json!({"event_id": "x"})))
        .await
        .problem(400, "malformed-body");
    let doc = api
        .customer(signed(USAGE_SECRET, &event(job, "paused", "h100")))
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "kind"
    );
    let doc = api
        .customer(signed(USAGE_SECRET, &event(job, "started", "abacus")))
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "accelerator_type"
    );
    api.customer(signed(USAGE_SECRET, &body))
        .await
        .problem(404, "not-found");
}

//! Router tests of the IDV webhook route: a verified event is recorded once (a replay answers
//! `duplicate`), and every unauthenticated sender is refused 401 without storing anything.

use http::HeaderName;
use serde_json::json;

use crate::api::applications::tests::{draft, individual};
use crate::api::test_support::{Api, STRIPE_SECRET, post, signature, unix_now};

const STRIPE: &str = "/computegate/v1/kyc/webhooks/stripe";

fn event(event_id: &str, application_id: &str) -> String {
    json!({
        "id": event_id,
        "object": "event",
        "type": "identity.verification_session.verified",
        "data": {"object": {"id": "vs_test", "client_reference_id": application_id}}
    })
    .to_string()
}

fn signed(path: &str, sig: &str, body: &str) -> crate::api::test_support::Call {
    post(path)
        .header(HeaderName::from_static("stripe-signature"), sig)
        .raw("application/json", body.as_bytes().to_vec())
}

#[tokio::test]
async fn a_signed_event_is_recorded_once() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let app = draft(&api, &c, &individual("Maria Lindqvist", "SE")).await;
    let body = event("evt_router_1", &app);
    let sig = signature(STRIPE_SECRET, unix_now(), &body);
    let first = api.customer(signed(STRIPE, &sig, &body)).await;
    assert_eq!(first.ok(200)["duplicate"], false);
    assert_eq!(first.body["application_id"], app.as_str());
    let replay = api.customer(signed(STRIPE, &sig, &body)).await;
    assert_eq!(replay.ok(200)["duplicate"], true);
}

#[tokio::test]
async fn unauthenticated_senders_and_unknown_applications_are_refused() {
    let api = Api::start().await;
    let app = uuid::Uuid::now_v7().to_string();
    let body = event("evt_router_2", &app);
    let t = unix_now();
    let good = signature(STRIPE_SECRET, t, &body);
    let refusals = [
        (
            "/computegate/v1/kyc/webhooks/acme",
            good.clone(),
            "unknown provider",
        ),
        (
            "/computegate/v1/kyc/webhooks/persona",
            good.clone(),
            "not configured",
        ),
        (STRIPE, signature("whsec_not_ours", t, &body), "forged"),
        (STRIPE, signature(STRIPE_SECRET, t - 3600, &body), "stale"),
        (STRIPE, "garbage".to_owned(), "malformed"),
    ];
    for (path, sig, what) in refusals {
        let answer = api.customer(signed(path, &sig, &body)).await;
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        answer.problem(401, "bad-signature");
    }
    api.customer(post(STRIPE).raw("application/json", body.clone().into_bytes()))
        .await
        .problem(401, "bad-signature");
    // Genuine, but for no application of ours.
    api.customer(signed(STRIPE, &good, &body))
        .await
        .problem(404, "not-found");
}

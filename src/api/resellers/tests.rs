//! Router tests of the reseller routes: who may call each and their refusals for callers and
//! ids that are not a reseller's (the flows with a KYB-verified reseller, its end customers
//! and their jobs are black-box tests in `tests/resellers.rs`).

use computegate_kyc::accounts::StaffRole;
use computegate_kyc::api_keys::NewApiKey;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::test_support::{Api, get, ip, post};

const END_CUSTOMERS: &str = "/computegate/v1/end-customers";

#[tokio::test]
async fn a_customer_outside_any_reseller_has_no_end_customers() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let identity = json!({"kind": "individual", "individual": {"legal_name": "Ada Lovelace"}});
    api.customer(post(END_CUSTOMERS).bearer(&c.token).json(&identity))
        .await
        .problem(403, "forbidden");
    api.customer(get(END_CUSTOMERS).bearer(&c.token))
        .await
        .problem(403, "forbidden");
    let one = format!("{END_CUSTOMERS}/{}", Uuid::now_v7());
    api.customer(get(&one).bearer(&c.token))
        .await
        .problem(403, "forbidden");
    api.customer(get(&format!("{END_CUSTOMERS}/not-a-uuid")).bearer(&c.token))
        .await
        .problem(404, "not-found");
    api.customer(
        post(END_CUSTOMERS)
            .bearer(&c.token)
            .raw("application/json", b"{".to_vec()),
    )
    .await
    .problem(422, "invalid-request");
    api.customer(get(END_CUSTOMERS))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn registering_with_an_api_key_needs_the_jobs_scope() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let reader = api
        .identity()
        .create_api_key(
            c.id,
            NewApiKey {
                name: "reseller-router-test".into(),
                expires_at: None,
                scopes: vec!["read".into()],
            },
            ip(),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("create key")
        .key;
    api.customer(
        post(END_CUSTOMERS)
            .bearer(&reader)
            .json(&json!({"kind": "individual"})),
    )
    .await
    .problem(403, "scope-missing");
}

#[tokio::test]
async fn staff_mark_only_organizations_that_exist_and_decide_only_known_end_customers() {
    let api = Api::start().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let admin = api.staff_token(StaffRole::Admin).await;
    let org = Uuid::now_v7();
    let mark = format!("/staff/v1/organizations/{org}/reseller");
    api.staff(post(&mark).bearer(&auditor))
        .await
        .problem(403, "forbidden");
    api.staff(post(&mark).bearer(&reviewer))
        .await
        .problem(404, "not-found");
    let list = api
        .staff(get("/staff/v1/resellers?status=flagged").bearer(&auditor))
        .await;
    assert_eq!(list.ok(200)["resellers"], json!([]));
    api.staff(get("/staff/v1/resellers?status=banned").bearer(&auditor))
        .await
        .problem(422, "invalid-request");
    api.staff(get(&format!("/staff/v1/resellers/{org}")).bearer(&auditor))
        .await
        .problem(404, "not-found");
    let reason = json!({"reason": "no pass-through"});
    let suspend = format!("/staff/v1/resellers/{org}/suspend");
    api.staff(post(&suspend).bearer(&auditor).json(&reason))
        .await
        .problem(403, "forbidden");
    api.staff(post(&suspend).bearer(&reviewer).json(&reason))
        .await
        .problem(404, "not-found");
    api.staff(post(&suspend).bearer(&reviewer).json(&json!({})))
        .await
        .problem(422, "invalid-request");
    let end_customer = Uuid::now_v7();
    // Personal data: case readers only (admins are not).
    let case = format!("/staff/v1/end-customers/{end_customer}");
    api.staff(get(&case).bearer(&admin))
        .await
        .problem(403, "forbidden");
    api.staff(get(&case).bearer(&auditor))
        .await
        .problem(404, "not-found");
    let decide = format!("/staff/v1/end-customers/{end_customer}/decision");
    let clear = json!({"decision": "clear", "reason": "not the listed party"});
    api.staff(post(&decide).bearer(&auditor).json(&clear))
        .await
        .problem(403, "forbidden");
    api.staff(post(&decide).bearer(&reviewer).json(&clear))
        .await
        .problem(404, "not-found");
    api.staff(
        post(&decide)
            .bearer(&reviewer)
            .json(&json!({"decision": "maybe", "reason": "x"})),
    )
    .await
    .problem(422, "invalid-request");
}

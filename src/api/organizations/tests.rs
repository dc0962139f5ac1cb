//! Router tests of the organization routes: who may call each, and the refusals of a caller
//! outside any organization (the flows with members are black-box tests in
//! `tests/organizations.rs`).

use computegate_kyc::accounts::StaffRole;
use computegate_kyc::api_keys::NewApiKey;
use http::Method;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::test_support::{Api, Call, get, ip, post};

const INVITATIONS: &str = "/computegate/v1/organization/invitations";

#[tokio::test]
async fn a_customer_outside_any_organization_sees_none_and_cannot_invite() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    api.customer(get("/computegate/v1/organization").bearer(&c.token))
        .await
        .problem(404, "not-found");
    let received = api.customer(get(INVITATIONS).bearer(&c.token)).await;
    assert_eq!(received.ok(200)["invitations"], json!([]));
    let invite = json!({"email": "friend@router.example"});
    api.customer(post(INVITATIONS).bearer(&c.token).json(&invite))
        .await
        .problem(403, "forbidden");
    api.customer(
        post(INVITATIONS)
            .bearer(&c.token)
            .json(&json!({"email": "nope"})),
    )
    .await
    .problem(422, "invalid-request");
    let accept = format!("{INVITATIONS}/{}/accept", Uuid::now_v7());
    let token = json!({"token": "cgi_unknown"});
    api.customer(post(&accept).bearer(&c.token).json(&token))
        .await
        .problem(404, "not-found");
    api.customer(post(&format!("{INVITATIONS}/not-a-uuid/accept")).bearer(&c.token))
        .await
        .problem(404, "not-found");
    let revoke = Call::new(Method::DELETE, &format!("{INVITATIONS}/{}", Uuid::now_v7()));
    api.customer(revoke.bearer(&c.token))
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn api_keys_read_with_the_read_scope_and_never_change_membership() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let key = |scopes: &[&str]| NewApiKey {
        name: "org-router-test".into(),
        expires_at: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    let now = OffsetDateTime::now_utc();
    let jobs_only = api
        .identity()
        .create_api_key(c.id, key(&["jobs"]), ip(), now)
        .await
        .expect("create key")
        .key;
    let reader = api
        .identity()
        .create_api_key(c.id, key(&["read"]), ip(), now)
        .await
        .expect("create key")
        .key;
    api.customer(get("/computegate/v1/organization").bearer(&jobs_only))
        .await
        .problem(403, "scope-missing");
    api.customer(get(INVITATIONS).bearer(&jobs_only))
        .await
        .problem(403, "scope-missing");
    api.customer(get("/computegate/v1/organization").bearer(&reader))
        .await
        .problem(404, "not-found");
    let invite = json!({"email": "friend@router.example"});
    api.customer(post(INVITATIONS).bearer(&reader).json(&invite))
        .await
        .problem(403, "forbidden");
    let accept = format!("{INVITATIONS}/{}/accept", Uuid::now_v7());
    let token = json!({"token": "cgi_unknown"});
    api.customer(post(&accept).bearer(&reader).json(&token))
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn staff_routes_take_their_roles_and_a_reason() {
    let api = Api::start().await;
    let org = Uuid::now_v7();
    let view = format!("/staff/v1/organizations/{org}");
    let remove = format!("{view}/members/{}/remove", Uuid::now_v7());
    let reason = json!({"reason": "left the company"});
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let admin = api.staff_token(StaffRole::Admin).await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    api.staff(get(&view).bearer(&auditor))
        .await
        .problem(404, "not-found");
    api.staff(get(&view).bearer(&admin))
        .await
        .problem(403, "forbidden");
    api.staff(post(&remove).bearer(&auditor).json(&reason))
        .await
        .problem(403, "forbidden");
    api.staff(post(&remove).bearer(&reviewer).json(&json!({})))
        .await
        .problem(422, "invalid-request");
    api.staff(post(&remove).bearer(&reviewer).json(&reason))
        .await
        .problem(404, "not-found");
    api.staff(
        post(&format!("{view}/members/x/remove"))
            .bearer(&reviewer)
            .json(&reason),
    )
    .await
    .problem(404, "not-found");
}

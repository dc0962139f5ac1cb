//! Router tests of the token endpoints: the password grant of customers and staff (one
//! handler), the refresh grant, and their refusals.

use computegate_kyc::accounts::StaffRole;
use serde_json::json;

use crate::api::test_support::{Api, PASSWORD, get, post};

#[tokio::test]
async fn customer_password_grant_issues_uncached_tokens_that_open_the_api() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let grant = json!({"email": c.email, "password": PASSWORD});
    let answer = api
        .customer(post("/computegate/v1/auth/token").json(&grant))
        .await;
    let body = answer.ok(200);
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(answer.no_store(), "{answer:?}");
    let access = body["access_token"].as_str().unwrap();
    let me = api.customer(get("/computegate/v1/me").bearer(access)).await;
    assert_eq!(me.ok(200)["email"], c.email.as_str());
}

#[tokio::test]
async fn password_grant_refusals() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    for path in ["/computegate/v1/auth/token", "/staff/v1/auth/token"] {
        let call = |body: serde_json::Value| post(path).json(&body);
        let wrong = json!({"email": c.email, "password": "not the password at all"});
        let ask = |call| async {
            if path.starts_with("/staff") {
                api.staff(call).await
            } else {
                api.customer(call).await
            }
        };
        ask(call(wrong)).await.problem(401, "unauthenticated");
        let unknown_field = json!({"email": c.email, "password": PASSWORD, "x": 1});
        ask(call(unknown_field))
            .await
            .problem(400, "malformed-body");
        ask(post(path).raw("application/json", b"{".to_vec()))
            .await
            .problem(400, "malformed-body");
    }
    // A customer's password is not a staff user's.
    let grant = json!({"email": c.email, "password": PASSWORD});
    api.staff(post("/staff/v1/auth/token").json(&grant))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn staff_password_grant_issues_a_staff_token() {
    let api = Api::start().await;
    let token = api.staff_token(StaffRole::Reviewer).await;
    let queue = api
        .staff(get("/staff/v1/applications").bearer(&token))
        .await;
    queue.ok(200);
    // A staff token is no customer credential.
    api.customer(get("/computegate/v1/me").bearer(&token))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn staff_logout_revokes_the_token_it_is_called_with() {
    let api = Api::start().await;
    let token = api.staff_token(StaffRole::Reviewer).await;
    let other = api.staff_token(StaffRole::Reviewer).await;
    api.staff(post("/staff/v1/auth/logout").bearer(&token))
        .await
        .ok(204);
    api.staff(get("/staff/v1/applications").bearer(&token))
        .await
        .problem(401, "unauthenticated");
    api.staff(post("/staff/v1/auth/logout").bearer(&token))
        .await
        .problem(401, "unauthenticated");
    // Another session of the same staff user goes on.
    api.staff(get("/staff/v1/applications").bearer(&other))
        .await
        .ok(200);
    api.staff(post("/staff/v1/auth/logout"))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn refresh_rotates_once_and_a_reuse_revokes_the_session() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let body = json!({"refresh_token": c.refresh});
    let first = api
        .customer(post("/computegate/v1/auth/refresh").json(&body))
        .await;
    let next = first.ok(200)["refresh_token"].as_str().unwrap().to_owned();
    assert!(first.no_store());
    assert_ne!(next, c.refresh);
    let reuse = api
        .customer(post("/computegate/v1/auth/refresh").json(&body))
        .await;
    reuse.problem(401, "unauthenticated");
    // The whole family is gone: the successor is refused too.
    let successor = json!({"refresh_token": next});
    api.customer(post("/computegate/v1/auth/refresh").json(&successor))
        .await
        .problem(401, "unauthenticated");
    let unknown = json!({"refresh_token": "rt_nope"});
    api.customer(post("/computegate/v1/auth/refresh").json(&unknown))
        .await
        .problem(401, "unauthenticated");
    api.customer(post("/computegate/v1/auth/refresh").json(&json!({})))
        .await
        .problem(400, "malformed-body");
}

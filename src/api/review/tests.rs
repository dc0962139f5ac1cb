//! Router tests of the staff review API: every route's happy path, and its refusals — no or a
//! customer's credential, a role that may not (audited as `kyc.staff_action.refused`), bad
//! bodies and queries, unknown ids.

use computegate_kyc::accounts::StaffRole;
use http::header;
use serde_json::{Value, json};

use crate::api::applications::tests::{draft, individual, upload_passport};
use crate::api::test_support::{Api, Customer, get, post};

/// A customer's application, submitted and screened (`pending_review`), with its passport.
struct Case {
    customer: Customer,
    app: String,
    document: String,
}

async fn case(api: &Api, payload: &Value) -> Case {
    let customer = api.new_customer().await;
    let app = draft(api, &customer, payload).await;
    let document = upload_passport(api, &customer, &app).await;
    let path = format!("/computegate/v1/kyc/applications/{app}/submit");
    let view = api.customer(post(&path).bearer(&customer.token)).await;
    assert_eq!(view.ok(200)["status"], "pending_review");
    Case {
        customer,
        app,
        document,
    }
}

async fn refused_actions(api: &Api, admin: &str) -> Vec<Value> {
    let page = api
        .staff(get("/staff/v1/audit?action=kyc.staff_action.refused").bearer(admin))
        .await;
    page.ok(200)["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_case_is_queued_read_claimed_decided_and_its_document_downloaded() {
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let maria = case(&api, &individual("Maria Lindqvist", "SE")).await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;

    let queue = api
        .staff(get("/staff/v1/applications").bearer(&reviewer))
        .await;
    let body = queue.ok(200);
    assert!(queue.no_store());
    assert_eq!(body["count"], 1, "{body}");
    let filtered = api
        .staff(get("/staff/v1/applications?country=SE&status=pending_review").bearer(&reviewer))
        .await;
    assert_eq!(filtered.ok(200)["count"], 1);

    let path = format!("/staff/v1/applications/{}", maria.app);
    let file = api.staff(get(&path).bearer(&reviewer)).await;
    assert_eq!(file.ok(200)["status"], "pending_review");
    assert!(file.no_store());

    let claim = api
        .staff(post(&format!("{path}/claim")).bearer(&reviewer))
        .await;
    assert!(claim.ok(200)["claimed_by"].is_string());
    let unclaim = api
        .staff(post(&format!("{path}/unclaim")).bearer(&reviewer))
        .await;
    assert_eq!(unclaim.ok(200)["claimed_by"], Value::Null);
    api.staff(post(&format!("{path}/claim")).bearer(&reviewer))
        .await
        .ok(200);

    // No IDV outcome on file: the policy's `requires` refuses the approval, naming it.
    let bare =
        json!({"action": "approve", "tier": "identity_verified", "reason": "documents check out"});
    let refused = api
        .staff(
            post(&format!("{path}/decision"))
                .bearer(&reviewer)
                .json(&bare),
        )
        .await;
    let doc = refused.problem(422, "evidence-missing");
    assert_eq!(doc["missing_evidence"], json!(["idv_verified"]), "{doc}");
    let approve = json!({"action": "approve", "tier": "identity_verified",
        "reason": "documents check out",
        "manual_checks": [{"evidence": "idv_verified", "note": "passport checked by hand"}]});
    let decided = api
        .staff(
            post(&format!("{path}/decision"))
                .bearer(&reviewer)
                .json(&approve),
        )
        .await;
    let body = decided.ok(200);
    assert_eq!(body["status"], "approved", "{body}");
    assert_eq!(body["granted_tier"], "identity_verified", "{body}");
    let me = api
        .customer(get("/computegate/v1/me").bearer(&maria.customer.token))
        .await;
    assert_eq!(me.ok(200)["tier"], "identity_verified");

    let doc = api
        .staff(get(&format!("/staff/v1/documents/{}", maria.document)).bearer(&reviewer))
        .await;
    doc.ok(200);
    let pdf = std::fs::read(crate::api::test_support::data("passport.pdf")).unwrap();
    assert_eq!(doc.bytes, pdf);
    assert_eq!(
        doc.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/pdf"
    );
    assert!(doc.no_store());
    assert_eq!(
        doc.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
        "nosniff"
    );
}

#[tokio::test]
async fn a_screening_hit_is_overridden_with_a_reason() {
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    // The listed person (name and date of birth of `csl.csv`): a screening hit.
    let mut listed = individual("Viktor Kalashov", "CY");
    listed["individual"]["date_of_birth"] = json!("1971-03-14");
    let viktor = case(&api, &listed).await;
    let file = api
        .staff(
            get(&format!("/staff/v1/applications/{}", viktor.app))
                .bearer(&api.staff_token(StaffRole::Reviewer).await),
        )
        .await;
    assert_eq!(file.ok(200)["screening"]["decision"], "hit");
    // Ruling out a hit needs a senior reviewer; a reviewer's attempt is refused and audited.
    let path = format!("/staff/v1/applications/{}/screening-override", viktor.app);
    let junior = api.staff_token(StaffRole::Reviewer).await;
    api.staff(
        post(&path)
            .bearer(&junior)
            .json(&json!({"reason": "not him"})),
    )
    .await
    .problem(403, "forbidden");
    let reviewer = api.staff_token(StaffRole::SeniorReviewer).await;
    api.staff(post(&path).bearer(&reviewer).json(&json!({})))
        .await
        .problem(422, "invalid-request");
    api.staff(post(&path).bearer(&reviewer).json(&json!({"why": "x"})))
        .await
        .problem(400, "malformed-body");
    let done = api
        .staff(
            post(&path)
                .bearer(&reviewer)
                .json(&json!({"reason": "different date of birth"})),
        )
        .await;
    assert_eq!(done.ok(200)["screening_overridden"], true);
    // Once overridden, a second override is not allowed in that state.
    api.staff(
        post(&path)
            .bearer(&reviewer)
            .json(&json!({"reason": "again"})),
    )
    .await
    .problem(409, "invalid-state");
}

#[tokio::test]
async fn customers_are_suspended_resumed_and_closed_by_the_roles_allowed() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let admin = api.staff_token(StaffRole::Admin).await;
    let base = format!("/staff/v1/customers/{}", c.id);
    let reason = json!({"reason": "chargeback fraud"});

    let suspended = api
        .staff(
            post(&format!("{base}/suspend"))
                .bearer(&reviewer)
                .json(&reason),
        )
        .await;
    assert_eq!(suspended.ok(200)["status"], "suspended");
    // The data plane's caches heard it: the customer's token is refused at once.
    api.customer(get("/computegate/v1/me").bearer(&c.token))
        .await
        .problem(403, "forbidden");
    // A reviewer may not resume; the attempt is audited.
    api.staff(
        post(&format!("{base}/resume"))
            .bearer(&reviewer)
            .json(&reason),
    )
    .await
    .problem(403, "forbidden");
    let refused = refused_actions(&api, &admin).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["detail"]["attempted"], "resume");
    let resumed = api
        .staff(post(&format!("{base}/resume")).bearer(&admin).json(&reason))
        .await;
    assert_eq!(resumed.ok(200)["status"], "active");
    let closed = api
        .staff(post(&format!("{base}/close")).bearer(&admin).json(&reason))
        .await;
    assert_eq!(closed.ok(200)["status"], "closed");

    api.staff(
        post(&format!("{base}/suspend"))
            .bearer(&admin)
            .json(&json!({})),
    )
    .await
    .problem(422, "invalid-request");
    api.staff(
        post("/staff/v1/customers/nope/suspend")
            .bearer(&admin)
            .json(&reason),
    )
    .await
    .problem(404, "not-found");
    let unknown = uuid::Uuid::now_v7();
    api.staff(
        post(&format!("/staff/v1/customers/{unknown}/suspend"))
            .bearer(&admin)
            .json(&reason),
    )
    .await
    .problem(404, "not-found");
}

#[tokio::test]
async fn an_auditor_may_read_but_not_act_and_each_refusal_is_audited() {
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let maria = case(&api, &individual("Maria Lindqvist", "SE")).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let path = format!("/staff/v1/applications/{}", maria.app);
    api.staff(get(&path).bearer(&auditor)).await.ok(200);
    api.staff(post(&format!("{path}/claim")).bearer(&auditor))
        .await
        .problem(403, "forbidden");
    let approve = json!({"action": "approve", "tier": "identity_verified", "reason": "ok"});
    api.staff(
        post(&format!("{path}/decision"))
            .bearer(&auditor)
            .json(&approve),
    )
    .await
    .problem(403, "forbidden");
    let refused = refused_actions(&api, &auditor).await;
    let attempted: Vec<&str> = refused
        .iter()
        .map(|r| r["detail"]["attempted"].as_str().unwrap())
        .collect();
    assert_eq!(attempted, ["claim", "decide"], "{refused:?}");
}

#[tokio::test]
async fn review_routes_refuse_missing_or_customer_credentials_and_unknown_ids() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let id = uuid::Uuid::now_v7();
    let paths_get = [
        "/staff/v1/applications".to_owned(),
        format!("/staff/v1/applications/{id}"),
        format!("/staff/v1/documents/{id}"),
        "/staff/v1/audit".to_owned(),
    ];
    let paths_post = [
        format!("/staff/v1/applications/{id}/claim"),
        format!("/staff/v1/applications/{id}/unclaim"),
        format!("/staff/v1/applications/{id}/decision"),
        format!("/staff/v1/applications/{id}/screening-override"),
        format!("/staff/v1/customers/{id}/suspend"),
        format!("/staff/v1/customers/{id}/resume"),
        format!("/staff/v1/customers/{id}/close"),
    ];
    for path in &paths_get {
        api.staff(get(path)).await.problem(401, "unauthenticated");
        api.staff(get(path).bearer(&c.token))
            .await
            .problem(401, "unauthenticated");
    }
    for path in &paths_post {
        api.staff(post(path).json(&json!({"reason": "x"})))
            .await
            .problem(401, "unauthenticated");
        api.staff(post(path).bearer(&c.token).json(&json!({"reason": "x"})))
            .await
            .problem(401, "unauthenticated");
    }
    for path in [
        format!("/staff/v1/applications/{id}"),
        "/staff/v1/applications/not-a-uuid".to_owned(),
        format!("/staff/v1/documents/{id}"),
    ] {
        api.staff(get(&path).bearer(&reviewer))
            .await
            .problem(404, "not-found");
    }
    for path in [
        format!("/staff/v1/applications/{id}/claim"),
        format!("/staff/v1/applications/{id}/unclaim"),
    ] {
        api.staff(post(&path).bearer(&reviewer))
            .await
            .problem(404, "not-found");
    }
    let approve = json!({"action": "approve", "tier": "identity_verified", "reason": "ok"});
    let decision = format!("/staff/v1/applications/{id}/decision");
    api.staff(post(&decision).bearer(&reviewer).json(&approve))
        .await
        .problem(404, "not-found");
    let doc = api
        .staff(
            post(&decision)
                .bearer(&reviewer)
                .json(&json!({"reason": "ok"})),
        )
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "action"
    );
    api.staff(
        post(&decision)
            .bearer(&reviewer)
            .raw("application/json", b"[".to_vec()),
    )
    .await
    .problem(400, "malformed-body");
    api.staff(get("/staff/v1/applications?min_risk=101").bearer(&reviewer))
        .await
        .problem(422, "invalid-request");
    api.staff(get("/staff/v1/applications?colour=red").bearer(&reviewer))
        .await
        .problem(422, "invalid-request");
}

#[tokio::test]
async fn the_audit_chain_is_for_auditors_and_admins() {
    let api = Api::start().await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let c = api.new_customer().await;
    let suspend = format!("/staff/v1/customers/{}/suspend", c.id);
    let reason = json!({"reason": "fraud"});
    api.staff(post(&suspend).bearer(&reviewer).json(&reason))
        .await
        .ok(200);
    let page = api
        .staff(get("/staff/v1/audit?limit=5").bearer(&auditor))
        .await;
    let body = page.ok(200);
    assert!(!body["records"].as_array().unwrap().is_empty(), "{body}");
    assert!(page.no_store());
    // Walking the chain one record at a time by cursor reads every record once, in order.
    let whole = api
        .staff(get("/staff/v1/audit").bearer(&auditor))
        .await
        .ok(200)
        .clone();
    assert_eq!(whole["next"], Value::Null);
    let mut seqs = Vec::new();
    let mut path = "/staff/v1/audit?limit=1".to_owned();
    while seqs.len() <= whole["records"].as_array().unwrap().len() {
        let page = api.staff(get(&path).bearer(&auditor)).await.ok(200).clone();
        seqs.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/staff/v1/audit?limit=1&cursor={next}"),
            None => break,
        }
    }
    let all: Vec<Value> = (whole["records"].as_array().unwrap().iter())
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(seqs, all);
    api.staff(get("/staff/v1/audit?cursor=LTE").bearer(&auditor))
        .await
        .problem(400, "bad-cursor");
    api.staff(get("/staff/v1/audit").bearer(&reviewer))
        .await
        .problem(403, "forbidden");
    let doc = api
        .staff(get("/staff/v1/audit?since=yesterday").bearer(&auditor))
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "since"
    );
}

//! Router tests of the staff metering API: runs, reports (list, export, filed), job reviews
//! (list, decision) and group links; each route's happy path and its refusals (no or a
//! customer's credential, an auditor where acting is needed, bad queries and bodies, unknown
//! ids).

use computegate_kyc::accounts::StaffRole;
use computegate_kyc::ledger::Verdict;
use serde_json::json;

use super::fixtures::admit;
use crate::api::test_support::{Api, get, post};

#[tokio::test]
async fn runs_reports_and_exports_are_listed_for_any_staff_role() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let decision = admit(&api, c.id, 2e25, None).await;
    assert_eq!(decision.verdict, Verdict::Admitted, "{decision:?}");
    assert_eq!(decision.report_ids.len(), 1, "{decision:?}");
    let auditor = api.staff_token(StaffRole::Auditor).await;

    let runs = api
        .staff(get(&format!("/staff/v1/runs?customer_id={}", c.id)).bearer(&auditor))
        .await;
    assert_eq!(runs.ok(200)["runs"].as_array().unwrap().len(), 1);
    let reports = api
        .staff(get("/staff/v1/reports?status=due").bearer(&auditor))
        .await;
    let list = reports.ok(200)["reports"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");

    let export = api
        .staff(get("/staff/v1/reports/export?kind=training-runs&since=2020-01-01").bearer(&auditor))
        .await;
    export.ok(200);
    assert!(!export.bytes.is_empty());
    let audited = api
        .staff(get("/staff/v1/audit?action=ledger.reports.exported").bearer(&auditor))
        .await;
    assert_eq!(audited.ok(200)["records"].as_array().unwrap().len(), 1);

    for bad in [
        "/staff/v1/runs?limit=many",
        "/staff/v1/reports?status=late",
        "/staff/v1/job-reviews?status=maybe",
        "/staff/v1/reports/export?kind=everything&since=2020-01-01",
        "/staff/v1/reports/export?kind=training-runs&since=soon",
        "/staff/v1/reports/export?kind=training-runs&since=2020-01-01&format=xml",
    ] {
        api.staff(get(bad).bearer(&auditor))
            .await
            .problem(422, "invalid-request");
    }
}

#[tokio::test]
async fn a_due_report_is_marked_filed_once_by_an_acting_role() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let decision = admit(&api, c.id, 2e25, None).await;
    let report = decision.report_ids[0];
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let path = format!("/staff/v1/reports/{report}/filed");
    let body = json!({"reference": "EU-AIO-2026-0001"});
    api.staff(post(&path).bearer(&auditor).json(&body))
        .await
        .problem(403, "forbidden");
    api.staff(post(&path).bearer(&reviewer).json(&json!({})))
        .await
        .problem(400, "malformed-body");
    let filed = api.staff(post(&path).bearer(&reviewer).json(&body)).await;
    assert_eq!(filed.ok(200)["filing_reference"], "EU-AIO-2026-0001");
    api.staff(post(&path).bearer(&reviewer).json(&body))
        .await
        .problem(409, "conflict");
    let unknown = format!("/staff/v1/reports/{}/filed", uuid::Uuid::now_v7());
    api.staff(post(&unknown).bearer(&reviewer).json(&body))
        .await
        .problem(404, "not-found");
    api.staff(
        post("/staff/v1/reports/nope/filed")
            .bearer(&reviewer)
            .json(&body),
    )
    .await
    .problem(404, "not-found");
}

#[tokio::test]
async fn a_held_job_is_listed_and_its_review_decided_once() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let decision = admit(&api, c.id, 1e20, Some("router test")).await;
    let Verdict::HeldForReview { review_id } = decision.verdict else {
        panic!("expected a hold: {decision:?}");
    };
    let reviewer = api.staff_token(StaffRole::SeniorReviewer).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let pending = api
        .staff(get("/staff/v1/job-reviews?status=pending").bearer(&auditor))
        .await;
    assert_eq!(pending.ok(200)["reviews"].as_array().unwrap().len(), 1);

    let path = format!("/staff/v1/job-reviews/{review_id}/decision");
    let approve = json!({"action": "approve", "reason": "lab partner, verified"});
    api.staff(post(&path).bearer(&auditor).json(&approve))
        .await
        .problem(403, "forbidden");
    let doc = api
        .staff(
            post(&path)
                .bearer(&reviewer)
                .json(&json!({"action": "maybe", "reason": "x"})),
        )
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "action"
    );
    let decided = api
        .staff(post(&path).bearer(&reviewer).json(&approve))
        .await;
    assert_eq!(decided.ok(200)["status"], "approved");
    api.staff(post(&path).bearer(&reviewer).json(&approve))
        .await
        .problem(409, "conflict");
    let unknown = format!("/staff/v1/job-reviews/{}/decision", uuid::Uuid::now_v7());
    api.staff(post(&unknown).bearer(&reviewer).json(&approve))
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn accounts_are_linked_and_unlinked_by_an_acting_role() {
    let api = Api::start().await;
    let a = api.new_customer().await;
    let b = api.new_customer().await;
    let admin = api.staff_token(StaffRole::Admin).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let link = json!({"customer_a": a.id, "customer_b": b.id, "reason": "same payment card"});
    api.staff(post("/staff/v1/groups/link").bearer(&auditor).json(&link))
        .await
        .problem(403, "forbidden");
    api.staff(
        post("/staff/v1/groups/link")
            .bearer(&admin)
            .json(&json!({"customer_a": a.id})),
    )
    .await
    .problem(400, "malformed-body");
    let unknown = json!({"customer_a": a.id, "customer_b": uuid::Uuid::now_v7(), "reason": "x"});
    api.staff(post("/staff/v1/groups/link").bearer(&admin).json(&unknown))
        .await
        .problem(404, "not-found");
    let linked = api
        .staff(post("/staff/v1/groups/link").bearer(&admin).json(&link))
        .await;
    linked.ok(200);

    let unlink = json!({"customer_id": b.id, "reason": "different people after all"});
    api.staff(
        post("/staff/v1/groups/unlink")
            .bearer(&auditor)
            .json(&unlink),
    )
    .await
    .problem(403, "forbidden");
    api.staff(
        post("/staff/v1/groups/unlink")
            .bearer(&admin)
            .json(&json!({})),
    )
    .await
    .problem(400, "malformed-body");
    let left = api
        .staff(post("/staff/v1/groups/unlink").bearer(&admin).json(&unlink))
        .await;
    assert!(left.ok(200)["left_group"].is_string(), "{left:?}");
}

#[tokio::test]
async fn metering_routes_refuse_missing_or_customer_credentials() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let id = uuid::Uuid::now_v7();
    for path in [
        "/staff/v1/runs",
        "/staff/v1/reports",
        "/staff/v1/reports/export?kind=training-runs&since=2020-01-01",
        "/staff/v1/job-reviews",
    ] {
        api.staff(get(path)).await.problem(401, "unauthenticated");
        api.staff(get(path).bearer(&c.token))
            .await
            .problem(401, "unauthenticated");
    }
    for path in [
        format!("/staff/v1/reports/{id}/filed"),
        format!("/staff/v1/job-reviews/{id}/decision"),
        "/staff/v1/groups/link".to_owned(),
        "/staff/v1/groups/unlink".to_owned(),
    ] {
        api.staff(post(&path).json(&json!({})))
            .await
            .problem(401, "unauthenticated");
        api.staff(post(&path).bearer(&c.token).json(&json!({})))
            .await
            .problem(401, "unauthenticated");
    }
}

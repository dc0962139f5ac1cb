//! Staff conflicts of interest through the real binary: a reviewer whose staff email is also a
//! customer account's may neither approve that customer's held job, unlink it from its group nor
//! close its job (403, recorded as `kyc.staff_action.refused`), while a reviewer tied to nobody may. SQLite and
//! PostgreSQL.

mod support;

use serde_json::{Value, json};

use support::identity::{login, new_account};
use support::metering::{Backend, Cust, Meter, job, policy, threshold, tiers};
use support::{TEST_TIMEOUT, expect_problem, within};

/// No caps; a run past 1e20 FLOP is held for review.
fn review_policy() -> String {
    let review = threshold("test-review-1e20", 1e20, &["run"], &["report", "review"]);
    policy("conflicts.1", &tiers(&[]), &review)
}

/// The refusals recorded in the audit chain for `subject`.
async fn refusals(m: &Meter, auditor: &str, subject: &str) -> Vec<Value> {
    let path = format!("/staff/v1/audit?action=kyc.staff_action.refused&subject={subject}");
    m.staff_list(auditor, &path, "records").await
}

async fn tied_reviewers_are_refused(backend: Backend) {
    let m = Meter::start(backend, Some(&review_policy())).await;
    let auditor = m.staff("auditor").await;
    // The customer, and a reviewer who signs in to the staff API with the same email.
    let account = new_account(&m.http, &m.gw).await;
    let tokens = login(&m.http, &m.gw, &account).await;
    let own = Cust {
        id: account.customer_id.clone(),
        access: tokens.access,
    };
    let tied = m
        .staff_with_email("reviewer", &account.email.to_lowercase())
        .await;
    let other = m.staff("reviewer").await;

    // 72 H100-hours pass the review threshold: held.
    let big = job("h100", 72, 1.0, "own-run");
    let doc = expect_problem(m.submit(&own, &big).await, 409, "job-held-for-review").await;
    let review_id = doc["review_id"].as_str().expect("review_id").to_owned();
    let decide = format!("/staff/v1/job-reviews/{review_id}/decision");
    let approve = json!({"action": "approve", "reason": "looks fine to me"});
    let refused = expect_problem(
        m.staff_post(&tied, &decide, &approve).await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tied")),
        "{refused}"
    );
    let audited = refusals(&m, &auditor, &format!("job_review:{review_id}")).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(
        audited[0]["detail"]["attempted"], "job_review.decide",
        "{audited:?}"
    );

    // Linked to another account, the tied reviewer may not take it out of the group either.
    let partner = m.customer().await;
    let link = json!({"customer_a": own.id, "customer_b": partner.id, "reason": "shared card"});
    let resp = m.staff_post(&tied, "/staff/v1/groups/link", &link).await;
    expect_problem(resp, 403, "forbidden").await;
    let resp = m.staff_post(&other, "/staff/v1/groups/link", &link).await;
    assert_eq!(resp.status(), 200, "link by an untied reviewer: {resp:?}");
    let unlink = json!({"customer_id": own.id, "reason": "my own account, really"});
    let resp = m
        .staff_post(&tied, "/staff/v1/groups/unlink", &unlink)
        .await;
    expect_problem(resp, 403, "forbidden").await;
    let audited = refusals(&m, &auditor, &format!("customer:{}", own.id)).await;
    let attempted: Vec<&str> = audited
        .iter()
        .filter_map(|e| e["detail"]["attempted"].as_str())
        .collect();
    assert!(attempted.contains(&"group.unlink"), "{audited:?}");
    assert!(attempted.contains(&"group.link"), "{audited:?}");

    // The untied reviewer decides and unlinks.
    let resp = m.staff_post(&other, &decide, &approve).await;
    assert_eq!(
        resp.status(),
        200,
        "approve by an untied reviewer: {resp:?}"
    );
    let resp = m
        .staff_post(&other, "/staff/v1/groups/unlink", &unlink)
        .await;
    assert_eq!(resp.status(), 200, "unlink by an untied reviewer: {resp:?}");
    // Nor close the customer's running job; the untied reviewer may.
    let small = job("h100", 1, 0.1, "own-small");
    let resp = m.submit(&own, &small).await;
    assert!(resp.status().is_success(), "small job admitted: {resp:?}");
    let path = format!("/staff/v1/jobs?customer_id={}&status=reserved", own.id);
    let jobs = m.staff_list(&auditor, &path, "jobs").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let close = format!(
        "/staff/v1/jobs/{}/close",
        jobs[0]["id"].as_str().expect("job id")
    );
    let reason = json!({"reason": "stuck"});
    let resp = m.staff_post(&tied, &close, &reason).await;
    expect_problem(resp, 403, "forbidden").await;
    let audited = refusals(
        &m,
        &auditor,
        &format!("job:{}", jobs[0]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        audited[0]["detail"]["attempted"], "job.close",
        "{audited:?}"
    );
    let resp = m.staff_post(&other, &close, &reason).await;
    assert_eq!(resp.status(), 200, "close by an untied reviewer: {resp:?}");

    // The tied reviewer may act on customers it is not tied to.
    let stranger = m.customer().await;
    let link = json!({"customer_a": stranger.id, "customer_b": partner.id, "reason": "same IP"});
    let resp = m.staff_post(&tied, "/staff/v1/groups/link", &link).await;
    assert_eq!(resp.status(), 200, "link of strangers: {resp:?}");
}

#[tokio::test]
async fn a_reviewer_may_not_act_on_their_own_customer_account() {
    within(TEST_TIMEOUT, tied_reviewers_are_refused(Backend::Sqlite)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn a_reviewer_may_not_act_on_their_own_customer_account_on_postgres() {
    within(TEST_TIMEOUT, tied_reviewers_are_refused(Backend::Postgres)).await;
}

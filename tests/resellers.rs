//! Resellers through the real binary: staff mark a KYB-verified organization as reseller (only
//! such organizations, once); its owner registers end customers, screened at once (two
//! cleared, one a denied-party hit and suspended alone); a job naming a cleared end customer —
//! in `X-Computegate-End-Customer` or in the body — is admitted, forwarded with the verified
//! end customer and metered, thresholded and reported as that end customer's, not the
//! reseller's; a job naming none, an unknown one, another reseller's or the suspended one is
//! refused with its own problem type, and a non-reseller may not name one; the refused share
//! crossing the policy's pass-through rule flags the reseller (staff queue, audit); staff
//! suspension refuses all its jobs (another reseller's still run) until it is resumed; an end
//! customer in the screening review band is refused until a reviewer reads and clears it; a list
//! update naming a cleared end customer suspends that one alone.
//!
//! Test policy (`E` = one H100-hour ≈ 1.42e18 FLOP): `test-ec-1e19` (1e19 ≈ 7.0 E, customer
//! scope, notify + report); `[resellers] max_refused_share = 0.5, min_jobs = 7, window = "1h"`.
//!
//! SQLite; the `_on_postgres` variant runs the same body on PostgreSQL with Redis.

mod support;

use std::path::Path;
use std::time::Duration;

use computegate_gateway::ownership::OWNER_TTL;

use serde_json::{Value, json};

use support::metering::{
    Backend, Cust, END_CUSTOMERS, Meter, assert_flop, h100_flop, job, mark_reseller,
    organization_of, person, policy, register, registered, reseller, stranger, threshold, tiers,
};
use support::{TEST_TIMEOUT, TempDir, expect_problem, within};

fn reseller_policy() -> String {
    let report = threshold("test-ec-1e19", 1e19, &["customer"], &["notify", "report"]);
    policy("resellers.1", &tiers(&[]), &report)
        .replace("max_refused_share = 0.2", "max_refused_share = 0.5")
        .replace("min_jobs = 20", "min_jobs = 7")
        .replace("window = \"24h\"\nmin_jobs", "window = \"1h\"\nmin_jobs")
}

/// `POST /v1/jobs` as `c` with `end_customer` in `X-Computegate-End-Customer`.
async fn submit_for(m: &Meter, c: &Cust, end_customer: &str, body: &Value) -> reqwest::Response {
    m.http
        .post(m.gw.url("/v1/jobs"))
        .header("authorization", format!("Bearer {}", c.access))
        .header("x-computegate-end-customer", end_customer)
        .json(body)
        .send()
        .await
        .expect("send job")
}

async fn flagged(m: &Meter, staff: &str) -> Vec<String> {
    m.staff_list(staff, "/staff/v1/resellers?status=flagged", "resellers")
        .await
        .iter()
        .map(|r| r["organization_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn audit_actions(m: &Meter, auditor: &str, subject: &str) -> Vec<String> {
    let path = format!("/staff/v1/audit?subject={subject}&limit=100");
    m.staff_list(auditor, &path, "records")
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The test configuration with the job paths of the `api` route owner-checked.
fn owner_checked(config: String) -> String {
    let guarded = config.replace(
        "name = \"api\"\n",
        "name = \"api\"\nowner_path = \"/v1/jobs/{id}\"\n",
    );
    assert_ne!(guarded, config, "the api route is owner-checked");
    guarded
}

async fn resellers_end_to_end(backend: Backend) {
    let m = Meter::start_edited(backend, Some(&reseller_policy()), owner_checked).await;
    m.import_screening_list();
    let reviewer = m.staff("reviewer").await;
    let auditor = m.staff("auditor").await;

    // Staff mark a KYB-verified organization, once; an unknown organization is not found.
    let (owner, _) = m
        .verified_organization(&reviewer, "Helios Reselling AB")
        .await;
    let org = organization_of(&m, &owner).await;
    let resp = register(&m, &owner, &stranger("Astrid Lindqvist")).await;
    expect_problem(resp, 403, "forbidden").await;
    let resp = mark_reseller(&m, &reviewer, &org).await;
    assert_eq!(resp.status(), 201, "mark: {resp:?}");
    let doc: Value = resp.json().await.expect("reseller JSON");
    assert_eq!(doc["status"], "active", "{doc}");
    let resp = mark_reseller(&m, &reviewer, &org).await;
    expect_problem(resp, 409, "conflict").await;
    let unknown = format!("/staff/v1/organizations/{}/reseller", uuid::Uuid::new_v4());
    let resp = m.staff_post(&reviewer, &unknown, &json!({})).await;
    expect_problem(resp, 404, "not-found").await;

    // End customers, screened at once: two cleared, one a denied-party hit.
    let alice = registered(&m, &owner, &stranger("Astrid Lindqvist"), "cleared").await;
    let bob = registered(&m, &owner, &stranger("Bengt Karlsson"), "cleared").await;
    let listed = person("Viktor Mendrovich Kalashov", "1971-03-14", "CY", "K1234567");
    let hit = registered(&m, &owner, &listed, "refused").await;
    let resp = register(&m, &owner, &json!({"kind": "individual", "individual": {}})).await;
    assert_eq!(resp.status(), 422, "incomplete identity: {resp:?}");
    // The same person again (another passport; name, birth date and nationality the same):
    // 200 with the first end customer, never a second id that splits its totals.
    let resp = register(&m, &owner, &stranger("LINDQVIST, Astrid")).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let again: Value = resp.json().await.expect("end customer JSON");
    assert_eq!(
        (again["id"].as_str(), again["already_registered"].as_bool()),
        (Some(alice.as_str()), Some(true)),
        "{again}"
    );
    assert_eq!(location, format!("{END_CUSTOMERS}/{alice}"));
    // The repeat is in the record beside the registration.
    let alice_audit = audit_actions(&m, &auditor, &format!("customer:{alice}")).await;
    for action in [
        "kyc.end_customer.registered",
        "kyc.end_customer.registration_repeated",
    ] {
        assert!(
            alice_audit.contains(&action.to_owned()),
            "{action}: {alice_audit:?}"
        );
    }
    let page: Value = m
        .http
        .get(m.gw.url(&format!("{END_CUSTOMERS}?limit=2")))
        .header("authorization", format!("Bearer {}", owner.access))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    let ids: Vec<&str> = page["end_customers"]
        .as_array()
        .expect("end_customers")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, [hit.as_str(), bob.as_str()], "newest first: {page}");
    assert!(page["next"].is_string(), "{page}");
    let one: Value = m
        .http
        .get(m.gw.url(&format!("{END_CUSTOMERS}/{hit}")))
        .header("authorization", format!("Bearer {}", owner.access))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("read JSON");
    assert_eq!(
        (one["status"].as_str(), one["suspended"].as_bool()),
        (Some("refused"), Some(true)),
        "{one}"
    );

    // A second reseller with an end customer of its own.
    let (rival, _) = reseller(&m, &reviewer, "Nordic Resale AB").await;
    let carol = registered(&m, &rival, &stranger("Cecilia Holm"), "cleared").await;

    // Admitted with the header (any spelling of the id): forwarded with the verified end
    // customer's id, metered to it
    // (crossing its own customer-scope threshold, reported naming it and the reseller).
    let big = job("h100", 8, 1.0, "ec-run-1");
    let resp = m
        .http
        .post(m.gw.url("/v1/echo/jobs"))
        .header("authorization", format!("Bearer {}", owner.access))
        .header("x-computegate-end-customer", alice.to_uppercase())
        .json(&big)
        .send()
        .await
        .expect("send job");
    assert_eq!(resp.status(), 200, "admitted: {resp:?}");
    let echoed: Value = resp.json().await.expect("echo JSON");
    assert_eq!(
        echoed["headers"]["x-computegate-end-customer"][0],
        alice.as_str(),
        "{echoed}"
    );
    assert_eq!(
        echoed["headers"]["x-computegate-customer"][0],
        owner.id.as_str(),
        "{echoed}"
    );
    assert_flop(
        m.charged(&reviewer, &alice).await,
        h100_flop(8, 1.0),
        "end customer's charge",
    );
    assert_eq!(
        m.charged(&reviewer, &owner.id).await,
        0.0,
        "the reseller is not charged"
    );
    let reports = m.reports(&reviewer, "due", &alice).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let snapshot = &reports[0]["identity_snapshot"];
    assert_eq!(snapshot["customer_id"], alice.as_str(), "{snapshot}");
    assert_eq!(
        snapshot["reseller"]["organization_id"],
        org.as_str(),
        "{snapshot}"
    );

    // The other cleared end customer, named in the body, and in the header; the body and the
    // header may not disagree.
    let small = |run: &str| job("h100", 1, 0.1, run);
    let mut in_body = small("ec-run-2");
    in_body["end_customer"] = json!(bob);
    assert!(m.submit(&owner, &in_body).await.status().is_success());
    assert!(
        submit_for(&m, &owner, &bob, &small("ec-run-3"))
            .await
            .status()
            .is_success()
    );
    let resp = submit_for(&m, &owner, &alice, &in_body).await;
    expect_problem(resp, 400, "invalid-job-spec").await;
    assert_flop(
        m.charged(&reviewer, &bob).await,
        2.0 * h100_flop(1, 0.1),
        "bob's charge",
    );
    assert!(flagged(&m, &reviewer).await.is_empty());

    // Refused: none named, unknown, another reseller's, a suspended one. The rule (more than
    // half of at least 7 jobs refused) trips on the fourth refusal: 3 admitted + 4 refused.
    let resp = m.submit(&owner, &small("ec-run-4")).await;
    expect_problem(resp, 400, "end-customer-required").await;
    let resp = submit_for(&m, &owner, &uuid::Uuid::new_v4().to_string(), &small("r5")).await;
    expect_problem(resp, 403, "end-customer-unknown").await;
    let resp = submit_for(&m, &owner, &carol, &small("ec-run-6")).await;
    expect_problem(resp, 403, "end-customer-unknown").await;
    assert!(
        flagged(&m, &reviewer).await.is_empty(),
        "3 of 6 is not more than half"
    );
    let resp = submit_for(&m, &owner, &hit, &small("ec-run-7")).await;
    expect_problem(resp, 403, "end-customer-not-cleared").await;
    assert_eq!(flagged(&m, &reviewer).await, vec![org.as_str()]);
    let subject = format!("organization:{org}");
    let actions = audit_actions(&m, &auditor, &subject).await;
    for action in ["kyc.reseller.marked", "kyc.reseller.flagged"] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action}: {actions:?}"
        );
    }
    // The screened end customer was suspended alone: the others still run (flagged resellers
    // keep running while staff review them).
    assert!(
        submit_for(&m, &owner, &alice, &small("ec-run-8"))
            .await
            .status()
            .is_success()
    );

    // A keyed submission for an end customer is the reseller's key: its retry replays the
    // first answer instead of charging the end customer twice.
    let charged_before = m.charged(&reviewer, &bob).await;
    let keyed = |end_customer: &str| {
        m.http
            .post(m.gw.url("/v1/jobs"))
            .header("authorization", format!("Bearer {}", owner.access))
            .header("x-computegate-end-customer", end_customer)
            .header("idempotency-key", "ec-key-1")
            .json(&small("ec-run-keyed"))
            .send()
    };
    let first = keyed(&bob).await.expect("send keyed job");
    assert!(first.status().is_success(), "keyed: {first:?}");
    let retry = keyed(&bob).await.expect("send keyed retry");
    assert_eq!(retry.status(), first.status(), "replayed: {retry:?}");
    // The same key and body naming another end customer is another job, not a retry: refused
    // rather than answered with bob's job.
    let other = keyed(&alice).await.expect("send keyed job for another");
    expect_problem(other, 422, "idempotency-key-reused").await;
    assert_flop(
        m.charged(&reviewer, &bob).await - charged_before,
        h100_flop(1, 0.1),
        "one charge for a retried submission",
    );

    // The reseller reaches its end customer's job on the owner-checked path, also once the
    // gateway no longer remembers the submission and asks the store (the job is metered to
    // the end customer, but the reseller owns it); another reseller does not.
    let resp = submit_for(&m, &owner, &alice, &small("ec-run-owned")).await;
    assert_eq!(resp.status(), 201, "owned job: {resp:?}");
    let submitted: Value = resp.json().await.expect("job JSON");
    let path = format!("/v1/jobs/{}", submitted["id"].as_str().expect("job id"));
    tokio::time::sleep(OWNER_TTL + Duration::from_secs(1)).await;
    for (who, status) in [(&owner, 200), (&rival, 404)] {
        let resp = m
            .http
            .get(m.gw.url(&path))
            .header("authorization", format!("Bearer {}", who.access))
            .send()
            .await
            .expect("read job");
        assert_eq!(resp.status(), status, "{path}: {resp:?}");
    }

    // A customer that is no reseller may not name an end customer.
    let plain = m.customer().await;
    let resp = submit_for(&m, &plain, &alice, &small("ec-run-9")).await;
    expect_problem(resp, 400, "end-customer-not-allowed").await;

    // Staff suspend the reseller: all its jobs and registrations are refused; the rival's run.
    let suspend = format!("/staff/v1/resellers/{org}/suspend");
    let resp = m
        .staff_post(
            &reviewer,
            &suspend,
            &json!({"reason": "identities not passed through"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "suspend: {resp:?}");
    let resp = submit_for(&m, &owner, &alice, &small("ec-run-10")).await;
    expect_problem(resp, 403, "reseller-suspended").await;
    let resp = register(&m, &owner, &stranger("Dag Ek")).await;
    expect_problem(resp, 403, "forbidden").await;
    assert!(
        submit_for(&m, &rival, &carol, &small("ec-run-11"))
            .await
            .status()
            .is_success()
    );
    let resp = m
        .staff_post(&reviewer, &suspend, &json!({"reason": "again"}))
        .await;
    assert_eq!(resp.status(), 409, "suspending twice: {resp:?}");
    let resume = format!("/staff/v1/resellers/{org}/resume");
    let resp = m
        .staff_post(&reviewer, &resume, &json!({"reason": "cured"}))
        .await;
    assert_eq!(resp.status(), 200, "resume: {resp:?}");
    assert!(
        submit_for(&m, &owner, &alice, &small("ec-run-12"))
            .await
            .status()
            .is_success()
    );
    let actions = audit_actions(&m, &auditor, &subject).await;
    for action in ["kyc.reseller.suspended", "kyc.reseller.resumed"] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action}: {actions:?}"
        );
    }

    // In the review band (a listed name, other birth date and country): refused until a
    // reviewer, reading its identity, clears it.
    let near = person("Viktor Kalashov", "1971-05-20", "SE", "SE7654321");
    let doubtful = registered(&m, &owner, &near, "review").await;
    let resp = submit_for(&m, &owner, &doubtful, &small("ec-run-13")).await;
    expect_problem(resp, 403, "end-customer-not-cleared").await;
    let resp = m
        .staff_get(&reviewer, &format!("/staff/v1/end-customers/{doubtful}"))
        .await;
    assert_eq!(resp.status(), 200, "staff read: {resp:?}");
    let case: Value = resp.json().await.expect("case JSON");
    assert_eq!(
        case["identity"]["individual"]["legal_name"], "Viktor Kalashov",
        "{case}"
    );
    assert_eq!(
        case["same_identity"],
        json!([]),
        "no other reseller's: {case}"
    );
    let decide = format!("/staff/v1/end-customers/{doubtful}/decision");
    let clear = json!({"decision": "clear", "reason": "different person: birth date, passport"});
    let resp = m.staff_post(&reviewer, &decide, &clear).await;
    assert_eq!(resp.status(), 200, "decide: {resp:?}");
    let resp = m.staff_post(&reviewer, &decide, &clear).await;
    expect_problem(resp, 409, "invalid-state").await;
    assert!(
        submit_for(&m, &owner, &doubtful, &small("ec-run-14"))
            .await
            .status()
            .is_success()
    );
    let decided = audit_actions(&m, &auditor, &format!("customer:{doubtful}")).await;
    for action in ["kyc.end_customer.viewed", "kyc.end_customer.decided"] {
        assert!(
            decided.contains(&action.to_owned()),
            "{action}: {decided:?}"
        );
    }

    // A list update naming a cleared end customer suspends it alone at the re-screen.
    let lists = TempDir::new("lists");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kyc/csl.csv");
    let fixture = std::fs::read_to_string(fixture).expect("read the fixture list");
    let listed_bob = "cg-t-003,Specially Designated Nationals (SDN) - Treasury Department,71003,\
                      Individual,CYBER2,\"KARLSSON, Bengt\",\"2 Storgatan, Uppsala, , 75320, SE\",,SE,\
                      1988-07-01,SE,";
    let updated = lists.write(
        "csl-2.csv",
        format!("{}\n{listed_bob}\n", fixture.trim_end()),
    );
    let out = m.cli(&[
        "screening",
        "import",
        "--format",
        "csl",
        updated.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "screening import: {out:?}");
    let resp = submit_for(&m, &owner, &bob, &small("ec-run-15")).await;
    expect_problem(resp, 403, "end-customer-not-cleared").await;
    assert!(
        submit_for(&m, &owner, &alice, &small("ec-run-16"))
            .await
            .status()
            .is_success()
    );
    let rescreened = audit_actions(&m, &auditor, &format!("customer:{bob}")).await;
    assert!(
        rescreened.contains(&"kyc.rescreen.suspended".to_owned()),
        "{rescreened:?}"
    );

    let registered_audit = audit_actions(&m, &auditor, &format!("customer:{hit}")).await;
    for action in ["kyc.end_customer.registered", "kyc.customer.suspended"] {
        assert!(
            registered_audit.contains(&action.to_owned()),
            "{action}: {registered_audit:?}"
        );
    }
}

#[tokio::test]
async fn resellers_pass_their_end_customers_through() {
    within(
        TEST_TIMEOUT + OWNER_TTL,
        resellers_end_to_end(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn resellers_pass_their_end_customers_through_on_postgres() {
    within(
        TEST_TIMEOUT + OWNER_TTL,
        resellers_end_to_end(Backend::Postgres),
    )
    .await;
}

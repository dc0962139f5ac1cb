//! Router tests of the incident routes over a real embedded store: who may call each, field
//! refusals, the status machine's 409s, the bundle's media type and the audit records (the
//! export, import and round trip through the real binary are in `tests/incidents.rs`).

use computegate_kyc::accounts::StaffRole;
use computegate_kyc::audit::{AuditAction, AuditFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::test_support::{Api, get, post};

const INCIDENTS: &str = "/staff/v1/incidents";

fn body(customer: Uuid) -> Value {
    json!({
        "kind": "account_sharing",
        "description": "keys resold on a forum",
        "customers": [customer],
        "indicators": [
            {"type": "ipv4", "value": "203.0.113.7"},
            {"type": "email_domain", "value": "@Resold.Example"},
        ],
    })
}

/// A partner's bundle from `partner`: an incident ("card testing ring") indicated by the
/// address every router test signs in from (192.0.2.10), and an address nobody uses.
pub(crate) fn partner_bundle(partner: &str) -> Value {
    let incident = "incident--22222222-2222-4222-8222-222222222222";
    let seen = "indicator--33333333-3333-4333-8333-333333333333";
    json!({
        "type": "bundle",
        "id": "bundle--55555555-5555-4555-8555-555555555555",
        "objects": [
            {"type": "identity", "id": "identity--11111111-1111-4111-8111-111111111111",
             "name": partner},
            {"type": "incident", "id": incident, "name": "fraud",
             "description": "card testing ring"},
            {"type": "indicator", "id": seen, "pattern_type": "stix",
             "pattern": "[ipv4-addr:value = '192.0.2.10']"},
            {"type": "relationship", "id": "relationship--66666666-6666-4666-8666-666666666666",
             "relationship_type": "indicates", "source_ref": seen, "target_ref": incident},
            {"type": "indicator", "id": "indicator--44444444-4444-4444-8444-444444444444",
             "pattern_type": "stix", "pattern": "[ipv4-addr:value = '198.51.100.1']"},
        ]
    })
}

async fn actions(api: &Api, subject: &str) -> Vec<String> {
    let filter = AuditFilter {
        subject: Some(subject.to_owned()),
        limit: 50,
        ..AuditFilter::default()
    };
    let records = api
        .state
        .kyc
        .store()
        .audit()
        .audit_page(&filter)
        .await
        .unwrap();
    records.into_iter().map(|r| r.action).collect()
}

#[tokio::test]
async fn staff_record_read_and_move_an_incident() {
    let api = Api::start().await;
    let customer = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let admin = api.staff_token(StaffRole::Admin).await;

    api.staff(post(INCIDENTS).bearer(&auditor).json(&body(customer.id)))
        .await
        .problem(403, "forbidden");
    let created = api
        .staff(post(INCIDENTS).bearer(&reviewer).json(&body(customer.id)))
        .await;
    let doc = created.ok(201).clone();
    assert!(created.no_store());
    let id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["status"], "open");
    assert_eq!(doc["indicators"][1]["value"], "resold.example");
    assert_eq!(doc["customers"], json!([customer.id]));

    // The list carries no values; reading one needs a case-reading role.
    let list = api.staff(get(INCIDENTS).bearer(&admin)).await;
    let list = list.ok(200);
    assert_eq!(list["incidents"][0]["id"], id.as_str());
    assert!(!list.to_string().contains("203.0.113.7"), "{list}");
    let one = format!("{INCIDENTS}/{id}");
    api.staff(get(&one).bearer(&admin))
        .await
        .problem(403, "forbidden");
    let read = api.staff(get(&one).bearer(&auditor)).await;
    assert_eq!(read.ok(200)["indicators"][0]["value"], "203.0.113.7");
    api.staff(get(&format!("{INCIDENTS}/{}", Uuid::now_v7())).bearer(&auditor))
        .await
        .problem(404, "not-found");

    // open → reported → closed, nothing else.
    let status = format!("{one}/status");
    let to = |s: &str| json!({ "status": s });
    api.staff(post(&status).bearer(&reviewer).json(&to("closed")))
        .await
        .problem(409, "invalid-state");
    let moved = api
        .staff(post(&status).bearer(&reviewer).json(&to("reported")))
        .await;
    assert_eq!(moved.ok(200)["status"], "reported");
    api.staff(post(&status).bearer(&reviewer).json(&to("reported")))
        .await
        .problem(409, "invalid-state");
    api.staff(post(&status).bearer(&reviewer).json(&to("archived")))
        .await
        .problem(400, "malformed-body");
    let closed = api
        .staff(post(&status).bearer(&reviewer).json(&to("closed")))
        .await;
    assert_eq!(closed.ok(200)["status"], "closed");

    let history = actions(&api, &format!("incident:{id}")).await;
    assert_eq!(
        history,
        [
            AuditAction::IncidentCreated.as_str(),
            AuditAction::IncidentStatusChanged.as_str(),
            AuditAction::IncidentStatusChanged.as_str(),
        ]
    );
}

#[tokio::test]
async fn bad_fields_are_named_and_nothing_is_recorded() {
    let api = Api::start().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let mut bad = body(Uuid::now_v7());
    bad["indicators"] = json!([
        {"type": "ipv6", "value": "203.0.113.7"},
        {"type": "document_sha256", "value": "abc"},
        {"type": "api_key_id", "value": "cg_short"},
    ]);
    let answer = api
        .staff(post(INCIDENTS).bearer(&reviewer).json(&bad))
        .await;
    let problem = answer.problem(422, "invalid-request");
    let fields: Vec<&str> = (problem["errors"].as_array().unwrap().iter())
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "indicators[0].value",
            "indicators[1].value",
            "indicators[2].value"
        ]
    );
    assert!(!problem.to_string().contains("203.0.113.7"), "{problem}");
    // Valid indicators, but a customer that does not exist.
    let unknown = api
        .staff(
            post(INCIDENTS)
                .bearer(&reviewer)
                .json(&body(Uuid::now_v7())),
        )
        .await;
    let problem = unknown.problem(422, "invalid-request");
    assert_eq!(problem["errors"][0]["field"], "customers");
    let list = api.staff(get(INCIDENTS).bearer(&reviewer)).await;
    assert_eq!(list.ok(200)["incidents"], json!([]));
    // Unknown fields are refused too.
    let mut extra = body(Uuid::now_v7());
    extra["severity"] = json!("high");
    api.staff(post(INCIDENTS).bearer(&reviewer).json(&extra))
        .await
        .problem(400, "malformed-body");
}

#[tokio::test]
async fn the_bundle_is_stix_and_its_export_is_audited() {
    let api = Api::start().await;
    let customer = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let created = api
        .staff(post(INCIDENTS).bearer(&reviewer).json(&body(customer.id)))
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let path = format!("{INCIDENTS}/{id}/stix");
    let answer = api.staff(get(&path).bearer(&reviewer)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.headers["content-type"],
        "application/stix+json;version=2.1"
    );
    assert!(answer.no_store());
    assert_eq!(answer.body["type"], "bundle");
    assert!(
        !answer.body.to_string().contains("203.0.113.7"),
        "partner by default"
    );
    let authority = api
        .staff(get(&format!("{path}?sharing=authority")).bearer(&reviewer))
        .await;
    assert!(authority.body.to_string().contains("203.0.113.7"));
    api.staff(get(&format!("{path}?sharing=everyone")).bearer(&reviewer))
        .await
        .problem(422, "invalid-request");
    let history = actions(&api, &format!("incident:{id}")).await;
    let exported = AuditAction::IncidentsExported.as_str();
    assert_eq!(history.iter().filter(|a| *a == exported).count(), 2);
    // The customer has no flags yet.
    let flags = api
        .staff(
            get(&format!(
                "/staff/v1/customers/{}/incident-flags",
                customer.id
            ))
            .bearer(&reviewer),
        )
        .await;
    assert_eq!(flags.ok(200)["flags"], json!([]));
}

#[tokio::test]
async fn a_partners_bundle_flags_the_customers_it_matches_once() {
    let api = Api::start().await;
    // Signed up and signed in from the test client's address, 192.0.2.10.
    let customer = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let auditor = api.staff_token(StaffRole::Auditor).await;
    let bundle = partner_bundle("Partner Cloud");
    let import = |token: &str| {
        post(&format!("{INCIDENTS}/import"))
            .bearer(token)
            .raw("application/stix+json", bundle.to_string().into_bytes())
    };
    api.staff(import(&auditor)).await.problem(403, "forbidden");
    let first = api.staff(import(&reviewer)).await;
    let report = first.ok(200);
    assert_eq!(report["indicators"], 2);
    assert_eq!(report["matched"], 1);
    assert_eq!(report["flags_raised"], 1);
    assert_eq!(report["customers"], json!([customer.id]));
    let again = api.staff(import(&reviewer)).await;
    assert_eq!(
        again.ok(200)["flags_raised"],
        0,
        "one flag per customer and indicator"
    );

    let flags = api
        .staff(
            get(&format!(
                "/staff/v1/customers/{}/incident-flags",
                customer.id
            ))
            .bearer(&auditor),
        )
        .await;
    let flags = flags.ok(200)["flags"].clone();
    assert_eq!(flags.as_array().unwrap().len(), 1, "{flags}");
    assert_eq!(flags[0]["partner"], "Partner Cloud");
    assert_eq!(flags[0]["context"], "card testing ring");
    assert_eq!(flags[0]["indicator_type"], "ipv4");
    assert!(!flags.to_string().contains("192.0.2.10"), "{flags}");
    let history = actions(&api, &format!("customer:{}", customer.id)).await;
    assert!(
        history
            .iter()
            .any(|a| a == AuditAction::IncidentFlagRaised.as_str())
    );

    // Not a bundle: 400; our own export: 409.
    api.staff(
        post(&format!("{INCIDENTS}/import"))
            .bearer(&reviewer)
            .raw("application/json", b"{\"type\": \"report\"}".to_vec()),
    )
    .await
    .problem(400, "malformed-body");
    let created = api
        .staff(post(INCIDENTS).bearer(&reviewer).json(&body(customer.id)))
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let ours = api
        .staff(get(&format!("{INCIDENTS}/{id}/stix")).bearer(&reviewer))
        .await;
    assert_eq!(ours.status, 200);
    api.staff(
        post(&format!("{INCIDENTS}/import"))
            .bearer(&reviewer)
            .raw("application/stix+json", ours.bytes.clone()),
    )
    .await
    .problem(409, "conflict");
}

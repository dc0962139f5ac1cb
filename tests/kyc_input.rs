//! Bad input to the verification APIs, through the real binary: invalid and oversized
//! applications, documents with lying types, forged and replayed webhooks, staff acting on
//! their own case or beyond their role. Every refusal is a problem document with a clear error.

mod kyc_support;
mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use kyc_support::{
    Kyc, ONFIDO_SECRET, STRIPE_SECRET, data_bytes, document, hmac_hex, individual, organization,
    stripe_event, stripe_signature, unix_now,
};
use support::identity::{Setup, unique_email};
use support::{expect_problem, within};

const TIMEOUT: Duration = Duration::from_secs(120);

fn fields(doc: &Value) -> Vec<String> {
    doc["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {doc}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn applications_list_every_bad_field_and_keep_their_state() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        kyc.import("csl", "csl.csv");
        let c = kyc.customer().await;

        // Unauthenticated.
        let resp = kyc
            .http
            .post(kyc.gw.url("/computegate/v1/kyc/applications"))
            .json(&individual("A B", "1990-01-01", "DE", "X1"))
            .send()
            .await
            .unwrap();
        expect_problem(resp, 401, "unauthenticated").await;

        // Every bad field of an organization at once, each with a code.
        let mut org = organization("platinum");
        org["organization"]["headquarters_country"] = json!("Sweden");
        org["organization"]["beneficial_owners"][0]["ownership_percent"] = json!(10);
        let mut second = org["organization"]["beneficial_owners"][0].clone();
        second["ownership_percent"] = json!(95);
        second["date_of_birth"] = json!("2024-01-01");
        org["organization"]["beneficial_owners"]
            .as_array_mut()
            .unwrap()
            .push(second);
        org["organization"]["legal_name"] = json!("x".repeat(201));
        let resp = kyc.customer_call(&c, Method::POST, "", Some(&org)).await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        let got = fields(&doc);
        for f in [
            "requested_tier",
            "organization.legal_name",
            "organization.headquarters_country",
            "organization.beneficial_owners[0].ownership_percent",
            "organization.beneficial_owners[1].date_of_birth",
        ] {
            assert!(got.contains(&f.to_string()), "{f} missing in {doc}");
        }
        assert!(
            doc["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["code"].is_string()),
            "{doc}"
        );

        // Not JSON at all; too large.
        let resp = kyc
            .http
            .post(kyc.gw.url("/computegate/v1/kyc/applications"))
            .header("authorization", format!("Bearer {}", c.access))
            .body("{not json")
            .send()
            .await
            .unwrap();
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["$"], "{doc}");
        let mut huge = individual("A B", "1990-01-01", "DE", "X1");
        huge["intended_use"]["description"] = json!("x".repeat(300 * 1024));
        let resp = kyc.customer_call(&c, Method::POST, "", Some(&huge)).await;
        expect_problem(resp, 413, "payload-too-large").await;

        // One open application at a time; no edits after submission.
        let id = kyc
            .draft(
                &c,
                &individual("Lena Berg", "1990-01-01", "DE", "C01X00T47"),
            )
            .await;
        let resp = kyc
            .customer_call(
                &c,
                Method::POST,
                "",
                Some(&individual("Lena Berg", "1990-01-01", "DE", "C01X00T47")),
            )
            .await;
        expect_problem(resp, 409, "application-in-progress").await;
        let resp = kyc
            .customer_call(
                &c,
                Method::PATCH,
                &format!("/{id}"),
                Some(&json!({"individual": {"phone": "nope"}})),
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["individual.phone"], "{doc}");
        let view = kyc.submit(&c, &id).await;
        assert_eq!(view["status"], "pending_review", "{view}");
        let resp = kyc
            .customer_call(
                &c,
                Method::PATCH,
                &format!("/{id}"),
                Some(&json!({"expected_peak_accelerators": 8})),
            )
            .await;
        expect_problem(resp, 409, "invalid-state").await;
        let resp = kyc
            .customer_call(&c, Method::POST, &format!("/{id}/submit"), None)
            .await;
        expect_problem(resp, 409, "invalid-state").await;

        // An embargoed jurisdiction is rejected at once, with the reason.
        let d = kyc.customer().await;
        let id = kyc
            .draft(
                &d,
                &individual("Dariush Karimi", "1985-04-04", "IR", "IR7654321"),
            )
            .await;
        let view = kyc.submit(&d, &id).await;
        assert_eq!(view["status"], "rejected", "{view}");
        assert_eq!(view["reason"], "embargoed jurisdiction: IR", "{view}");
        // ... and the account is suspended at once (`tests/kyc_enforcement.rs`).
        let doc = expect_problem(kyc.application(&d, &id).await, 403, "forbidden").await;
        assert_eq!(doc["reason"], "embargoed_jurisdiction", "{doc}");

        // Ids that are not UUIDs are simply not found.
        let resp = kyc.application(&c, "../../etc/passwd").await;
        expect_problem(resp, 404, "not-found").await;
    })
    .await;
}

#[tokio::test]
async fn documents_are_checked_by_magic_bytes_size_and_owner() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let c = kyc.customer().await;
        let id = kyc
            .draft(
                &c,
                &individual("Lena Berg", "1990-01-01", "DE", "C01X00T47"),
            )
            .await;
        let pdf = data_bytes("passport.pdf");
        let png = data_bytes("photo.png");

        // Not a type we take at all.
        let resp = kyc
            .upload(
                &c,
                &id,
                &document("passport", "scan.html", "text/html", b"<html>hi</html>"),
            )
            .await;
        expect_problem(resp, 415, "unsupported-media-type").await;
        // Right type, lying extension.
        let resp = kyc
            .upload(
                &c,
                &id,
                &document("passport", "scan.png", "application/pdf", &pdf),
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert!(
            doc["detail"].as_str().unwrap().contains("image/png")
                || doc["detail"].as_str().unwrap().contains("scan.png"),
            "{doc}"
        );
        // Over the size limit (10 MiB).
        let mut big = pdf.clone();
        big.resize(10 * 1024 * 1024 + 1, b' ');
        let resp = kyc
            .upload(
                &c,
                &id,
                &document("passport", "big.pdf", "application/pdf", &big),
            )
            .await;
        expect_problem(resp, 413, "payload-too-large").await;
        // Not multipart.
        let resp = kyc
            .http
            .post(
                kyc.gw
                    .url(&format!("/computegate/v1/kyc/applications/{id}/documents")),
            )
            .header("authorization", format!("Bearer {}", c.access))
            .header("content-type", "application/pdf")
            .body(pdf.clone())
            .send()
            .await
            .unwrap();
        expect_problem(resp, 415, "unsupported-media-type").await;
        // Missing and unknown parts, all listed.
        let resp = kyc
            .upload(
                &c,
                &id,
                &[kyc_support::Part {
                    name: "selfie",
                    filename: None,
                    content_type: None,
                    bytes: b"x",
                }],
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["selfie", "type", "file"], "{doc}");
        let resp = kyc
            .upload(
                &c,
                &id,
                &document("diploma", "a.pdf", "application/pdf", &pdf),
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["type"], "{doc}");
        // The refusal lists every document type the store accepts (from `DocumentType::ALL`).
        let detail = doc["errors"][0]["detail"].as_str().unwrap_or_default();
        for t in computegate_kyc::verification::DocumentType::ALL {
            assert!(detail.contains(t.as_str()), "{t} missing from {detail:?}");
        }

        // Accepted: metadata back, never the bytes.
        kyc.upload_ok(&c, &id, "proof_of_address", "bill.png", "image/png", &png)
            .await;
        let resp = kyc
            .customer_call(&c, Method::GET, &format!("/{id}/documents"), None)
            .await;
        assert_eq!(resp.status(), 200);
        let docs: Value = resp.json().await.unwrap();
        assert_eq!(
            docs["documents"].as_array().map(Vec::len),
            Some(1),
            "{docs}"
        );
        assert_eq!(docs["documents"][0]["content_type"], "image/png", "{docs}");

        // Someone else's application: 404.
        let other = kyc.customer().await;
        let resp = kyc
            .upload(
                &other,
                &id,
                &document("passport", "p.pdf", "application/pdf", &pdf),
            )
            .await;
        expect_problem(resp, 404, "not-found").await;
    })
    .await;
}

#[tokio::test]
async fn webhooks_refuse_bad_signatures_and_store_nothing() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        kyc.import("csl", "csl.csv");
        let c = kyc.customer().await;
        let app = kyc
            .draft(&c, &individual("Lena Berg", "1990-01-01", "DE", "C01X00T47"))
            .await;
        let t = unix_now();
        let body = stripe_event("evt_in_1", "verified", &app);
        let good = stripe_signature(STRIPE_SECRET, t, &body);

        // Unknown provider, unconfigured provider, missing / malformed / stale signatures.
        let resp = kyc.webhook("acme", &[("stripe-signature", good.clone())], &body).await;
        expect_problem(resp, 401, "bad-signature").await;
        let resp = kyc.webhook("persona", &[("persona-signature", good.clone())], &body).await;
        expect_problem(resp, 401, "bad-signature").await;
        let resp = kyc.webhook("stripe", &[], &body).await;
        expect_problem(resp, 401, "bad-signature").await;
        let resp = kyc
            .webhook("stripe", &[("stripe-signature", "v1=abc".into())], &body)
            .await;
        expect_problem(resp, 401, "bad-signature").await;
        let stale = stripe_signature(STRIPE_SECRET, t - 3600, &body);
        let resp = kyc.webhook("stripe", &[("stripe-signature", stale)], &body).await;
        expect_problem(resp, 401, "bad-signature").await;
        // A valid signature over another body.
        let other = stripe_event("evt_in_1", "canceled", &app);
        let resp = kyc.webhook("stripe", &[("stripe-signature", good)], &other).await;
        expect_problem(resp, 401, "bad-signature").await;

        // Onfido: body HMAC over its documented notice (no result in it: the check is queued to
        // be fetched), idempotent by action and object id.
        let onfido = kyc_support::onfido::notice("check.completed", &uuid::Uuid::new_v4().to_string());
        let sig = hmac_hex(ONFIDO_SECRET, onfido.as_bytes());
        let resp = kyc.webhook("onfido", &[("x-sha2-signature", sig.clone())], &onfido).await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        let ack = resp.json::<Value>().await.unwrap();
        assert_eq!((ack["queued"].clone(), ack["duplicate"].clone()), (json!(true), json!(false)));
        let resp = kyc.webhook("onfido", &[("x-sha2-signature", sig)], &onfido).await;
        assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], true);
        let forged = onfido.replace("check.completed", "report.completed");
        let resp = kyc
            .webhook("onfido", &[("x-sha2-signature", hmac_hex("wrong", forged.as_bytes()))], &forged)
            .await;
        expect_problem(resp, 401, "bad-signature").await;
        // The shape this gateway once expected (a result and a non-UUID id in the body) is not
        // Onfido's: refused, nothing stored.
        let invented = json!({"payload": {"resource_type": "check", "action": "check.completed",
            "object": {"id": "chk_1", "status": "complete", "result": "clear", "reference_id": app}}})
        .to_string();
        let sig = hmac_hex(ONFIDO_SECRET, invented.as_bytes());
        let resp = kyc.webhook("onfido", &[("x-sha2-signature", sig)], &invented).await;
        expect_problem(resp, 400, "malformed-body").await;
        // Signed, but about no application of ours; an event type without an outcome.
        let stray = stripe_event("evt_in_2", "verified", &uuid::Uuid::new_v4().to_string());
        let sig = stripe_signature(STRIPE_SECRET, t, &stray);
        let resp = kyc.webhook("stripe", &[("stripe-signature", sig)], &stray).await;
        expect_problem(resp, 404, "not-found").await;
        let created = stripe_event("evt_in_3", "created", &app);
        let sig = stripe_signature(STRIPE_SECRET, t, &created);
        let resp = kyc.webhook("stripe", &[("stripe-signature", sig)], &created).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap()["ignored"], true);

        // No outcome was recorded: the Onfido check waits for its fetch (no API token here).
        let auditor = kyc.staff("auditor").await;
        let resp = kyc
            .staff_get(&auditor, "/staff/v1/audit?action=kyc.idv.recorded")
            .await;
        let page: Value = resp.json().await.unwrap();
        let records = page["records"].as_array().unwrap();
        assert!(records.is_empty(), "{page}");
    })
    .await;
}

#[tokio::test]
async fn staff_roles_and_conflicts_of_interest_are_enforced() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        kyc.import("csl", "csl.csv");
        // A reviewer who is also the applicant.
        let email = unique_email("insider");
        let insider_customer = kyc.customer_with(&email, "individual").await;
        let app = kyc
            .draft(
                &insider_customer,
                &individual("Olof Insider", "1982-09-09", "SE", "SE1112223"),
            )
            .await;
        kyc.submit(&insider_customer, &app).await;
        let insider = kyc.staff_with_email(&email, "reviewer").await;
        let reviewer = kyc.staff("reviewer").await;
        let auditor = kyc.staff("auditor").await;
        let admin = kyc.staff("admin").await;
        let approve = json!({"action": "approve", "tier": "identity_verified", "reason": "fine",
            "manual_checks": [{"evidence": "idv_verified", "note": "checked by hand"}]});

        let claim = format!("/staff/v1/applications/{app}/claim");
        let resp = kyc.staff_post(&insider, &claim, &json!({})).await;
        let doc = expect_problem(resp, 403, "forbidden").await;
        assert!(
            doc["detail"]
                .as_str()
                .unwrap()
                .contains("tied to the applicant"),
            "{doc}"
        );
        let resp = kyc.decide(&insider, &app, approve.clone()).await;
        expect_problem(resp, 403, "forbidden").await;
        let resp = kyc
            .staff_get(&insider, &format!("/staff/v1/applications/{app}"))
            .await;
        expect_problem(resp, 403, "forbidden").await;

        // Auditors read, never decide or claim; admins do not decide or download.
        assert_eq!(
            kyc.staff_get(&auditor, "/staff/v1/applications")
                .await
                .status(),
            200
        );
        let resp = kyc.decide(&auditor, &app, approve.clone()).await;
        expect_problem(resp, 403, "forbidden").await;
        let resp = kyc.staff_post(&auditor, &claim, &json!({})).await;
        expect_problem(resp, 403, "forbidden").await;
        let resp = kyc.decide(&admin, &app, approve.clone()).await;
        expect_problem(resp, 403, "forbidden").await;
        // The audit chain is for auditors and admins.
        let resp = kyc.staff_get(&reviewer, "/staff/v1/audit").await;
        expect_problem(resp, 403, "forbidden").await;
        assert_eq!(
            kyc.staff_get(&admin, "/staff/v1/audit?limit=5")
                .await
                .status(),
            200
        );
        let resp = kyc
            .staff_get(&auditor, "/staff/v1/audit?since=yesterday")
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["since"], "{doc}");

        // Bad decisions and queue parameters: every problem at once.
        let resp = kyc
            .decide(&reviewer, &app, json!({"action": "bless", "reason": "  "}))
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["action", "reason"], "{doc}");
        let resp = kyc
            .decide(
                &reviewer,
                &app,
                json!({"action": "approve", "tier": "gold", "reason": "x"}),
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["tier"], "{doc}");
        let resp = kyc
            .staff_get(
                &reviewer,
                "/staff/v1/applications?status=done&min_risk=x&country=Sweden",
            )
            .await;
        let doc = expect_problem(resp, 422, "invalid-request").await;
        assert_eq!(fields(&doc), ["status", "min_risk", "country"], "{doc}");
        let resp = kyc
            .decide(
                &reviewer,
                &uuid::Uuid::new_v4().to_string(),
                approve.clone(),
            )
            .await;
        expect_problem(resp, 404, "not-found").await;

        // Credentials: none, a customer's, a staff token on the customer API.
        let resp = kyc
            .http
            .get(kyc.gw.admin_url("/staff/v1/applications"))
            .send()
            .await
            .unwrap();
        expect_problem(resp, 401, "unauthenticated").await;
        let resp = kyc
            .http
            .get(kyc.gw.admin_url("/staff/v1/applications"))
            .header(
                "authorization",
                format!("Bearer {}", insider_customer.access),
            )
            .send()
            .await
            .unwrap();
        expect_problem(resp, 401, "unauthenticated").await;
        let resp = kyc
            .http
            .get(
                kyc.gw
                    .url(&format!("/computegate/v1/kyc/applications/{app}")),
            )
            .header("authorization", format!("Bearer {}", reviewer.token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{resp:?}");

        // An uninvolved reviewer decides; every denial above left an audit record, and the
        // case file read by the auditor is itself audited.
        let resp = kyc.decide(&reviewer, &app, approve).await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        kyc.case_file(&auditor, &app).await;
        let resp = kyc
            .staff_get(
                &admin,
                &format!("/staff/v1/audit?subject=application:{app}"),
            )
            .await;
        let page: Value = resp.json().await.unwrap();
        let actions: Vec<&str> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"kyc.application.approved"), "{actions:?}");
        // The denials (insider: claim, decide, view; auditor: decide, claim; admin: decide).
        let refusals: Vec<&Value> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "kyc.staff_action.refused")
            .collect();
        assert_eq!(refusals.len(), 6, "{page}");
        assert_eq!(refusals[0]["detail"]["attempted"], "claim", "{page}");
        assert!(
            refusals[0]["detail"]["why"]
                .as_str()
                .unwrap()
                .contains("tied to the applicant"),
            "{page}"
        );
        assert!(actions.contains(&"kyc.application.viewed"), "{actions:?}");
        assert_eq!(
            actions.last(),
            Some(&"kyc.application.viewed"),
            "{actions:?}"
        );
    })
    .await;
}

//! The verification flow end to end through the real binary, on SQLite and on PostgreSQL: a
//! list imported with `computegate screening import`; customers filling in, fixing, documenting
//! and submitting applications; screening (a clean applicant to review, a listed one with a
//! hit); IDV webhooks; the staff queue, claims and decisions (four eyes for the top tier); the
//! tier on the data plane at once; suspension and resume; metrics; `audit verify` and
//! `audit export`; a re-screen on a new list version that suspends a newly listed customer;
//! and a tampered audit table caught by `audit verify`.

mod kyc_support;
mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use kyc_support::{
    Kyc, STRIPE_PREVIOUS, STRIPE_SECRET, data_bytes, individual, organization, stripe_event,
    stripe_signature, unix_now,
};
use support::cluster::PgDatabase;
use support::identity::{Setup, counter, eventually, metrics, proxied, seen};
use support::{expect_problem, within};

/// Budget of one whole flow (many CLI runs and requests on a loaded 2-core machine).
const FLOW_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test]
async fn verification_flow_on_sqlite() {
    within(FLOW_TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        flow(&kyc).await;
        // Someone with write access to the file drops the append-only trigger and edits one
        // record behind the gateway's back: `audit verify` names it.
        let db = kyc.gw.sqlite_path();
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(
                "DROP TRIGGER audit_log_no_update; \
                 UPDATE audit_log SET detail = '{\"tampered\":true}' WHERE seq = 3",
            )
            .output()
            .expect("run sqlite3");
        assert!(out.status.success(), "sqlite3: {out:?}");
        expect_broken(&kyc, 3);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn verification_flow_on_postgres() {
    within(FLOW_TIMEOUT, async {
        let db = PgDatabase::create();
        let setup = Setup {
            database_url: Some(db.url.clone()),
            ..Setup::default()
        };
        let kyc = Kyc::start(&setup).await;
        flow(&kyc).await;
        db.sql(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change; \
             UPDATE audit_log SET detail = '{\"tampered\":true}' WHERE seq = 3",
        );
        expect_broken(&kyc, 3);
        drop(kyc);
    })
    .await;
}

/// `audit verify` exits 1 naming `seq` as the first broken link.
fn expect_broken(kyc: &Kyc, seq: i64) {
    let out = kyc.cli(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "audit verify: {out:?}");
    assert!(
        stdout.contains(&format!("chain broken at seq {seq}: edited")),
        "{stdout}"
    );
}

async fn flow(kyc: &Kyc) {
    // A denied-party list: one listed person (Viktor Mendrovich KALASHOV).
    let out = kyc.import("csl", "csl.csv");
    assert!(out.contains("imported list version"), "{out}");
    assert!(out.contains("2 entries"), "{out}");

    // A clean applicant: bad fields first (all listed at once), then fixed.
    let maria = kyc.customer().await;
    let mut bad = individual("Maria Elena Lindqvist", "1988-13-40", "se", "SE9988776");
    bad["individual"]["phone"] = json!("12345");
    bad["intended_use"]["category"] = json!("crypto");
    bad["expected_total_flop"] = json!(-1.0);
    let resp = kyc
        .customer_call(&maria, Method::POST, "", Some(&bad))
        .await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    let fields = error_fields(&doc);
    for field in [
        "individual.date_of_birth",
        "individual.nationality",
        "individual.phone",
        "intended_use.category",
        "expected_total_flop",
    ] {
        assert!(fields.contains(&field.to_string()), "{field} in {doc}");
    }
    let partial = json!({
        "kind": "individual",
        "requested_tier": "identity_verified",
        "individual": {"legal_name": "Maria Elena Lindqvist"}
    });
    let maria_app = kyc.draft(&maria, &partial).await;
    // Submitting the incomplete draft lists what is missing.
    let resp = kyc
        .customer_call(&maria, Method::POST, &format!("/{maria_app}/submit"), None)
        .await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    let fields = error_fields(&doc);
    assert!(
        fields.contains(&"individual.date_of_birth".to_string()),
        "{doc}"
    );
    assert!(fields.contains(&"intended_use".to_string()), "{doc}");
    // A merge patch fills it in.
    let full = individual("Maria Elena Lindqvist", "1988-07-02", "SE", "SE9988776");
    let resp = kyc
        .customer_call(&maria, Method::PATCH, &format!("/{maria_app}"), Some(&full))
        .await;
    assert_eq!(resp.status(), 200, "patch: {resp:?}");
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["status"], "draft");
    assert_eq!(view["payload"]["individual"]["nationality"], "SE");

    // Documents: PNG bytes declared as a PDF are refused; a real PDF is accepted.
    let png = data_bytes("photo.png");
    let pdf = data_bytes("passport.pdf");
    let resp = kyc
        .upload(
            &maria,
            &maria_app,
            &kyc_support::document("passport", "passport.pdf", "application/pdf", &png),
        )
        .await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    assert_eq!(doc["errors"][0]["field"], "file", "{doc}");
    let meta = kyc
        .upload_ok(
            &maria,
            &maria_app,
            "passport",
            "passport.pdf",
            "application/pdf",
            &pdf,
        )
        .await;
    assert_eq!(meta["content_type"], "application/pdf", "{meta}");
    assert_eq!(meta["size_bytes"], pdf.len(), "{meta}");
    let document_id = meta["id"].as_str().unwrap().to_owned();

    // Submitted: screened at once against the imported list, clean → pending review.
    let view = kyc.submit(&maria, &maria_app).await;
    assert_eq!(view["status"], "pending_review", "{view}");
    assert_eq!(
        view["documents"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    assert!(view["documents"][0].get("bytes").is_none(), "{view}");

    // A listed applicant gets a hit.
    let viktor = kyc.customer().await;
    let viktor_app = kyc
        .draft(
            &viktor,
            &individual("Viktor Kalashov", "1971-03-14", "CY", "K1234567"),
        )
        .await;
    let view = kyc.submit(&viktor, &viktor_app).await;
    assert_eq!(view["status"], "pending_review", "{view}");

    // Another customer guessing the id: 404, not 403, on every route.
    let eve = kyc.customer().await;
    let resp = kyc.application(&eve, &maria_app).await;
    expect_problem(resp, 404, "not-found").await;
    let resp = kyc
        .customer_call(&eve, Method::POST, &format!("/{maria_app}/submit"), None)
        .await;
    expect_problem(resp, 404, "not-found").await;

    // IDV webhooks (Stripe style): valid → stored, replay → duplicate, forged → 401, the
    // previous secret still accepted during rotation.
    let t = unix_now();
    let body = stripe_event("evt_cg_1", "verified", &maria_app);
    let sig = stripe_signature(STRIPE_SECRET, t, &body);
    let resp = kyc
        .webhook("stripe", &[("stripe-signature", sig.clone())], &body)
        .await;
    assert_eq!(resp.status(), 200, "webhook: {resp:?}");
    assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], false);
    let resp = kyc
        .webhook("stripe", &[("stripe-signature", sig)], &body)
        .await;
    assert_eq!(resp.status(), 200, "replay: {resp:?}");
    assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], true);
    let forged_body = stripe_event("evt_cg_2", "canceled", &maria_app);
    let forged = stripe_signature("whsec_not_ours", t, &forged_body);
    let resp = kyc
        .webhook("stripe", &[("stripe-signature", forged)], &forged_body)
        .await;
    expect_problem(resp, 401, "bad-signature").await;
    let body3 = stripe_event("evt_cg_3", "verified", &maria_app);
    let old = stripe_signature(STRIPE_PREVIOUS, t, &body3);
    let resp = kyc
        .webhook("stripe", &[("stripe-signature", old)], &body3)
        .await;
    assert_eq!(resp.status(), 200, "previous secret: {resp:?}");

    // Staff.
    let reviewer = kyc.staff("reviewer").await;
    let senior1 = kyc.staff("senior_reviewer").await;
    let senior2 = kyc.staff("senior_reviewer").await;
    let auditor = kyc.staff("auditor").await;

    // The queue shows both with their risk; filters narrow it.
    let queue = queue(kyc, &reviewer, "").await;
    let maria_item = find(&queue, &maria_app);
    let viktor_item = find(&queue, &viktor_app);
    assert_eq!(maria_item["screening_decision"], "clear", "{maria_item}");
    assert_eq!(viktor_item["screening_decision"], "hit", "{viktor_item}");
    assert!(
        viktor_item["risk_score"].as_i64().unwrap() >= 40,
        "{viktor_item}"
    );
    assert!(
        maria_item["risk_score"].as_i64().unwrap() < 40,
        "{maria_item}"
    );
    let risky = queue_ids(&queue_for(kyc, &reviewer, "?min_risk=40").await);
    assert!(
        risky.contains(&viktor_app) && !risky.contains(&maria_app),
        "{risky:?}"
    );
    let cy = queue_ids(&queue_for(kyc, &auditor, "?country=CY&status=pending_review").await);
    assert_eq!(cy, std::slice::from_ref(&viktor_app));

    // The case file: screening breakdown, risk factors, IDV outcome (forged event not stored).
    let file = kyc.case_file(&reviewer, &viktor_app).await;
    assert_eq!(file["screening"]["decision"], "hit", "{file}");
    assert_eq!(file["screening_parties"][0]["role"], "applicant", "{file}");
    assert!(
        file["screening_parties"][0]["best"]["features"].is_array(),
        "{file}"
    );
    assert!(
        factor_codes(&file).contains(&"screening_hit".to_string()),
        "{file}"
    );
    let file = kyc.case_file(&auditor, &maria_app).await;
    assert_eq!(file["idv_outcome"], "verified", "{file}");

    // Claim, then approve; another reviewer may not decide a claimed case.
    let resp = kyc
        .staff_post(
            &reviewer,
            &format!("/staff/v1/applications/{maria_app}/claim"),
            &json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200, "claim: {resp:?}");
    let resp = kyc
        .decide(
            &senior1,
            &maria_app,
            json!({"action": "approve", "tier": "identity_verified", "reason": "ok"}),
        )
        .await;
    expect_problem(resp, 409, "conflict").await;
    let resp = kyc
        .decide(
            &reviewer,
            &maria_app,
            json!({"action": "approve", "tier": "identity_verified"}),
        )
        .await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    assert_eq!(error_fields(&doc), ["reason"], "{doc}");
    let before = proxied(&kyc.http, &kyc.gw, &maria.access).await;
    assert_eq!(before.status(), 200);
    let before: Value = before.json().await.unwrap();
    assert_eq!(seen(&before, "x-computegate-tier"), ["unverified"]);
    let resp = kyc
        .decide(
            &reviewer,
            &maria_app,
            json!({"action": "approve", "tier": "identity_verified", "reason": "IDV verified, screening clear"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "approve: {resp:?}");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["status"], "approved", "{doc}");
    assert_eq!(doc["granted_tier"], "identity_verified", "{doc}");
    // The very next proxied call carries the new tier.
    let echo: Value = proxied(&kyc.http, &kyc.gw, &maria.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-computegate-tier"), ["identity_verified"]);

    // A hit cannot be approved without an override; it is rejected with a reason.
    let resp = kyc
        .decide(
            &reviewer,
            &viktor_app,
            json!({"action": "approve", "tier": "identity_verified", "reason": "looks fine"}),
        )
        .await;
    expect_problem(resp, 409, "invalid-state").await;
    let resp = kyc
        .decide(
            &reviewer,
            &viktor_app,
            json!({"action": "reject", "reason": "confirmed denied-party match"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "reject: {resp:?}");
    // Rejecting a standing hit confirms the match: the account is suspended on every route,
    // the customer API included (see `tests/kyc_enforcement.rs`).
    let resp = kyc.application(&viktor, &viktor_app).await;
    let doc = expect_problem(resp, 403, "forbidden").await;
    assert_eq!(doc["reason"], "denied_party", "{doc}");

    // The top tier: a compliance plan on file and two distinct senior reviewers.
    let org = kyc
        .customer_with(&support::identity::unique_email("org"), "organization")
        .await;
    let org_app = kyc.draft(&org, &organization("validated_end_user")).await;
    kyc.upload_ok(
        &org,
        &org_app,
        "compliance_plan",
        "plan.pdf",
        "application/pdf",
        &pdf,
    )
    .await;
    let view = kyc.submit(&org, &org_app).await;
    assert_eq!(view["status"], "pending_review", "{view}");
    // The policy's `requires` for the tier: a verified IDV outcome is not on file, so the
    // approval is refused naming it, until the senior documents a manual check.
    let bare =
        json!({"action": "approve", "tier": "validated_end_user", "reason": "VEU criteria met"});
    let resp = kyc.decide(&senior1, &org_app, bare).await;
    let doc = expect_problem(resp, 422, "evidence-missing").await;
    assert_eq!(doc["missing_evidence"], json!(["idv_verified"]), "{doc}");
    assert!(
        doc["detail"].as_str().unwrap().contains("manual_checks"),
        "{doc}"
    );
    let plan_by_hand = json!({"action": "approve", "tier": "validated_end_user", "reason": "x",
        "manual_checks": [{"evidence": "compliance_plan", "note": "saw it"}]});
    let resp = kyc.decide(&senior1, &org_app, plan_by_hand).await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    assert_eq!(error_fields(&doc), ["manual_checks"], "{doc}");
    let top = json!({"action": "approve", "tier": "validated_end_user", "reason": "VEU criteria met",
        "manual_checks": [{"evidence": "idv_verified",
                           "note": "representative's passport checked on a video call"}]});
    let resp = kyc.decide(&reviewer, &org_app, top.clone()).await;
    expect_problem(resp, 403, "forbidden").await;
    let resp = kyc.decide(&senior1, &org_app, top.clone()).await;
    assert_eq!(resp.status(), 200, "first senior: {resp:?}");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc["status"], "pending_review",
        "one senior is not enough: {doc}"
    );
    assert_eq!(doc["granted_tier"], Value::Null, "{doc}");
    let resp = kyc.decide(&senior1, &org_app, top.clone()).await;
    let doc = expect_problem(resp, 403, "forbidden").await;
    assert!(doc["detail"].as_str().unwrap().contains("second"), "{doc}");
    let resp = kyc.decide(&senior2, &org_app, top).await;
    assert_eq!(resp.status(), 200, "second senior: {resp:?}");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["status"], "approved", "{doc}");
    let echo: Value = proxied(&kyc.http, &kyc.gw, &org.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-computegate-tier"), ["validated_end_user"]);
    // The audit chain records the approval as resting on a manual check, with its note.
    let resp = kyc
        .staff_get(
            &auditor,
            "/staff/v1/audit?action=kyc.application.approved&limit=500",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    let record = (page["records"].as_array().unwrap().iter())
        .find(|r| r["detail"]["tier"] == "validated_end_user")
        .unwrap_or_else(|| panic!("no top-tier approval in {page}"));
    let evidence = &record["detail"]["evidence"];
    assert_eq!(
        evidence["manual_checks"][0]["evidence"], "idv_verified",
        "{record}"
    );
    assert_eq!(evidence["on_file"], json!(["compliance_plan"]), "{record}");

    // Suspension takes effect on the data plane at once; so does resuming.
    let suspend = format!("/staff/v1/customers/{}/suspend", maria.id);
    let resume = format!("/staff/v1/customers/{}/resume", maria.id);
    let resp = kyc
        .staff_post(&reviewer, &suspend, &json!({"reason": "adverse media"}))
        .await;
    assert_eq!(resp.status(), 200, "suspend: {resp:?}");
    let resp = proxied(&kyc.http, &kyc.gw, &maria.access).await;
    assert_eq!(resp.status(), 403, "suspended customer: {resp:?}");
    let resp = kyc
        .staff_post(&reviewer, &resume, &json!({"reason": "cleared"}))
        .await;
    expect_problem(resp, 403, "forbidden").await;
    let resp = kyc
        .staff_post(
            &senior1,
            &resume,
            &json!({"reason": "adverse media cleared"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "resume: {resp:?}");
    let echo: Value = proxied(&kyc.http, &kyc.gw, &maria.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-computegate-tier"), ["identity_verified"]);

    // A document download by staff: the bytes, audited.
    let resp = kyc
        .staff_get(&reviewer, &format!("/staff/v1/documents/{document_id}"))
        .await;
    assert_eq!(resp.status(), 200, "download: {resp:?}");
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/pdf"
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), pdf.as_slice());
    let resp = kyc
        .staff_get(
            &auditor,
            "/staff/v1/audit?action=kyc.document.downloaded&limit=10",
        )
        .await;
    assert_eq!(resp.status(), 200, "audit: {resp:?}");
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(
        page["records"][0]["subject"],
        format!("application:{maria_app}")
    );

    // Metrics, bounded labels only.
    let samples = metrics(&kyc.http, &kyc.gw).await;
    let c = |name: &str, labels: &[(&str, &str)]| counter(&samples, name, labels);
    assert!(c("computegate_kyc_funnel_total", &[("stage", "draft")]) >= 3.0);
    assert!(c("computegate_kyc_funnel_total", &[("stage", "screened")]) >= 3.0);
    assert_eq!(
        c("computegate_kyc_funnel_total", &[("stage", "approved")]),
        2.0
    );
    assert_eq!(
        c(
            "computegate_kyc_decisions_total",
            &[("outcome", "approved")]
        ),
        2.0
    );
    assert_eq!(
        c(
            "computegate_kyc_decisions_total",
            &[("outcome", "first_approval")]
        ),
        1.0
    );
    assert_eq!(
        c(
            "computegate_kyc_decisions_total",
            &[("outcome", "rejected")]
        ),
        1.0
    );
    assert!(c("computegate_screening_hits_total", &[("list", "csl")]) >= 1.0);
    eventually(Duration::from_secs(20), "application gauges", || async {
        let samples = metrics(&kyc.http, &kyc.gw).await;
        counter(
            &samples,
            "computegate_kyc_applications",
            &[("status", "approved")],
        ) == 2.0
            && counter(
                &samples,
                "computegate_kyc_applications",
                &[("status", "rejected")],
            ) == 1.0
            && counter(&samples, "computegate_kyc_queue_size", &[]) == 0.0
    })
    .await;

    // The audit chain verifies and exports.
    let out = kyc.cli(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify: {out:?}");
    assert!(stdout.starts_with("chain intact, "), "{stdout}");
    let out = kyc.cli(&[
        "audit",
        "export",
        "--since",
        "2000-01-01",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "audit export: {out:?}");
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("seq,at,actor,actor_ip,action,subject,detail,prev_hash,hash"),
        "{csv}"
    );
    assert!(csv.contains("kyc.application.approved"), "{csv}");
    assert!(csv.lines().count() > 20, "{csv}");

    // A new list version names Maria: the import re-screens approved customers, suspends her
    // pending review, and the running gateway refuses her within seconds.
    let out = kyc.import("csl", "csl_v2.csv");
    assert!(out.contains("1 customers suspended"), "{out}");
    assert!(out.contains(&maria.id), "{out}");
    eventually(
        Duration::from_secs(15),
        "re-screen suspension on the data plane",
        || async { proxied(&kyc.http, &kyc.gw, &maria.access).await.status() == 403 },
    )
    .await;
    let echo: Value = proxied(&kyc.http, &kyc.gw, &org.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-computegate-tier"), ["validated_end_user"]);
    let resp = kyc
        .staff_get(
            &auditor,
            &format!(
                "/staff/v1/audit?subject=customer:{}&action=kyc.rescreen.suspended",
                maria.id
            ),
        )
        .await;
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
}

/// The `field`s of a problem's `errors`.
fn error_fields(doc: &Value) -> Vec<String> {
    doc["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {doc}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn factor_codes(file: &Value) -> Vec<String> {
    file["risk"]["factors"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn queue(kyc: &Kyc, staff: &kyc_support::Staff, query: &str) -> Value {
    queue_for(kyc, staff, query).await
}

async fn queue_for(kyc: &Kyc, staff: &kyc_support::Staff, query: &str) -> Value {
    let resp = kyc
        .staff_get(staff, &format!("/staff/v1/applications{query}"))
        .await;
    assert_eq!(resp.status(), 200, "queue: {resp:?}");
    resp.json().await.unwrap()
}

fn queue_ids(queue: &Value) -> Vec<String> {
    queue["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(queue: &'a Value, id: &str) -> &'a Value {
    queue["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {queue}"))
}

//! The console through the staff router over a real embedded store, as a browser uses it:
//! the session cookie kept between requests, each form's CSRF token read from the page.
//! Sign-in and its refusals, roles on pages and actions, a case read and decided (the four-eyes
//! and evidence rules shown next to the form), escaping of what customers typed, the screening
//! search, the policy page and a report export.

use computegate_kyc::accounts::StaffRole;
use http::{StatusCode, header};
use serde_json::json;

use crate::api::applications::tests::{draft, individual, upload_passport};
use crate::api::test_support::{Api, Call, Customer, PASSWORD, get, post};

/// A browser on the console: its cookie and the last page.
struct Browser<'a> {
    api: &'a Api,
    cookie: Option<String>,
}

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    location: Option<String>,
    html: String,
    headers: http::HeaderMap,
}

impl<'a> Browser<'a> {
    fn new(api: &'a Api) -> Self {
        Browser { api, cookie: None }
    }

    async fn send(&mut self, mut call: Call) -> Page {
        if let Some(c) = &self.cookie {
            call = call.header(header::COOKIE, &format!("cg_console={c}"));
        }
        let answer = self.api.staff(call).await;
        for v in answer.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("cg_console=") {
                self.cookie = Some(rest.split(';').next().unwrap().to_owned());
            }
        }
        Page {
            status: answer.status,
            location: answer
                .headers
                .get(header::LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            html: String::from_utf8(answer.bytes).unwrap(),
            headers: answer.headers,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(get(path)).await
    }

    /// Posts `fields` with the CSRF token of the page at `form_page`.
    async fn submit(&mut self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(form_page).await;
        assert_eq!(page.status, 200, "{}", page.html);
        let token = csrf(&page.html);
        let mut body: Vec<(String, String)> = vec![("csrf".into(), token)];
        body.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.post_form(action, &body).await
    }

    async fn post_form(&mut self, action: &str, body: &[(String, String)]) -> Page {
        let encoded = serde_urlencoded(body);
        self.send(post(action).raw("application/x-www-form-urlencoded", encoded.into_bytes()))
            .await
    }

    async fn sign_in(&mut self, email: &str) {
        let page = self
            .submit(
                "/console/login",
                "/console/login",
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.html);
        assert_eq!(page.location.as_deref(), Some("/console"));
    }
}

fn serde_urlencoded(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token of the first form on `html`.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// A submitted, screened application with a passport; its id.
async fn submitted(api: &Api, payload: &serde_json::Value) -> String {
    submitted_by(api, &api.new_customer().await, payload).await
}

/// As [`submitted`], by `customer`.
async fn submitted_by(api: &Api, customer: &Customer, payload: &serde_json::Value) -> String {
    let app = draft(api, customer, payload).await;
    upload_passport(api, customer, &app).await;
    let path = format!("/computegate/v1/kyc/applications/{app}/submit");
    let view = api.customer(post(&path).bearer(&customer.token)).await;
    assert_eq!(view.ok(200)["status"], "pending_review");
    app
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_refuses_wrong_passwords_in_plain_words() {
    let api = Api::start().await;
    let email = api.staff_account(StaffRole::Reviewer).await;
    let mut b = Browser::new(&api);

    let page = b.get("/console/").await;
    assert_eq!(page.status, 308);
    assert_eq!(page.location.as_deref(), Some("/console"));
    let page = b.get("/console").await;
    assert_eq!(page.status, 303);
    let to = page.location.unwrap_or_default();
    assert!(to.starts_with("/console/login"), "{to}");

    let page = b
        .submit(
            "/console/login",
            "/console/login",
            &[("email", &email), ("password", "not the password")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(
        page.html.contains("The email or password is not right"),
        "{}",
        page.html
    );
    assert!(page.html.contains("aria-invalid=\"true\""));

    // A form without the session's token changes nothing.
    let page = b
        .post_form(
            "/console/login",
            &[
                ("email".into(), email.clone()),
                ("password".into(), PASSWORD.into()),
            ],
        )
        .await;
    assert_eq!(page.status, 403);

    let login = b.get("/console/login").await;
    let token = csrf(&login.html);
    let page = b
        .post_form(
            "/console/login",
            &[
                ("csrf".into(), token),
                ("email".into(), email.clone()),
                ("password".into(), PASSWORD.into()),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let cookie = page
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("cg_console="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let page = b.get("/console").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(&email));
    let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(csp.to_str().unwrap().contains("default-src 'none'"));

    let signed_in = b.cookie.clone();
    let page = b.submit("/console", "/console/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(b.get("/console").await.status, 303);
    // A copy of the signed-in cookie is worthless after sign-out: its token was revoked.
    b.cookie = signed_in;
    let page = b.get("/console").await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(page.location.as_deref(), Some("/console/login"));
}

#[tokio::test]
async fn roles_are_respected_on_pages_and_actions() {
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let app = submitted(&api, &individual("Maria Lindqvist", "SE")).await;
    let mut reviewer = Browser::new(&api);
    reviewer
        .sign_in(&api.staff_account(StaffRole::Reviewer).await)
        .await;
    let page = reviewer.get("/console/audit").await;
    assert_eq!(page.status, 403);
    assert!(
        page.html
            .contains("the audit chain is for auditors and admins")
    );

    let mut admin = Browser::new(&api);
    admin
        .sign_in(&api.staff_account(StaffRole::Admin).await)
        .await;
    let page = admin.get(&format!("/console/applications/{app}")).await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(
        page.html
            .contains("personal data is for reviewers and auditors")
    );
    assert_eq!(admin.get("/console/audit").await.status, 200);

    let mut auditor = Browser::new(&api);
    auditor
        .sign_in(&api.staff_account(StaffRole::Auditor).await)
        .await;
    let case = format!("/console/applications/{app}");
    assert_eq!(auditor.get(&case).await.status, 200);
    // Auditors read only: a decision is refused with the staff API's words.
    let page = auditor
        .submit(
            &case,
            &format!("{case}/decision"),
            &[
                ("action", "approve"),
                ("tier", "identity_verified"),
                ("reason", "looks fine"),
            ],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.html);
    let page = auditor
        .submit(
            "/console/reports",
            &format!("{case}/screening-override"),
            &[("reason", "x")],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.html);
}

#[tokio::test]
async fn a_case_file_shows_everything_escaped_and_takes_a_decision() {
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let mut payload = individual("Maria <b>Lindqvist</b>", "SE");
    payload["intended_use"]["description"] = json!("<script>alert(1)</script> fine-tuning");
    let app = submitted(&api, &payload).await;
    let mut reviewer = Browser::new(&api);
    reviewer
        .sign_in(&api.staff_account(StaffRole::Reviewer).await)
        .await;

    let queue = reviewer.get("/console?country=se&older_than=").await;
    assert_eq!(queue.status, 200, "{}", queue.html);
    assert!(queue.html.contains(&app), "{}", queue.html);
    let bad = reviewer.get("/console?min_risk=lots").await;
    assert_eq!(bad.status, 422);
    assert!(bad.html.contains("an integer 0..=100"));

    let case = format!("/console/applications/{app}");
    let page = reviewer.get(&case).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains("<script>alert(1)"), "unescaped script");
    assert!(
        page.html
            .contains("&#60;script&#62;alert(1)&#60;/script&#62; fine-tuning")
    );
    assert!(page.html.contains("Maria &#60;b&#62;Lindqvist&#60;/b&#62;"));
    for section in [
        "list_version",
        "Risk:",
        "Documents",
        "History",
        "passport",
        "Approvals (four eyes)",
    ] {
        assert!(page.html.contains(section), "{section} missing");
    }
    let doc = page
        .html
        .split("/console/documents/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a document link")
        .to_owned();
    let pdf = reviewer.get(&format!("/console/documents/{doc}")).await;
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.headers[header::CONTENT_TYPE], "application/pdf");

    // The policy requires a verified identity: the refusal is shown next to the form.
    let decision = format!("{case}/decision");
    let approve = [
        ("action", "approve"),
        ("tier", "identity_verified"),
        ("reason", "passport matches"),
    ];
    let page = reviewer.submit(&case, &decision, &approve).await;
    assert_eq!(page.status, 422, "{}", page.html);
    assert!(page.html.contains("idv_verified"), "{}", page.html);
    let page = reviewer
        .submit(
            &case,
            &decision,
            &[
                ("action", "approve"),
                ("tier", "identity_verified"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("f-reason-error"), "{}", page.html);

    let mut checked = approve.to_vec();
    checked.push(("manual_evidence", "idv_verified"));
    checked.push(("manual_note", "passport checked on a video call"));
    let page = reviewer.submit(&case, &decision, &checked).await;
    assert_eq!(page.status, 303, "{}", page.html);
    let page = reviewer.get(&case).await;
    assert!(page.html.contains("approved"), "{}", page.html);
    assert!(page.html.contains("identity_verified"));

    // A listed name: the match is explained feature by feature.
    let listed = submitted(&api, &individual("Viktor Kalashov", "CY")).await;
    let page = reviewer
        .get(&format!("/console/applications/{listed}"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Per-feature breakdown"), "{}", page.html);
    assert!(page.html.contains("cg-t-001"), "{}", page.html);
    assert!(page.html.contains("name_jaro_winkler"), "{}", page.html);
}

#[tokio::test]
async fn screening_search_policy_and_report_export() {
    let api = Api::start().await;
    let mut staff = Browser::new(&api);
    staff
        .sign_in(&api.staff_account(StaffRole::SeniorReviewer).await)
        .await;
    let page = staff.get("/console/screening?name=Viktor+Kalashov").await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("No denied-party list has been imported"));

    api.import_list("csl.csv").await;
    let page = staff
        .get("/console/screening?name=Victor+Kalashoff&dob=1971-03-14&country=CY&kind=person")
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("KALASHOV"), "{}", page.html);
    assert!(page.html.contains("date_of_birth"));
    let page = staff
        .get("/console/screening?name=Victor&dob=14.03.1971")
        .await;
    assert_eq!(page.status, 422);
    assert!(page.html.contains("is not a date"));

    let page = staff.get("/console/policy").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("validated_end_user"));
    assert!(page.html.contains("in force"), "{}", page.html);

    let page = staff.get("/console/reports").await;
    assert_eq!(page.status, 200, "{}", page.html);
    let csv = staff
        .get("/console/reports/export?kind=quarterly&since=2026-01-01&format=csv")
        .await;
    assert_eq!(csv.status, 200, "{}", csv.html);
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let bad = staff
        .get("/console/reports/export?kind=everything&since=soon&format=csv")
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.html.contains("Give a date as YYYY-MM-DD"));
    assert_eq!(staff.get("/console/runs").await.status, 200);
    assert_eq!(staff.get("/console/job-reviews").await.status, 200);
    let resellers = staff.get("/console/resellers").await;
    assert_eq!(resellers.status, 200, "{}", resellers.html);
    assert!(
        resellers.html.contains("No reseller is flagged."),
        "{}",
        resellers.html
    );
}

#[tokio::test]
async fn a_case_file_shows_the_flags_of_a_partners_incident_bundle() {
    use computegate_kyc::accounts::Actor;
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let customer = api.new_customer().await;
    let app = submitted_by(&api, &customer, &individual("Ines Aalto", "FI")).await;
    // A partner saw abuse from the address our customer signs in from (the test client's).
    let bundle = crate::api::incidents::tests::partner_bundle("Partner <i>Cloud</i>");
    let kyc = &api.state.kyc;
    let report = kyc
        .store()
        .incidents()
        .import_bundle(
            kyc.master(),
            &kyc.stix_provider(),
            bundle.to_string().as_bytes(),
            &Actor::system("test"),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(report.customers, [customer.id]);
    let mut reviewer = Browser::new(&api);
    reviewer
        .sign_in(&api.staff_account(StaffRole::Reviewer).await)
        .await;
    let page = reviewer.get(&format!("/console/applications/{app}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let flags = page
        .html
        .split("id=\"incident-flags\"")
        .nth(1)
        .expect("the section");
    let flags = flags.split("<h2").next().unwrap();
    for shown in [
        "Partner &#60;i&#62;Cloud&#60;/i&#62;",
        "card testing ring",
        "ipv4",
    ] {
        assert!(flags.contains(shown), "{shown} missing: {flags}");
    }
    assert!(
        !flags.contains("192.0.2.10"),
        "the partner's value is not kept: {flags}"
    );
}

#[tokio::test]
async fn incidents_are_listed_read_and_moved_without_showing_values() {
    use crate::api::test_support::post as api_post;
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let customer = api.new_customer().await;
    let app = submitted_by(&api, &customer, &individual("Ines Aalto", "FI")).await;
    let token = api.staff_token(StaffRole::Reviewer).await;
    let first = api
        .staff(api_post("/staff/v1/incidents").bearer(&token).json(&json!({
            "kind": "account_sharing",
            "description": "keys resold <b>on</b> a forum",
            "customers": [customer.id],
            "indicators": [
                {"type": "ipv4", "value": "203.0.113.77"},
                {"type": "email_domain", "value": "resold.example"},
                {"type": "document_sha256", "value": "ab".repeat(32)},
            ],
        })))
        .await;
    let id = first.ok(201)["id"].as_str().unwrap().to_owned();
    // A full page (100) of newer incidents pushes the first one to the second page.
    for _ in 0..100 {
        api.staff(api_post("/staff/v1/incidents").bearer(&token).json(&json!({
            "kind": "fraud", "description": "card testing",
        })))
        .await
        .ok(201);
    }
    let mut reviewer = Browser::new(&api);
    reviewer
        .sign_in(&api.staff_account(StaffRole::Reviewer).await)
        .await;

    let list = reviewer.get("/console/incidents").await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(list.html.contains("fraud"));
    assert!(!list.html.contains(&id), "the oldest is on the next page");
    let next = list
        .html
        .split("href=\"/console/incidents?cursor=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a next page link");
    let second = reviewer
        .get(&format!("/console/incidents?cursor={next}"))
        .await;
    assert_eq!(second.status, 200, "{}", second.html);
    assert!(
        second
            .html
            .contains(&format!("href=\"/console/incidents/{id}\"")),
        "{}",
        second.html
    );
    assert!(!second.html.contains("Next page"));
    for page in [&list.html, &second.html] {
        for private in ["203.0.113.77", "resold.example", &customer.id.to_string()] {
            assert!(!page.contains(private), "{private} on the list");
        }
    }
    assert_eq!(
        reviewer.get("/console/incidents?cursor=nope").await.status,
        400
    );

    let path = format!("/console/incidents/{id}");
    let page = reviewer.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    for shown in [
        "keys resold &#60;b&#62;on&#60;/b&#62; a forum",
        "account_sharing",
        "20…77",
        "re…le",
        "abababababab…",
        "Mark reported",
    ] {
        assert!(page.html.contains(shown), "{shown} missing: {}", page.html);
    }
    for private in ["203.0.113.77", "resold.example", &"ab".repeat(32)] {
        assert!(
            !page.html.contains(private),
            "{private} on the incident page"
        );
    }
    let to_case = format!("/console/customers/{}", customer.id);
    assert!(page.html.contains(&format!("href=\"{to_case}\"")));
    let jump = reviewer.get(&to_case).await;
    assert_eq!(jump.status, 303);
    assert_eq!(
        jump.location.as_deref(),
        Some(format!("/console/applications/{app}").as_str())
    );
    let nobody = format!("/console/customers/{}", uuid::Uuid::new_v4());
    assert_eq!(reviewer.get(&nobody).await.status, 404);

    // A step skipped is refused on the page itself; the incident stays open.
    let status = format!("{path}/status");
    let refused = reviewer
        .submit(&path, &status, &[("status", "closed")])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert!(
        refused.html.contains("cannot become closed")
            && refused.html.contains("Mark reported")
            && refused.html.contains("href=\"#f-status\"")
            && refused.html.contains("id=\"f-status\""),
        "{}",
        refused.html
    );
    // Without the session's CSRF token nothing moves.
    let forged = reviewer
        .post_form(&status, &[("status".into(), "reported".into())])
        .await;
    assert_eq!(forged.status, 403);
    // Auditors read incidents but do not move them; admins list them but read no values.
    let mut auditor = Browser::new(&api);
    auditor
        .sign_in(&api.staff_account(StaffRole::Auditor).await)
        .await;
    let page = auditor
        .submit(&path, &status, &[("status", "reported")])
        .await;
    assert_eq!(page.status, 403, "{}", page.html);
    let mut admin = Browser::new(&api);
    admin
        .sign_in(&api.staff_account(StaffRole::Admin).await)
        .await;
    assert_eq!(admin.get("/console/incidents").await.status, 200);
    assert_eq!(admin.get(&path).await.status, 403);

    let moved = reviewer
        .submit(&path, &status, &[("status", "reported")])
        .await;
    assert_eq!(moved.status, 303, "{}", moved.html);
    assert_eq!(moved.location.as_deref(), Some(path.as_str()));
    let page = reviewer.get(&path).await;
    assert!(
        page.html.contains("<dd>reported</dd>") && page.html.contains(">Close</button>"),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn a_case_file_whose_payload_retention_withdrew_still_renders() {
    use computegate_kyc::accounts::Actor;
    use computegate_kyc::retention::{RetentionPlan, RunKind};
    use time::{Duration, OffsetDateTime};
    let api = Api::start().await;
    api.import_list("csl.csv").await;
    let customer = api.new_customer().await;
    let app = submitted_by(&api, &customer, &individual("Ines Aalto", "FI")).await;
    let senior = api.staff_token(StaffRole::SeniorReviewer).await;
    let close = format!("/staff/v1/customers/{}/close", customer.id);
    let body = json!({"reason": "the customer asked to close"});
    api.staff(post(&close).bearer(&senior).json(&body))
        .await
        .ok(200);
    // Three years on, the shipped verification period (two years after the closure) is over.
    let later = OffsetDateTime::now_utc() + Duration::days(3 * 366);
    let kyc = &api.state.kyc;
    let plan = RetentionPlan::new(&kyc.policy(), later);
    let run = kyc
        .store()
        .retention()
        .run_retention(&plan, RunKind::Manual, &Actor::system("test"), later)
        .await
        .unwrap()
        .expect("a manual run acts");
    assert_eq!(
        run.counts["verification"], 2,
        "the passport's bytes and the application's payload"
    );

    let mut reviewer = Browser::new(&api);
    reviewer
        .sign_in(&api.staff_account(StaffRole::Reviewer).await)
        .await;
    let page = reviewer.get(&format!("/console/applications/{app}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.html.contains("Purged under retention on"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("Ines Aalto"), "{}", page.html);
    // The staff API's case file carries the marker instead of the payload.
    let token = api.staff_token(StaffRole::Reviewer).await;
    let file = api
        .staff(get(&format!("/staff/v1/applications/{app}")).bearer(&token))
        .await;
    let file = file.ok(200);
    assert_eq!(file["payload"], serde_json::Value::Null, "{file}");
    assert!(file["identity_purged_at"].is_string(), "{file}");
}

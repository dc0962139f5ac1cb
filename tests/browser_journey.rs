//! The whole verification journey in a real browser (headless Chromium over WebDriver) against
//! `computegate demo` (its metered job route, sample list, seeded staff and printed IDV
//! secret), across both surfaces: a customer signs up in the portal as an organization,
//! fills in the organization form and uploads its compliance plan; the IDV provider's signed
//! event arrives; a reviewer and two senior reviewers sign in to the console — the reviewer may
//! not grant the top tier, the first senior's approval waits for a second, the second grants
//! it; the customer creates an API key in the portal and submits a job through the gateway
//! (admitted), then a biological-sequence run past 1e23 FLOP, which the policy holds for
//! review (refused with the reason; the portal lists the run with the threshold that holds it). Failures leave a screenshot in `target/browser-screenshots/`; with
//! `COMPUTEGATE_TEST_DOCS_SCREENSHOTS=1` the console's case file is saved as
//! `docs/screenshots/console-case.png` (the README shows it).

mod browser_support;
mod kyc_support;
mod support;

use std::time::Duration;

use browser_support::{Browser, EVIL, with_browser};
use fantoccini::Locator;
use serde_json::{Value, json};

use kyc_support::{organization, stripe_event, stripe_signature, unix_now};
use support::identity::PASSWORD;
use support::metering::Demo;
use support::within;

/// Budget of the journey (a gateway, a simulator, Chromium and several argon2 logins on a
/// loaded 2-core machine).
const JOURNEY: Duration = Duration::from_secs(240);

#[tokio::test]
#[ignore = "needs chromium"]
async fn an_organization_reaches_the_top_tier_through_the_portal_and_the_console() {
    within(JOURNEY, async {
        let demo = Demo::start().await;
        let http = support::client();
        let portal = format!("http://{}/computegate/account", demo.public);
        let console = format!("http://{}/console", demo.admin);
        let accounts = |role: &str| -> Vec<(String, String)> {
            demo.printed
                .lines()
                .filter_map(|l| {
                    let rest = l.trim_start().strip_prefix(role)?;
                    let (email, password) = rest.trim().split_once(" / ")?;
                    Some((email.to_owned(), password.trim().to_owned()))
                })
                .collect()
        };
        let reviewer = accounts("reviewer").remove(0);
        let seniors = accounts("senior_reviewer");
        let idv_secret = demo
            .printed
            .split("-hmac '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("the printed IDV secret")
            .to_owned();
        let (demo, http) = (&demo, &http);
        with_browser("portal_console_journey", |b| async move {
            // --- the customer: sign up, the organization form, the compliance plan ---
            let email = b.sign_up(&portal, "organization", PASSWORD).await;
            b.choose("#f-requested-tier", "validated_end_user").await;
            // Free text is hostile: the console must show it as text too.
            let mut payload = organization("validated_end_user");
            payload["organization"]["legal_name"] = json!(EVIL);
            payload["intended_use"]["description"] = json!(EVIL);
            fill_application(&b, &payload).await;
            b.click("button[name=action][value=save]").await;
            b.wait_for_path("/computegate/account/application?done=saved").await;
            let text = b.main_text().await;
            assert!(text.contains("Your application was saved."), "{text}");
            b.upload_document("compliance_plan").await;
            b.click("button[name=action][value=submit]").await;
            b.wait_for_path("/computegate/account/application?done=submitted").await;
            let text = b.main_text().await;
            assert!(text.contains("Waiting for review"), "{text}");

            // --- the IDV provider reports a verified representative ---
            let token = staff_token(http, demo, &reviewer).await;
            let app = application_of(http, demo, &token, &email).await;
            let body = stripe_event(&format!("evt_{app}"), "verified", &app);
            let sig = stripe_signature(&idv_secret, unix_now(), &body);
            let resp = http
                .post(format!("http://{}/computegate/v1/kyc/webhooks/stripe", demo.public))
                .header("content-type", "application/json")
                .header("stripe-signature", sig)
                .body(body)
                .send()
                .await
                .expect("send the IDV event");
            assert_eq!(resp.status(), 200, "IDV event: {resp:?}");

            // --- the console: a reviewer may not grant the top tier ---
            let case = format!("{console}/applications/{app}");
            sign_in_console(&b, &console, &reviewer).await;
            b.click(&format!("a[href='/console/applications/{app}']"))
                .await;
            b.wait_for_path(&format!("/console/applications/{app}")).await;
            let text = b.main_text().await;
            assert!(text.contains("Per-feature breakdown") || text.contains("No candidate"), "{text}");
            // What the customer typed is shown as text: no element was made of it, no alert.
            b.assert_shown_as_text(2).await;
            decide(&b, "validated_end_user", "VEU criteria met").await;
            b.wait_for_path(&format!("/console/applications/{app}/decision")).await;
            let text = b.main_text().await;
            assert!(text.contains("may not do this"), "{text}");
            sign_out_console(&b, &case).await;

            // --- two distinct senior reviewers ---
            sign_in_console(&b, &console, &seniors[0]).await;
            b.goto(&case).await;
            decide(&b, "validated_end_user", "VEU criteria met; plan reviewed").await;
            // The decision answers on the case's own address: no path change marks the new
            // page, so wait for what it says (the old page was read here once, under load).
            let text = b.wait_for_text("you approved validated_end_user").await;
            assert_eq!(b.path().await, format!("/console/applications/{app}"));
            assert!(text.contains("pending review"), "{text}");
            sign_out_console(&b, &case).await;
            sign_in_console(&b, &console, &seniors[1]).await;
            b.goto(&case).await;
            decide(&b, "validated_end_user", "second approval").await;
            let text = b.wait_for_text("Tier granted").await;
            assert_eq!(b.path().await, format!("/console/applications/{app}"));
            assert!(text.contains("Status\napproved") || text.contains("approved"), "{text}");
            if std::env::var_os("COMPUTEGATE_TEST_DOCS_SCREENSHOTS").is_some() {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
                std::fs::create_dir_all(&dir).expect("docs/screenshots");
                let png = b.client.screenshot().await.expect("screenshot");
                std::fs::write(dir.join("console-case.png"), png).expect("save");
            }

            // --- the customer: a key, an admitted job, a job held for review ---
            b.goto(&format!("{portal}/keys")).await;
            b.fill("#f-name", "journey").await;
            b.click("main form.stacked button[type=submit]").await;
            b.wait_for_path("/computegate/account/keys").await;
            let key = b.find("#new-key").await.text().await.expect("the new key");
            let job = json!({"gpu_type": "h100", "gpu_count": 64, "max_duration_hours": 2, "run_id": "journey-run"});
            let resp = submit_job(http, demo, &key, &job).await;
            assert_eq!(resp.status(), 201, "admitted: {resp:?}");
            let bio = json!({"gpu_type": "h100", "gpu_count": 512, "max_duration_hours": 150,
                "run_id": "journey-bio", "dataset": {"kind": "biological_sequence"}});
            let resp = submit_job(http, demo, &key, &bio).await;
            let status = resp.status();
            let refusal: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 409, "held: {refusal}");
            assert_eq!(refusal["reason"], "threshold_review", "{refusal}");
            b.goto(&format!("{portal}/usage")).await;
            let text = b.main_text().await;
            assert!(text.contains("journey-run"), "{text}");
            // The held run is listed with the threshold that holds it and what that means.
            let held = text
                .split("Training run journey-bio")
                .nth(1)
                .unwrap_or_else(|| panic!("the held run is not listed: {text}"));
            assert!(held.contains("bio-sequence-1e23"), "{text}");
            assert!(held.contains("held for compliance review"), "{text}");
        })
        .await;
    })
    .await;
}

/// Fills every input of the portal's application form named after a field of `payload`
/// (inputs are named by payload path; their ids are `f-` and the path with `-` for anything
/// but letters and digits): selects by value (`yes`/`no` for booleans), dates through the
/// element's value, text by typing.
async fn fill_application(b: &Browser, payload: &Value) {
    let mut fields = Vec::new();
    flatten("", payload, &mut fields);
    for (path, value) in fields {
        if matches!(path.as_str(), "kind" | "requested_tier") {
            continue;
        }
        let id: String = path
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let css = format!("#f-{id}");
        let found = b
            .client
            .find_all(Locator::Css(&css))
            .await
            .expect("query the form");
        let Some(input) = found.into_iter().next() else {
            continue;
        };
        let tag = input.tag_name().await.expect("tag");
        let kind = input.attr("type").await.expect("type").unwrap_or_default();
        if tag == "select" {
            let choice = match value.as_str() {
                "true" => "yes",
                "false" => "no",
                other => other,
            };
            b.choose(&css, choice).await;
        } else if kind == "date" {
            b.client
                .execute(
                    "arguments[0].value = arguments[1];",
                    vec![serde_json::to_value(&input).expect("element"), json!(value)],
                )
                .await
                .expect("set the date");
        } else {
            b.fill(&css, &value).await;
        }
    }
}

fn flatten(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Null => {}
        other => out.push((path.to_owned(), other.to_string())),
    }
}

/// A staff access token for `(email, password)`.
async fn staff_token(http: &reqwest::Client, demo: &Demo, account: &(String, String)) -> String {
    let resp = http
        .post(format!("http://{}/staff/v1/auth/token", demo.admin))
        .json(&json!({"email": account.0, "password": account.1}))
        .send()
        .await
        .expect("staff token");
    let doc: Value = resp.json().await.expect("token JSON");
    doc["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// The id of the application of the customer with `email`, from the staff queue.
async fn application_of(
    http: &reqwest::Client,
    demo: &Demo,
    staff_token: &str,
    email: &str,
) -> String {
    let admin = |path: &str| format!("http://{}{path}", demo.admin);
    let doc: Value = http
        .get(admin("/staff/v1/applications"))
        .bearer_auth(staff_token)
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("queue JSON");
    for item in doc["applications"].as_array().expect("applications") {
        let id = item["id"].as_str().expect("id");
        let file: Value = http
            .get(admin(&format!("/staff/v1/applications/{id}")))
            .bearer_auth(staff_token)
            .send()
            .await
            .expect("case file")
            .json()
            .await
            .expect("case JSON");
        if file["customer_email"] == email {
            return id.to_owned();
        }
    }
    panic!("no application of {email} in the queue: {doc}");
}

async fn sign_in_console(b: &Browser, console: &str, account: &(String, String)) {
    b.goto(&format!("{console}/login")).await;
    b.fill("#f-email", &account.0).await;
    b.fill("#f-password", &account.1).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path("/console").await;
    let text = b.main_text().await;
    assert!(
        text.contains("Review queue") || text.contains("Application"),
        "{text}"
    );
}

async fn sign_out_console(b: &Browser, page: &str) {
    b.goto(page).await;
    b.click(".signout button").await;
    b.wait_for_path("/console/login").await;
}

/// Sends the case file's decision form: approve `tier` with `reason`.
async fn decide(b: &Browser, tier: &str, reason: &str) {
    b.choose("#f-action", "approve").await;
    b.choose("#f-tier", tier).await;
    b.fill("#f-reason", reason).await;
    b.click("form[action$='/decision'] button[type=submit]")
        .await;
}

async fn submit_job(
    http: &reqwest::Client,
    demo: &Demo,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("http://{}/v1/jobs", demo.public))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("send job")
}

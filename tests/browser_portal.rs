//! The customer portal in a real browser (headless Chromium over WebDriver) against the real
//! binary: a customer signs up as an organization, fills in the organization form with a
//! beneficial owner, uploads a document and sees the status page with what is still missing;
//! and HTML or script typed into free-text fields comes back as text, never as markup.
//! Screenshots of failures land in `target/browser-screenshots/`; with
//! `COMPUTEGATE_TEST_DOCS_SCREENSHOTS=1` the status page is also saved as
//! `docs/screenshots/portal-status.png` (the README shows it).

mod browser_support;
mod kyc_support;
mod support;

use std::time::Duration;

use browser_support::{EVIL, with_browser};
use fantoccini::Locator;
use kyc_support::Kyc;
use support::identity::{PASSWORD, Setup};
use support::within;

/// Budget of one browser journey (a gateway, a simulator and Chromium on a loaded 2-core
/// machine).
const JOURNEY: Duration = Duration::from_secs(180);

#[tokio::test]
#[ignore = "needs chromium"]
async fn an_organization_signs_up_fills_its_form_uploads_and_sees_what_is_missing() {
    within(JOURNEY, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let root = kyc.gw.url("/computegate/account");
        with_browser("portal_organization_journey", |b| async move {
            let email = b.sign_up(&root, "organization", PASSWORD).await;
            let text = b.main_text().await;
            assert!(text.contains("Apply for a higher tier"), "{text}");
            assert!(
                b.source().await.contains(&email),
                "signed in as the new account"
            );

            // The organization, one beneficial owner, the intended use; free text is hostile.
            b.choose("#f-requested-tier", "validated_end_user").await;
            b.fill("#f-organization-legal-name", EVIL).await;
            b.fill("#f-organization-registration-number", "HRB 12345")
                .await;
            b.fill("#f-organization-jurisdiction", "DE").await;
            b.fill("#f-organization-headquarters-country", "DE").await;
            b.choose("#f-organization-reseller", "no").await;
            b.fill("#f-organization-beneficial-owners-0--legal-name", EVIL)
                .await;
            b.fill(
                "#f-organization-beneficial-owners-0--ownership-percent",
                "60",
            )
            .await;
            b.fill("#f-intended-use-description", EVIL).await;
            b.fill("#f-expected-peak-accelerators", "64").await;
            b.click("button[name=action][value=save]").await;

            b.wait_for_path("/computegate/account/application?done=saved")
                .await;
            let text = b.main_text().await;
            assert!(text.contains("Your application was saved."), "{text}");
            assert!(text.contains("Status: Draft"), "{text}");
            assert!(text.contains("What is missing"), "{text}");
            assert!(
                text.contains("The person acting for the organization"),
                "{text}"
            );
            assert!(text.contains("A compliance plan document"), "{text}");
            b.assert_shown_as_text(0).await;
            for input in [
                "#f-organization-legal-name",
                "#f-organization-beneficial-owners-0--legal-name",
                "#f-intended-use-description",
            ] {
                let typed = b.find(input).await.prop("value").await.unwrap();
                assert_eq!(typed.as_deref(), Some(EVIL), "{input}");
            }

            // Upload the compliance plan.
            b.upload_document("compliance_plan").await;
            let text = b.main_text().await;
            assert!(text.contains("The document was uploaded."), "{text}");
            assert!(text.contains("Compliance plan"), "{text}");
            assert!(
                !text.contains("A compliance plan document (upload"),
                "{text}"
            );
            // What is still missing, each linked to its input.
            let links = b
                .client
                .find_all(Locator::Css("ul.checklist a[href^='#f-']"))
                .await
                .expect("missing-field links");
            assert!(!links.is_empty(), "{text}");
            assert!(
                text.contains("The person acting for the organization"),
                "{text}"
            );
            let docs_screenshots = std::env::var_os("COMPUTEGATE_TEST_DOCS_SCREENSHOTS").is_some();
            if docs_screenshots {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
                std::fs::create_dir_all(&dir).expect("docs/screenshots");
                let png = b.client.screenshot().await.expect("screenshot");
                std::fs::write(dir.join("portal-status.png"), png).expect("save");
            }

            // The overview: the tier with its caps, and what the next tiers need.
            b.click("nav a[href='/computegate/account']").await;
            let text = b.main_text().await;
            assert!(text.contains("Your tier: unverified"), "{text}");
            assert!(text.contains("Next: organization_verified"), "{text}");
            assert!(text.contains("Next: validated_end_user"), "{text}");
            assert!(
                text.contains("A compliance plan document uploaded"),
                "{text}"
            );
            assert!(text.contains("is draft"), "{text}");
            // Usage: every budget and the thresholds ahead, no jobs yet.
            b.click("nav a[href='/computegate/account/usage']").await;
            let text = b.main_text().await;
            assert!(text.contains("No jobs yet."), "{text}");
            assert!(text.contains("Jobs running or reserved"), "{text}");
            if docs_screenshots {
                b.save_evidence("portal-usage").await;
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs chromium"]
async fn html_typed_into_free_text_fields_is_shown_as_text() {
    within(JOURNEY, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let root = kyc.gw.url("/computegate/account");
        with_browser("portal_escaping", |b| async move {
            // A refused sign-up shows the typed email back.
            b.goto(&format!("{root}/signup")).await;
            b.fill("#f-email", EVIL).await;
            b.fill("#f-password", PASSWORD).await;
            b.choose("#f-kind", "individual").await;
            b.click("main form button[type=submit]").await;
            b.wait_for_text("There is a problem").await;
            assert_eq!(
                b.find("#f-email")
                    .await
                    .prop("value")
                    .await
                    .unwrap()
                    .as_deref(),
                Some(EVIL)
            );
            b.assert_shown_as_text(0).await;

            // A key named with markup.
            b.sign_up(&root, "individual", PASSWORD).await;
            b.goto(&format!("{root}/keys")).await;
            b.fill("#f-name", EVIL).await;
            b.click("main form.stacked button[type=submit]").await;
            b.wait_for_text("Copy the key now").await;
            b.assert_shown_as_text(1).await;
            let cell = b.find("main table tbody td").await.text().await.unwrap();
            assert_eq!(cell, EVIL);
        })
        .await;
    })
    .await;
}

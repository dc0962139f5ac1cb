//! The real KYC path to a tier: a denied-party list imported, an individual (or organization)
//! application submitted, and a reviewer's approval through
//! `POST /staff/v1/applications/{id}/decision`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::identity::{PASSWORD, token, tokens_of, unique_email};
use super::{Cust, Meter};

// === impl Meter ===

impl Meter {
    /// Imports the fictional denied-party list of `tests/data/kyc/csl.csv` (once per gateway).
    pub(crate) fn import_screening_list(&self) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kyc/csl.csv");
        let out = self.cli(&[
            "screening",
            "import",
            "--format",
            "csl",
            path.to_str().expect("UTF-8 path"),
        ]);
        assert!(out.status.success(), "screening import: {out:?}");
    }

    /// Submits a complete `identity_verified` application for `c` with `payment_fingerprint`
    /// and returns its id (asserting it reached `pending_review`).
    pub(crate) async fn apply_individual(&self, c: &Cust, name: &str, fingerprint: &str) -> String {
        let passport = format!("SE{}", &uuid::Uuid::new_v4().simple().to_string()[..7]);
        let body = json!({
            "kind": "individual",
            "requested_tier": "identity_verified",
            "individual": {
                "legal_name": name,
                "date_of_birth": "1986-04-12",
                "nationality": "SE",
                "address": {"line1": "2 Storgatan", "city": "Uppsala", "postal_code": "75320", "country": "SE"},
                "id_document": {"type": "passport", "number": passport, "issuing_country": "SE"},
                "phone": "+46 70 765 43 21"
            },
            "payment_fingerprint": fingerprint,
            "intended_use": {
                "category": "model_training",
                "description": "Training small language models for research.",
                "biological_sequence_data": false,
                "model_export": false
            },
            "expected_peak_accelerators": 16,
            "expected_total_flop": 1.0e21
        });
        let base = self.gw.url("/computegate/v1/kyc/applications");
        let resp = self
            .http
            .post(&base)
            .header("authorization", format!("Bearer {}", c.access))
            .json(&body)
            .send()
            .await
            .expect("send draft");
        assert_eq!(resp.status(), 201, "create draft: {resp:?}");
        let doc: Value = resp.json().await.expect("draft JSON");
        let id = doc["id"].as_str().expect("application id").to_owned();
        let resp = self
            .http
            .post(format!("{base}/{id}/submit"))
            .header("authorization", format!("Bearer {}", c.access))
            .send()
            .await
            .expect("send submit");
        assert_eq!(resp.status(), 200, "submit application: {resp:?}");
        let doc: Value = resp.json().await.expect("submit JSON");
        assert_eq!(doc["status"], "pending_review", "{doc}");
        id
    }

    /// Creates and submits an application with `body` for `c`; returns it as it stands after
    /// the submission (`pending_review` once screened, `rejected` for an embargoed country).
    pub(crate) async fn apply(&self, c: &Cust, body: &Value) -> Value {
        let base = self.gw.url("/computegate/v1/kyc/applications");
        let resp = self
            .http
            .post(&base)
            .header("authorization", format!("Bearer {}", c.access))
            .json(body)
            .send()
            .await
            .expect("send draft");
        assert_eq!(resp.status(), 201, "create draft: {resp:?}");
        let doc: Value = resp.json().await.expect("draft JSON");
        let id = doc["id"].as_str().expect("application id").to_owned();
        let resp = self
            .http
            .post(format!("{base}/{id}/submit"))
            .header("authorization", format!("Bearer {}", c.access))
            .send()
            .await
            .expect("send submit");
        assert_eq!(resp.status(), 200, "submit application: {resp:?}");
        resp.json().await.expect("submit JSON")
    }

    /// A new account of `kind` (`individual`, `organization`) signed up and signed in; returns
    /// it with its (lower-case) email.
    pub(crate) async fn signed_up(&self, kind: &str) -> (Cust, String) {
        let email = unique_email(kind).to_lowercase();
        let resp = self
            .http
            .post(self.gw.url("/computegate/v1/auth/signup"))
            .json(&json!({"email": email, "password": PASSWORD, "kind": kind}))
            .send()
            .await
            .expect("send signup");
        assert_eq!(resp.status(), 201, "signup: {resp:?}");
        let doc: Value = resp.json().await.expect("signup JSON");
        let tokens = tokens_of(token(&self.http, &self.gw, &email, PASSWORD).await).await;
        let cust = Cust {
            id: doc["customer_id"].as_str().expect("customer_id").to_owned(),
            access: tokens.access,
        };
        (cust, email)
    }

    /// The KYB path: a new organization account whose application (a company named
    /// `legal_name`) reviewer `staff` approves at `organization_verified`, which creates its
    /// organization. Returns the owner with its email.
    pub(crate) async fn verified_organization(
        &self,
        staff: &str,
        legal_name: &str,
    ) -> (Cust, String) {
        let (owner, email) = self.signed_up("organization").await;
        let registration = format!("5566{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let app = self
            .apply(&owner, &organization_application(legal_name, &registration))
            .await;
        assert_eq!(app["status"], "pending_review", "{app}");
        let id = app["id"].as_str().expect("application id");
        self.approve_at(staff, id, "organization_verified").await;
        (owner, email)
    }

    /// Approves application `id` for `identity_verified` as reviewer `staff` (the real KYC
    /// staff path), retrying while screening is still deferred (the list import reaches the
    /// gateway within seconds).
    pub(crate) async fn approve_individual(&self, staff: &str, id: &str) {
        self.approve_at(staff, id, "identity_verified").await;
    }

    /// Approves application `id` for `tier` as reviewer `staff`, like
    /// [`Meter::approve_individual`].
    pub(crate) async fn approve_at(&self, staff: &str, id: &str, tier: &str) {
        let path = format!("/staff/v1/applications/{id}/decision");
        let body = json!({"action": "approve", "tier": tier,
                          "reason": "screening clear (metering tests)",
                          "manual_checks": [{"evidence": "idv_verified",
                                             "note": "document checked by hand (metering tests)"}]});
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let resp = self.staff_post(staff, &path, &body).await;
            let status = resp.status();
            let doc: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 {
                assert_eq!(doc["status"], "approved", "{doc}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "approval of {id} kept failing: {status} {doc}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A complete `organization_verified` (KYB) application of a Swedish company named
/// `legal_name` with registration number `registration`.
pub(crate) fn organization_application(legal_name: &str, registration: &str) -> Value {
    let person = |name: &str, dob: &str, passport: &str| {
        json!({
            "legal_name": name,
            "date_of_birth": dob,
            "nationality": "SE",
            "address": {"line1": "Kungsgatan 1", "city": "Stockholm", "postal_code": "11143", "country": "SE"},
            "id_document": {"type": "passport", "number": passport, "issuing_country": "SE"},
            "phone": "+46 70 123 45 67"
        })
    };
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..7];
    let mut owner = person("Ingrid Solberg", "1975-05-20", &format!("SE{suffix}"));
    owner["ownership_percent"] = json!(60.0);
    json!({
        "kind": "organization",
        "requested_tier": "organization_verified",
        "organization": {
            "legal_name": legal_name,
            "registration_number": registration,
            "jurisdiction": "SE",
            "address": {"line1": "Kungsgatan 1", "city": "Stockholm", "postal_code": "11143", "country": "SE"},
            "headquarters_country": "SE",
            "ultimate_parent_country": "SE",
            "representative": person("Erik Nyberg", "1980-02-11", &format!("SR{suffix}")),
            "beneficial_owners": [owner],
            "reseller": false
        },
        "payment_fingerprint": format!("pm_fp_org_{suffix}"),
        "intended_use": {
            "category": "research",
            "description": "Training foundation models for materials science.",
            "biological_sequence_data": false,
            "model_export": false
        },
        "expected_peak_accelerators": 256,
        "expected_total_flop": 1.0e23
    })
}

/// A complete `identity_verified` application of a person (the fixture list names Viktor
/// Mendrovich Kalashov, born 1971-03-14, CY, passport K1234567).
pub(crate) fn individual_application(
    name: &str,
    dob: &str,
    country: &str,
    passport: &str,
) -> Value {
    json!({
        "kind": "individual",
        "requested_tier": "identity_verified",
        "individual": {
            "legal_name": name,
            "date_of_birth": dob,
            "nationality": country,
            "address": {"line1": "1 Main Street", "city": "Springfield", "postal_code": "12345", "country": country},
            "id_document": {"type": "passport", "number": passport, "issuing_country": country},
            "phone": "+46 70 123 45 67"
        },
        "payment_fingerprint": format!("pm_fp_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        "intended_use": {
            "category": "model_training",
            "description": "Fine-tuning language models for customer support.",
            "biological_sequence_data": false,
            "model_export": false
        },
        "expected_peak_accelerators": 8,
        "expected_total_flop": 1.0e20
    })
}

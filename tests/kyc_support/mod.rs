//! Fixtures of the KYC black-box tests: a gateway with a store, IDV webhook secrets and the
//! simulator behind it; customers and staff users; complete applications; multipart bodies and
//! webhook signatures computed the way the providers compute them.

#![allow(dead_code)]

pub(crate) mod onfido;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::identity::{
    IdGateway, PASSWORD, Setup, identity_config, login, master_key, new_account, unique_email,
};
use crate::support::{Gateway, Sim, client, run_cli_with_stdin};

/// `COMPUTEGATE_IDV_STRIPE_SECRET` of the test gateways.
pub(crate) const STRIPE_SECRET: &str = "whsec_computegate_test_stripe";
/// `COMPUTEGATE_IDV_STRIPE_SECRET_PREVIOUS` (a rotation in progress).
pub(crate) const STRIPE_PREVIOUS: &str = "whsec_computegate_test_stripe_old";
/// `COMPUTEGATE_IDV_ONFIDO_SECRET`.
pub(crate) const ONFIDO_SECRET: &str = "onfido_computegate_test_token";
/// Password of every staff user the tests create.
pub(crate) const STAFF_PASSWORD: &str = "staff password for tests";

/// A running gateway (with its simulator) and a client.
#[derive(Debug)]
pub(crate) struct Kyc {
    /// The simulator behind `/v1`.
    pub(crate) sim: Sim,
    /// The gateway.
    pub(crate) gw: IdGateway,
    /// HTTP client.
    pub(crate) http: reqwest::Client,
}

/// A signed-up, logged-in customer.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    /// Email.
    pub(crate) email: String,
    /// Customer id.
    pub(crate) id: String,
    /// Access token.
    pub(crate) access: String,
}

/// A staff user with a token.
#[derive(Debug, Clone)]
pub(crate) struct Staff {
    /// Email.
    pub(crate) email: String,
    /// Role.
    pub(crate) role: String,
    /// Staff bearer token (admin listener).
    pub(crate) token: String,
}

/// One part of a multipart body.
pub(crate) struct Part<'a> {
    /// Field name.
    pub(crate) name: &'a str,
    /// File name, for file parts.
    pub(crate) filename: Option<&'a str>,
    /// Declared content type.
    pub(crate) content_type: Option<&'a str>,
    /// The bytes.
    pub(crate) bytes: &'a [u8],
}

/// A file of `tests/data/kyc/`.
pub(crate) fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kyc")
        .join(name)
}

/// The bytes of a file of `tests/data/kyc/`.
pub(crate) fn data_bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).expect("read test data")
}

// === impl Kyc ===

impl Kyc {
    /// A simulator and a gateway with `setup`, a new master key and the test webhook secrets.
    pub(crate) async fn start(setup: &Setup) -> Kyc {
        Kyc::start_with_env(setup, &[]).await
    }

    /// As [`Kyc::start`], with `extra` environment variables (replacing the defaults of the
    /// same name).
    pub(crate) async fn start_with_env(setup: &Setup, extra: &[(&str, &str)]) -> Kyc {
        let sim = Sim::start().await;
        let key = master_key();
        let body = identity_config(sim.addr, setup);
        let mut env: Vec<(&str, &str)> = [
            ("COMPUTEGATE_MASTER_KEY", key.as_str()),
            ("COMPUTEGATE_IDV_STRIPE_SECRET", STRIPE_SECRET),
            ("COMPUTEGATE_IDV_STRIPE_SECRET_PREVIOUS", STRIPE_PREVIOUS),
            ("COMPUTEGATE_IDV_ONFIDO_SECRET", ONFIDO_SECRET),
        ]
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
        env.extend_from_slice(extra);
        let gw = Gateway::start_with_env(&body, &env).await;
        Kyc {
            sim,
            gw: IdGateway {
                gw,
                master_key: key,
            },
            http: client(),
        }
    }

    /// `computegate ARGS --config <gateway config>` with the master key.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        self.gw.cli(args)
    }

    /// `computegate screening import --format FORMAT <file>`, asserting success.
    pub(crate) fn import(&self, format: &str, file: &str) -> String {
        let path = data(file);
        let path = path.to_str().expect("UTF-8 path");
        let out = self.cli(&["screening", "import", "--format", format, path]);
        assert!(out.status.success(), "screening import: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new individual customer, logged in.
    pub(crate) async fn customer(&self) -> Customer {
        let account = new_account(&self.http, &self.gw).await;
        let tokens = login(&self.http, &self.gw, &account).await;
        Customer {
            email: account.email,
            id: account.customer_id,
            access: tokens.access,
        }
    }

    /// A new customer signed up as `kind` with `email`, logged in.
    pub(crate) async fn customer_with(&self, email: &str, kind: &str) -> Customer {
        let resp = self
            .http
            .post(self.gw.url("/computegate/v1/auth/signup"))
            .json(&json!({"email": email, "password": PASSWORD, "kind": kind}))
            .send()
            .await
            .expect("send signup");
        assert_eq!(resp.status(), 201, "signup: {resp:?}");
        let doc: Value = resp.json().await.expect("signup JSON");
        let account = crate::support::identity::Account {
            email: email.to_owned(),
            password: PASSWORD.into(),
            customer_id: doc["customer_id"].as_str().expect("id").to_owned(),
        };
        let tokens = login(&self.http, &self.gw, &account).await;
        Customer {
            email: account.email,
            id: account.customer_id,
            access: tokens.access,
        }
    }

    /// A new staff user with `role`, signed in.
    pub(crate) async fn staff(&self, role: &str) -> Staff {
        self.staff_with_email(&unique_email(role), role).await
    }

    /// A new staff user with `email` and `role` (created with the CLI), signed in.
    pub(crate) async fn staff_with_email(&self, email: &str, role: &str) -> Staff {
        let config = self.gw.config_path();
        let args = [
            OsStr::new("staff"),
            OsStr::new("create"),
            OsStr::new("--email"),
            OsStr::new(email),
            OsStr::new("--role"),
            OsStr::new(role),
            OsStr::new("--password-stdin"),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        let out = run_cli_with_stdin(
            &args,
            &self.gw.env(),
            format!("{STAFF_PASSWORD}\n").as_bytes(),
        );
        assert!(out.status.success(), "staff create: {out:?}");
        let resp = self
            .http
            .post(self.gw.admin_url("/staff/v1/auth/token"))
            .json(&json!({"email": email.to_lowercase(), "password": STAFF_PASSWORD}))
            .send()
            .await
            .expect("send staff token request");
        assert_eq!(resp.status(), 200, "staff token: {resp:?}");
        let doc: Value = resp.json().await.expect("token JSON");
        Staff {
            email: email.to_owned(),
            role: role.to_owned(),
            token: doc["access_token"].as_str().expect("token").to_owned(),
        }
    }

    // --- customer API ---

    /// `METHOD /computegate/v1/kyc/applications{suffix}` as `c` with a JSON body.
    pub(crate) async fn customer_call(
        &self,
        c: &Customer,
        method: reqwest::Method,
        suffix: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(
                method,
                self.gw
                    .url(&format!("/computegate/v1/kyc/applications{suffix}")),
            )
            .header("authorization", format!("Bearer {}", c.access));
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("send customer request")
    }

    /// Creates a draft (asserting 201) and returns its id.
    pub(crate) async fn draft(&self, c: &Customer, body: &Value) -> String {
        let resp = self
            .customer_call(c, reqwest::Method::POST, "", Some(body))
            .await;
        assert_eq!(resp.status(), 201, "create draft: {resp:?}");
        let doc: Value = resp.json().await.expect("JSON");
        assert_eq!(doc["status"], "draft", "{doc}");
        doc["id"].as_str().expect("id").to_owned()
    }

    /// Submits (asserting 200) and returns the application as it stands afterwards.
    pub(crate) async fn submit(&self, c: &Customer, id: &str) -> Value {
        let resp = self
            .customer_call(c, reqwest::Method::POST, &format!("/{id}/submit"), None)
            .await;
        assert_eq!(resp.status(), 200, "submit: {resp:?}");
        resp.json().await.expect("JSON")
    }

    /// `GET …/applications/{id}` as `c`.
    pub(crate) async fn application(&self, c: &Customer, id: &str) -> reqwest::Response {
        self.customer_call(c, reqwest::Method::GET, &format!("/{id}"), None)
            .await
    }

    /// `POST …/applications/{id}/documents` as `c` with `parts`.
    pub(crate) async fn upload(
        &self,
        c: &Customer,
        id: &str,
        parts: &[Part<'_>],
    ) -> reqwest::Response {
        let (content_type, body) = multipart(parts);
        self.http
            .post(
                self.gw
                    .url(&format!("/computegate/v1/kyc/applications/{id}/documents")),
            )
            .header("authorization", format!("Bearer {}", c.access))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send upload")
    }

    /// Uploads a file part plus a `type` field, asserting 201; returns the metadata.
    pub(crate) async fn upload_ok(
        &self,
        c: &Customer,
        id: &str,
        doc_type: &str,
        filename: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Value {
        let resp = self
            .upload(c, id, &document(doc_type, filename, content_type, bytes))
            .await;
        assert_eq!(resp.status(), 201, "upload: {resp:?}");
        resp.json().await.expect("JSON")
    }

    // --- staff API ---

    /// `GET {path}` on the admin listener as `s`.
    pub(crate) async fn staff_get(&self, s: &Staff, path: &str) -> reqwest::Response {
        self.http
            .get(self.gw.admin_url(path))
            .header("authorization", format!("Bearer {}", s.token))
            .send()
            .await
            .expect("send staff GET")
    }

    /// `POST {path}` on the admin listener as `s` with a JSON body.
    pub(crate) async fn staff_post(
        &self,
        s: &Staff,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .post(self.gw.admin_url(path))
            .header("authorization", format!("Bearer {}", s.token))
            .json(body)
            .send()
            .await
            .expect("send staff POST")
    }

    /// `POST /staff/v1/applications/{id}/decision` as `s`.
    pub(crate) async fn decide(&self, s: &Staff, id: &str, body: Value) -> reqwest::Response {
        self.staff_post(s, &format!("/staff/v1/applications/{id}/decision"), &body)
            .await
    }

    /// The case file of `id` as `s` (asserting 200).
    pub(crate) async fn case_file(&self, s: &Staff, id: &str) -> Value {
        let resp = self
            .staff_get(s, &format!("/staff/v1/applications/{id}"))
            .await;
        assert_eq!(resp.status(), 200, "case file: {resp:?}");
        resp.json().await.expect("JSON")
    }

    /// `POST /computegate/v1/kyc/webhooks/{provider}` with `headers` and `body`.
    pub(crate) async fn webhook(
        &self,
        provider: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(
                self.gw
                    .url(&format!("/computegate/v1/kyc/webhooks/{provider}")),
            )
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.expect("send webhook")
    }
}

/// A complete individual application for `identity_verified`.
pub(crate) fn individual(name: &str, dob: &str, country: &str, passport: &str) -> Value {
    json!({
        "kind": "individual",
        "requested_tier": "identity_verified",
        "individual": person(name, dob, country, passport),
        "payment_fingerprint": "pm_fp_0123456789",
        "intended_use": {
            "category": "model_training",
            "description": "Fine-tuning language models for customer support.",
            "biological_sequence_data": false,
            "model_export": false
        },
        "expected_peak_accelerators": 16,
        "expected_total_flop": 1.0e21
    })
}

/// A person object of the Contract.
pub(crate) fn person(name: &str, dob: &str, country: &str, passport: &str) -> Value {
    json!({
        "legal_name": name,
        "date_of_birth": dob,
        "nationality": country,
        "address": {"line1": "1 Main Street", "city": "Springfield", "postal_code": "12345", "country": country},
        "id_document": {"type": "passport", "number": passport, "issuing_country": country},
        "phone": "+46 70 123 45 67"
    })
}

/// A complete organization application for `tier`.
pub(crate) fn organization(tier: &str) -> Value {
    let mut owner = person("Ingrid Solberg", "1975-05-20", "SE", "SE1234321");
    owner["ownership_percent"] = json!(60.0);
    json!({
        "kind": "organization",
        "requested_tier": tier,
        "organization": {
            "legal_name": "Helios Compute AB",
            "registration_number": "556677-8899",
            "jurisdiction": "SE",
            "address": {"line1": "Kungsgatan 1", "city": "Stockholm", "postal_code": "11143", "country": "SE"},
            "headquarters_country": "SE",
            "ultimate_parent_country": "SE",
            "representative": person("Erik Nyberg", "1980-02-11", "SE", "SE5556667"),
            "beneficial_owners": [owner],
            "reseller": false
        },
        "payment_fingerprint": "pm_fp_org_42",
        "intended_use": {
            "category": "research",
            "description": "Training foundation models for materials science.",
            "biological_sequence_data": false,
            "model_export": true
        },
        "expected_peak_accelerators": 2048,
        "expected_total_flop": 5.0e24
    })
}

/// A `file` part and a `type` field.
pub(crate) fn document<'a>(
    doc_type: &'a str,
    filename: &'a str,
    content_type: &'a str,
    bytes: &'a [u8],
) -> Vec<Part<'a>> {
    vec![
        Part {
            name: "type",
            filename: None,
            content_type: None,
            bytes: doc_type.as_bytes(),
        },
        Part {
            name: "file",
            filename: Some(filename),
            content_type: Some(content_type),
            bytes,
        },
    ]
}

/// A `multipart/form-data` body; returns `(content type, body)`.
pub(crate) fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = format!("cgboundary{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(f) = part.filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// HMAC-SHA256 of `message` under `secret`, hex.
pub(crate) fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// A Stripe-style `t=…,v1=…` header for `body` signed at `t` with `secret`.
pub(crate) fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let signed = format!("{t}.{body}");
    format!("t={t},v1={}", hmac_hex(secret, signed.as_bytes()))
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A Stripe Identity `verification_session` event for application `id`.
pub(crate) fn stripe_event(event_id: &str, kind: &str, application_id: &str) -> String {
    json!({
        "id": event_id,
        "object": "event",
        "type": format!("identity.verification_session.{kind}"),
        "data": {"object": {"id": "vs_test", "client_reference_id": application_id}}
    })
    .to_string()
}

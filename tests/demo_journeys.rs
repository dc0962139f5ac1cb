//! `computegate demo` walks every journey a newcomer takes, using only what the demo prints and
//! the README documents: the seeded accounts, the sample denied-party list, the job body, and
//! the printed shell command that sends a signed IDV event (run here through `bash`, as a
//! newcomer would paste it). A customer goes from the trial tier to an admitted job at a
//! verified tier; a second customer's organization reaches the top tier with two senior
//! approvals; the auditor verifies the chain and exports a report; `screening check` finds the
//! sample list's entries.

mod kyc_support;
mod support;

use std::ffi::OsStr;
use std::time::Duration;

use serde_json::{Value, json};

use kyc_support::{data_bytes, document, individual, multipart, organization};
use support::metering::Demo;
use support::{client, expect_problem, run_cli, within};

/// Budget of the whole walk (argon2 logins, CLI runs, on a loaded 2-core machine).
const WALK_TIMEOUT: Duration = Duration::from_secs(180);

/// What a newcomer has: the demo's addresses and an HTTP client.
struct Newcomer {
    demo: Demo,
    http: reqwest::Client,
}

impl Newcomer {
    fn public(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.public)
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.admin)
    }

    /// The password grant on either listener; the access token.
    async fn token(&self, url: String, email: &str, password: &str) -> String {
        let resp = self
            .http
            .post(url)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("send token request");
        assert_eq!(resp.status(), 200, "token for {email}: {resp:?}");
        let doc: Value = resp.json().await.expect("JSON");
        doc["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The seeded accounts printed as `<label> <email> / <password>`, in printed order.
    fn accounts(&self, label: &str) -> Vec<(String, String)> {
        self.demo
            .printed
            .lines()
            .filter_map(|line| {
                let rest = line.trim_start().strip_prefix(label)?;
                let (email, password) = rest.trim().split_once(" / ")?;
                (!email.contains(' ')).then(|| (email.to_owned(), password.trim().to_owned()))
            })
            .collect()
    }

    /// The first seeded account printed for `label`.
    fn account(&self, label: &str) -> (String, String) {
        self.accounts(label)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no `{label}` account printed:\n{}", self.demo.printed))
    }

    /// Signs up a new customer of `kind` and logs in.
    async fn new_customer(&self, email: &str, kind: &str) -> String {
        let password = "a long demo passphrase";
        let resp = self
            .http
            .post(self.public("/computegate/v1/auth/signup"))
            .json(&json!({"email": email, "password": password, "kind": kind}))
            .send()
            .await
            .expect("send sign-up");
        assert_eq!(resp.status(), 201, "sign-up: {resp:?}");
        self.token(self.public("/computegate/v1/auth/token"), email, password)
            .await
    }

    async fn post(&self, url: String, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send POST")
    }

    async fn job(&self, token: &str, body: Value) -> reqwest::Response {
        self.post(self.public("/v1/jobs"), token, &body).await
    }

    /// Drafts, documents and submits an application; its id.
    async fn apply(&self, token: &str, body: &Value, doc_type: &str) -> String {
        let resp = self
            .post(self.public("/computegate/v1/kyc/applications"), token, body)
            .await;
        assert_eq!(resp.status(), 201, "draft: {resp:?}");
        let doc: Value = resp.json().await.expect("JSON");
        let id = doc["id"].as_str().expect("id").to_owned();
        let pdf = data_bytes("passport.pdf");
        let (content_type, body) =
            multipart(&document(doc_type, "doc.pdf", "application/pdf", &pdf));
        let resp = self
            .http
            .post(self.public(&format!("/computegate/v1/kyc/applications/{id}/documents")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send upload");
        assert_eq!(resp.status(), 201, "upload: {resp:?}");
        let resp = self
            .post(
                self.public(&format!("/computegate/v1/kyc/applications/{id}/submit")),
                token,
                &json!({}),
            )
            .await;
        assert_eq!(resp.status(), 200, "submit: {resp:?}");
        let view: Value = resp.json().await.expect("JSON");
        // The sample list is imported at start, so submission screens at once.
        assert_eq!(view["status"], "pending_review", "{view}");
        id
    }

    /// Runs the printed IDV command (the lines from `APP=` to the curl's `-d "$BODY"`) for
    /// application `app`, as a newcomer pastes it into bash.
    fn send_idv_event(&self, app: &str) -> Value {
        let printed = &self.demo.printed;
        let start = printed.find("  APP=").expect("printed IDV command");
        let end = start
            + printed[start..]
                .find("-d \"$BODY\"")
                .expect("end of command")
            + 10;
        let script = printed[start..end].replacen("<application id>", app, 1);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{script}\n{out:?}");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{script}\nnot JSON: {out:?}"))
    }

    async fn decide(&self, staff: &str, app: &str, body: &Value) -> reqwest::Response {
        self.post(
            self.admin(&format!("/staff/v1/applications/{app}/decision")),
            staff,
            body,
        )
        .await
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let data = self.demo.dir.path().join("data");
        let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        argv.extend([OsStr::new("--data-dir"), data.as_os_str()]);
        run_cli(&argv, &[])
    }
}

#[tokio::test]
async fn the_demo_walks_every_journey() {
    within(WALK_TIMEOUT, async {
        let n = Newcomer {
            demo: Demo::start().await,
            http: client(),
        };
        let printed = n.demo.printed.clone();
        // The printed pages and documents answer.
        let pages = [
            (n.public("/computegate/account/login"), 200),
            (n.admin("/console/login"), 200),
            (n.public("/computegate/openapi.json"), 200),
            (n.admin("/staff/v1/openapi.json"), 200),
        ];
        for (url, status) in pages {
            let resp = n.http.get(&url).send().await.expect("send GET");
            assert_eq!(resp.status(), status, "{url}");
        }
        for needle in [
            "/computegate/account/",
            "/console/",
            "/computegate/openapi.json",
            "/staff/v1/openapi.json",
            "\"gpu_count\"",
            "Stripe-Signature",
        ] {
            assert!(printed.contains(needle), "`{needle}` not printed:\n{printed}");
        }

        // --- 1. a customer: trial tier, verification, an admitted job at the verified tier ---
        let small = json!({"gpu_type": "h100", "gpu_count": 1, "max_duration_hours": 1, "run_id": "first-run"});
        let big = json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 4, "run_id": "big-run"});
        let (email, password) = n.account("customer");
        let seeded = n
            .token(n.public("/computegate/v1/auth/token"), &email, &password)
            .await;
        let resp = n.job(&seeded, small.clone()).await;
        assert_eq!(resp.status(), 201, "trial job: {resp:?}");

        let customer = n.new_customer("newcomer@example.com", "individual").await;
        let resp = n.job(&customer, big.clone()).await;
        let refusal = expect_problem(resp, 403, "job-denied").await;
        assert_eq!(refusal["reason"], "run_cap", "{refusal}");
        assert_eq!(refusal["required_tier"], "identity_verified", "{refusal}");
        let app = n
            .apply(
                &customer,
                &individual("Marta Lindqvist", "1988-04-02", "SE", "SE7654321"),
                "passport",
            )
            .await;
        let recorded = n.send_idv_event(&app);
        assert_eq!(recorded["duplicate"], false, "{recorded}");
        let (email, password) = n.account("reviewer");
        let reviewer = n.token(n.admin("/staff/v1/auth/token"), &email, &password).await;
        let approve = json!({"action": "approve", "tier": "identity_verified", "reason": "passport and IDV match"});
        let resp = n.decide(&reviewer, &app, &approve).await;
        assert_eq!(resp.status(), 200, "approve: {resp:?}");
        let resp = n.job(&customer, big.clone()).await;
        assert_eq!(resp.status(), 201, "verified-tier job: {resp:?}");

        // --- 2. an organization to the top tier: two distinct senior approvals ---
        let org = n.new_customer("ops@helios.example", "organization").await;
        let app = n
            .apply(&org, &organization("validated_end_user"), "compliance_plan")
            .await;
        let recorded = n.send_idv_event(&app);
        assert_eq!(recorded["duplicate"], false, "{recorded}");
        let top = json!({"action": "approve", "tier": "validated_end_user", "reason": "VEU criteria met"});
        let resp = n.decide(&reviewer, &app, &top).await;
        expect_problem(resp, 403, "forbidden").await;
        let seniors = n.accounts("senior_reviewer");
        assert_eq!(seniors.len(), 2, "two senior reviewers printed:\n{printed}");
        let mut statuses = Vec::new();
        for (email, password) in seniors {
            let senior = n.token(n.admin("/staff/v1/auth/token"), &email, &password).await;
            let resp = n.decide(&senior, &app, &top).await;
            assert_eq!(resp.status(), 200, "{email}: {resp:?}");
            let doc: Value = resp.json().await.expect("JSON");
            statuses.push(doc["status"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(statuses, ["pending_review", "approved"]);

        // --- 3. the auditor: the chain verifies, a report exports ---
        let (email, password) = n.account("auditor");
        let auditor = n.token(n.admin("/staff/v1/auth/token"), &email, &password).await;
        let resp = n
            .http
            .get(n.admin("/staff/v1/audit?action=kyc.application.approved&limit=100"))
            .bearer_auth(&auditor)
            .send()
            .await
            .expect("send audit query");
        assert_eq!(resp.status(), 200, "audit: {resp:?}");
        let out = n.cli(&["audit", "verify"]);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"), "{out:?}");
        let out = n.cli(&[
            "report", "export", "--kind", "quarterly", "--since", "2026-01-01", "--format", "csv",
        ]);
        assert!(out.status.success(), "{out:?}");

        // Logs into a pipe carry no terminal colour codes.
        let logs = n.demo.proc.stderr();
        assert!(logs.contains("gateway started"), "{logs}");
        assert!(!logs.contains('\u{1b}'), "colour codes in piped logs: {logs:?}");

        // --- screening: the sample list is in force ---
        let out = n.cli(&["screening", "check", "Iwan Zorwath", "--dob", "1970-01-12"]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ZORVATH") && text.contains("hit"), "{text}");
    })
    .await;
}

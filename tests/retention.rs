//! Retention through the real binary, on SQLite and PostgreSQL (`_on_postgres`): with every
//! class's period cut to seconds in the policy file, records made before the period ran out (a
//! closed account, its application's document and payload, a closed end customer's identity,
//! screening results, usage events, logins and audit records) are purged or redacted by
//! `computegate retention run` and newer ones are kept — and so is the rejected application of an
//! account still open, its only identity; the case files of purged records still answer, with
//! the date instead of the identity; the dry run counts the same and changes nothing; the one
//! audit record holds counts
//! only; a second run finds nothing; `audit verify` passes over the redacted records and fails
//! once a redacted record's hash is altered; and the daily task of `serve` runs once per day
//! across replicas.

mod kyc_support;
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use support::identity::{counter, eventually, login, metrics, new_account};
use support::metering::{
    Backend, Cust, Meter, default_policy, job, registered, reseller, stranger, usage_event,
};
use support::within;

/// Every class's period in the test policy.
const PERIOD: Duration = Duration::from_secs(8);
/// Budget of one whole test (two gateways, many CLI runs, a wait past the period).
const TEST_BUDGET: Duration = Duration::from_secs(180);
/// The retention record's action.
const ACTION: &str = "retention.run.completed";

/// The shipped policy with every `[retention.*]` rule replaced by a `PERIOD` one (no floor).
fn short_retention_policy() -> String {
    let text = default_policy();
    let start = text
        .find("\n[retention.")
        .expect("shipped policy has [retention]");
    let end = start
        + 1
        + text[start + 1..]
            .find("\n# ---")
            .expect("a section follows");
    let rules: String = [
        "accounts",
        "verification",
        "screening",
        "ledger",
        "access_log",
        "audit_chain",
    ]
    .iter()
    .map(|class| {
        format!(
            "[retention.{class}]\nperiod = \"{}s\"\nminimum = \"0s\"\n\
             basis = \"test: seconds\"\nstatus = \"recommended\"\n\n",
            PERIOD.as_secs()
        )
    })
    .collect();
    format!("{}\n{rules}{}", &text[..start], &text[end..])
}

/// Runs `query` on the test's own database (psql or sqlite3); trimmed output.
fn sql(m: &Meter, query: &str) -> String {
    if let Some(db) = &m.db {
        return db.sql(query);
    }
    let out = Command::new("sqlite3")
        .arg(m.gw.sqlite_path())
        .arg(query)
        .output()
        .expect("run sqlite3");
    assert!(out.status.success(), "sqlite3 {query:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A count from `sql`.
fn count(m: &Meter, query: &str) -> u64 {
    let text = sql(m, query);
    text.parse()
        .unwrap_or_else(|_| panic!("{query:?} gave {text:?}"))
}

/// `computegate retention run ARGS`: the `class: n` lines of a successful run.
fn run(m: &Meter, args: &[&str]) -> BTreeMap<String, u64> {
    let all: Vec<&str> = ["retention", "run"].iter().chain(args).copied().collect();
    let out = m.cli(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "retention run {args:?}: {out:?}");
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(class, n)| Some((class.to_owned(), n.parse().ok()?)))
        .collect()
}

/// The retention records of the chain, oldest first.
async fn retention_records(m: &Meter, auditor: &str) -> Vec<Value> {
    let path = format!("/staff/v1/audit?action={ACTION}&limit=100");
    m.staff_list(auditor, &path, "records").await
}

/// `GET path` on the admin listener as `staff`: its JSON, asserting 200.
async fn staff_json(m: &Meter, staff: &str, path: &str) -> Value {
    let resp = m.staff_get(staff, path).await;
    let status = resp.status();
    let doc: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {doc}");
    doc
}

/// A new customer, logged in, with its email.
async fn account(m: &Meter) -> (Cust, String) {
    let account = new_account(&m.http, &m.gw).await;
    let tokens = login(&m.http, &m.gw, &account).await;
    let cust = Cust {
        id: account.customer_id,
        access: tokens.access,
    };
    (cust, account.email)
}

/// Asks for more information on `application` as `staff`, then uploads a passport scan as
/// `c`; returns the document id.
async fn upload_after_request_for_info(
    m: &Meter,
    staff: &str,
    c: &Cust,
    application: &str,
) -> String {
    let resp = m
        .staff_post(
            staff,
            &format!("/staff/v1/applications/{application}/decision"),
            &json!({"action": "request_info", "reason": "a readable passport scan, please"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "request info: {resp:?}");
    let bytes = kyc_support::data_bytes("passport.pdf");
    let parts = kyc_support::document("passport", "passport.pdf", "application/pdf", &bytes);
    let (content_type, body) = kyc_support::multipart(&parts);
    let resp = m
        .http
        .post(m.gw.url(&format!(
            "/computegate/v1/kyc/applications/{application}/documents"
        )))
        .header("authorization", format!("Bearer {}", c.access))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send upload");
    assert_eq!(resp.status(), 201, "upload: {resp:?}");
    let doc: Value = resp.json().await.expect("document JSON");
    doc["id"].as_str().expect("document id").to_owned()
}

async fn expired_records_go_and_newer_ones_stay(backend: Backend) {
    within(TEST_BUDGET, async {
        let m = Meter::start(backend, Some(&short_retention_policy())).await;
        let auditor = m.staff("auditor").await;
        let senior = m.staff("senior_reviewer").await;

        // The daily task ran at start-up, found nothing expired and took today.
        eventually(
            Duration::from_secs(20),
            "the daily run at start-up",
            || async { !retention_records(&m, &auditor).await.is_empty() },
        )
        .await;
        let daily = retention_records(&m, &auditor).await;
        assert_eq!(daily.len(), 1, "{daily:?}");
        assert_eq!(daily[0]["detail"]["trigger"], "daily", "{daily:?}");
        assert_eq!(daily[0]["actor"], "system:retention", "{daily:?}");
        let samples = metrics(&m.http, &m.gw).await;
        let last_run = counter(
            &samples,
            "computegate_retention_last_run_timestamp_seconds",
            &[],
        );
        assert!(last_run > 0.0, "the replica that ran says when");
        // A second replica's start-up check finds today taken: still one daily run.
        let replica = m.replica().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(replica);
        assert_eq!(retention_records(&m, &auditor).await.len(), 1);
        assert_eq!(count(&m, "SELECT COUNT(*) FROM retention_runs"), 1);

        // Records that will expire: a screened application, a metered job with its usage, a
        // closed account, logins and their audit records.
        m.import_screening_list();
        let (old, old_email) = account(&m).await;
        let email_count = |email: &str| {
            count(
                &m,
                &format!(
                    "SELECT COUNT(*) FROM customers WHERE email = '{}'",
                    email.to_lowercase()
                ),
            )
        };
        assert_eq!(email_count(&old_email), 1);
        let application = m
            .apply_individual(&old, "Astrid Lindqvist", "fp-retention-old")
            .await;
        let document = upload_after_request_for_info(&m, &senior, &old, &application).await;
        let download = format!("/staff/v1/documents/{document}");
        let resp = m.staff_get(&senior, &download).await;
        assert_eq!(resp.status(), 200, "document before retention: {resp:?}");
        let (_, job_id) = m.admit_echo(&old, &job("h100", 1, 1.0, "old-run")).await;
        for e in [
            usage_event("ret-start", &job_id, "started", None, "h100"),
            usage_event("ret-end", &job_id, "finished", Some(60.0), "h100"),
        ] {
            assert_eq!(m.usage_ok(&e).await, "recorded", "{e}");
        }
        let resp = m
            .staff_post(
                &senior,
                &format!("/staff/v1/customers/{}/close", old.id),
                &json!({"reason": "customer asked to close (retention test)"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "close: {resp:?}");
        assert!(count(&m, "SELECT COUNT(*) FROM screening_results") > 0);
        // A rejected application of an account still open: ended, but its customer's only
        // identity (re-screening reads it), so it stays.
        let (kept, _) = account(&m).await;
        let rejected = m
            .apply_individual(&kept, "Sigrid Holm", "fp-retention-kept")
            .await;
        let resp = m
            .staff_post(
                &senior,
                &format!("/staff/v1/applications/{rejected}/decision"),
                &json!({"action": "reject", "reason": "not enough evidence (retention test)"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "reject: {resp:?}");
        // A reseller's end customer whose account staff close, and one still open.
        let reviewer = m.staff("reviewer").await;
        let (owner, _) = reseller(&m, &reviewer, "Retention Reselling AB").await;
        let closed_end = registered(&m, &owner, &stranger("Bengt Karlsson"), "cleared").await;
        let open_end = registered(&m, &owner, &stranger("Astrid Lindqvist"), "cleared").await;
        let resp = m
            .staff_post(
                &senior,
                &format!("/staff/v1/customers/{closed_end}/close"),
                &json!({"reason": "the reseller ended the contract (retention test)"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "close end customer: {resp:?}");
        let purged_identities = || {
            count(
                &m,
                "SELECT (SELECT COUNT(*) FROM verification_applications \
                 WHERE identity_purged_at IS NOT NULL) + (SELECT COUNT(*) FROM end_customers \
                 WHERE identity_purged_at IS NOT NULL)",
            )
        };

        tokio::time::sleep(PERIOD + Duration::from_secs(1)).await;
        // Records that are kept: a newer account, its login and its job's audit records.
        let (new, new_email) = account(&m).await;
        let current = m
            .apply_individual(&new, "Maja Berg", "fp-retention-new")
            .await;
        let (_, new_job) = m.admit_echo(&new, &job("h100", 1, 1.0, "new-run")).await;
        let access_before = count(&m, "SELECT COUNT(*) FROM access_log");
        let screening_before = count(&m, "SELECT COUNT(*) FROM screening_results");

        // The dry run counts and changes nothing.
        let dry = run(&m, &["--dry-run"]);
        assert_eq!(
            dry["accounts"], 2,
            "the closed customer and end customer: {dry:?}"
        );
        assert!(dry["screening"] > 0, "{dry:?}");
        assert_eq!(dry["ledger"], 2, "{dry:?}");
        assert!(dry["access_log"] > 0, "{dry:?}");
        assert!(dry["audit_chain"] > 0, "{dry:?}");
        assert_eq!(
            dry["verification"], 3,
            "the closed customer's document and payload, the closed end customer's identity: \
             {dry:?}"
        );
        assert_eq!(purged_identities(), 0, "the dry run withdrew nothing");
        assert_eq!(count(&m, "SELECT COUNT(*) FROM access_log"), access_before);
        assert_eq!(
            count(
                &m,
                "SELECT COUNT(*) FROM audit_log WHERE redacted_at IS NOT NULL"
            ),
            0
        );
        assert_eq!(retention_records(&m, &auditor).await.len(), 1);

        // The run does what the dry run counted.
        let done = run(&m, &[]);
        assert_eq!(done, dry);
        // Idempotent: nothing is left to do (at once, before the newer records expire too).
        let again = run(&m, &[]);
        assert!(again.values().all(|n| *n == 0), "{again:?}");
        assert_eq!(
            email_count(&old_email),
            0,
            "the closed account's email is gone"
        );
        assert_eq!(email_count(&new_email), 1, "the newer account is kept");
        assert_eq!(
            count(
                &m,
                "SELECT COUNT(*) FROM customers WHERE email LIKE 'redacted-%'"
            ),
            2
        );
        let screening_after = count(&m, "SELECT COUNT(*) FROM screening_results");
        assert_eq!(screening_after, screening_before - done["screening"]);
        assert!(
            screening_after > 0,
            "the newer application's screening is kept"
        );
        // The document keeps its row and hash, loses its bytes, and is no longer downloadable.
        assert_eq!(
            count(
                &m,
                "SELECT COUNT(*) FROM verification_documents WHERE purged_at IS NOT NULL \
                 AND length(ciphertext) = 0 AND length(sha256) = 32"
            ),
            1
        );
        let resp = m.staff_get(&senior, &download).await;
        assert_eq!(resp.status(), 404, "purged document: {resp:?}");
        // The closed customer's application and the closed end customer lose their identity
        // and still answer, saying when; the others keep theirs.
        assert_eq!(purged_identities(), 2);
        let case = staff_json(
            &m,
            &senior,
            &format!("/staff/v1/applications/{application}"),
        )
        .await;
        assert_eq!(case["payload"], Value::Null, "{case}");
        assert!(case["identity_purged_at"].is_string(), "{case}");
        assert_eq!(
            case["status"], "needs_info",
            "the case file is whole otherwise: {case}"
        );
        let case = staff_json(&m, &senior, &format!("/staff/v1/applications/{rejected}")).await;
        assert_eq!(
            case["payload"]["individual"]["legal_name"], "Sigrid Holm",
            "an open account's only identity stays: {case}"
        );
        let resp = m
            .http
            .get(m.gw.url(&format!("/computegate/v1/kyc/applications/{current}")))
            .header("authorization", format!("Bearer {}", new.access))
            .send()
            .await
            .expect("read application");
        let own: Value = resp.json().await.expect("application JSON");
        assert_eq!(
            own["payload"]["individual"]["legal_name"], "Maja Berg",
            "{own}"
        );
        assert_eq!(own["identity_purged_at"], Value::Null, "{own}");
        let gone = staff_json(
            &m,
            &senior,
            &format!("/staff/v1/end-customers/{closed_end}"),
        )
        .await;
        assert_eq!(gone["identity"], Value::Null, "{gone}");
        assert!(gone["identity_purged_at"].is_string(), "{gone}");
        // Its identity keys went with the identity; the open end customer keeps its own.
        let keys = |purged: &str| {
            count(
                &m,
                &format!(
                    "SELECT COUNT(*) FROM end_customer_identities k JOIN end_customers e \
                     ON e.id = k.end_customer_id WHERE e.identity_purged_at IS {purged}"
                ),
            )
        };
        assert_eq!(keys("NOT NULL"), 0, "a withdrawn identity leaves no keys");
        assert!(keys("NULL") > 0, "a kept identity keeps its keys");
        let open = staff_json(&m, &senior, &format!("/staff/v1/end-customers/{open_end}")).await;
        assert_eq!(
            open["identity"]["individual"]["legal_name"], "Astrid Lindqvist",
            "{open}"
        );
        assert_eq!(count(&m, "SELECT COUNT(*) FROM ledger_usage_events"), 0);
        assert_eq!(
            count(&m, "SELECT COUNT(*) FROM access_log"),
            access_before - done["access_log"]
        );
        assert!(
            access_before > done["access_log"],
            "the newer login is kept"
        );
        assert_eq!(
            count(
                &m,
                "SELECT COUNT(*) FROM audit_log WHERE redacted_at IS NOT NULL"
            ),
            done["audit_chain"]
        );
        let kept = format!(
            "SELECT COUNT(*) FROM audit_log WHERE redacted_at IS NULL AND subject = 'job:{new_job}'"
        );
        assert!(count(&m, &kept) > 0, "newer records are kept whole");

        // One audit record per run, with counts only.
        let records = retention_records(&m, &auditor).await;
        assert_eq!(records.len(), 3, "{records:?}");
        let second: BTreeMap<String, u64> =
            serde_json::from_value(records[2]["detail"]["counts"].clone()).expect("counts");
        assert_eq!(second, again);
        let record = &records[1];
        assert_eq!(record["actor"], "system:cli");
        let detail = record["detail"].as_object().expect("detail object");
        let keys: Vec<&str> = detail.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "counts",
                "policy_version",
                "redacted_through_seq",
                "trigger"
            ],
            "{record}"
        );
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(record["detail"]["counts"].clone()).expect("counts");
        assert_eq!(counts, done);

        // The chain still verifies and says how much of it is redacted.
        let out = m.cli(&["audit", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "audit verify: {out:?}");
        assert!(
            stdout.contains(&format!("{} redacted", done["audit_chain"])),
            "{stdout}"
        );

        // Someone with database rights alters a redacted record's hash: the next link breaks.
        let through = record["detail"]["redacted_through_seq"]
            .as_i64()
            .expect("redacted_through_seq");
        match &m.db {
            Some(db) => {
                db.sql(&format!(
                    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change; \
                     UPDATE audit_log SET hash = decode(repeat('00', 32), 'hex') \
                     WHERE seq = {through}"
                ));
            }
            None => {
                sql(
                    &m,
                    &format!(
                        "DROP TRIGGER audit_log_no_update; \
                         UPDATE audit_log SET hash = zeroblob(32) WHERE seq = {through}"
                    ),
                );
            }
        }
        let out = m.cli(&["audit", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "audit verify: {out:?}");
        assert!(
            stdout.contains(&format!("chain broken at seq {}: deleted", through + 1)),
            "{stdout}"
        );
    })
    .await;
}

#[tokio::test]
async fn retention_purges_and_redacts_expired_records() {
    expired_records_go_and_newer_ones_stay(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn retention_purges_and_redacts_expired_records_on_postgres() {
    expired_records_go_and_newer_ones_stay(Backend::Postgres).await;
}

/// `computegate policy check FILE`.
fn policy_check(file: &std::path::Path) -> std::process::Output {
    let args = [
        std::ffi::OsStr::new("policy"),
        std::ffi::OsStr::new("check"),
        file.as_os_str(),
    ];
    support::run_cli(&args, &[])
}

#[test]
fn policy_check_prints_each_class_and_refuses_a_period_below_the_legal_minimum() {
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy/default.toml");
    let out = policy_check(&shipped);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(
            "retention: accounts 731d [proposed], verification 731d [proposed], \
             screening 3653d [in_force]"
        ),
        "{stdout}"
    );
    let dir = support::TempDir::new("retention-policy");
    let text = default_policy().replacen(
        "[retention.screening]\nperiod = \"3653d\"",
        "[retention.screening]\nperiod = \"365d\"",
        1,
    );
    let out = policy_check(&dir.write("policy.toml", text));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr.contains("retention.screening.period")
            && stderr.contains("below the legal minimum of 3653d"),
        "{stderr}"
    );
}

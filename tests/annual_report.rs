//! The annual attestation pack through the real binary, on SQLite and PostgreSQL
//! (`_on_postgres`): seeded activity — two customers verified through the staff path (one then
//! suspended), one rejected, a threshold crossing whose report is filed after its due date,
//! two incidents recorded over the staff API (one reported, its bundle exported) and a partner
//! bundle imported with the CLI, and a reseller staff marked with two end customers it
//! registered — gives those counts in JSON, CSV and PDF, and the quarterly summary of the current quarter the
//! same; a year without activity gives zeros; a bad year and a PDF of another kind are refused
//! with a precise error.
//!
//! Policy versions in force (`policy_versions_…`): the start-up policy is audited once (a second
//! process on the same store and policy adds nothing), a SIGHUP reload and a file change each
//! add a record with their trigger, and the pack lists the three versions with from/to times.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use support::identity::eventually;
use support::metering::{
    Backend, Meter, csv_records, job, policy, registered, reseller, rewrite_keeping_mtime,
    rewrite_touching, stranger, threshold, tiers,
};
use support::within;

/// Budget of one whole test.
const TEST_BUDGET: Duration = Duration::from_secs(180);

/// `report export --kind annual --year YEAR --format FORMAT`: exit code, stdout, stderr.
fn export(m: &Meter, year: &str, format: &str) -> (Option<i32>, Vec<u8>, String) {
    let out = m.cli(&[
        "report", "export", "--kind", "annual", "--year", year, "--format", format,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), out.stdout, stderr)
}

/// The JSON pack of `year`.
fn json_pack(m: &Meter, year: &str) -> Value {
    let (code, out, err) = export(m, year, "json");
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_slice(&out).expect("one JSON document")
}

async fn the_pack_counts_the_years_activity(backend: Backend) {
    within(TEST_BUDGET, async {
        let thresholds = threshold("test-run-1e19", 1e19, &["run"], &["notify", "report"]);
        let m = Meter::start(backend, Some(&policy("annual.1", &tiers(&[]), &thresholds))).await;
        let reviewer = m.staff("reviewer").await;
        m.import_screening_list();

        // Two verified customers, the second then suspended; one rejected application.
        let mut verified = Vec::new();
        for (name, fp) in [
            ("Astrid Lindqvist", "fp-annual-1"),
            ("Nils Berg", "fp-annual-2"),
        ] {
            let c = m.customer().await;
            let id = m.apply_individual(&c, name, fp).await;
            m.approve_individual(&reviewer, &id).await;
            verified.push(c);
        }
        let resp = m
            .staff_post(
                &reviewer,
                &format!("/staff/v1/customers/{}/suspend", verified[1].id),
                &json!({"reason": "suspicious usage (annual test)"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "suspend: {resp:?}");
        let rejected = m.customer().await;
        let id = m
            .apply_individual(&rejected, "Karin Holm", "fp-annual-3")
            .await;
        let resp = m
            .staff_post(
                &reviewer,
                &format!("/staff/v1/applications/{id}/decision"),
                &json!({"action": "reject", "reason": "proof of address unreadable"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "reject: {resp:?}");

        // A threshold crossing; its report is filed after its due date (the due date is moved
        // into the past in the test's own database, as if the filing came late).
        m.admit(&verified[0], &job("h100", 8, 1.0, "big-run")).await;
        let due = m.reports(&reviewer, "due", &verified[0].id).await;
        assert_eq!(due.len(), 1, "{due:?}");
        let report_id = due[0]["id"].as_str().expect("report id").to_owned();
        let year = OffsetDateTime::now_utc().year().to_string();
        let past = format!("{year}-01-01T00:00:00.000000Z");
        match &m.db {
            Some(db) => {
                db.sql(&format!(
                    "UPDATE ledger_reports SET due_at = '{past}' WHERE id = '{report_id}'"
                ));
            }
            None => support::metering::sqlite_exec(
                &m.gw.sqlite_path(),
                "UPDATE ledger_reports SET due_at = ? WHERE id = ?",
                &[&past, &format!("uuid:{report_id}")],
            ),
        }
        let resp = m
            .staff_post(
                &reviewer,
                &format!("/staff/v1/reports/{report_id}/filed"),
                &json!({"reference": "LATE-2026-1"}),
            )
            .await;
        assert_eq!(resp.status(), 200, "file: {resp:?}");

        // Incidents: two recorded, one moved to `reported`, one bundle exported for an
        // authority, and a partner's bundle imported that flags every example.com customer.
        let flagged = incidents_activity(&m, &reviewer, &verified[0].id).await;

        // A reseller with two end customers, both cleared at registration.
        let (owner, org) = reseller(&m, &reviewer, "Helios Reselling AB").await;
        for name in ["Dag Ek", "Eva Strand"] {
            registered(&m, &owner, &stranger(name), "cleared").await;
        }

        // JSON: the counts.
        let pack = json_pack(&m, &year);
        assert_eq!(pack["kind"], "annual");
        let tier = &pack["verifications"]["by_tier"]["identity_verified"];
        assert_eq!(tier["approved"], 2, "{pack}");
        assert_eq!(tier["rejected"], 1, "{pack}");
        let lists = pack["screening"]["lists"].as_array().expect("lists");
        assert_eq!(lists.len(), 1, "{pack}");
        assert!(lists[0]["results"].as_i64().unwrap_or(0) >= 3, "{pack}");
        assert_eq!(pack["suspensions"]["total"], 1, "{pack}");
        let crossing = &pack["threshold_crossings"]["by_label"]["test-run-1e19"];
        assert_eq!(crossing["report"], 1, "{pack}");
        assert_eq!(pack["reports"]["by_outcome"]["missed"], 1, "{pack}");
        let reports = pack["reports"]["reports"].as_array().expect("reports");
        assert_eq!(reports.len(), 1, "{pack}");
        assert_eq!(reports[0]["outcome"], "missed", "{pack}");
        let incidents = &pack["incidents"];
        assert_eq!(
            incidents["by_kind"],
            json!({"account_sharing": 1, "fraud": 1}),
            "{pack}"
        );
        assert_eq!(
            incidents["by_status"],
            json!({"open": 1, "reported": 1}),
            "{pack}"
        );
        assert_eq!(incidents["reported"], 1, "{pack}");
        assert_eq!(incidents["bundles_imported"], 1, "{pack}");
        assert_eq!(incidents["flags_raised"], flagged, "{pack}");
        assert_eq!(
            incidents["bundles_exported"],
            json!({"authority": 1}),
            "{pack}"
        );
        let resellers = &pack["resellers"];
        assert_eq!(resellers["total_end_customers"], 2, "{pack}");
        assert_eq!(
            resellers["resellers"],
            json!([{"organization_id": org, "name": "Helios Reselling AB", "standing": "active",
                    "end_customers": 2, "added": 2, "suspended": 0, "refused": 0}]),
            "{pack}"
        );
        assert_eq!(pack["policy"]["in_force"]["version"], "annual.1", "{pack}");
        assert_eq!(
            pack["policy"]["table_versions"],
            json!(["2026-01"]),
            "{pack}"
        );

        // CSV: the same figures, one flat table with a section column.
        let (code, out, err) = export(&m, &year, "csv");
        assert_eq!(code, Some(0), "{err}");
        let text = String::from_utf8(out).expect("UTF-8 CSV");
        let rows = csv_records(&text);
        let value = |section: &str, key: &str, attribute: &str| {
            rows.iter()
                .find(|r| r["section"] == section && r["key"] == key && r["attribute"] == attribute)
                .map(|r| r["value"].clone())
                .unwrap_or_else(|| panic!("no {section},{key},{attribute} in\n{text}"))
        };
        assert_eq!(value("verifications", "identity_verified", "approved"), "2");
        assert_eq!(value("verifications", "identity_verified", "rejected"), "1");
        assert_eq!(value("suspensions", "all", "total"), "1");
        assert_eq!(value("reports", &report_id, "deadline"), "missed");
        assert_eq!(value("reports", "all", "missed"), "1");
        assert_eq!(value("incidents", "fraud", "recorded"), "1");
        assert_eq!(value("incidents", "all", "recorded"), "2");
        assert_eq!(value("incidents", "all", "status_reported"), "1");
        assert_eq!(value("incidents", "all", "reported"), "1");
        assert_eq!(value("incidents", "authority", "bundles_exported"), "1");
        assert_eq!(
            value("incidents", "all", "flags_raised"),
            flagged.to_string()
        );
        assert_eq!(value("resellers", &org, "name"), "Helios Reselling AB");
        assert_eq!(value("resellers", &org, "end_customers"), "2");
        assert_eq!(value("resellers", &org, "added"), "2");
        assert_eq!(value("resellers", "all", "end_customers"), "2");

        // PDF: a document whose text carries the figures (content streams are uncompressed).
        let (code, pdf, err) = export(&m, &year, "pdf");
        assert_eq!(code, Some(0), "{err}");
        assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
        assert!(
            pdf.ends_with(b"%%EOF") || pdf.ends_with(b"%%EOF\n"),
            "truncated PDF"
        );
        let body = String::from_utf8_lossy(&pdf);
        for shown in [
            format!("(Computegate annual attestation {year} - page 1 of"),
            "(identity_verified) Tj".into(),
            "(missed) Tj".into(),
            "(test-run-1e19) Tj".into(),
            "(account_sharing) Tj".into(),
            "(bundles_imported) Tj".into(),
            "(resellers) Tj".into(),
            "(Helios Reselling AB) Tj".into(),
        ] {
            assert!(body.contains(&shown), "{shown} not in the PDF");
        }

        // The quarterly summary of this quarter has the same figures (all activity is now).
        let now = OffsetDateTime::now_utc();
        let quarter = ((u8::from(now.month()) - 1) / 3 + 1).to_string();
        let out = m.cli(&[
            "report",
            "export",
            "--kind",
            "quarterly",
            "--year",
            &year,
            "--quarter",
            &quarter,
        ]);
        assert!(out.status.success(), "{out:?}");
        let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(summary["kind"], "quarterly", "{summary}");
        assert_eq!(summary["quarter"].to_string(), quarter, "{summary}");
        assert_eq!(summary["verifications"], pack["verifications"], "{summary}");
        assert_eq!(
            summary["reports"]["by_outcome"],
            pack["reports"]["by_outcome"]
        );

        // A year without activity is all zeros; a bad year and a PDF of a ledger kind are refused.
        let empty = json_pack(&m, "2001");
        assert_eq!(empty["verifications"]["by_tier"], json!({}), "{empty}");
        assert_eq!(empty["verifications"]["idv_failures"], 0, "{empty}");
        assert_eq!(empty["suspensions"]["total"], 0, "{empty}");
        assert_eq!(empty["reports"]["reports"], json!([]), "{empty}");
        assert_eq!(empty["screening"]["lists"], json!([]), "{empty}");
        assert_eq!(empty["incidents"]["by_kind"], json!({}), "{empty}");
        assert_eq!(empty["incidents"]["bundles_imported"], 0, "{empty}");
        assert_eq!(empty["resellers"]["resellers"], json!([]), "{empty}");
        assert_eq!(empty["resellers"]["total_end_customers"], 0, "{empty}");
        let (code, _, err) = export(&m, "3000", "json");
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("--year/--quarter: year 3000 is not between 2000 and the current year"),
            "{err}"
        );
        let out = m.cli(&["report", "export", "--kind", "training-runs"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--kind training-runs needs --since"),
            "{out:?}"
        );
        let out = m.cli(&[
            "report",
            "export",
            "--kind",
            "training-runs",
            "--since",
            "2001-01-01",
            "--format",
            "pdf",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("--format pdf is for the annual pack and quarterly summaries only"),
            "{out:?}"
        );
    })
    .await;
}

/// Records two incidents about `customer` through the staff API, reports the first, fetches
/// its authority bundle, and imports a partner's bundle naming the example.com email domain
/// with the CLI; returns how many customers the import flagged (all test customers' emails
/// are at example.com, so at least the three of the test).
async fn incidents_activity(m: &Meter, staff: &str, customer: &str) -> usize {
    let mut ids = Vec::new();
    for (kind, ip) in [("account_sharing", "203.0.113.7"), ("fraud", "203.0.113.8")] {
        let body = json!({
            "kind": kind,
            "description": "annual pack test",
            "customers": [customer],
            "indicators": [{"type": "ipv4", "value": ip}],
        });
        let resp = m.staff_post(staff, "/staff/v1/incidents", &body).await;
        assert_eq!(resp.status(), 201, "create incident: {resp:?}");
        let doc: Value = resp.json().await.expect("incident JSON");
        ids.push(doc["id"].as_str().expect("id").to_owned());
    }
    let status = format!("/staff/v1/incidents/{}/status", ids[0]);
    let resp = m
        .staff_post(staff, &status, &json!({"status": "reported"}))
        .await;
    assert_eq!(resp.status(), 200, "reported: {resp:?}");
    let stix = format!("/staff/v1/incidents/{}/stix?sharing=authority", ids[0]);
    let resp = m.staff_get(staff, &stix).await;
    assert_eq!(resp.status(), 200, "export: {resp:?}");

    let identity = "identity--11111111-1111-4111-8111-111111111111";
    let bundle = json!({
        "type": "bundle",
        "id": "bundle--55555555-5555-4555-8555-555555555555",
        "objects": [
            {"type": "identity", "id": identity, "name": "Partner Cloud"},
            {"type": "indicator", "id": "indicator--44444444-4444-4444-8444-444444444444",
             "created_by_ref": identity, "pattern_type": "stix",
             "pattern": "[email-addr:value LIKE '%@example.com']", "description": "sign-ups"},
        ],
    });
    let dir = support::TempDir::new("annual-bundle");
    let file = dir.write("partner.json", bundle.to_string());
    let out = m.cli(&["incidents", "import", file.to_str().expect("UTF-8 path")]);
    assert!(out.status.success(), "import: {out:?}");
    let flagged = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("flagged customer "))
        .count();
    assert!(flagged >= 3, "{out:?}");
    flagged
}

/// The `policy.version.loaded` audit records, oldest first.
async fn policy_loads(m: &Meter, auditor: &str) -> Vec<Value> {
    let path = "/staff/v1/audit?action=policy.version.loaded";
    let mut records = m.staff_list(auditor, path, "records").await;
    records.sort_by_key(|r| r["seq"].as_i64());
    records
}

async fn policy_versions_in_force_are_audited_and_listed(backend: Backend) {
    within(TEST_BUDGET, async {
        let m = Meter::start(backend, Some(&policy("versions.1", &tiers(&[]), ""))).await;
        let file = m.policy_file.clone().expect("policy file");
        let auditor = m.staff("auditor").await;

        // Start-up recorded once: a second process with the same policy adds nothing.
        let replica = m.replica().await;
        drop(replica);
        let loads = policy_loads(&m, &auditor).await;
        assert_eq!(loads.len(), 1, "{loads:?}");
        let detail = &loads[0]["detail"];
        assert_eq!(detail["version"], "versions.1", "{detail}");
        assert_eq!(detail["trigger"], "startup", "{detail}");
        assert_eq!(loads[0]["actor"], "system:policy", "{detail}");
        let digest = detail["digest"].as_str().expect("digest");
        assert_eq!(digest.len(), 64, "{detail}");

        // A reload on SIGHUP (mtime kept, so not the watcher), then a file change.
        rewrite_keeping_mtime(&file, &policy("versions.2", &tiers(&[]), ""));
        m.gw.proc.signal("HUP");
        eventually(Duration::from_secs(5), "SIGHUP reload audited", || async {
            policy_loads(&m, &auditor).await.len() == 2
        })
        .await;
        rewrite_touching(&file, &policy("versions.3", &tiers(&[]), ""));
        eventually(Duration::from_secs(10), "file change audited", || async {
            policy_loads(&m, &auditor).await.len() == 3
        })
        .await;
        let loads = policy_loads(&m, &auditor).await;
        let seen: Vec<(&Value, &Value)> = loads
            .iter()
            .map(|r| (&r["detail"]["version"], &r["detail"]["trigger"]))
            .collect();
        assert_eq!(
            seen,
            [
                (&json!("versions.1"), &json!("startup")),
                (&json!("versions.2"), &json!("sighup")),
                (&json!("versions.3"), &json!("file_changed")),
            ]
        );

        // The pack: each version with from/to, the last still in force.
        let year = OffsetDateTime::now_utc().year().to_string();
        let pack = json_pack(&m, &year);
        let versions = pack["policy"]["versions"].as_array().expect("versions");
        let names: Vec<&Value> = versions.iter().map(|v| &v["version"]).collect();
        assert_eq!(names, ["versions.1", "versions.2", "versions.3"], "{pack}");
        assert_eq!(versions[0]["digest"], digest, "{pack}");
        for (i, r) in loads.iter().enumerate() {
            assert_eq!(versions[i]["from"], r["at"], "{pack}");
        }
        assert_eq!(versions[0]["to"], versions[1]["from"], "{pack}");
        assert_eq!(versions[1]["to"], versions[2]["from"], "{pack}");
        assert_eq!(versions[2]["to"], Value::Null, "{pack}");
        assert_eq!(
            pack["policy"]["in_force"]["version"], "versions.3",
            "{pack}"
        );

        // CSV: one row per figure of each version.
        let (code, out, err) = export(&m, &year, "csv");
        assert_eq!(code, Some(0), "{err}");
        let text = String::from_utf8(out).expect("UTF-8 CSV");
        let rows = csv_records(&text);
        let of_version = |v: &str| {
            rows.iter()
                .filter(|r| {
                    r["section"] == "policy" && r["attribute"] == "version" && r["value"] == v
                })
                .count()
        };
        assert_eq!(of_version("versions.2"), 1, "{text}");
        assert!(
            rows.iter().any(|r| r["section"] == "policy"
                && r["attribute"] == "in_force_to"
                && r["value"].is_empty()),
            "{text}"
        );

        // A year before any of it: no version recorded in force.
        assert_eq!(json_pack(&m, "2001")["policy"]["versions"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn policy_versions_in_force_are_audited_and_listed_on_sqlite() {
    policy_versions_in_force_are_audited_and_listed(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn policy_versions_in_force_are_audited_and_listed_on_postgres() {
    policy_versions_in_force_are_audited_and_listed(Backend::Postgres).await;
}

#[tokio::test]
async fn the_annual_pack_counts_the_years_activity() {
    the_pack_counts_the_years_activity(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (COMPUTEGATE_TEST_DATABASE_URL, COMPUTEGATE_TEST_REDIS_URL)"]
async fn the_annual_pack_counts_the_years_activity_on_postgres() {
    the_pack_counts_the_years_activity(Backend::Postgres).await;
}

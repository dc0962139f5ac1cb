//! Cumulative-FLOP thresholds through the real binary, with a test policy whose thresholds are
//! small multiples of one H100-hour (`E` = 989.4e12 × 3600 × 0.4 ≈ 1.42e18 FLOP) so that
//! crossing them is cheap:
//!
//! | label | FLOP | scope | actions |
//! |---|---|---|---|
//! | `test-run-1e19` | 1e19 (≈ 7.0 E) | run lineage | notify, report |
//! | `test-group-2e19` | 2e19 (≈ 14.0 E) | linked group | notify, report |
//! | `test-review-1e20` | 1e20 (≈ 70.2 E) | run lineage | report, review |
//!
//! Crossed by one job (report due in 14 days, filed by staff, exported), by a lineage of
//! fine-tunes, by a run split across two accounts linked by staff (and, as the issue requires,
//! automatically by a shared payment fingerprint), and a review hold released by staff.
//! SQLite by default; `_on_postgres` variants run the same bodies on PostgreSQL and Redis.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use support::identity::{counter, metrics};
use support::metering::{
    Backend, Cust, Meter, assert_flop, csv_records, fine_tune, h100_flop, job, num, policy,
    threshold, tiers,
};
use support::{TEST_TIMEOUT, expect_problem, within};

/// One H100-hour, FLOP.
fn e() -> f64 {
    h100_flop(1, 1.0)
}

/// The test policy of the module docs: no caps, generous rates.
fn threshold_policy() -> String {
    let thresholds = [
        threshold("test-run-1e19", 1e19, &["run"], &["notify", "report"]),
        threshold("test-group-2e19", 2e19, &["group"], &["notify", "report"]),
        threshold("test-review-1e20", 1e20, &["run"], &["report", "review"]),
    ]
    .concat();
    policy("thresholds.1", &tiers(&[]), &thresholds)
}

async fn start(backend: Backend) -> Meter {
    Meter::start(backend, Some(&threshold_policy())).await
}

/// The labels of a report's crossings, with their scopes (`label@scope`).
fn crossed(report: &Value) -> Vec<String> {
    report["crossings"]
        .as_array()
        .unwrap_or_else(|| panic!("report without crossings: {report}"))
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["label"].as_str().unwrap_or_default(),
                c["scope"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339)
        .unwrap_or_else(|_| panic!("not an RFC 3339 time: {v}"))
}

/// Runs `computegate report export ARGS` against the meter's store; returns stdout.
fn export(m: &Meter, args: &[&str]) -> String {
    let mut all = vec!["report", "export"];
    all.extend_from_slice(args);
    let out = m.cli(&all);
    assert!(
        out.status.success(),
        "report export {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 export")
}

/// Yesterday (UTC) as `YYYY-MM-DD`, for `--since`.
fn yesterday() -> String {
    let d = (OffsetDateTime::now_utc() - time::Duration::days(1)).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

// === one job ===

async fn one_job_crossing_a_threshold_creates_a_report_staff_file_and_export(backend: Backend) {
    let m = start(backend).await;
    let reviewer = m.staff("reviewer").await;
    let auditor = m.staff("auditor").await;
    let c = m.customer().await;

    // Below the threshold: admitted, no report.
    m.admit(&c, &job("h100", 1, 1.0, "small")).await;
    assert!(m.reports(&auditor, "due", &c.id).await.is_empty());

    // One job of 8 H100-hours passes 1e19 on its own: admitted, and a report is due in 14 days.
    let before = OffsetDateTime::now_utc();
    let a = m.admit(&c, &job("h100", 8, 1.0, "big")).await;
    assert_flop(a.estimate, h100_flop(8, 1.0), "estimate");
    let due = m.reports(&auditor, "due", &c.id).await;
    assert_eq!(due.len(), 1, "one report: {due:?}");
    let report = &due[0];
    assert_eq!(report["run_id"], "big", "{report}");
    assert_eq!(crossed(report), ["test-run-1e19@run"], "{report}");
    assert_flop(
        num(&report["estimate_flop"]),
        h100_flop(8, 1.0),
        "report estimate",
    );
    assert_flop(
        num(&report["cumulative_flop"]),
        h100_flop(8, 1.0),
        "cumulative",
    );
    assert_eq!(report["accelerators"], 8, "{report}");
    assert_eq!(report["accelerator_type"], "h100", "{report}");
    assert_eq!(report["table_version"], "2026-01", "{report}");
    assert!(
        report["basis"].as_str().is_some_and(|b| !b.is_empty()),
        "{report}"
    );
    assert_eq!(
        report["identity_snapshot"]["customer_id"], c.id,
        "identity snapshot: {report}"
    );
    let created = time_of(&report["created_at"]);
    assert!(created >= before - Duration::from_secs(5), "{report}");
    assert_eq!(
        time_of(&report["due_at"]) - created,
        time::Duration::days(14),
        "due date: {report}"
    );
    assert!(report["filed_at"].is_null(), "{report}");
    let id = report["id"].as_str().expect("report id").to_owned();

    // Auditors read, they do not file; an unknown report is 404.
    let filed_path = format!("/staff/v1/reports/{id}/filed");
    let body = json!({"reference": "EU-AIO-2026-0042"});
    let resp = m.staff_post(&auditor, &filed_path, &body).await;
    expect_problem(resp, 403, "forbidden").await;
    let unknown = format!("/staff/v1/reports/{}/filed", uuid::Uuid::new_v4());
    let resp = m.staff_post(&reviewer, &unknown, &body).await;
    expect_problem(resp, 404, "not-found").await;

    // A reviewer files it with the authority's reference.
    let resp = m.staff_post(&reviewer, &filed_path, &body).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    let filed: Value = resp.json().await.expect("JSON");
    assert_eq!(filed["filing_reference"], "EU-AIO-2026-0042", "{filed}");
    assert!(filed["filed_at"].as_str().is_some(), "{filed}");
    assert!(
        filed["filed_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("staff:")),
        "{filed}"
    );
    assert!(m.reports(&auditor, "due", &c.id).await.is_empty());
    let done = m.reports(&auditor, "filed", &c.id).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["id"], id.as_str());

    // `report export --kind training-runs --format csv`: the report is a row.
    let since = yesterday();
    let csv = export(
        &m,
        &[
            "--kind",
            "training-runs",
            "--since",
            &since,
            "--format",
            "csv",
        ],
    );
    let rows = csv_records(&csv);
    let row = rows
        .iter()
        .find(|r| r.get("id").map(String::as_str) == Some(id.as_str()))
        .unwrap_or_else(|| panic!("report {id} not exported:\n{csv}"));
    assert_eq!(row["run_id"], "big");
    assert_eq!(row["customer_id"], c.id);
    assert_eq!(row["thresholds"], "test-run-1e19");
    assert_eq!(row["filing_reference"], "EU-AIO-2026-0042");
    assert_eq!(row["accelerator_type"], "h100");
    assert_flop(
        row["estimate_flop"].parse().expect("number"),
        h100_flop(8, 1.0),
        "exported estimate",
    );
    // JSON of the same kind, and the quarterly bundle.
    let doc: Value = serde_json::from_str(&export(
        &m,
        &[
            "--kind",
            "training-runs",
            "--since",
            &since,
            "--format",
            "json",
        ],
    ))
    .expect("training-runs JSON");
    assert!(
        doc["reports"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["id"] == id.as_str())),
        "{doc}"
    );
    let doc: Value = serde_json::from_str(&export(
        &m,
        &["--kind", "quarterly", "--since", &since, "--format", "json"],
    ))
    .expect("quarterly JSON");
    let bundle = &doc["bundles"][0];
    assert!(bundle["quarter"].as_str().is_some(), "{doc}");
    assert!(bundle["due_date"].as_str().is_some(), "{doc}");

    // `--kind eu-art52 --customer ID --format json`: the customer's runs with their FLOP.
    let doc: Value = serde_json::from_str(&export(
        &m,
        &[
            "--kind",
            "eu-art52",
            "--customer",
            &c.id,
            "--since",
            &since,
            "--format",
            "json",
        ],
    ))
    .expect("eu-art52 JSON");
    assert_eq!(doc["customer_id"], c.id.as_str(), "{doc}");
    let runs = doc["runs"].as_array().expect("runs");
    let big = runs
        .iter()
        .find(|r| r["run_id"] == "big")
        .unwrap_or_else(|| panic!("run `big` not in the Art. 52 export: {doc}"));
    assert_flop(num(&big["charged_flop"]), h100_flop(8, 1.0), "charged");
    assert_eq!(big["max_accelerators"], 8, "{big}");
    assert_eq!(big["accelerator_types"], json!(["h100"]), "{big}");
    assert_flop(
        num(&doc["charged_flop_total"]),
        h100_flop(9, 1.0),
        "charged total",
    );
    let csv = export(
        &m,
        &[
            "--kind",
            "eu-art52",
            "--customer",
            &c.id,
            "--since",
            &since,
            "--format",
            "csv",
        ],
    );
    assert_eq!(csv_records(&csv).len(), 2, "two runs:\n{csv}");

    // The staff API serves the same exports (any staff role), and audits each.
    let path = format!("/staff/v1/reports/export?kind=training-runs&since={since}&format=csv");
    let resp = m.staff_get(&auditor, &path).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.expect("CSV body");
    assert!(
        csv_records(&csv).iter().any(|r| r["id"] == id),
        "report {id} not in the API export:\n{csv}"
    );
    let path = format!("/staff/v1/reports/export?kind=eu-art52&since={since}");
    let resp = m.staff_get(&auditor, &path).await;
    let doc = expect_problem(resp, 422, "invalid-request").await;
    assert!(doc.to_string().contains("customer"), "{doc}");
    let resp = m
        .staff_get(
            &auditor,
            "/staff/v1/reports/export?kind=yearly&since=2026-01-01",
        )
        .await;
    expect_problem(resp, 422, "invalid-request").await;
    let out = m.cli(&["audit", "export", "--since", &since]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = String::from_utf8(out.stdout).expect("UTF-8 audit export");
    let exports: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["action"] == "ledger.reports.exported")
        .collect();
    assert_eq!(
        exports.len(),
        1,
        "one audited API export (refusals audit nothing)"
    );
    assert_eq!(
        exports[0]["detail"]["kind"], "training-runs",
        "{}",
        exports[0]
    );
}

#[tokio::test]
async fn one_job_crossing_a_threshold_creates_a_report_staff_file_and_export_on_sqlite() {
    within(
        TEST_TIMEOUT,
        one_job_crossing_a_threshold_creates_a_report_staff_file_and_export(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn one_job_crossing_a_threshold_creates_a_report_staff_file_and_export_on_postgres() {
    within(
        TEST_TIMEOUT,
        one_job_crossing_a_threshold_creates_a_report_staff_file_and_export(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn filing_a_report_twice_is_a_conflict() {
    within(TEST_TIMEOUT, async {
        let m = start(Backend::Sqlite).await;
        let reviewer = m.staff("reviewer").await;
        let c = m.customer().await;
        m.admit(&c, &job("h100", 8, 1.0, "twice")).await;
        let due = m.reports(&reviewer, "due", &c.id).await;
        let id = due[0]["id"].as_str().expect("report id");
        let path = format!("/staff/v1/reports/{id}/filed");
        let body = json!({"reference": "EU-AIO-2026-0043"});
        let resp = m.staff_post(&reviewer, &path, &body).await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        let resp = m.staff_post(&reviewer, &path, &body).await;
        expect_problem(resp, 409, "conflict").await;
    })
    .await;
}

// === lineage ===

async fn a_lineage_of_fine_tunes_crosses_cumulatively(backend: Backend) {
    let m = start(backend).await;
    let staff = m.staff("auditor").await;
    let c = m.customer().await;

    // 4 E base run, an unrelated 4 E run, then 2 E + 2 E of fine-tunes (a fine-tune of the
    // fine-tune included): the lineage reaches 8 E > 1e19 at the last one; the unrelated run
    // does not count towards it.
    m.admit(&c, &job("h100", 4, 1.0, "base")).await;
    m.admit(&c, &job("h100", 4, 1.0, "unrelated")).await;
    m.admit(&c, &fine_tune("h100", 2, 1.0, "ft-1", "base"))
        .await;
    assert!(
        m.reports(&staff, "due", &c.id).await.is_empty(),
        "6 E of lineage (10 E for the customer) is below the run threshold"
    );
    m.admit(&c, &fine_tune("h100", 2, 1.0, "ft-2", "ft-1"))
        .await;
    let due = m.reports(&staff, "due", &c.id).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let report = &due[0];
    assert_eq!(report["run_id"], "ft-2", "{report}");
    assert_eq!(crossed(report), ["test-run-1e19@run"], "{report}");
    assert_flop(num(&report["cumulative_flop"]), 8.0 * e(), "lineage total");
    let crossing = &report["crossings"][0];
    assert_flop(num(&crossing["previous_flop"]), 6.0 * e(), "previous");
    assert_flop(num(&crossing["projected_flop"]), 8.0 * e(), "projected");

    // The staff run list shows the lineage.
    let runs = m.runs(&staff, &c.id).await;
    let ft2 = runs
        .iter()
        .find(|r| r["run_id"] == "ft-2")
        .unwrap_or_else(|| panic!("{runs:?}"));
    assert_eq!(ft2["parent_run_id"], "ft-1", "{ft2}");
    assert_eq!(ft2["lineage_root_run_id"], "base", "{ft2}");
    assert_flop(num(&ft2["lineage_flop"]), 8.0 * e(), "lineage_flop");
    let unrelated = runs
        .iter()
        .find(|r| r["run_id"] == "unrelated")
        .unwrap_or_else(|| panic!("{runs:?}"));
    assert_eq!(unrelated["lineage_root_run_id"], "unrelated", "{unrelated}");
    assert_flop(
        num(&unrelated["lineage_flop"]),
        4.0 * e(),
        "unrelated lineage",
    );

    // Run ids are per customer: another customer's `base` is a lineage of its own.
    let d = m.customer().await;
    m.admit(&d, &fine_tune("h100", 6, 1.0, "ft-x", "base"))
        .await;
    assert!(m.reports(&staff, "due", &d.id).await.is_empty());
}

#[tokio::test]
async fn a_lineage_of_fine_tunes_crosses_cumulatively_on_sqlite() {
    within(
        TEST_TIMEOUT,
        a_lineage_of_fine_tunes_crosses_cumulatively(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_lineage_of_fine_tunes_crosses_cumulatively_on_postgres() {
    within(
        TEST_TIMEOUT,
        a_lineage_of_fine_tunes_crosses_cumulatively(Backend::Postgres),
    )
    .await;
}

// === linked accounts ===

/// Submits 5 E for `a`, 5 E for `b`, 5 E for `a` (separate runs, each under the run
/// threshold): 15 E > 2e19 for a group holding both.
async fn split_across(m: &Meter, a: &Cust, b: &Cust, tag: &str) {
    m.admit(a, &job("h100", 5, 1.0, &format!("{tag}-a1"))).await;
    m.admit(b, &job("h100", 5, 1.0, &format!("{tag}-b1"))).await;
    m.admit(a, &job("h100", 5, 1.0, &format!("{tag}-a2"))).await;
}

async fn a_split_across_two_linked_accounts_crosses_the_group_threshold(backend: Backend) {
    let m = start(backend).await;
    let reviewer = m.staff("reviewer").await;

    // Unlinked, the same split is two customers of 10 E and 5 E: nothing to report.
    let (x, y) = (m.customer().await, m.customer().await);
    split_across(&m, &x, &y, "apart").await;
    for c in [&x, &y] {
        assert!(m.reports(&reviewer, "due", &c.id).await.is_empty());
    }

    // Linked by staff (with a reason), the group reaches 15 E at the third job.
    let (a, b) = (m.customer().await, m.customer().await);
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/link",
            &json!({"customer_a": a.id, "customer_b": b.id, "reason": "same beneficial owner (case 17)"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "link: {resp:?}");
    m.admit(&a, &job("h100", 5, 1.0, "split-a1")).await;
    m.admit(&b, &job("h100", 5, 1.0, "split-b1")).await;
    assert!(m.reports(&reviewer, "due", &a.id).await.is_empty());
    assert!(m.reports(&reviewer, "due", &b.id).await.is_empty());
    m.admit(&a, &job("h100", 5, 1.0, "split-a2")).await;
    let due = m.reports(&reviewer, "due", &a.id).await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["run_id"], "split-a2", "{}", due[0]);
    assert_eq!(crossed(&due[0]), ["test-group-2e19@group"], "{}", due[0]);
    let crossing = &due[0]["crossings"][0];
    assert_flop(num(&crossing["previous_flop"]), 10.0 * e(), "group before");
    assert_flop(num(&crossing["projected_flop"]), 15.0 * e(), "group after");

    // A reason is required; unknown customers are 404; unlinking takes b out.
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/link",
            &json!({"customer_a": a.id, "customer_b": b.id}),
        )
        .await;
    assert!(
        resp.status().is_client_error(),
        "link without reason: {resp:?}"
    );
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/unlink",
            &json!({"customer_id": b.id, "reason": "owner disproved"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "unlink: {resp:?}");
    let doc: Value = resp.json().await.expect("JSON");
    assert!(doc["left_group"].as_str().is_some(), "{doc}");
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/unlink",
            &json!({"customer_id": uuid::Uuid::new_v4(), "reason": "typo"}),
        )
        .await;
    expect_problem(resp, 404, "not-found").await;
}

#[tokio::test]
async fn a_split_across_two_linked_accounts_crosses_the_group_threshold_on_sqlite() {
    within(
        TEST_TIMEOUT,
        a_split_across_two_linked_accounts_crosses_the_group_threshold(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_split_across_two_linked_accounts_crosses_the_group_threshold_on_postgres() {
    within(
        TEST_TIMEOUT,
        a_split_across_two_linked_accounts_crosses_the_group_threshold(Backend::Postgres),
    )
    .await;
}

// === review ===

async fn a_review_threshold_holds_the_job_until_staff_approve_it(backend: Backend) {
    let m = start(backend).await;
    let reviewer = m.staff("reviewer").await;
    let auditor = m.staff("auditor").await;
    let c = m.customer().await;

    // 72 H100-hours ≈ 1.03e20 passes the review threshold: held, nothing reserved.
    let big = job("h100", 72, 1.0, "frontier");
    let resp = m.submit(&c, &big).await;
    let doc = expect_problem(resp, 409, "job-held-for-review").await;
    let review_id = doc["review_id"].as_str().expect("review_id").to_owned();
    assert_flop(
        num(&doc["estimated_flop"]),
        h100_flop(72, 1.0),
        "estimated_flop",
    );
    assert_eq!(
        m.charged(&auditor, &c.id).await,
        0.0,
        "a held job reserves nothing"
    );
    assert!(m.sim_jobs().await.iter().all(|j| j["run_id"] != "frontier"));

    // The pending review names the run and its estimate.
    let pending = m
        .staff_list(&auditor, "/staff/v1/job-reviews?status=pending", "reviews")
        .await;
    let review = pending
        .iter()
        .find(|r| r["id"] == review_id.as_str())
        .unwrap_or_else(|| panic!("review {review_id} not pending: {pending:?}"));
    assert_eq!(review["run_id"], "frontier", "{review}");
    assert_eq!(review["customer_id"], c.id.as_str(), "{review}");
    assert_flop(
        num(&review["estimate_flop"]),
        h100_flop(72, 1.0),
        "review estimate",
    );

    // Resubmitting before a decision is held again.
    let resp = m.submit(&c, &big).await;
    expect_problem(resp, 409, "job-held-for-review").await;

    // Auditors may not decide; a reviewer approves with a reason.
    let path = format!("/staff/v1/job-reviews/{review_id}/decision");
    let approve = json!({"action": "approve", "reason": "research lab, compliance plan on file"});
    let resp = m.staff_post(&auditor, &path, &approve).await;
    expect_problem(resp, 403, "forbidden").await;
    let resp = m
        .staff_post(&reviewer, &path, &json!({"action": "maybe", "reason": "?"}))
        .await;
    assert!(resp.status().is_client_error(), "{resp:?}");
    let resp = m.staff_post(&reviewer, &path, &approve).await;
    assert_eq!(resp.status(), 200, "approve: {resp:?}");
    let decided: Value = resp.json().await.expect("JSON");
    assert_eq!(decided["status"], "approved", "{decided}");
    let resp = m.staff_post(&reviewer, &path, &approve).await;
    expect_problem(resp, 409, "conflict").await;

    // The same job resubmitted is admitted, forwarded, and reported.
    let a = m.admit(&c, &big).await;
    assert_eq!(a.run, "frontier");
    assert_flop(a.estimate, h100_flop(72, 1.0), "estimate");
    assert_flop(
        m.charged(&auditor, &c.id).await,
        h100_flop(72, 1.0),
        "charged",
    );
    let due = m.reports(&auditor, "due", &c.id).await;
    assert!(
        due.iter()
            .any(|r| crossed(r).contains(&"test-review-1e20@run".to_string())),
        "no report for the reviewed crossing: {due:?}"
    );

    // A denial keeps the job out; the next submission is a new hold.
    let d = m.customer().await;
    let resp = m.submit(&d, &job("h100", 72, 1.0, "denied")).await;
    let doc = expect_problem(resp, 409, "job-held-for-review").await;
    let denied_id = doc["review_id"].as_str().expect("review_id").to_owned();
    let resp = m
        .staff_post(
            &reviewer,
            &format!("/staff/v1/job-reviews/{denied_id}/decision"),
            &json!({"action": "deny", "reason": "end use not credible"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "deny: {resp:?}");
    let resp = m.submit(&d, &job("h100", 72, 1.0, "denied")).await;
    let doc = expect_problem(resp, 409, "job-held-for-review").await;
    assert_ne!(doc["review_id"], denied_id.as_str(), "{doc}");
    assert_eq!(m.charged(&auditor, &d.id).await, 0.0);

    // An approval covers that job, not a larger one under the same run id.
    let f = m.customer().await;
    let resp = m.submit(&f, &job("h100", 72, 1.0, "grow")).await;
    let doc = expect_problem(resp, 409, "job-held-for-review").await;
    let id = doc["review_id"].as_str().expect("review_id").to_owned();
    let resp = m
        .staff_post(
            &reviewer,
            &format!("/staff/v1/job-reviews/{id}/decision"),
            &approve,
        )
        .await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    let resp = m.submit(&f, &job("h100", 96, 1.0, "grow")).await;
    expect_problem(resp, 409, "job-held-for-review").await;
}

#[tokio::test]
async fn a_review_threshold_holds_the_job_until_staff_approve_it_on_sqlite() {
    within(
        TEST_TIMEOUT,
        a_review_threshold_holds_the_job_until_staff_approve_it(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_review_threshold_holds_the_job_until_staff_approve_it_on_postgres() {
    within(
        TEST_TIMEOUT,
        a_review_threshold_holds_the_job_until_staff_approve_it(Backend::Postgres),
    )
    .await;
}

// === declared compute ===

// === the shipped thresholds, at real sizes ===

async fn the_shipped_1e25_and_1e26_thresholds_fire_at_real_sizes(backend: Backend) {
    // The shipped policy (no policy file): `eu-ai-act-systemic-1e25` (run, organization, group;
    // notify + report, due in 14 days) and `us-frontier-1e26` (report + review). Jobs go to the
    // echo route: the simulator's fleet is far smaller than 25 000 H100s. Customers are set to
    // `validated_end_user` (no caps) in the store before their first request (shortcut).
    let m = Meter::start(backend, None).await;
    let reviewer = m.staff("reviewer").await;
    // 25 000 H100 for 12 days ≈ 1.026e25.
    let big = |run: &str| job("h100", 25_000, 288.0, run);
    let j = h100_flop(25_000, 288.0);

    // 1e25 crossed by one job.
    let v = m.customer_at("validated_end_user").await;
    let (a, _) = m.admit_echo(&v, &big("frontier")).await;
    assert_flop(a.estimate, j, "estimate");
    let due = m.reports(&reviewer, "due", &v.id).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let labels = crossed(&due[0]);
    assert!(
        labels.contains(&"eu-ai-act-systemic-1e25@run".to_string())
            && labels.contains(&"eu-ai-act-systemic-1e25@group".to_string()),
        "{labels:?}"
    );
    assert_eq!(
        time_of(&due[0]["due_at"]) - time_of(&due[0]["created_at"]),
        time::Duration::days(14),
        "Art. 52: two weeks"
    );

    // 1e26 crossed by a lineage of fine-tunes: the tenth job of the lineage is held for review,
    // approved, resubmitted and admitted with a report.
    let mut parent = "frontier".to_string();
    for i in 1..=8 {
        let run = format!("frontier-ft-{i}");
        m.admit_echo(&v, &fine_tune("h100", 25_000, 288.0, &run, &parent))
            .await;
        parent = run;
    }
    let last = fine_tune("h100", 25_000, 288.0, "frontier-ft-9", &parent);
    let resp = m.submit_echo(&m.gw, &v, &last).await;
    let doc = expect_problem(resp, 409, "job-held-for-review").await;
    let review = doc["review_id"].as_str().expect("review id").to_owned();
    let resp = m
        .staff_post(
            &reviewer,
            &format!("/staff/v1/job-reviews/{review}/decision"),
            &json!({"action": "approve", "reason": "frontier lab under VEU agreement"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    m.admit_echo(&v, &last).await;
    let due = m.reports(&reviewer, "due", &v.id).await;
    let frontier = due
        .iter()
        .find(|r| r["run_id"] == "frontier-ft-9")
        .unwrap_or_else(|| panic!("no report for the tenth job: {due:?}"));
    assert!(
        crossed(frontier).contains(&"us-frontier-1e26@run".to_string()),
        "{frontier}"
    );
    assert_flop(num(&frontier["cumulative_flop"]), 10.0 * j, "lineage total");

    // 1e25 crossed by a split across two linked accounts: 8.2e24 each, under 1e25 per run.
    let (x, y) = (
        m.customer_at("validated_end_user").await,
        m.customer_at("validated_end_user").await,
    );
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/link",
            &json!({"customer_a": x.id, "customer_b": y.id, "reason": "same parent company"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    m.admit_echo(&x, &job("h100", 20_000, 288.0, "half-1"))
        .await;
    assert!(m.reports(&reviewer, "due", &x.id).await.is_empty());
    m.admit_echo(&y, &job("h100", 20_000, 288.0, "half-2"))
        .await;
    let due = m.reports(&reviewer, "due", &y.id).await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(
        crossed(&due[0]),
        ["eu-ai-act-systemic-1e25@group"],
        "{}",
        due[0]
    );
}

#[tokio::test]
async fn the_shipped_1e25_and_1e26_thresholds_fire_at_real_sizes_on_sqlite() {
    within(
        TEST_TIMEOUT,
        the_shipped_1e25_and_1e26_thresholds_fire_at_real_sizes(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn the_shipped_1e25_and_1e26_thresholds_fire_at_real_sizes_on_postgres() {
    within(
        TEST_TIMEOUT,
        the_shipped_1e25_and_1e26_thresholds_fire_at_real_sizes(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn a_threshold_crossing_is_counted_once_under_its_label() {
    // `computegate_threshold_crossings_total{label}`: one job crossing `test-run-1e19` (actions
    // notify and report) is one crossing.
    within(TEST_TIMEOUT, async {
        let m = start(Backend::Sqlite).await;
        let c = m.customer().await;
        m.admit(&c, &job("h100", 8, 1.0, "counted")).await;
        let samples = metrics(&m.http, &m.gw).await;
        let count = |label| {
            counter(
                &samples,
                "computegate_threshold_crossings_total",
                &[("label", label)],
            )
        };
        assert_eq!(count("test-group-2e19"), 0.0);
        assert_eq!(count("test-run-1e19"), 1.0, "one crossing of test-run-1e19");
    })
    .await;
}

#[tokio::test]
async fn declared_compute_above_the_hardware_estimate_projects_the_crossing() {
    // 4 H100-hours (≈ 5.7e18) declaring 6 × 1e9 parameters × 2e9 tokens = 1.2e19 (2.1×, within
    // the 10× gap): thresholds are projected with the larger of the two
    // (`Estimate::projected_flop`, gateway/src/metering/admission.rs), so 1e19 is crossed.
    within(TEST_TIMEOUT, async {
        let m = start(Backend::Sqlite).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        let mut body = job("h100", 4, 1.0, "declared");
        body["model"] = json!({"parameters": 1e9});
        body["dataset"] = json!({"tokens": 2e9, "kind": "image"});
        let a = m.admit(&c, &body).await;
        assert_flop(
            a.estimate,
            h100_flop(4, 1.0),
            "the reservation is the hardware estimate",
        );
        let due = m.reports(&staff, "due", &c.id).await;
        assert!(
            due.iter()
                .any(|r| crossed(r).contains(&"test-run-1e19@run".to_string())),
            "declared 1.2e19 does not project the 1e19 crossing: {due:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_split_found_after_the_fact_is_still_caught_on_sqlite() {
    within(
        TEST_TIMEOUT,
        a_split_found_after_the_fact_is_still_caught(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn a_split_found_after_the_fact_is_still_caught_on_postgres() {
    within(
        TEST_TIMEOUT,
        a_split_found_after_the_fact_is_still_caught(Backend::Postgres),
    )
    .await;
}

#[tokio::test]
async fn accounts_sharing_a_payment_fingerprint_are_linked_automatically() {
    // Issue 5 §7: accounts sharing a payment fingerprint are linked automatically. Two
    // customers apply (KYC) with the same fingerprint and are approved; their split then
    // crosses the group threshold like a staff-linked pair's.
    within(Duration::from_secs(90), async {
        let m = start(Backend::Sqlite).await;
        m.import_screening_list();
        let reviewer = m.staff("reviewer").await;
        let (a, b) = (m.customer().await, m.customer().await);
        let fingerprint = format!("pm_fp_{}", uuid::Uuid::new_v4().simple());
        let app_a = m
            .apply_individual(&a, "Astrid Berglund", &fingerprint)
            .await;
        let app_b = m.apply_individual(&b, "Johan Lindgren", &fingerprint).await;
        m.approve_individual(&reviewer, &app_a).await;
        m.approve_individual(&reviewer, &app_b).await;
        split_across(&m, &a, &b, "fp").await;
        let due = m.reports(&reviewer, "due", &a.id).await;
        assert!(
            due.iter()
                .any(|r| crossed(r).contains(&"test-group-2e19@group".to_string())),
            "15 E across two accounts sharing a payment fingerprint: no group report {due:?}"
        );
    })
    .await;
}

async fn a_split_found_after_the_fact_is_still_caught(backend: Backend) {
    // Two accounts each run 12 E (each alone below the group threshold of ≈ 14 E); staff then
    // find they share an owner and link them: the group holds 24 E, past 2e19, and a report
    // must exist once the group runs anything more (or already when linked).
    let m = start(backend).await;
    let reviewer = m.staff("reviewer").await;
    let (a, b) = (m.customer().await, m.customer().await);
    for (c, tag) in [(&a, "a"), (&b, "b")] {
        m.admit(c, &job("h100", 6, 1.0, &format!("late-{tag}1")))
            .await;
        m.admit(c, &job("h100", 6, 1.0, &format!("late-{tag}2")))
            .await;
        assert!(m.reports(&reviewer, "due", &c.id).await.is_empty());
    }
    let resp = m
        .staff_post(
            &reviewer,
            "/staff/v1/groups/link",
            &json!({"customer_a": a.id, "customer_b": b.id, "reason": "shared card, found late"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "link: {resp:?}");
    m.admit(&a, &job("h100", 1, 1.0, "late-a3")).await;
    let mut all = m.reports(&reviewer, "due", &a.id).await;
    all.extend(m.reports(&reviewer, "due", &b.id).await);
    assert!(
        all.iter()
            .any(|r| crossed(r).contains(&"test-group-2e19@group".to_string())),
        "the linked group holds 25 E > 2e19 and no group report exists: {all:?}"
    );
}

// === an approval is spent only by a job the upstream took ===

/// A review threshold for biological-sequence runs past 1e18 (report and review), and nothing
/// else: a B200-hour of such a run is held; other runs pass.
fn bio_review_policy() -> String {
    let rule = "[[thresholds]]\nlabel = \"test-bio-review\"\nflop = 1e18\nscope = [\"run\"]\n\
                action = [\"report\", \"review\"]\napplies_when = \"biological_sequence_data\"\n\
                report_due_days = 14\nsource = \"metering black-box tests\"\n\
                status = \"in_force\"\n\n";
    policy("bio-review", &tiers(&[]), rule)
}

async fn an_upstream_refusal_gives_the_approval_back(backend: Backend) {
    let m = Meter::start(backend, Some(&bio_review_policy())).await;
    let reviewer = m.staff("reviewer").await;
    let auditor = m.staff("auditor").await;
    let c = m.customer_at("identity_verified").await;

    // Every B200 of the simulator's fleet (128) is taken for 14 simulated days.
    let filler = m.admit(&c, &job("b200", 128, 336.0, "fleet-filler")).await;
    let filler_id = filler.body["id"].as_str().expect("sim job id").to_owned();

    // A biological-sequence run is held; staff approve it.
    let mut bio = job("b200", 1, 1.0, "bio-run");
    bio["dataset"] = json!({"kind": "biological_sequence"});
    let doc = expect_problem(m.submit(&c, &bio).await, 409, "job-held-for-review").await;
    let review_id = doc["review_id"].as_str().expect("review_id").to_owned();
    let path = format!("/staff/v1/job-reviews/{review_id}/decision");
    let approve = json!({"action": "approve", "reason": "sequence-model lab, plan on file"});
    assert_eq!(m.staff_post(&reviewer, &path, &approve).await.status(), 200);

    // The approved job is admitted, but the upstream refuses it (no free B200): 409 from the
    // simulator, and the gateway releases the reservation.
    let resp = m.submit(&c, &bio).await;
    let refused = expect_problem(resp, 409, "sim-insufficient-capacity").await;
    assert!(refused.get("review_id").is_none(), "{refused}");

    // The approval is unused again, and the report filed for the refused job is withdrawn.
    let approved = m
        .staff_list(&auditor, "/staff/v1/job-reviews?status=approved", "reviews")
        .await;
    let review = approved
        .iter()
        .find(|r| r["id"] == review_id.as_str())
        .unwrap_or_else(|| panic!("review {review_id} not listed: {approved:?}"));
    assert!(review["consumed_by"].is_null(), "{review}");
    let due = m.reports(&auditor, "due", &c.id).await;
    assert!(
        due.is_empty(),
        "a report stays due for a job that never ran: {due:?}"
    );
    let withdrawn = m.reports(&auditor, "withdrawn", &c.id).await;
    assert_eq!(withdrawn.len(), 1, "{withdrawn:?}");
    assert!(withdrawn[0]["withdrawn_at"].is_string(), "{withdrawn:?}");
    let report_id = withdrawn[0]["id"].as_str().expect("report id");
    let path = format!("/staff/v1/audit?subject=report:{report_id}&action=ledger.report.withdrawn");
    assert_eq!(m.staff_list(&auditor, &path, "records").await.len(), 1);
    let path = format!("/staff/v1/audit?subject=review:{review_id}&action=ledger.review.restored");
    assert_eq!(m.staff_list(&auditor, &path, "records").await.len(), 1);

    // Once the fleet is free, the retry is admitted on the same approval, without a new hold.
    let resp = m
        .http
        .delete(m.gw.url(&format!("/v1/jobs/{filler_id}")))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("cancel the filler");
    assert_eq!(resp.status(), 200, "cancel: {resp:?}");
    let admitted = m.admit(&c, &bio).await;
    assert_eq!(admitted.run, "bio-run");
    let due = m.reports(&auditor, "due", &c.id).await;
    assert_eq!(due.len(), 1, "the job that ran is reported: {due:?}");
}

#[tokio::test]
async fn an_upstream_refusal_does_not_spend_the_approval() {
    within(
        TEST_TIMEOUT,
        an_upstream_refusal_gives_the_approval_back(Backend::Sqlite),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis (scripts/test.sh)"]
async fn an_upstream_refusal_does_not_spend_the_approval_on_postgres() {
    within(
        TEST_TIMEOUT,
        an_upstream_refusal_gives_the_approval_back(Backend::Postgres),
    )
    .await;
}

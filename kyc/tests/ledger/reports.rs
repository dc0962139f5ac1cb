//! Reports with due dates, filing, counts and the exports.

use computegate_kyc::accounts::Actor;
use computegate_kyc::ledger::{
    ExportFormat, ExportKind, LedgerError, ReportFilter, ReportStatus, UsageKind,
};
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;

use super::fixtures::{admitted, customer, job, recorded, staff, usage};
use crate::support::{Ctx, t0};

async fn reports_have_due_dates_and_are_filed_by_staff(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let first = admitted(s, &job(c, "a", 2e25)).await;
    let mut later = job(c, "b", 3e25);
    later.now = t0() + Duration::days(10);
    let second = admitted(s, &later).await;

    let due = s
        .ledger()
        .list_reports(&ReportFilter {
            status: Some(ReportStatus::Due),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    let r = &due[0];
    assert_eq!(r.id, first.report_ids[0]);
    assert_eq!(r.due_at, t0() + Duration::days(15));
    assert_eq!(r.run_id, "a");
    assert_eq!(r.estimate_flop, 2e25);
    assert_eq!(r.basis, "hardware:h100:bf16:u0.4");
    assert_eq!(r.accelerators, 64);
    assert_eq!(r.accelerator_type.as_deref(), Some("h100"));
    assert_eq!(
        r.identity_snapshot.as_ref().unwrap()["legal_name"],
        "Test Customer"
    );
    let labels: Vec<&str> = r.crossings.iter().map(|x| x.label.as_str()).collect();
    assert_eq!(labels, ["eu_art51_1e25_run", "eu_art51_1e25_group"]);

    let soon = s
        .ledger()
        .list_reports(&ReportFilter {
            due_before: Some(t0() + Duration::days(20)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(soon.len(), 1);
    let counts = s
        .ledger()
        .reports_due_count(t0() + Duration::days(16), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((counts.open, counts.overdue, counts.due_soon), (2, 1, 0));
    // The one not yet overdue falls due within a long enough window.
    let counts = s
        .ledger()
        .reports_due_count(t0() + Duration::days(16), Duration::days(3650))
        .await
        .unwrap();
    assert_eq!((counts.open, counts.overdue, counts.due_soon), (2, 1, 1));

    let r = s
        .ledger()
        .mark_report_filed(first.report_ids[0], &Actor::customer(c, None), "x", t0())
        .await;
    assert!(matches!(r, Err(LedgerError::NotStaff)));
    let officer = staff();
    let filed = s
        .ledger()
        .mark_report_filed(
            first.report_ids[0],
            &officer,
            "BIS-2030-0001",
            t0() + Duration::days(3),
        )
        .await
        .unwrap();
    assert_eq!(filed.filing_reference.as_deref(), Some("BIS-2030-0001"));
    assert_eq!(filed.filed_by.as_deref(), Some(officer.name.as_str()));
    let again = s
        .ledger()
        .mark_report_filed(first.report_ids[0], &officer, "x", t0())
        .await;
    assert!(matches!(again, Err(LedgerError::ReportAlreadyFiled)));
    let missing = s
        .ledger()
        .mark_report_filed(Uuid::now_v7(), &officer, "x", t0())
        .await;
    assert!(matches!(missing, Err(LedgerError::ReportNotFound)));

    let filed = s
        .ledger()
        .list_reports(&ReportFilter {
            status: Some(ReportStatus::Filed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(filed.len(), 1);
    let due = s
        .ledger()
        .list_reports(&ReportFilter {
            status: Some(ReportStatus::Due),
            customer_id: Some(c),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, second.report_ids[0]);
    assert_eq!(
        s.ledger()
            .reports_due_count(t0(), Duration::ZERO)
            .await
            .unwrap()
            .open,
        1
    );
}

async fn exports_training_runs_quarterly_and_eu_art52(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    // Q1 and Q2 2030.
    let mut q1 = job(c, "=cmd|' /C calc'!A0", 2e25);
    q1.now = datetime!(2030-02-10 00:00 UTC);
    let d1 = admitted(s, &q1).await;
    let mut q2 = job(c, "ft", 1e24);
    q2.parent_run_id = Some(q1.run_id.clone());
    q2.now = datetime!(2030-05-10 00:00 UTC);
    q2.accelerator_type = Some("b200".into());
    admitted(s, &q2).await;
    let mut q2b = job(c, "second", 5e25);
    q2b.now = datetime!(2030-06-01 00:00 UTC);
    admitted(s, &q2b).await;
    // Usage for the first job: 1 hour on 64 accelerators.
    let start = datetime!(2030-02-10 01:00 UTC);
    recorded(s, &usage(d1.job_id, "s", UsageKind::Started, start)).await;
    let fin = UsageKind::Finished {
        accelerator_seconds_total: 230_400.0,
    };
    recorded(s, &usage(d1.job_id, "f", fin, start + Duration::hours(1))).await;

    let since = datetime!(2030-01-01 00:00 UTC);
    let mut out = Vec::new();
    let n = s
        .ledger()
        .export_reports(
            ExportKind::TrainingRuns,
            since,
            ExportFormat::Json,
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(n, 2, "the fine-tune crossed nothing new");
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["reports"][0]["run_id"], q1.run_id);
    assert_eq!(doc["reports"][0]["due_at"], "2030-02-25T00:00:00Z");

    let mut csv = Vec::new();
    s.ledger()
        .export_reports(ExportKind::TrainingRuns, since, ExportFormat::Csv, &mut csv)
        .await
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("id,job_id,customer_id,"));
    assert!(
        lines[1].contains(",'=cmd|' /C calc'!A0,"),
        "formula defused: {}",
        lines[1]
    );

    let mut out = Vec::new();
    s.ledger()
        .export_reports(ExportKind::Quarterly, since, ExportFormat::Json, &mut out)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let bundles = doc["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 2);
    assert_eq!(bundles[0]["quarter"], "2030-Q1");
    assert_eq!(bundles[0]["due_date"], "2030-04-15");
    assert_eq!(bundles[1]["quarter"], "2030-Q2");
    assert_eq!(bundles[1]["due_date"], "2030-07-15");
    let mut csv = Vec::new();
    s.ledger()
        .export_reports(ExportKind::Quarterly, since, ExportFormat::Csv, &mut csv)
        .await
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("quarter,due_date,id,"));
    assert!(csv.contains("\r\n2030-Q2,2030-07-15,"));

    let mut out = Vec::new();
    let kind = ExportKind::EuArt52 { customer_id: c };
    let runs = s
        .ledger()
        .export_reports(kind, since, ExportFormat::Json, &mut out)
        .await
        .unwrap();
    assert_eq!(runs, 3);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let first = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == q1.run_id)
        .unwrap();
    // Measured: 230 400 accelerator-seconds × 10 FLOP each.
    assert_eq!(first["measured_flop"], 2_304_000.0);
    assert_eq!(first["charged_flop"], 2_304_000.0);
    assert_eq!(first["accelerator_seconds"], 230_400.0);
    assert_eq!(first["first_start"], "2030-02-10T01:00:00Z");
    assert_eq!(first["last_end"], "2030-02-10T02:00:00Z");
    assert_eq!(first["bases"][0], "hardware:h100:bf16:u0.4");
    let ft = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "ft")
        .unwrap();
    assert_eq!(ft["lineage_root_run_id"], q1.run_id);
    assert_eq!(ft["accelerator_types"][0], "b200");
    let mut csv = Vec::new();
    s.ledger()
        .export_reports(kind, since, ExportFormat::Csv, &mut csv)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(csv).unwrap().matches("\r\n").count(), 4);

    // Another customer's pack is empty.
    let other = customer(s).await;
    let mut out = Vec::new();
    let n = s
        .ledger()
        .export_reports(
            ExportKind::EuArt52 { customer_id: other },
            since,
            ExportFormat::Json,
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
}

crate::store_suite!(
    reports_have_due_dates_and_are_filed_by_staff,
    exports_training_runs_quarterly_and_eu_art52,
);

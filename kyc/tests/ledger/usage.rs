//! Usage events: measured usage replaces the reservation, finishing releases the rest,
//! replays and bad counters change nothing, and an overrun re-checks the thresholds.

use computegate_kyc::audit::AuditFilter;
use computegate_kyc::ledger::{JobStatus, LedgerError, ReportFilter, UsageKind, UsageOutcome};
use computegate_policy::{Action, Scope};
use time::Duration;
use uuid::Uuid;

use super::fixtures::{
    admitted, customer, job, lineage_total, recorded, rule, shipped_thresholds, staff, thresholds,
    usage,
};
use crate::support::{Ctx, t0};

fn heartbeat(seconds: f64) -> UsageKind {
    UsageKind::Heartbeat {
        accelerator_seconds_total: seconds,
    }
}

fn finished(seconds: f64) -> UsageKind {
    UsageKind::Finished {
        accelerator_seconds_total: seconds,
    }
}

async fn measured_usage_replaces_the_reservation_and_finish_releases(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let d = admitted(s, &job(c, "run", 1000.0)).await;
    let at = t0() + Duration::minutes(1);
    let r = recorded(s, &usage(d.job_id, "e1", UsageKind::Started, at)).await;
    assert_eq!(r.status, JobStatus::Running);
    assert_eq!((r.used_flop, r.reserved_flop), (0.0, 1000.0));

    // 30 accelerator-seconds at 10 FLOP each: 300 used, 700 still reserved, total unchanged.
    let r = recorded(s, &usage(d.job_id, "e2", heartbeat(30.0), at)).await;
    assert_eq!(
        (r.used_flop, r.reserved_flop, r.overrun_flop),
        (300.0, 700.0, 0.0)
    );
    assert_eq!(r.measured_flop, 300.0);
    assert_eq!(lineage_total(s, c, "run").await, 1000.0);
    assert_eq!(s.ledger().open_reservations_count().await.unwrap(), 1);

    // Finishing at 50 s releases the other 500.
    let r = recorded(s, &usage(d.job_id, "e3", finished(50.0), at)).await;
    assert_eq!(r.status, JobStatus::Finished);
    assert_eq!((r.used_flop, r.reserved_flop), (500.0, 0.0));
    assert_eq!(r.measured_flop, 200.0);
    assert_eq!(lineage_total(s, c, "run").await, 500.0);
    assert_eq!(s.ledger().open_reservations_count().await.unwrap(), 0);

    // The released budget is available again to the customer's window cap.
    let mut next = job(c, "run", 1500.0);
    next.limits.max_flop_per_customer_window = Some(2000.0);
    let d = admitted(s, &next).await;
    assert_eq!(d.remaining_flop, Some(0.0));

    let records = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("ledger.usage.recorded".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Started and finished are state changes; the heartbeat between them changed neither the
    // job's status nor crossed a threshold, so it stays on the job's usage rows, not the chain.
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].actor, "system:meter");
}

async fn replays_unknown_jobs_and_bad_counters_change_nothing(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let d = admitted(s, &job(c, "run", 1000.0)).await;
    let at = t0();
    let e = usage(d.job_id, "hb-1", heartbeat(40.0), at);
    recorded(s, &e).await;
    let head = s.audit().audit_head().await.unwrap().seq;

    // A replay (even with different numbers) is acknowledged and ignored.
    let mut replay = e.clone();
    replay.kind = heartbeat(90.0);
    let out = s
        .ledger()
        .record_usage(&replay, &shipped_thresholds())
        .await
        .unwrap();
    assert_eq!(out, UsageOutcome::Duplicate);
    assert_eq!(lineage_total(s, c, "run").await, 1000.0);

    let unknown = usage(Uuid::now_v7(), "x-1", heartbeat(1.0), at);
    let out = s
        .ledger()
        .record_usage(&unknown, &shipped_thresholds())
        .await;
    assert!(matches!(out, Err(LedgerError::UnknownJob)), "{out:?}");

    let backwards = usage(d.job_id, "hb-2", heartbeat(39.0), at);
    let out = s
        .ledger()
        .record_usage(&backwards, &shipped_thresholds())
        .await;
    assert!(
        matches!(out, Err(LedgerError::CounterDecreased { previous, reported })
            if previous == 40.0 && reported == 39.0),
        "{out:?}"
    );
    // The refused event was not recorded: a corrected retry under the same id applies.
    let corrected = usage(d.job_id, "hb-2", heartbeat(41.0), at);
    assert_eq!(recorded(s, &corrected).await.used_flop, 410.0);

    let nan = usage(d.job_id, "hb-3", heartbeat(f64::NAN), at);
    assert!(matches!(
        s.ledger().record_usage(&nan, &shipped_thresholds()).await,
        Err(LedgerError::Invalid(_))
    ));

    let fin = usage(d.job_id, "fin", finished(50.0), at);
    recorded(s, &fin).await;
    let late = usage(d.job_id, "late", heartbeat(60.0), at);
    assert!(matches!(
        s.ledger().record_usage(&late, &shipped_thresholds()).await,
        Err(LedgerError::JobNotOpen {
            status: JobStatus::Finished
        })
    ));
    // A replay of the finish after the fact is still a duplicate, not an error.
    assert_eq!(
        s.ledger()
            .record_usage(&fin, &shipped_thresholds())
            .await
            .unwrap(),
        UsageOutcome::Duplicate
    );
    // One chain record since `head`: the finish. The corrected heartbeat (a running job staying
    // running) is kept on the job, and the refused events left nothing.
    assert_eq!(s.audit().audit_head().await.unwrap().seq, head + 1);
}

async fn an_overrun_extends_the_reservation_and_rechecks_thresholds(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let policy = thresholds(vec![
        rule("run_1500", 1500.0, Scope::Run, Action::Report),
        rule("cust_5000", 5000.0, Scope::Customer, Action::Review),
    ]);
    let mut req = job(c, "run", 1000.0);
    req.thresholds = policy.clone();
    let d = admitted(s, &req).await;
    assert!(d.crossings.is_empty());

    // Runs to 200 s = 2000 FLOP: past its estimate; the charge grows and crosses 1500.
    let e = usage(d.job_id, "hb", heartbeat(200.0), t0() + Duration::hours(1));
    let UsageOutcome::Recorded(r) = s.ledger().record_usage(&e, &policy).await.unwrap() else {
        panic!("duplicate");
    };
    assert_eq!(
        (r.used_flop, r.reserved_flop, r.overrun_flop),
        (2000.0, 0.0, 1000.0)
    );
    assert_eq!(r.crossings.len(), 1);
    assert_eq!(r.crossings[0].label, "run_1500");
    assert_eq!(
        (r.crossings[0].previous_flop, r.crossings[0].projected_flop),
        (1000.0, 2000.0)
    );
    assert_eq!(r.report_ids.len(), 1);
    assert_eq!(lineage_total(s, c, "run").await, 2000.0);

    // The usage-time report waits for its identity snapshot.
    let reports = s
        .ledger()
        .list_reports(&ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].identity_snapshot.is_none());
    assert_eq!(
        reports[0].due_at,
        t0() + Duration::hours(1) + Duration::days(15)
    );
    let snapshot = serde_json::json!({ "legal_name": "Test Customer" });
    s.ledger()
        .attach_report_identity(r.report_ids[0], &snapshot, &staff(), t0())
        .await
        .unwrap();
    let again = s
        .ledger()
        .attach_report_identity(r.report_ids[0], &snapshot, &staff(), t0())
        .await;
    assert!(matches!(again, Err(LedgerError::Invalid(_))));
    let reports = s
        .ledger()
        .list_reports(&ReportFilter::default())
        .await
        .unwrap();
    assert_eq!(reports[0].identity_snapshot.as_ref(), Some(&snapshot));

    // Growing further re-checks again: the customer review threshold is crossed and recorded
    // (the job already runs, so it is reported rather than held).
    let e = usage(d.job_id, "hb2", heartbeat(600.0), t0() + Duration::hours(2));
    let UsageOutcome::Recorded(r) = s.ledger().record_usage(&e, &policy).await.unwrap() else {
        panic!("duplicate");
    };
    assert_eq!(r.crossings.len(), 1);
    assert_eq!(r.crossings[0].label, "cust_5000");
    assert_eq!(r.report_ids.len(), 1);
}

async fn concurrent_deliveries_of_one_event_apply_once(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let d = admitted(s, &job(c, "run", 1000.0)).await;
    let e = usage(d.job_id, "same", heartbeat(10.0), t0());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, e) = (s.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            store
                .ledger()
                .record_usage(&e, &shipped_thresholds())
                .await
                .unwrap()
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), UsageOutcome::Recorded(_)) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(lineage_total(s, c, "run").await, 1000.0);
}

async fn a_job_that_never_ran_releases_its_reservation(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    let mut req = job(c, "refused", 1000.0);
    req.limits.max_flop_per_customer_window = Some(1000.0);
    req.limits.max_concurrent_jobs = Some(1);
    let d = admitted(s, &req).await;
    s.ledger()
        .release_job(d.job_id, "upstream answered 422", t0())
        .await
        .unwrap();
    // Idempotent.
    s.ledger()
        .release_job(d.job_id, "again", t0())
        .await
        .unwrap();
    assert_eq!(lineage_total(s, c, "refused").await, 0.0);
    assert_eq!(s.ledger().open_reservations_count().await.unwrap(), 0);
    // The budget and the concurrency slot are free again.
    let d2 = admitted(s, &req).await;
    assert_eq!(d2.totals_after.open_jobs, Some(1));
    // A released job that reports usage ran after all: it is open again and charged (10 s at
    // the fixture's 10 FLOP per accelerator-second, the rest of its estimate reserved again).
    let late = UsageKind::Heartbeat {
        accelerator_seconds_total: 10.0,
    };
    let reopened = recorded(s, &usage(d.job_id, "late", late, t0())).await;
    assert_eq!(reopened.status, JobStatus::Running);
    assert_eq!((reopened.used_flop, reopened.reserved_flop), (100.0, 900.0));
    assert_eq!(lineage_total(s, c, "refused").await, 2000.0);
    // A started job cannot be released.
    recorded(s, &usage(d2.job_id, "go", UsageKind::Started, t0())).await;
    assert!(matches!(
        s.ledger().release_job(d2.job_id, "x", t0()).await,
        Err(LedgerError::JobNotOpen {
            status: JobStatus::Running
        })
    ));
    assert!(matches!(
        s.ledger().release_job(Uuid::now_v7(), "x", t0()).await,
        Err(LedgerError::UnknownJob)
    ));
    let records = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("ledger.job.released".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].detail["released_flop"], 1000.0);
}

crate::store_suite!(
    a_job_that_never_ran_releases_its_reservation,
    measured_usage_replaces_the_reservation_and_finish_releases,
    replays_unknown_jobs_and_bad_counters_change_nothing,
    an_overrun_extends_the_reservation_and_rechecks_thresholds,
    concurrent_deliveries_of_one_event_apply_once,
);

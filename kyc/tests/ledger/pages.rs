//! Keyset pages of the staff lists (jobs, runs, reports, job reviews): walking a list a page at a
//! time with the last item's sort key as the cursor yields exactly the whole list, in the same
//! order, even when many items share a timestamp (the id breaks the tie).

use std::future::Future;

use computegate_kyc::ledger::{AdmissionOptions, JobFilter, ReportFilter, RunFilter, Verdict};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::fixtures::{admitted, customer, job};
use crate::support::{Ctx, t0};

/// Pages of `limit` from `fetch(after)` until a short page, each cursor taken from the last
/// item by `key`.
async fn walk<T, F, Fut>(
    limit: u32,
    mut fetch: F,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
) -> Vec<T>
where
    F: FnMut(Option<(OffsetDateTime, Uuid)>, u32) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = fetch(after, limit).await;
        assert!(page.len() <= limit as usize);
        let done = page.len() < limit as usize;
        after = page.last().map(&key);
        all.extend(page);
        if done {
            return all;
        }
    }
}

async fn staff_lists_page_by_keyset_without_gaps_or_repeats(ctx: Ctx) {
    let s = &ctx.store;
    let c = customer(s).await;
    // Seven jobs, each in its own run and over the report threshold (and together under the
    // group review threshold): four decided at the same
    // instant (ties), three an hour later.
    for i in 0..7 {
        let mut req = job(c, &format!("run-{i}"), 1.1e25);
        if i >= 4 {
            req.now = t0() + Duration::hours(1);
        }
        admitted(s, &req).await;
    }
    // Five held jobs of another customer, held at the same instant.
    let held = customer(s).await;
    for i in 0..5 {
        let options = AdmissionOptions {
            hold_for_review: Some("gap".into()),
            ..AdmissionOptions::default()
        };
        let d = s
            .ledger()
            .admit_with(&job(held, &format!("held-{i}"), 1e18), &options)
            .await
            .unwrap();
        assert!(matches!(d.verdict, Verdict::HeldForReview { .. }), "{d:?}");
    }
    let ledger = s.ledger();

    let jobs_of = |after, limit| async move {
        let filter = JobFilter {
            customer_id: Some(c),
            limit,
            after,
            ..Default::default()
        };
        ledger.list_jobs(&filter).await.unwrap()
    };
    let whole: Vec<Uuid> = jobs_of(None, 0).await.iter().map(|j| j.id).collect();
    assert_eq!(whole.len(), 7);
    for limit in [1, 2, 3, 7] {
        let paged = walk(limit, jobs_of, |j| (j.decided_at, j.id)).await;
        let ids: Vec<Uuid> = paged.iter().map(|j| j.id).collect();
        assert_eq!(ids, whole, "jobs by {limit}");
    }

    let runs_of = |after, limit| async move {
        let filter = RunFilter {
            customer_id: Some(c),
            limit,
            after,
            ..Default::default()
        };
        ledger.list_runs(&filter).await.unwrap()
    };
    let whole: Vec<Uuid> = runs_of(None, 0).await.iter().map(|r| r.id).collect();
    assert_eq!(whole.len(), 7);
    for limit in [1, 2, 3] {
        let paged = walk(limit, runs_of, |r| (r.first_seen_at, r.id)).await;
        assert_eq!(
            paged.iter().map(|r| r.id).collect::<Vec<_>>(),
            whole,
            "runs by {limit}"
        );
    }

    let reports_of = |after, limit| async move {
        let filter = ReportFilter {
            customer_id: Some(c),
            limit,
            after,
            ..Default::default()
        };
        ledger.list_reports(&filter).await.unwrap()
    };
    let whole: Vec<Uuid> = reports_of(None, 0).await.iter().map(|r| r.id).collect();
    assert_eq!(whole.len(), 7);
    for limit in [1, 2, 3] {
        let paged = walk(limit, reports_of, |r| (r.due_at, r.id)).await;
        let ids: Vec<Uuid> = paged.iter().map(|r| r.id).collect();
        assert_eq!(ids, whole, "reports by {limit}");
    }

    let reviews_of =
        |after, limit| async move { ledger.list_job_reviews(None, after, limit).await.unwrap() };
    let whole: Vec<Uuid> = reviews_of(None, 1000).await.iter().map(|r| r.id).collect();
    assert_eq!(whole.len(), 5);
    for limit in [1, 2, 4] {
        let paged = walk(limit, reviews_of, |r| (r.created_at, r.id)).await;
        let ids: Vec<Uuid> = paged.iter().map(|r| r.id).collect();
        assert_eq!(ids, whole, "reviews by {limit}");
    }
}

crate::store_suite!(staff_lists_page_by_keyset_without_gaps_or_repeats);

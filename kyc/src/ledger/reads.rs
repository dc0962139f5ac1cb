//! Staff reads and report filing: runs with their totals, training-run reports with due
//! dates, marking a report filed, and the counts behind the ledger's gauges.

use sqlx::types::Json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::audit;
use super::model::{Crossing, LedgerError, MAX_PAGE};
use super::model::{check_text, require_staff};
use crate::accounts::Actor;
use crate::audit::AuditAction;
use crate::store::{DbTime, LedgerStore, in_transaction, on_pool};

/// Which runs [`LedgerStore::list_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this customer's runs.
    pub customer_id: Option<Uuid>,
    /// Only runs first seen at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Page size (capped at [`MAX_PAGE`]; 0 means [`MAX_PAGE`]).
    pub limit: u32,
    /// Keyset cursor: only runs after this `(first_seen_at, id)` in list order (the last run
    /// of the previous page).
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// A run with its FLOP.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// Run row id.
    pub id: Uuid,
    /// Owner.
    pub customer_id: Uuid,
    /// The customer's run id.
    pub run_id: String,
    /// Declared parent, if any.
    pub parent_run_id: Option<String>,
    /// Root run row id of the lineage.
    pub lineage_root: Uuid,
    /// The root run's run id.
    pub lineage_root_run_id: String,
    /// When the run was first seen.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    /// Jobs submitted under the run (all verdicts).
    pub jobs: i64,
    /// Measured FLOP of the run's jobs.
    pub used_flop: f64,
    /// FLOP still reserved by the run's jobs.
    pub reserved_flop: f64,
    /// Lifetime total of the whole lineage (used + reserved).
    pub lineage_flop: f64,
    /// Accelerator-seconds measured.
    pub accelerator_seconds: f64,
}

/// Report status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Not filed yet.
    Due,
    /// Filed with the authority.
    Filed,
    /// Withdrawn: its job never ran (the upstream refused it and its reservation was
    /// released). A filed report that is withdrawn needs a withdrawal sent to the authority.
    Withdrawn,
}

/// Which reports [`LedgerStore::list_reports`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only due or only filed reports.
    pub status: Option<ReportStatus>,
    /// Only reports due before this time.
    pub due_before: Option<OffsetDateTime>,
    /// Only this customer's reports.
    pub customer_id: Option<Uuid>,
    /// Page size (capped at [`MAX_PAGE`]; 0 means [`MAX_PAGE`]).
    pub limit: u32,
    /// Keyset cursor: only reports after this `(due_at, id)` in list order (the last report
    /// of the previous page).
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// A large-training-run report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TrainingRunReport {
    /// Report id.
    pub id: Uuid,
    /// The job whose admission or usage crossed the thresholds.
    pub job_id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Organization, if any.
    pub organization_id: Option<Uuid>,
    /// Run id.
    pub run_id: String,
    /// Lineage root run row id.
    pub lineage_root: Uuid,
    /// Thresholds crossed.
    #[schema(value_type = Vec<Object>)]
    pub crossings: Vec<Crossing>,
    /// Identity snapshot supplied by the caller (absent until attached for usage-time reports).
    pub identity_snapshot: Option<serde_json::Value>,
    /// The job's estimate.
    pub estimate_flop: f64,
    /// Hardware estimate.
    pub hardware_flop: Option<f64>,
    /// Declared 6·N·D estimate.
    pub declared_flop: Option<f64>,
    /// Estimate basis.
    pub basis: String,
    /// Accelerator table version.
    pub table_version: String,
    /// Accelerators.
    pub accelerators: i64,
    /// Accelerator type.
    pub accelerator_type: Option<String>,
    /// Lineage total when the report was created.
    pub cumulative_flop: f64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it is due.
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// When it was filed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub filed_at: Option<OffsetDateTime>,
    /// Who filed it.
    pub filed_by: Option<String>,
    /// The authority's reference.
    pub filing_reference: Option<String>,
    /// When it was withdrawn (its job never ran).
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    /// Why it was withdrawn.
    pub withdrawn_reason: Option<String>,
}

/// Unfiled reports, for the "reports due" gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportsDue {
    /// Not filed.
    pub open: u64,
    /// Not filed and past the due date.
    pub overdue: u64,
    /// Not filed, not yet past the due date, and due before the end of the window asked for.
    pub due_soon: u64,
}

#[derive(sqlx::FromRow)]
struct RunSummaryRow {
    id: Uuid,
    customer_id: Uuid,
    run_id: String,
    parent_run_id: Option<String>,
    lineage_root: Uuid,
    lineage_root_run_id: String,
    first_seen_at: OffsetDateTime,
    jobs: i64,
    used_flop: f64,
    reserved_flop: f64,
    lineage_flop: f64,
    accelerator_seconds: f64,
}

#[derive(sqlx::FromRow)]
pub(super) struct ReportRow {
    id: Uuid,
    job_id: Uuid,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    run_id: String,
    lineage_root: Uuid,
    thresholds: Json<Vec<Crossing>>,
    identity_snapshot: Option<Json<serde_json::Value>>,
    estimate_flop: f64,
    hardware_flop: Option<f64>,
    declared_flop: Option<f64>,
    basis: String,
    table_version: String,
    accelerators: i64,
    accelerator_type: Option<String>,
    cumulative_flop: f64,
    created_at: OffsetDateTime,
    due_at: OffsetDateTime,
    filed_at: Option<OffsetDateTime>,
    filed_by: Option<String>,
    filing_reference: Option<String>,
    withdrawn_at: Option<OffsetDateTime>,
    withdrawn_reason: Option<String>,
}

/// The report columns in [`ReportRow`] order.
macro_rules! report_columns {
    () => {
        "id, job_id, customer_id, organization_id, run_id, lineage_root, thresholds, \
         identity_snapshot, estimate_flop, hardware_flop, declared_flop, basis, table_version, \
         accelerators, accelerator_type, cumulative_flop, created_at, due_at, filed_at, \
         filed_by, filing_reference, withdrawn_at, withdrawn_reason"
    };
}
pub(super) use report_columns;

const LIST_RUNS: &str = "SELECT r.id, r.customer_id, r.run_id, r.parent_run_id, r.lineage_root, \
     root.run_id AS lineage_root_run_id, r.first_seen_at, \
     (SELECT COUNT(*) FROM ledger_jobs j WHERE j.run = r.id) AS jobs, \
     (SELECT COALESCE(SUM(j.used_flop), 0.0) FROM ledger_jobs j WHERE j.run = r.id) AS used_flop, \
     (SELECT COALESCE(SUM(j.reserved_flop), 0.0) FROM ledger_jobs j WHERE j.run = r.id) \
        AS reserved_flop, \
     COALESCE((SELECT b.used_flop + b.reserved_flop FROM ledger_budgets b \
        WHERE b.scope = 'lineage' AND b.scope_id = r.lineage_root), 0.0) AS lineage_flop, \
     (SELECT COALESCE(SUM(j.accelerator_seconds), 0.0) FROM ledger_jobs j WHERE j.run = r.id) \
        AS accelerator_seconds \
     FROM ledger_runs r JOIN ledger_runs root ON root.id = r.lineage_root \
     WHERE ($1 IS NULL OR r.customer_id = $1) AND ($2 IS NULL OR r.first_seen_at >= $2) \
     AND ($4 IS NULL OR r.first_seen_at < $4 OR (r.first_seen_at = $4 AND r.id < $5)) \
     ORDER BY r.first_seen_at DESC, r.id DESC LIMIT $3";

// === impl ReportStatus ===

// `LedgerStore::list_reports` matches these names against `filed_at` and `withdrawn_at` in its
// query.
crate::names::stored_enum!(ReportStatus {
    Due => "due",
    Filed => "filed",
    Withdrawn => "withdrawn",
});

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Runs, newest first, with their own and their lineage's FLOP.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, LedgerError> {
        let rows: Vec<RunSummaryRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(LIST_RUNS)
                .bind(filter.customer_id)
                .bind(filter.since.map(DbTime::new))
                .bind(page(filter.limit))
                .bind(filter.after.map(|(at, _)| DbTime::new(at)))
                .bind(filter.after.map(|(_, id)| id))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(RunSummaryRow::into_summary).collect())
    }

    /// Training-run reports, soonest due first.
    pub async fn list_reports(
        &self,
        filter: &ReportFilter,
    ) -> Result<Vec<TrainingRunReport>, LedgerError> {
        const SQL: &str = concat!(
            "SELECT ",
            report_columns!(),
            " FROM ledger_reports \
             WHERE ($1 IS NULL \
                    OR ($1 = 'due' AND filed_at IS NULL AND withdrawn_at IS NULL) \
                    OR ($1 = 'filed' AND filed_at IS NOT NULL) \
                    OR ($1 = 'withdrawn' AND withdrawn_at IS NOT NULL)) \
               AND ($2 IS NULL OR due_at < $2) AND ($3 IS NULL OR customer_id = $3) \
               AND ($5 IS NULL OR due_at > $5 OR (due_at = $5 AND id > $6)) \
             ORDER BY due_at, id LIMIT $4"
        );
        let status = filter.status.map(ReportStatus::as_str);
        let rows: Vec<ReportRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(status)
                .bind(filter.due_before.map(DbTime::new))
                .bind(filter.customer_id)
                .bind(page(filter.limit))
                .bind(filter.after.map(|(at, _)| DbTime::new(at)))
                .bind(filter.after.map(|(_, id)| id))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(ReportRow::into_report).collect())
    }

    /// The customer a held-job review is about, if the review exists (for staff conflict
    /// checks before a decision).
    pub async fn job_review_customer(&self, review_id: Uuid) -> Result<Option<Uuid>, LedgerError> {
        let customer: Option<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar("SELECT customer_id FROM ledger_reviews WHERE id = $1")
                .bind(review_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(customer)
    }

    /// The customer a training-run report is about, if the report exists.
    pub async fn report_customer(&self, report_id: Uuid) -> Result<Option<Uuid>, LedgerError> {
        let customer: Option<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar("SELECT customer_id FROM ledger_reports WHERE id = $1")
                .bind(report_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(customer)
    }

    /// Staff: records that a report was filed with the authority, with its reference.
    pub async fn mark_report_filed(
        &self,
        report_id: Uuid,
        actor: &Actor,
        reference: &str,
        now: OffsetDateTime,
    ) -> Result<TrainingRunReport, LedgerError> {
        require_staff(actor)?;
        check_text(reference, "reference")?;
        const SQL: &str = concat!(
            "UPDATE ledger_reports SET filed_at = $1, filed_by = $2, filing_reference = $3 \
             WHERE id = $4 AND filed_at IS NULL RETURNING ",
            report_columns!()
        );
        let row: ReportRow = in_transaction!(self.store, |tx| {
            let row: Option<ReportRow> = sqlx::query_as(SQL)
                .bind(DbTime::new(now))
                .bind(&actor.name)
                .bind(reference)
                .bind(report_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reports WHERE id = $1")
                        .bind(report_id)
                        .fetch_one(&mut *tx)
                        .await?;
                return Err(if n > 0 {
                    LedgerError::ReportAlreadyFiled
                } else {
                    LedgerError::ReportNotFound
                });
            };
            let detail = serde_json::json!({ "reference": reference, "job_id": row.job_id });
            let subject = format!("report:{report_id}");
            let entry = audit::staff_action(now, actor, AuditAction::ReportFiled, subject, detail);
            audit::record(&mut tx, &[entry]).await?;
            row
        });
        Ok(row.into_report())
    }

    /// Attaches the identity snapshot to a report created without one (reports created by
    /// usage events). Refuses to replace an existing snapshot ([`LedgerError::Invalid`]).
    pub async fn attach_report_identity(
        &self,
        report_id: Uuid,
        identity_snapshot: &serde_json::Value,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), LedgerError> {
        in_transaction!(self.store, |tx| {
            let done = sqlx::query(
                "UPDATE ledger_reports SET identity_snapshot = $1 \
                 WHERE id = $2 AND identity_snapshot IS NULL",
            )
            .bind(Json(identity_snapshot))
            .bind(report_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reports WHERE id = $1")
                        .bind(report_id)
                        .fetch_one(&mut *tx)
                        .await?;
                return Err(if n > 0 {
                    LedgerError::Invalid("identity_snapshot already attached")
                } else {
                    LedgerError::ReportNotFound
                });
            }
            let subject = format!("report:{report_id}");
            let detail = serde_json::json!({});
            let entry = audit::staff_action(
                now,
                actor,
                AuditAction::ReportIdentityAttached,
                subject,
                detail,
            );
            audit::record(&mut tx, &[entry]).await?;
        });
        Ok(())
    }

    /// Jobs holding a reservation or running (the "open reservations" gauge).
    pub async fn open_reservations_count(&self) -> Result<u64, LedgerError> {
        let n: i64 = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM ledger_jobs WHERE status IN ('reserved', 'running')",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Unfiled reports, how many of them are past due at `now`, and how many fall due within
    /// `soon` of `now`.
    pub async fn reports_due_count(
        &self,
        now: OffsetDateTime,
        soon: Duration,
    ) -> Result<ReportsDue, LedgerError> {
        let (open, overdue, due_soon): (i64, i64, i64) = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN due_at < $1 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN due_at >= $1 AND due_at < $2 THEN 1 ELSE 0 END), 0) \
                 FROM ledger_reports WHERE filed_at IS NULL AND withdrawn_at IS NULL",
            )
            .bind(DbTime::new(now))
            .bind(DbTime::new(now + soon))
            .fetch_one(pool)
            .await?
        });
        Ok(ReportsDue {
            open: u64::try_from(open).unwrap_or(0),
            overdue: u64::try_from(overdue).unwrap_or(0),
            due_soon: u64::try_from(due_soon).unwrap_or(0),
        })
    }
}

/// Time from creation to the due date of a report for `crossings`: the shortest of their
/// rules' periods.
pub(super) fn due_after(crossings: &[Crossing]) -> Duration {
    let days = crossings
        .iter()
        .map(|c| c.report_due_days)
        .min()
        .unwrap_or(0);
    Duration::days(i64::from(days))
}

/// Page size for SQL: 0 or anything above [`MAX_PAGE`] becomes [`MAX_PAGE`].
fn page(limit: u32) -> i64 {
    i64::from(if limit == 0 {
        MAX_PAGE
    } else {
        limit.min(MAX_PAGE)
    })
}

// === impl RunSummaryRow, ReportRow ===

impl RunSummaryRow {
    fn into_summary(self) -> RunSummary {
        RunSummary {
            id: self.id,
            customer_id: self.customer_id,
            run_id: self.run_id,
            parent_run_id: self.parent_run_id,
            lineage_root: self.lineage_root,
            lineage_root_run_id: self.lineage_root_run_id,
            first_seen_at: self.first_seen_at,
            jobs: self.jobs,
            used_flop: self.used_flop,
            reserved_flop: self.reserved_flop,
            lineage_flop: self.lineage_flop,
            accelerator_seconds: self.accelerator_seconds,
        }
    }
}

impl ReportRow {
    pub(super) fn into_report(self) -> TrainingRunReport {
        TrainingRunReport {
            id: self.id,
            job_id: self.job_id,
            customer_id: self.customer_id,
            organization_id: self.organization_id,
            run_id: self.run_id,
            lineage_root: self.lineage_root,
            crossings: self.thresholds.0,
            identity_snapshot: self.identity_snapshot.map(|j| j.0),
            estimate_flop: self.estimate_flop,
            hardware_flop: self.hardware_flop,
            declared_flop: self.declared_flop,
            basis: self.basis,
            table_version: self.table_version,
            accelerators: self.accelerators,
            accelerator_type: self.accelerator_type,
            cumulative_flop: self.cumulative_flop,
            created_at: self.created_at,
            due_at: self.due_at,
            filed_at: self.filed_at,
            filed_by: self.filed_by,
            filing_reference: self.filing_reference,
            withdrawn_at: self.withdrawn_at,
            withdrawn_reason: self.withdrawn_reason,
        }
    }
}

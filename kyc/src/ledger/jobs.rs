//! Job reads for staff and for the customer's own usage view: status (with why a job was closed
//! without a final usage event), estimate, measured and charged FLOP, lease end.

use time::OffsetDateTime;
use uuid::Uuid;

use super::close::CloseReason;
use super::model::{JobStatus, LedgerError, MAX_PAGE};
use crate::accounts::parse_column;
use crate::store::{DbTime, LedgerStore, on_pool};

/// Which jobs [`LedgerStore::list_jobs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this customer's jobs.
    pub customer_id: Option<Uuid>,
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Page size (capped at [`MAX_PAGE`]; 0 means [`MAX_PAGE`]).
    pub limit: u32,
    /// Keyset cursor: only jobs after this `(decided_at, id)` in list order (the last job of
    /// the previous page).
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// A job as staff and its customer see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Ledger job id (`X-Computegate-Job`).
    pub id: Uuid,
    /// Customer.
    pub customer_id: Uuid,
    /// Run id.
    pub run_id: String,
    /// Where it stands.
    #[schema(value_type = String)]
    pub status: JobStatus,
    /// The admission decision (`admitted`, `admitted_after_review`, `held_for_review`,
    /// `denied_…`).
    pub decision: String,
    /// FLOP estimated (and reserved) at admission.
    pub estimate_flop: f64,
    /// Measured FLOP.
    pub used_flop: f64,
    /// Reserved, or for a closed job charged beyond the measured FLOP.
    pub reserved_flop: f64,
    /// What the job counts for: `used_flop + reserved_flop`.
    pub charged_flop: f64,
    /// Measured accelerator-seconds.
    pub accelerator_seconds: f64,
    /// Accelerators requested.
    pub accelerators: i64,
    /// Accelerator type.
    pub accelerator_type: Option<String>,
    /// Decision time.
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    /// First usage event.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// Finished, released or closed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// When the lease ends (ended) for an admitted job.
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Why it was closed without a final usage event (`lease_expired`, `customer`, `staff`),
    /// kept after a late `finished` event reconciles it.
    #[schema(value_type = Option<String>)]
    pub closed_reason: Option<CloseReason>,
    /// Who closed it (`system:lease`, `customer:<id>`, `staff:<id>`).
    pub closed_by: Option<String>,
    /// Staff's reason.
    pub close_note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRecordRow {
    id: Uuid,
    customer_id: Uuid,
    run_id: String,
    status: String,
    decision: String,
    estimate_flop: f64,
    used_flop: f64,
    reserved_flop: f64,
    accelerator_seconds: f64,
    accelerators: i64,
    accelerator_type: Option<String>,
    decided_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    lease_expires_at: Option<OffsetDateTime>,
    closed_reason: Option<String>,
    closed_by: Option<String>,
    close_note: Option<String>,
}

/// The columns of [`JobRecordRow`].
macro_rules! job_record_sql {
    () => {
        "SELECT j.id, j.customer_id, r.run_id, j.status, j.decision, j.estimate_flop, \
         j.used_flop, j.reserved_flop, j.accelerator_seconds, j.accelerators, j.accelerator_type, \
         j.decided_at, j.started_at, j.finished_at, j.lease_expires_at, j.closed_reason, \
         j.closed_by, j.close_note FROM ledger_jobs j JOIN ledger_runs r ON r.id = j.run "
    };
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Jobs, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, LedgerError> {
        const SQL: &str = concat!(
            job_record_sql!(),
            "WHERE ($1 IS NULL OR j.customer_id = $1) AND ($2 IS NULL OR j.status = $2) \
             AND ($4 IS NULL OR j.decided_at < $4 OR (j.decided_at = $4 AND j.id < $5)) \
             ORDER BY j.decided_at DESC, j.id DESC LIMIT $3"
        );
        let limit = i64::from(match filter.limit {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        });
        let rows: Vec<JobRecordRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(filter.customer_id)
                .bind(filter.status.map(JobStatus::as_str))
                .bind(limit)
                .bind(filter.after.map(|(at, _)| DbTime::new(at)))
                .bind(filter.after.map(|(_, id)| id))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(JobRecordRow::into_record)
            .collect::<Result<_, _>>()?)
    }

    /// One job.
    pub async fn job_record(&self, id: Uuid) -> Result<Option<JobRecord>, LedgerError> {
        const SQL: &str = concat!(job_record_sql!(), "WHERE j.id = $1");
        let row: Option<JobRecordRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(JobRecordRow::into_record).transpose()?)
    }
}

// === impl JobRecordRow ===

impl JobRecordRow {
    fn into_record(self) -> Result<JobRecord, crate::StoreError> {
        Ok(JobRecord {
            id: self.id,
            customer_id: self.customer_id,
            run_id: self.run_id,
            status: parse_column(&self.status, "ledger_jobs.status")?,
            decision: self.decision,
            estimate_flop: self.estimate_flop,
            used_flop: self.used_flop,
            reserved_flop: self.reserved_flop,
            charged_flop: self.used_flop + self.reserved_flop,
            accelerator_seconds: self.accelerator_seconds,
            accelerators: self.accelerators,
            accelerator_type: self.accelerator_type,
            decided_at: self.decided_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            lease_expires_at: self.lease_expires_at,
            closed_reason: self
                .closed_reason
                .as_deref()
                .map(|r| parse_column(r, "ledger_jobs.closed_reason"))
                .transpose()?,
            closed_by: self.closed_by,
            close_note: self.close_note,
        })
    }
}

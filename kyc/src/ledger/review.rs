//! Review holds: `LedgerStore::resolve_job_review` (staff approve or deny a held job; an approval
//! is consumed by the next admission of the same job) and `LedgerStore::list_job_reviews`.

use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit;
use super::model::{Crossing, LedgerError};
use super::model::{check_text, require_staff};
use crate::accounts::{Actor, parse_column};
use crate::audit::AuditAction;
use crate::names::stored_enum;
use crate::store::{DbTime, LedgerStore, in_transaction, on_pool};

/// A staff decision on a held job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewResolution {
    /// Let the same job be resubmitted and admitted.
    Approve,
    /// Keep it refused.
    Deny,
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for staff.
    Pending,
    /// Approved; the next matching submission is admitted.
    Approved,
    /// Denied.
    Denied,
}

/// A review hold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct JobReview {
    /// Review id.
    pub id: Uuid,
    /// The held job.
    pub job_id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// Its run id.
    pub run_id: String,
    /// Its estimate.
    pub estimate_flop: f64,
    /// The `review` crossings that held it.
    #[schema(value_type = Vec<Object>)]
    pub crossings: Vec<Crossing>,
    /// Why the caller asked for the hold, when it did (see
    /// [`AdmissionOptions::hold_for_review`](super::model::AdmissionOptions::hold_for_review)).
    pub hold_reason: Option<String>,
    /// Status.
    #[schema(value_type = String)]
    pub status: ReviewStatus,
    /// When the job was held.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When staff decided.
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// Who decided (`staff:<uuid>`).
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The job that used the approval.
    pub consumed_by: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ReviewRow {
    id: Uuid,
    job_id: Uuid,
    customer_id: Uuid,
    run_id: String,
    estimate_flop: f64,
    thresholds: Json<Vec<Crossing>>,
    hold_reason: Option<String>,
    status: String,
    created_at: OffsetDateTime,
    decided_at: Option<OffsetDateTime>,
    decided_by: Option<String>,
    reason: Option<String>,
    consumed_by: Option<Uuid>,
}

/// The review columns in [`ReviewRow`] order.
macro_rules! review_columns {
    () => {
        "id, job_id, customer_id, run_id, estimate_flop, thresholds, hold_reason, status, \
         created_at, decided_at, decided_by, reason, consumed_by"
    };
}

// === impl ReviewStatus ===

stored_enum!(ReviewStatus {
    Pending => "pending",
    Approved => "approved",
    Denied => "denied",
});

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Approves or denies a held job. An approval lets the next submission of the same customer,
    /// run id and estimate (within [`super::model::APPROVAL_TOLERANCE`]) be admitted once, within
    /// [`super::model::APPROVAL_VALIDITY`] of the decision. Only staff or the system may resolve
    /// ([`LedgerError::NotStaff`]).
    pub async fn resolve_job_review(
        &self,
        review_id: Uuid,
        resolution: ReviewResolution,
        actor: &Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<JobReview, LedgerError> {
        require_staff(actor)?;
        check_text(reason, "reason")?;
        let status = match resolution {
            ReviewResolution::Approve => ReviewStatus::Approved,
            ReviewResolution::Deny => ReviewStatus::Denied,
        };
        const UPDATE: &str = concat!(
            "UPDATE ledger_reviews SET status = $1, decided_at = $2, decided_by = $3, reason = $4 \
             WHERE id = $5 AND status = 'pending' RETURNING ",
            review_columns!()
        );
        let row: ReviewRow = in_transaction!(self.store, |tx| {
            let row: Option<ReviewRow> = sqlx::query_as(UPDATE)
                .bind(status.as_str())
                .bind(DbTime::new(now))
                .bind(&actor.name)
                .bind(reason)
                .bind(review_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                let exists: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM ledger_reviews WHERE id = $1")
                        .bind(review_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match exists {
                    Some(_) => LedgerError::ReviewAlreadyResolved,
                    None => LedgerError::ReviewNotFound,
                });
            };
            let action = match resolution {
                ReviewResolution::Approve => AuditAction::LedgerReviewApproved,
                ReviewResolution::Deny => AuditAction::LedgerReviewDenied,
            };
            let detail = serde_json::json!({
                "job_id": row.job_id,
                "customer_id": row.customer_id,
                "run_id": row.run_id,
                "estimate_flop": row.estimate_flop,
                "reason": reason,
            });
            let entry =
                audit::staff_action(now, actor, action, format!("review:{review_id}"), detail);
            audit::record(&mut tx, &[entry]).await?;
            row
        });
        Ok(row.into_review()?)
    }

    /// Review holds, newest first: all, or only those with `status`; at most
    /// [`super::model::MAX_PAGE`]. `after` is a keyset cursor: only reviews after this
    /// `(created_at, id)` in list order (the last review of the previous page).
    pub async fn list_job_reviews(
        &self,
        status: Option<ReviewStatus>,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<JobReview>, LedgerError> {
        const SQL: &str = concat!(
            "SELECT ",
            review_columns!(),
            " FROM ledger_reviews WHERE ($1 IS NULL OR status = $1) \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let limit = i64::from(limit.min(super::model::MAX_PAGE));
        let rows: Vec<ReviewRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(status.map(ReviewStatus::as_str))
                .bind(limit)
                .bind(after.map(|(at, _)| DbTime::new(at)))
                .bind(after.map(|(_, id)| id))
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(ReviewRow::into_review)
            .collect::<Result<_, _>>()?)
    }
}

// === impl ReviewRow ===

impl ReviewRow {
    fn into_review(self) -> Result<JobReview, crate::StoreError> {
        Ok(JobReview {
            id: self.id,
            job_id: self.job_id,
            customer_id: self.customer_id,
            run_id: self.run_id,
            estimate_flop: self.estimate_flop,
            crossings: self.thresholds.0,
            hold_reason: self.hold_reason,
            status: parse_column(&self.status, "ledger_reviews.status")?,
            created_at: self.created_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            reason: self.reason,
            consumed_by: self.consumed_by,
        })
    }
}

//! Which customer owns which upstream job: the id an upstream gave an admitted job, bound to the
//! ledger's job row (and so to its customer) so the gateway can keep other customers off the
//! job's paths.
//!
//! Ids are scoped by upstream pool name. An upstream may reuse an id (a Kubernetes Job name after
//! the Job was deleted): the newest binding wins and the older job loses the id.

use uuid::Uuid;

use super::model::LedgerError;
use crate::store::{LedgerStore, in_transaction, on_pool};

/// Longest upstream pool name or upstream job id stored.
pub const MAX_UPSTREAM_ID_LEN: usize = 256;

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Binds `upstream_job_id` on `upstream` to the ledger's job `job_id`, taking the id from
    /// any job it was bound to before. [`LedgerError::UnknownJob`] when there is no such job.
    pub async fn bind_upstream_job(
        &self,
        job_id: Uuid,
        upstream: &str,
        upstream_job_id: &str,
    ) -> Result<(), LedgerError> {
        check_id(upstream, "upstream")?;
        check_id(upstream_job_id, "upstream_job_id")?;
        let bound = in_transaction!(self.store, |tx| {
            sqlx::query(
                "UPDATE ledger_jobs SET upstream = NULL, upstream_job_id = NULL \
                 WHERE upstream = $1 AND upstream_job_id = $2 AND id <> $3",
            )
            .bind(upstream)
            .bind(upstream_job_id)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE ledger_jobs SET upstream = $1, upstream_job_id = $2 WHERE id = $3")
                .bind(upstream)
                .bind(upstream_job_id)
                .bind(job_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if bound == 0 {
            return Err(LedgerError::UnknownJob);
        }
        Ok(())
    }

    /// Who owns the job `upstream_job_id` on `upstream`, if one is bound: its customer, or for a
    /// reseller's end customer (metered as the job's customer, but submitted by the reseller's
    /// accounts, never by the end customer, which has no credentials) the reseller
    /// organization.
    pub async fn upstream_job_owner(
        &self,
        upstream: &str,
        upstream_job_id: &str,
    ) -> Result<Option<Uuid>, LedgerError> {
        let owner: Option<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
                "SELECT COALESCE(e.reseller_id, j.customer_id) FROM ledger_jobs j \
                 LEFT JOIN end_customers e ON e.id = j.customer_id \
                 WHERE j.upstream = $1 AND j.upstream_job_id = $2",
            )
            .bind(upstream)
            .bind(upstream_job_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(owner)
    }
}

/// 1 to [`MAX_UPSTREAM_ID_LEN`] bytes without control characters.
fn check_id(value: &str, field: &'static str) -> Result<(), LedgerError> {
    if value.is_empty() || value.len() > MAX_UPSTREAM_ID_LEN || value.chars().any(char::is_control)
    {
        return Err(LedgerError::Invalid(field));
    }
    Ok(())
}

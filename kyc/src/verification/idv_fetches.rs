//! The durable queue of provider resources to fetch before an IDV outcome is known (Onfido's
//! webhooks only announce a resource). A verified notice is stored here — idempotently by
//! `(provider, event id)` — before the webhook is acknowledged; a background worker claims due
//! rows, fetches, and records the outcome with [`VerificationStore::record_idv_event`] (itself
//! idempotent), then marks the row done. A row that fails is retried later with backoff; one that
//! can never succeed, or has used up its attempts, is kept as `failed` with its last error for
//! staff.
//!
//! Several replicas may run the worker: a claim moves `next_attempt_at` forward by a lease,
//! conditional on the value it read, so one row is worked by one replica at a time; a replica
//! that dies mid-fetch leaves the row to be claimed again when the lease ends.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::onfido::{OnfidoNotice, OnfidoResource};
use super::{IdvProvider, IdvRecorded, VerificationError};
use crate::store::{DbTime, StoreError, VerificationStore, on_pool};

/// Longest error text kept on a row.
const MAX_ERROR: usize = 300;

/// A claimed row: one resource to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdvFetch {
    /// The provider.
    pub provider: IdvProvider,
    /// The idempotency key of the notice that queued it.
    pub event_id: String,
    /// The resource to fetch.
    pub resource: OnfidoResource,
    /// Its id.
    pub resource_id: Uuid,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// Counts of the queue by state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdvFetchCounts {
    /// Waiting for a (first or next) attempt.
    pub pending: u64,
    /// Given up.
    pub failed: u64,
}

#[derive(sqlx::FromRow)]
struct FetchRow {
    provider: String,
    event_id: String,
    resource: String,
    resource_id: Uuid,
    attempts: i64,
    next_attempt_at: OffsetDateTime,
}

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// Queues `notice` for fetching, due at once. A notice queued before (a replayed delivery)
    /// is [`IdvRecorded::Duplicate`] and changes nothing.
    pub async fn queue_idv_fetch(
        &self,
        provider: IdvProvider,
        notice: &OnfidoNotice,
        now: OffsetDateTime,
    ) -> Result<IdvRecorded, VerificationError> {
        let result = on_pool!(self.store, |pool| {
            sqlx::query(
            "INSERT INTO idv_fetches (provider, event_id, resource, resource_id, state, attempts, \
             next_attempt_at, received_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5) \
             ON CONFLICT (provider, event_id) DO NOTHING"
        )
        .bind(provider.as_str())
        .bind(&notice.event_id)
        .bind(notice.resource.as_str())
        .bind(notice.id)
        .bind(DbTime::new(now))
        .execute(pool)
        .await
        .map_err(StoreError::from)?.rows_affected()
        });
        Ok(if result == 0 {
            IdvRecorded::Duplicate
        } else {
            IdvRecorded::Recorded
        })
    }

    /// Claims up to `limit` due rows for `lease`: until it ends no other worker takes them.
    pub async fn claim_idv_fetches(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<IdvFetch>, VerificationError> {
        let due: Vec<FetchRow> = on_pool!(self.store, |pool| sqlx::query_as(
            "SELECT provider, event_id, resource, resource_id, attempts, next_attempt_at \
             FROM idv_fetches WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2"
        )
        .bind(DbTime::new(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(StoreError::from)?);
        let mut claimed = Vec::with_capacity(due.len());
        for row in due {
            let taken = on_pool!(self.store, |pool| {
                sqlx::query(
                "UPDATE idv_fetches SET next_attempt_at = $1 \
                 WHERE provider = $2 AND event_id = $3 AND state = 'pending' AND next_attempt_at = $4"
            )
            .bind(DbTime::new(now + lease))
            .bind(&row.provider)
            .bind(&row.event_id)
            .bind(DbTime::new(row.next_attempt_at))
            .execute(pool)
            .await
            .map_err(StoreError::from)?.rows_affected()
            });
            if taken == 1 {
                claimed.push(row.into_fetch()?);
            }
        }
        Ok(claimed)
    }

    /// Records a failed attempt: retried at `next_at`, or — `next_at` `None` — given up.
    pub async fn idv_fetch_failed(
        &self,
        fetch: &IdvFetch,
        error: &str,
        next_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let error: String = error.chars().take(MAX_ERROR).collect();
        let (state, next) = match next_at {
            Some(t) => ("pending", t),
            None => ("failed", now),
        };
        on_pool!(self.store, |pool| {
            sqlx::query(
            "UPDATE idv_fetches SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             last_error = $3, updated_at = $4 WHERE provider = $5 AND event_id = $6 AND state = 'pending'"
        )
        .bind(state)
        .bind(DbTime::new(next))
        .bind(error)
        .bind(DbTime::new(now))
        .bind(fetch.provider.as_str())
        .bind(&fetch.event_id)
        .execute(pool)
        .await
        .map_err(StoreError::from)?.rows_affected()
        });
        Ok(())
    }

    /// Marks a row done: its outcome is recorded (or there was none to record). Kept, so a
    /// later replay of the same notice stays a duplicate.
    pub async fn idv_fetch_done(
        &self,
        fetch: &IdvFetch,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        on_pool!(self.store, |pool| sqlx::query(
            "UPDATE idv_fetches SET state = 'done', attempts = attempts + 1, last_error = NULL, \
             updated_at = $1 WHERE provider = $2 AND event_id = $3"
        )
        .bind(DbTime::new(now))
        .bind(fetch.provider.as_str())
        .bind(&fetch.event_id)
        .execute(pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected());
        Ok(())
    }

    /// Rows waiting and rows given up.
    pub async fn idv_fetch_counts(&self) -> Result<IdvFetchCounts, VerificationError> {
        let rows: Vec<(String, i64)> = on_pool!(self.store, |pool| sqlx::query_as(
            "SELECT state, COUNT(*) FROM idv_fetches WHERE state <> 'done' GROUP BY state"
        )
        .fetch_all(pool)
        .await
        .map_err(StoreError::from)?);
        let mut counts = IdvFetchCounts::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => counts.pending = n,
                "failed" => counts.failed = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

// === impl FetchRow ===

impl FetchRow {
    fn into_fetch(self) -> Result<IdvFetch, VerificationError> {
        let corrupt =
            |column: &'static str| VerificationError::Store(StoreError::CorruptRow { column });
        Ok(IdvFetch {
            provider: self
                .provider
                .parse()
                .map_err(|_| corrupt("idv_fetches.provider"))?,
            event_id: self.event_id,
            resource: self
                .resource
                .parse()
                .map_err(|_| corrupt("idv_fetches.resource"))?,
            resource_id: self.resource_id,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
        })
    }
}

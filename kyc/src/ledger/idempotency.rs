//! Idempotency keys of job submissions, shared by every replica: a client that retries a
//! submission with the same key gets the first attempt's answer instead of a second
//! reservation.
//!
//! A key is scoped to (customer, route). It is claimed inside the admission transaction of the
//! job it answers for ([`claim`], called by the admission body), so its row exists exactly when
//! an admitted job holds it: two concurrent attempts cannot both reserve (the second finds the
//! claim under the same budget locks and fails with [`LedgerError::IdempotencyKeyTaken`],
//! recording nothing); a held or denied attempt gives the key back in the same transaction; a
//! released job (the upstream refused it) gives it back in the release transaction. Once the
//! upstream answered, the gateway stores that answer
//! ([`LedgerStore::record_idempotent_answer`]) and replays it for retries. Keys past their
//! expiry are ignored, replaced by a new claim, and purged by the lease sweep
//! ([`LedgerStore::purge_idempotency_keys`]).

use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{AdmissionRequest, IdempotencyClaim, LedgerError, MAX_IDEMPOTENCY_KEY_LEN};
use super::sql::{KeyClaim, LedgerTx};
use crate::store::{DbTime, LedgerStore, in_transaction, on_pool};

/// What the store holds for a key: the request it was first used for, and that request's
/// answer once there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// SHA-256 (hex) of the first request's method, path and body.
    pub fingerprint: String,
    /// The admitted job holding the key.
    pub job_id: Uuid,
    /// The first request's answer; `None` while it is in flight.
    pub answer: Option<IdempotentAnswer>,
}

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// HTTP status.
    pub status: u16,
    /// The headers kept (a safe subset chosen by the gateway), in order.
    pub headers: Vec<(String, String)>,
    /// The body; `None` when it was too large to keep.
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    fingerprint: String,
    job_id: Uuid,
    status: Option<i32>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
    body_omitted: bool,
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// The live (unexpired at `now`) key `key` of `customer` on `route`, if any.
    pub async fn idempotency_key(
        &self,
        customer: Uuid,
        route: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<IdempotentRequest>, LedgerError> {
        let row: Option<KeyRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT fingerprint, job_id, status, headers, body, body_omitted \
                 FROM idempotency_keys \
                 WHERE customer_id = $1 AND route = $2 AND idem_key = $3 AND expires_at > $4",
            )
            .bind(customer)
            .bind(route)
            .bind(key)
            .bind(DbTime::new(now))
            .fetch_optional(pool)
            .await?
        });
        row.map(KeyRow::into_request).transpose()
    }

    /// Stores the answer of the request whose admitted job is `job_id`, for its key's retries.
    /// Whether a key in flight took it (`false`: the job holds no key, or it was answered).
    pub async fn record_idempotent_answer(
        &self,
        job_id: Uuid,
        answer: &IdempotentAnswer,
    ) -> Result<bool, LedgerError> {
        let headers =
            serde_json::to_string(&answer.headers).map_err(|_| LedgerError::Invalid("headers"))?;
        let recorded = in_transaction!(self.store, |tx| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $2, headers = $3, body = $4, \
                 body_omitted = $5 WHERE job_id = $1 AND status IS NULL",
            )
            .bind(job_id)
            .bind(i32::from(answer.status))
            .bind(&headers)
            .bind(answer.body.as_deref())
            .bind(answer.body.is_none())
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(recorded > 0)
    }

    /// Deletes the keys that expired by `now`; how many. Cheap when none is due: one indexed
    /// read, and a write transaction only when there is something to delete.
    pub async fn purge_idempotency_keys(&self, now: OffsetDateTime) -> Result<u64, LedgerError> {
        let now = DbTime::new(now);
        let due: bool = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE expires_at <= $1)",
            )
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        if !due {
            return Ok(0);
        }
        let purged = in_transaction!(self.store, |tx| {
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}

// === impl KeyRow ===

impl KeyRow {
    fn into_request(self) -> Result<IdempotentRequest, LedgerError> {
        let answer = match self.status {
            None => None,
            Some(status) => Some(IdempotentAnswer {
                status: u16::try_from(status)
                    .map_err(|_| LedgerError::Invalid("idempotency_keys.status"))?,
                headers: serde_json::from_str(self.headers.as_deref().unwrap_or("[]"))
                    .map_err(|_| LedgerError::Invalid("idempotency_keys.headers"))?,
                body: if self.body_omitted {
                    None
                } else {
                    Some(self.body.unwrap_or_default())
                },
            }),
        };
        Ok(IdempotentRequest {
            fingerprint: self.fingerprint,
            job_id: self.job_id,
            answer,
        })
    }
}

/// Claims `claim` for the admission of `job_id` (inside its transaction, after its budget
/// locks); [`LedgerError::IdempotencyKeyTaken`] when a live claim holds the key.
pub(super) async fn claim<T: LedgerTx>(
    tx: &mut T,
    req: &AdmissionRequest,
    claim: &IdempotencyClaim,
    job_id: Uuid,
) -> Result<(), LedgerError> {
    let claimed = tx
        .claim_idempotency_key(&KeyClaim {
            customer: claim.owner.unwrap_or(req.customer_id),
            route: &req.route,
            key: &claim.key,
            fingerprint: &claim.fingerprint,
            job: job_id,
            now: DbTime::new(req.now),
            expires_at: DbTime::new(claim.expires_at),
        })
        .await?;
    if claimed {
        Ok(())
    } else {
        Err(LedgerError::IdempotencyKeyTaken)
    }
}

/// A key of 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] visible ASCII characters, a SHA-256 hex
/// fingerprint.
pub(super) fn validate(claim: &IdempotencyClaim) -> Result<(), LedgerError> {
    let key_ok = (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&claim.key.len())
        && claim.key.bytes().all(|b| b.is_ascii_graphic());
    if !key_ok {
        return Err(LedgerError::Invalid("idempotency key"));
    }
    let fingerprint_ok =
        claim.fingerprint.len() == 64 && claim.fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    if !fingerprint_ok {
        return Err(LedgerError::Invalid("idempotency fingerprint"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, fingerprint: &str) -> IdempotencyClaim {
        IdempotencyClaim {
            key: key.into(),
            fingerprint: fingerprint.into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            owner: None,
        }
    }

    #[test]
    fn keys_are_visible_ascii_and_fingerprints_sha256_hex() {
        let hex = "ab".repeat(32);
        assert!(validate(&claim("retry-1", &hex)).is_ok());
        assert!(validate(&claim(&"k".repeat(255), &hex)).is_ok());
        for bad in ["", "with space", "tab\t", "é", &"k".repeat(256)] {
            assert!(validate(&claim(bad, &hex)).is_err(), "{bad:?}");
        }
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(validate(&claim("k", bad)).is_err(), "{bad:?}");
        }
    }
}

//! Access tokens revoked before they expire (logout), behind `store.credentials()`. The store's
//! liveness probe (`Store::ping`) is infrastructure and lives in `store::health`.
//!
//! Access tokens are verified locally by every replica, so revoking one means every replica
//! must learn its `jti`: the row here is what a replica loads at start, and a cluster notice
//! carries new revocations to replicas already running. Rows are useless after the token's
//! `exp` and are pruned then.

use time::OffsetDateTime;

use crate::accounts::Subject;
use crate::store::{CredentialsStore, DbTime, StoreError, on_pool};

// === impl CredentialsStore ===

impl CredentialsStore<'_> {
    /// Records that the access token `jti` (of `subject`, expiring at `expires_at`, Unix
    /// seconds) may no longer be used. Idempotent. Also prunes rows of expired tokens.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        subject: Subject,
        expires_at: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let subject = subject.to_string();
        on_pool!(self.store, |pool| {
            sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, subject, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(&subject)
            .bind(expires_at)
            .bind(DbTime::new(now))
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
                .bind(now.unix_timestamp())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Whether the access token `jti` was revoked (staff tokens are checked here on every call,
    /// against the shared store, instead of through the data plane's cached set).
    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT expires_at FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// Revoked token ids that have not expired at `now`, with their expiry.
    pub async fn revoked_access_tokens(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at >= $1",
            )
            .bind(now.unix_timestamp())
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

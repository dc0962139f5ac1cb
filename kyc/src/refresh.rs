//! Refresh tokens: opaque `cgr_<43 base64url chars>` strings (32 random bytes), stored only as
//! SHA-256 hashes, grouped in families. Every exchange marks the presented token used and
//! issues its successor in the same family, in one transaction. Presenting a token that was
//! already used means it was stolen or replayed: the whole family is revoked, which logs out
//! both the thief and the victim.
//!
//! The exchange claims the token with a conditional `UPDATE … WHERE used_at IS NULL`, so two
//! concurrent exchanges of one token cannot both succeed on either backend: PostgreSQL
//! re-checks the condition after the first commit, SQLite serializes writers
//! (`BEGIN IMMEDIATE`). The loser sees a used token and revokes the family.
//!
//! A successor lives as long as the token it replaces (sliding window of the original TTL).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::accounts::{Subject, parse_column};
use crate::crypto::{CryptoError, random_bytes};
use crate::store::{CredentialsStore, DbTime, StoreError, in_transaction, on_pool};

/// Prefix of every refresh token; lets secret scanners and log filters recognize them.
pub const REFRESH_PREFIX: &str = "cgr_";

/// Length of the base64url part: 32 bytes without padding.
const SECRET_CHARS: usize = 43;

/// A newly issued refresh token. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// The token to hand to the client, once.
    pub token: String,
    /// Whose session it is.
    pub subject: Subject,
    /// The family (login session) it belongs to.
    pub family_id: Uuid,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// A family revoked by logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedFamily {
    /// The family.
    pub family_id: Uuid,
    /// Whose session it was.
    pub subject: Subject,
}

/// Why a refresh token was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// Malformed or unknown token.
    #[error("invalid refresh token")]
    Invalid,
    /// The token is past its expiry.
    #[error("refresh token expired")]
    Expired,
    /// The token's family was revoked (logout, suspension, or earlier reuse).
    #[error("refresh token revoked")]
    Revoked,
    /// The token was already used: its whole family has now been revoked.
    #[error("refresh token reused; session revoked")]
    Reused {
        /// The revoked family.
        family_id: Uuid,
        /// Whose session it was.
        subject: Subject,
    },
    /// The system random number generator failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(RefreshError);

#[derive(sqlx::FromRow)]
struct RefreshRow {
    family_id: Uuid,
    subject: String,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

// === impl RefreshGrant ===

impl std::fmt::Debug for RefreshGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshGrant")
            .field("token", &"[redacted]")
            .field("subject", &self.subject)
            .field("family_id", &self.family_id)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

// === impl CredentialsStore ===

impl CredentialsStore<'_> {
    /// Starts a new family (a login) for `subject` with a token valid for `ttl`.
    pub async fn issue_refresh(
        &self,
        subject: Subject,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<RefreshGrant, RefreshError> {
        let token = new_token()?;
        let grant = RefreshGrant {
            token,
            subject,
            family_id: Uuid::now_v7(),
            expires_at: DbTime::new(now + ttl).get(),
        };
        on_pool!(self.store, |pool| {
            insert_query(&grant, now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(grant)
    }

    /// Exchanges `token` for its successor. Used tokens revoke their family
    /// ([`RefreshError::Reused`]); see the module docs for the concurrency argument.
    pub async fn rotate_refresh(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<RefreshGrant, RefreshError> {
        let hash = token_hash(token)?;
        let successor = new_token()?;
        let now_db = DbTime::new(now);
        in_transaction!(self.store, |tx| {
            let claimed: Option<RefreshRow> = sqlx::query_as(
                "UPDATE refresh_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
                 RETURNING family_id, subject, issued_at, expires_at, used_at, revoked_at",
            )
            .bind(now_db)
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = claimed {
                let subject = parse_column(&row.subject, "refresh_tokens.subject")?;
                let ttl = row.expires_at - row.issued_at;
                let grant = RefreshGrant {
                    token: successor,
                    subject,
                    family_id: row.family_id,
                    expires_at: DbTime::new(now + ttl).get(),
                };
                insert_query(&grant, now).execute(&mut *tx).await?;
                Ok(grant)
            } else {
                let row: Option<RefreshRow> = sqlx::query_as(
                    "SELECT family_id, subject, issued_at, expires_at, used_at, revoked_at \
                     FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
                match row {
                    None => Err(RefreshError::Invalid),
                    Some(row) if row.used_at.is_some() => {
                        sqlx::query(
                            "UPDATE refresh_tokens SET revoked_at = $1 \
                             WHERE family_id = $2 AND revoked_at IS NULL",
                        )
                        .bind(now_db)
                        .bind(row.family_id)
                        .execute(&mut *tx)
                        .await?;
                        Err(RefreshError::Reused {
                            family_id: row.family_id,
                            subject: parse_column(&row.subject, "refresh_tokens.subject")?,
                        })
                    }
                    Some(row) if row.revoked_at.is_some() => Err(RefreshError::Revoked),
                    Some(_) => Err(RefreshError::Expired),
                }
            }
        })
    }

    /// Logout: revokes the family `token` belongs to. `Ok(None)` when the token is unknown
    /// (logout is idempotent); malformed tokens are [`RefreshError::Invalid`].
    pub async fn revoke_refresh_family(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<RevokedFamily>, RefreshError> {
        let hash = token_hash(token)?;
        let now_db = DbTime::new(now);
        in_transaction!(self.store, |tx| {
            let found: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT family_id, subject FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((family_id, subject)) = found else {
                return Ok(None);
            };
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now_db)
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            Ok(Some(RevokedFamily {
                family_id,
                subject: parse_column(&subject, "refresh_tokens.subject")?,
            }))
        })
    }

    /// Revokes every refresh token of `subject` (password change, suspension). Returns how
    /// many tokens were revoked.
    pub async fn revoke_refresh_for_subject(
        &self,
        subject: Subject,
        now: OffsetDateTime,
    ) -> Result<u64, RefreshError> {
        let revoked = on_pool!(self.store, |pool| {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL",
            )
            .bind(DbTime::new(now))
            .bind(subject.to_string())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(revoked)
    }

    /// Deletes tokens that expired before `cutoff` (housekeeping). Returns how many.
    pub async fn prune_refresh_tokens(&self, cutoff: OffsetDateTime) -> Result<u64, RefreshError> {
        let removed = on_pool!(self.store, |pool| {
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                .bind(DbTime::new(cutoff))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed)
    }
}

/// The insert for a grant, usable on a pool or inside a transaction of either backend.
fn insert_query<DB>(
    grant: &RefreshGrant,
    now: OffsetDateTime,
) -> sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Vec<u8>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Uuid: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    DbTime: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens \
         (token_hash, family_id, subject, issued_at, expires_at, used_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
    )
    .bind(hash_of(&grant.token))
    .bind(grant.family_id)
    .bind(grant.subject.to_string())
    .bind(DbTime::new(now))
    .bind(DbTime::new(grant.expires_at))
}

/// A fresh token: prefix + 32 random bytes, base64url without padding.
fn new_token() -> Result<String, CryptoError> {
    Ok(format!(
        "{REFRESH_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// Checks the shape of a presented token strictly and returns the hash to look up.
fn token_hash(token: &str) -> Result<Vec<u8>, RefreshError> {
    let secret = token
        .strip_prefix(REFRESH_PREFIX)
        .ok_or(RefreshError::Invalid)?;
    if secret.len() != SECRET_CHARS {
        return Err(RefreshError::Invalid);
    }
    match URL_SAFE_NO_PAD.decode(secret) {
        Ok(bytes) if bytes.len() == 32 => Ok(hash_of(token)),
        _ => Err(RefreshError::Invalid),
    }
}

fn hash_of(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        let t = new_token().unwrap();
        assert!(t.starts_with("cgr_"));
        assert_eq!(t.len(), 4 + 43);
        assert_eq!(token_hash(&t).unwrap().len(), 32);
        assert_ne!(t, new_token().unwrap());
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let good = new_token().unwrap();
        let cases = [
            String::new(),
            "cgr_".into(),
            good.replacen("cgr_", "cgx_", 1),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            format!("cgr_{}", "!".repeat(43)),
            format!("cgr_{}", "é".repeat(21)),
            "cgr_' OR 1=1 --".into(),
        ];
        for case in cases {
            assert!(
                matches!(token_hash(&case), Err(RefreshError::Invalid)),
                "{case:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let grant = RefreshGrant {
            token: new_token().unwrap(),
            subject: Subject::Customer(Uuid::now_v7()),
            family_id: Uuid::now_v7(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!format!("{grant:?}").contains(&grant.token));
    }
}

//! Store operations on API keys: create, list, state, revoke, and verification with its
//! access-log row.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    API_KEY_PREFIX, ApiKey, ApiKeyPrincipal, CreatedApiKey, KeyError, KeyState,
    MAX_KEYS_PER_CUSTOMER, NewApiKey, is_key_id, new_key_id, parse_api_key, validate_new_key,
};
use crate::access_log::{self, AccessAction, AccessEvent, AccessOutcome};
use crate::accounts::{Actor, Subject};
use crate::crypto::random_bytes;
use crate::password::{Hasher, PasswordError};
use crate::store::{CredentialsStore, DbTime, in_transaction, on_pool};

/// The listing columns in [`KeyRow`] order, as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "id, customer_id, name, scopes, created_at, expires_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    customer_id: Uuid,
    name: String,
    scopes: Json<Vec<String>>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct KeyRowWithHash {
    #[sqlx(flatten)]
    key: KeyRow,
    secret_hash: String,
}

// === impl CredentialsStore ===

impl CredentialsStore<'_> {
    /// Creates a key for `customer_id` and records the action by `actor` in the same
    /// transaction. Returns the id and the full key, which is not stored and cannot be shown
    /// again.
    pub async fn create_api_key(
        &self,
        hasher: &Hasher,
        customer_id: Uuid,
        new: NewApiKey,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<CreatedApiKey, KeyError> {
        validate_new_key(&new, now)?;
        let id = new_key_id()?;
        let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let secret_hash = hasher.hash_async(secret.clone()).await?;
        let event = AccessEvent {
            actor: Some(actor.name.clone()),
            ..AccessEvent::new(
                now,
                actor.client_ip,
                AccessAction::ApiKeyCreate,
                AccessOutcome::Success,
                format!("api_key:{id}"),
            )
        };
        in_transaction!(self.store, |tx| {
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_keys WHERE customer_id = $1 AND revoked_at IS NULL",
            )
            .bind(customer_id)
            .fetch_one(&mut *tx)
            .await?;
            if active >= MAX_KEYS_PER_CUSTOMER {
                return Err(KeyError::TooManyKeys);
            }
            let inserted = sqlx::query(
                "INSERT INTO api_keys \
                 (id, customer_id, name, secret_hash, scopes, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(&id)
            .bind(customer_id)
            .bind(&new.name)
            .bind(&secret_hash)
            .bind(Json(&new.scopes))
            .bind(DbTime::new(now))
            .bind(new.expires_at.map(DbTime::new))
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(KeyError::CustomerNotFound);
                }
                Err(e) => return Err(e.into()),
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        let key = format!("{API_KEY_PREFIX}{id}_{secret}");
        Ok(CreatedApiKey { id, key })
    }

    /// A page of the customer's keys (active, expired and revoked), newest first, without
    /// secrets: at most `limit`, after the `(created_at, id)` of `after` in that order (a keyset
    /// cursor: the last key of the previous page).
    pub async fn list_api_keys(
        &self,
        customer_id: Uuid,
        after: Option<(OffsetDateTime, &str)>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, KeyError> {
        const SQL: &str = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE customer_id = $1 \
             AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        let rows: Vec<KeyRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(customer_id)
            .bind(i64::from(limit))
            .bind(after.map(|(at, _)| DbTime::new(at)))
            .bind(after.map(|(_, id)| id))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(KeyRow::into_key).collect())
    }

    /// The key with this id, for re-checking a cached principal (revoked? expired?). `None`
    /// when unknown or malformed.
    pub async fn api_key_state(&self, key_id: &str) -> Result<Option<ApiKey>, KeyError> {
        const SQL: &str = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1");
        if !is_key_id(key_id) {
            return Ok(None);
        }
        let row: Option<KeyRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(key_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(KeyRow::into_key))
    }

    /// Revokes one of the customer's own keys and records the action by `actor` in the same
    /// transaction. Another customer's key, or an unknown one, is [`KeyError::NotFound`];
    /// revoking twice is not an error. Callers publish
    /// [`crate::cluster::Notice::KeyRevoked`] afterwards.
    pub async fn revoke_api_key(
        &self,
        customer_id: Uuid,
        key_id: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), KeyError> {
        if !is_key_id(key_id) {
            return Err(KeyError::NotFound);
        }
        let event = AccessEvent {
            actor: Some(actor.name.clone()),
            ..AccessEvent::new(
                now,
                actor.client_ip,
                AccessAction::ApiKeyRevoke,
                AccessOutcome::Success,
                format!("api_key:{key_id}"),
            )
        };
        in_transaction!(self.store, |tx| {
            let owned: Option<Uuid> = sqlx::query_scalar(
                "SELECT customer_id FROM api_keys WHERE id = $1 AND customer_id = $2",
            )
            .bind(key_id)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
            if owned.is_none() {
                return Err(KeyError::NotFound);
            }
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(DbTime::new(now))
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Verifies a presented key (see the module docs for the order of checks) and records the
    /// attempt in the access log. The owner's account status is not checked here: the caller
    /// re-checks the customer (suspended customers are refused even with a valid key).
    pub async fn verify_api_key(
        &self,
        hasher: &Hasher,
        full_key: &str,
        client_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<ApiKeyPrincipal, KeyError> {
        const SQL: &str = concat!(
            "SELECT ",
            key_columns!(),
            ", secret_hash FROM api_keys WHERE id = $1"
        );
        let parsed = parse_api_key(full_key)?;
        let row: Option<KeyRowWithHash> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(parsed.key_id)
                .fetch_optional(pool)
                .await?
        });
        let verdict = match row {
            // No hash for an unknown id: key ids are not secret (listings show them), so
            // spending argon2 on them would only hand forgers a cost amplifier.
            None => Err(KeyError::Invalid),
            Some(r) => {
                match hasher
                    .verify_async(parsed.secret.to_owned(), r.secret_hash)
                    .await
                {
                    Ok(_) => {
                        let key = r.key.into_key();
                        match key.state(now) {
                            KeyState::Active => Ok(ApiKeyPrincipal {
                                key_id: key.id,
                                customer_id: key.customer_id,
                                scopes: key.scopes,
                                expires_at: key.expires_at,
                            }),
                            KeyState::Revoked => Err(KeyError::Revoked),
                            KeyState::Expired => Err(KeyError::Expired),
                        }
                    }
                    Err(PasswordError::Mismatch) => Err(KeyError::Invalid),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let outcome = match verdict {
            Ok(_) => AccessOutcome::Success,
            Err(_) => AccessOutcome::Failure,
        };
        let mut event = AccessEvent::new(
            now,
            client_ip,
            AccessAction::ApiKeyUse,
            outcome,
            format!("api_key:{}", parsed.key_id),
        );
        if let Ok(principal) = &verdict {
            event.actor = Some(Subject::Customer(principal.customer_id).to_string());
        }
        self.store.access().record_access(&event).await?;
        verdict
    }
}

// === impl KeyRow ===

impl KeyRow {
    fn into_key(self) -> ApiKey {
        ApiKey {
            id: self.id,
            customer_id: self.customer_id,
            name: self.name,
            scopes: self.scopes.0,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

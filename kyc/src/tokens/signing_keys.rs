//! Signing keys in the store: rotation, loading the [`Keyring`], pruning keys whose tokens have
//! all expired. The private seed is sealed with the master key, bound to its kid as associated
//! data so a sealed seed moved to another row fails to open.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{KeyMaterial, Keyring, TokenError};
use crate::access_log::{self, AccessAction, AccessEvent, AccessOutcome};
use crate::accounts::Actor;
use crate::crypto::MasterKey;
use crate::store::{CredentialsStore, DbTime, in_transaction, on_pool};

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    private_key_sealed: Vec<u8>,
    public_key: Vec<u8>,
    active: bool,
}

// === impl CredentialsStore ===

impl CredentialsStore<'_> {
    /// Adds a new active signing key. The previous active key stops signing and keeps
    /// verifying until `now + verify_for` — pass the longest access-token lifetime (plus clock
    /// leeway). Records the action in the access log in the same transaction. Returns the new
    /// kid.
    pub async fn rotate_signing_key(
        &self,
        master: &MasterKey,
        actor: &Actor,
        now: OffsetDateTime,
        verify_for: Duration,
    ) -> Result<String, TokenError> {
        let material = KeyMaterial::generate()?;
        let kid = material.kid().to_owned();
        let sealed = master.seal(&material.seed(), kid.as_bytes())?;
        let public = material.public().to_vec();
        let event = rotation_event(actor, &kid, now);
        in_transaction!(self.store, |tx| {
            sqlx::query(
                "UPDATE signing_keys SET active = $1, not_after_verify = $2 WHERE active = $3",
            )
            .bind(false)
            .bind(DbTime::new(now + verify_for))
            .bind(true)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO signing_keys \
                 (kid, private_key_sealed, public_key, created_at, not_after_verify, active) \
                 VALUES ($1, $2, $3, $4, NULL, $5)",
            )
            .bind(&kid)
            .bind(&sealed)
            .bind(&public)
            .bind(DbTime::new(now))
            .bind(true)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // Another replica inserted its active key first (one-active index); this
                // transaction rolls back.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(TokenError::ConcurrentRotation);
                }
                Err(e) => return Err(e.into()),
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(kid)
    }

    /// Creates the first signing key when there is no active one (start-up, demo). Returns the
    /// active kid either way.
    pub async fn ensure_signing_key(
        &self,
        master: &MasterKey,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<String, TokenError> {
        let existing: Option<String> = on_pool!(self.store, |pool| {
            sqlx::query_scalar("SELECT kid FROM signing_keys WHERE active = $1")
                .bind(true)
                .fetch_optional(pool)
                .await?
        });
        if let Some(kid) = existing {
            return Ok(kid);
        }
        // Nothing is active, so there is no old key to keep verifying.
        match self
            .rotate_signing_key(master, actor, now, Duration::ZERO)
            .await
        {
            Err(TokenError::ConcurrentRotation) => {
                let kid: String = on_pool!(self.store, |pool| {
                    sqlx::query_scalar("SELECT kid FROM signing_keys WHERE active = $1")
                        .bind(true)
                        .fetch_one(pool)
                        .await?
                });
                Ok(kid)
            }
            other => other,
        }
    }

    /// Loads the active key (unsealed with `master`) and every key that still verifies at
    /// `now`. A key that fails to open or does not match its stored public half is an error:
    /// it means the wrong master key or tampering.
    pub async fn load_keyring(
        &self,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Keyring, TokenError> {
        const SQL: &str = "SELECT kid, private_key_sealed, public_key, active FROM signing_keys \
             WHERE active = $1 OR not_after_verify IS NULL OR not_after_verify > $2 \
             ORDER BY created_at, kid";
        let rows: Vec<KeyRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(true)
                .bind(DbTime::new(now))
                .fetch_all(pool)
                .await?
        });
        let mut active = None;
        let mut verifying = Vec::with_capacity(rows.len());
        for row in rows {
            let corrupt = || TokenError::CorruptKey {
                kid: row.kid.clone(),
            };
            let public: [u8; 32] = row
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| corrupt())?;
            if row.active {
                let seed = master
                    .open(&row.private_key_sealed, row.kid.as_bytes())
                    .map_err(|_| corrupt())?;
                let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| corrupt())?;
                let material = KeyMaterial::from_seed(seed);
                if material.public() != public || material.kid() != row.kid {
                    return Err(corrupt());
                }
                active = Some(material);
            }
            verifying.push((row.kid, public));
        }
        Keyring::new(active.as_ref(), verifying)
    }

    /// Deletes inactive keys whose verification window ended at or before `now`. Returns how
    /// many were removed.
    pub async fn prune_signing_keys(&self, now: OffsetDateTime) -> Result<u64, TokenError> {
        let removed = on_pool!(self.store, |pool| {
            sqlx::query(
                "DELETE FROM signing_keys WHERE active = $1 \
                 AND not_after_verify IS NOT NULL AND not_after_verify <= $2",
            )
            .bind(false)
            .bind(DbTime::new(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(removed)
    }
}

fn rotation_event(actor: &Actor, kid: &str, now: OffsetDateTime) -> AccessEvent {
    AccessEvent {
        at: now,
        client_ip: actor.client_ip,
        action: AccessAction::SigningKeyRotate,
        outcome: AccessOutcome::Success,
        subject: format!("signing_key:{kid}"),
        actor: Some(actor.name.clone()),
        detail: None,
    }
}

//! The gateway's identity ports implemented with the store: principals (with the jurisdictions
//! their approved applications name), API-key verification, verification keys and revoked tokens
//! for the credential verifier's cache misses, plus the readiness checks of the store and Redis.

use std::net::IpAddr;
use std::time::Duration;

use computegate_gateway::admin::ReadinessCheck;
use computegate_gateway::auth::BoxFuture;
use computegate_gateway::credentials::{
    AccountStatus, ApiKeyGrant, DirectoryError, IdentityDirectory, PrincipalRecord,
};
use computegate_kyc::Store;
use computegate_kyc::accounts::CustomerStatus;
use computegate_kyc::api_keys::KeyError;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::password::{Hasher, PasswordError};
use computegate_kyc::tokens::{AccessClaims, Keyring};
use computegate_kyc::verification::SuspensionReason;
use jsonwebtoken::DecodingKey;
use time::OffsetDateTime;
use uuid::Uuid;

/// The signing keyring, shared with the identity service (which reloads it) and the directory
/// (which signs upstream identity tokens).
pub(crate) type SharedKeyring = std::sync::Arc<std::sync::RwLock<std::sync::Arc<Keyring>>>;

/// Audience of the identity tokens forwarded to upstreams.
pub const UPSTREAM_AUDIENCE: &str = "computegate-upstream";

/// [`IdentityDirectory`] over the store.
pub struct StoreDirectory {
    store: Store,
    hasher: Hasher,
    master: MasterKey,
    /// Keyring and issuer for upstream identity tokens, when they are forwarded.
    signer: Option<(SharedKeyring, String)>,
}

impl StoreDirectory {
    /// A directory reading `store`; with `signer`, it also signs upstream identity tokens.
    pub fn new(
        store: Store,
        hasher: Hasher,
        master: MasterKey,
        signer: Option<(SharedKeyring, String)>,
    ) -> Self {
        Self {
            store,
            hasher,
            master,
            signer,
        }
    }
}

impl IdentityDirectory for StoreDirectory {
    fn principal(
        &self,
        customer_id: String,
    ) -> BoxFuture<Result<Option<PrincipalRecord>, DirectoryError>> {
        let store = self.store.clone();
        let master = self.master.clone();
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(&customer_id) else {
                return Ok(None);
            };
            let customer = store.accounts().customer_by_id(id).await.map_err(|e| {
                tracing::warn!(error = %e, "principal lookup failed");
                DirectoryError::Unavailable
            })?;
            let Some(c) = customer else {
                return Ok(None);
            };
            // Fail closed: a principal whose verified location cannot be read is not served
            // (jurisdiction rules could not be applied to it).
            let jurisdictions = store
                .verification()
                .verified_jurisdictions(&master, id)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "verified jurisdictions lookup failed");
                    DirectoryError::Unavailable
                })?;
            // Only a suspended account has a reason worth a second read.
            let status_reason = match c.status {
                CustomerStatus::Suspended => store
                    .verification()
                    .suspension_reason(id)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "suspension reason lookup failed");
                        DirectoryError::Unavailable
                    })?
                    .map(SuspensionReason::as_str),
                _ => None,
            };
            Ok(Some(PrincipalRecord {
                customer_id: c.id.to_string(),
                tier: c.tier.as_str().to_string(),
                status: match c.status {
                    CustomerStatus::Active => AccountStatus::Active,
                    CustomerStatus::Suspended => AccountStatus::Suspended,
                    CustomerStatus::Closed => AccountStatus::Closed,
                },
                status_reason,
                organization_id: c.organization_id.map(|o| o.to_string()),
                jurisdictions,
            }))
        })
    }

    fn verify_api_key(
        &self,
        key: String,
        ip: IpAddr,
    ) -> BoxFuture<Result<ApiKeyGrant, DirectoryError>> {
        let store = self.store.clone();
        let hasher = self.hasher.clone();
        Box::pin(async move {
            match store
                .credentials()
                .verify_api_key(&hasher, &key, Some(ip), OffsetDateTime::now_utc())
                .await
            {
                Ok(p) => Ok(ApiKeyGrant {
                    key_id: p.key_id,
                    customer_id: p.customer_id.to_string(),
                    expires_at: p.expires_at.map(|t| t.unix_timestamp().max(0) as u64),
                    scopes: p.scopes,
                }),
                Err(KeyError::Password(PasswordError::Busy)) => Err(DirectoryError::Busy),
                Err(
                    KeyError::Malformed
                    | KeyError::Invalid
                    | KeyError::Revoked
                    | KeyError::Expired
                    | KeyError::NotFound
                    | KeyError::CustomerNotFound,
                ) => Err(DirectoryError::Rejected),
                Err(e) => {
                    tracing::warn!(error = %e, "API key verification failed");
                    Err(DirectoryError::Unavailable)
                }
            }
        })
    }

    fn api_key_id_known(&self, key_id: String) -> BoxFuture<Result<bool, DirectoryError>> {
        let store = self.store.clone();
        Box::pin(async move {
            match store.credentials().api_key_state(&key_id).await {
                Ok(found) => Ok(found.is_some()),
                Err(e) => {
                    tracing::warn!(error = %e, "API key id lookup failed");
                    Err(DirectoryError::Unavailable)
                }
            }
        })
    }

    fn verification_keys(&self) -> BoxFuture<Result<Vec<(String, DecodingKey)>, DirectoryError>> {
        let store = self.store.clone();
        let master = self.master.clone();
        Box::pin(async move {
            let keyring = store
                .credentials()
                .load_keyring(&master, OffsetDateTime::now_utc())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot load verification keys");
                    DirectoryError::Unavailable
                })?;
            keyring.decoding_keys().map_err(|e| {
                tracing::error!(error = %e, "stored verification keys are unusable");
                DirectoryError::Unavailable
            })
        })
    }

    fn identity_token(&self, record: &PrincipalRecord, valid_for: Duration) -> Option<String> {
        let (keyring, issuer) = self.signer.as_ref()?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: issuer.clone(),
            aud: UPSTREAM_AUDIENCE.to_string(),
            sub: record.customer_id.clone(),
            tier: record.tier.clone(),
            status: "active".into(),
            iat: now,
            nbf: now,
            exp: now + valid_for.as_secs() as i64,
            jti: Uuid::new_v4().to_string(),
            org: record.organization_id.clone(),
            role: None,
        };
        let keyring = keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match keyring.sign_access(&claims) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign an upstream identity token");
                None
            }
        }
    }

    fn revoked_token_ids(&self) -> BoxFuture<Result<Vec<(String, u64)>, DirectoryError>> {
        let store = self.store.clone();
        Box::pin(async move {
            let rows = store
                .credentials()
                .revoked_access_tokens(OffsetDateTime::now_utc())
                .await
                .map_err(|_| DirectoryError::Unavailable)?;
            Ok(rows
                .into_iter()
                .map(|(jti, exp)| (jti, exp.max(0) as u64))
                .collect())
        })
    }
}

/// `/readyz` check of the database.
pub(super) struct StoreCheck(pub(super) Store);

impl ReadinessCheck for StoreCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<Result<(), String>> {
        let store = self.0.clone();
        Box::pin(async move { store.ping().await.map_err(|_| "unreachable".to_string()) })
    }
}

/// `/readyz` check of Redis.
pub(super) struct RedisCheck(pub(super) redis::aio::ConnectionManager);

impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Without Redis the gateway keeps serving: notices degrade to store re-checks, login
    /// throttles and rate limits to their local fallbacks.
    fn optional(&self) -> bool {
        true
    }

    fn check(&self) -> BoxFuture<Result<(), String>> {
        let mut conn = self.0.clone();
        Box::pin(async move {
            let ping = redis::cmd("PING");
            if ping.query_async::<String>(&mut conn).await.is_ok() {
                return Ok(());
            }
            // The manager reports a connection that failed earlier once while it reconnects;
            // the retry waits for the new connection.
            ping.query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|_| "unreachable".to_string())
        })
    }
}

//! A customer's API keys: created, listed and revoked in the customer's own name; a revocation
//! is announced so that every replica's key cache drops the key at once.

use std::net::IpAddr;

use computegate_kyc::accounts::Actor;
use computegate_kyc::api_keys::{ApiKey, CreatedApiKey, NewApiKey};
use computegate_kyc::cluster::Notice;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Identity, IdentityError};

// === impl Identity ===

impl Identity {
    /// Creates an API key for `customer_id`; the answer holds the secret, shown this once.
    pub async fn create_api_key(
        &self,
        customer_id: Uuid,
        new: NewApiKey,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<CreatedApiKey, IdentityError> {
        let actor = Actor::customer(customer_id, Some(client_ip));
        Ok(self
            .store
            .credentials()
            .create_api_key(&self.hasher, customer_id, new, &actor, now)
            .await?)
    }

    /// A page of the customer's keys, newest first (never their secrets): at most `limit`,
    /// after the `(created_at, id)` of `after`.
    pub async fn api_keys(
        &self,
        customer_id: Uuid,
        after: Option<(OffsetDateTime, &str)>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, IdentityError> {
        let credentials = self.store.credentials();
        Ok(credentials.list_api_keys(customer_id, after, limit).await?)
    }

    /// Revokes one of the customer's keys and tells every replica.
    pub async fn revoke_api_key(
        &self,
        customer_id: Uuid,
        key_id: String,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        let actor = Actor::customer(customer_id, Some(client_ip));
        self.store
            .credentials()
            .revoke_api_key(customer_id, &key_id, &actor, now)
            .await?;
        self.announce(Notice::KeyRevoked { key_id }).await;
        Ok(())
    }
}

//! What we hold that a partner's indicators can match, read from the store for an import:
//! only the kinds a bundle asks about ([`super::matching::kinds_asked`]) — client addresses of
//! successful accesses of customers and of their API keys (the access log), customer email
//! domains, document digests, API key ids, and the keyed link-attribute hashes of payment
//! fingerprints. Each kind is one scan, linear in what we hold; a bundle is bounded
//! ([`super::stix_import`]), so an import is too.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use uuid::Uuid;

use super::indicators::{Indicator, IndicatorKey, IndicatorKind};
use super::matching::Holdings;
use super::model::IncidentError;
use crate::ledger::AttributeHash;
use crate::store::{IncidentsStore, on_pool};

// === impl IncidentsStore ===

impl IncidentsStore<'_> {
    /// What we hold of `kinds`, with the customers holding it.
    pub(super) async fn holdings(
        &self,
        key: IndicatorKey,
        kinds: &BTreeSet<IndicatorKind>,
    ) -> Result<Holdings, IncidentError> {
        let mut holdings = Holdings::new(key);
        let needs = |k: IndicatorKind| kinds.contains(&k);
        if needs(IndicatorKind::Ipv4)
            || needs(IndicatorKind::Ipv6)
            || needs(IndicatorKind::ApiKeyId)
        {
            let keys = self.api_key_owners().await?;
            if needs(IndicatorKind::ApiKeyId) {
                for (key_id, customer) in &keys {
                    if let Ok(v) = Indicator::parse(IndicatorKind::ApiKeyId, key_id) {
                        holdings.add(&v, *customer);
                    }
                }
            }
            if needs(IndicatorKind::Ipv4) || needs(IndicatorKind::Ipv6) {
                self.add_client_addresses(&mut holdings, &keys).await?;
            }
        }
        if needs(IndicatorKind::EmailDomain) {
            let rows: Vec<(Uuid, String)> = on_pool!(self.store, |pool| {
                sqlx::query_as("SELECT id, email FROM customers")
                    .fetch_all(pool)
                    .await?
            });
            for (customer, email) in rows {
                let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                if let Ok(v) = Indicator::parse(IndicatorKind::EmailDomain, domain) {
                    holdings.add(&v, customer);
                }
            }
        }
        if needs(IndicatorKind::DocumentSha256) {
            let rows: Vec<(Uuid, Vec<u8>)> = on_pool!(self.store, |pool| {
                sqlx::query_as(
                    "SELECT a.customer_id, d.sha256 FROM verification_documents d \
                     JOIN verification_applications a ON a.id = d.application_id",
                )
                .fetch_all(pool)
                .await?
            });
            for (customer, digest) in rows {
                if let Ok(v) = Indicator::parse(IndicatorKind::DocumentSha256, &hex::encode(digest))
                {
                    holdings.add(&v, customer);
                }
            }
        }
        if needs(IndicatorKind::PaymentFingerprint) {
            let rows: Vec<(Vec<u8>, Uuid)> = on_pool!(self.store, |pool| {
                sqlx::query_as(
                    "SELECT value_hash, customer_id FROM ledger_link_attributes \
                     WHERE kind = 'payment_fingerprint'",
                )
                .fetch_all(pool)
                .await?
            });
            for (hash, customer) in rows {
                if let Ok(digest) = <[u8; 32]>::try_from(hash.as_slice()) {
                    holdings.add_fingerprint(AttributeHash::from_bytes(digest), customer);
                }
            }
        }
        Ok(holdings)
    }

    /// API key id → its customer.
    async fn api_key_owners(&self) -> Result<HashMap<String, Uuid>, IncidentError> {
        let rows: Vec<(String, Uuid)> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT id, customer_id FROM api_keys")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// The client addresses of every successful access of a customer (or one of its keys).
    async fn add_client_addresses(
        &self,
        holdings: &mut Holdings,
        keys: &HashMap<String, Uuid>,
    ) -> Result<(), IncidentError> {
        let rows: Vec<(String, String)> = on_pool!(self.store, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT client_ip, subject FROM access_log \
                 WHERE outcome = 'success' AND client_ip IS NOT NULL \
                 AND (subject LIKE 'customer:%' OR subject LIKE 'api_key:%')",
            )
            .fetch_all(pool)
            .await?
        });
        for (ip, subject) in rows {
            let customer = match subject.split_once(':') {
                Some(("customer", id)) => Uuid::parse_str(id).ok(),
                Some(("api_key", id)) => keys.get(id).copied(),
                _ => None,
            };
            let (Some(customer), Ok(ip)) = (customer, ip.parse::<IpAddr>()) else {
                continue;
            };
            let value = match ip.to_canonical() {
                IpAddr::V4(v4) => Indicator::parse(IndicatorKind::Ipv4, &v4.to_string()),
                IpAddr::V6(v6) => Indicator::parse(IndicatorKind::Ipv6, &v6.to_string()),
            };
            if let Ok(value) = value {
                holdings.add(&value, customer);
            }
        }
        Ok(())
    }
}

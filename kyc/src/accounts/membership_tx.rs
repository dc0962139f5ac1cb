//! The membership writes a transaction makes, for both backends: locking a customer with what
//! the membership rules need, creating an organization, and joining one. The store operations
//! of `organizations` and the KYB approval (inside the decision's own transaction,
//! `verification::kyb`) share them.

use std::future::Future;

use sqlx::{Postgres, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::membership::{MemberFacts, MemberRole};
use super::{Tier, parse_column};
use crate::store::{DbTime, StoreError};

/// Membership writes inside one transaction, for both backends (the KYB approval uses them
/// inside the decision's own transaction).
pub(crate) trait MembershipTx: Send {
    /// Locks the customer's row and reads what the membership rules need; `None` when there is
    /// no such customer.
    fn lock_member(
        &mut self,
        customer_id: Uuid,
    ) -> impl Future<Output = Result<Option<MemberFacts>, StoreError>> + Send;

    /// Inserts an organization named `name`; returns its id.
    fn insert_organization(
        &mut self,
        name: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Uuid, StoreError>> + Send;

    /// Makes `customer_id` a member of `organization_id` in `role` (replacing any membership).
    fn join(
        &mut self,
        organization_id: Uuid,
        customer_id: Uuid,
        role: MemberRole,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(sqlx::FromRow)]
struct FactsRow {
    email: String,
    kind: String,
    status: String,
    tier: String,
    organization_id: Option<Uuid>,
}

macro_rules! membership_tx_for {
    ($db:ty) => {
        impl MembershipTx for Transaction<'_, $db> {
            async fn lock_member(
                &mut self,
                customer_id: Uuid,
            ) -> Result<Option<MemberFacts>, StoreError> {
                let row: Option<FactsRow> = sqlx::query_as(
                    "UPDATE customers SET updated_at = updated_at WHERE id = $1 \
                     RETURNING email, kind, status, tier, organization_id",
                )
                .bind(customer_id)
                .fetch_optional(&mut **self)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let role: Option<String> = match row.organization_id {
                    Some(org) => {
                        sqlx::query_scalar(
                            "SELECT role FROM organization_members \
                             WHERE customer_id = $1 AND organization_id = $2",
                        )
                        .bind(customer_id)
                        .bind(org)
                        .fetch_optional(&mut **self)
                        .await?
                    }
                    None => None,
                };
                row.into_facts(role).map(Some)
            }

            async fn insert_organization(
                &mut self,
                name: &str,
                now: OffsetDateTime,
            ) -> Result<Uuid, StoreError> {
                let id = Uuid::now_v7();
                sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(name)
                    .bind(DbTime::new(now))
                    .execute(&mut **self)
                    .await?;
                Ok(id)
            }

            async fn join(
                &mut self,
                organization_id: Uuid,
                customer_id: Uuid,
                role: MemberRole,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO organization_members \
                     (customer_id, organization_id, role, joined_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (customer_id) DO UPDATE SET \
                     organization_id = excluded.organization_id, role = excluded.role",
                )
                .bind(customer_id)
                .bind(organization_id)
                .bind(role.as_str())
                .bind(DbTime::new(now))
                .execute(&mut **self)
                .await?;
                sqlx::query(
                    "UPDATE customers SET organization_id = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(organization_id)
                .bind(DbTime::new(now))
                .bind(customer_id)
                .execute(&mut **self)
                .await?;
                Ok(())
            }
        }
    };
}

membership_tx_for!(Sqlite);
membership_tx_for!(Postgres);

// === impl FactsRow ===

impl FactsRow {
    fn into_facts(self, role: Option<String>) -> Result<MemberFacts, StoreError> {
        let role = match role {
            Some(r) => parse_column(&r, "organization_members.role")?,
            // An organization set before roles existed: a plain member.
            None => MemberRole::Member,
        };
        Ok(MemberFacts {
            email: self.email,
            kind: parse_column(&self.kind, "customers.kind")?,
            status: parse_column(&self.status, "customers.status")?,
            tier: tier_of(&self.tier)?,
            membership: self.organization_id.map(|org| (org, role)),
        })
    }
}

pub(super) fn tier_of(text: &str) -> Result<Tier, StoreError> {
    Tier::new(text).map_err(|_| StoreError::CorruptRow {
        column: "customers.tier",
    })
}

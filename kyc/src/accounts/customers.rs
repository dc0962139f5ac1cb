//! Store operations on customers and organizations.

use time::OffsetDateTime;
use uuid::Uuid;

use super::membership::MemberRole;
use super::{
    AccountError, Actor, Customer, CustomerKind, CustomerStatus, Email,
    MAX_ORGANIZATION_NAME_CHARS, MembershipTx, Organization, Subject, Tier, normalize_email,
    parse_column,
};
use crate::access_log::{self, AccessAction, AccessEvent, AccessOutcome};
use crate::store::{AccountsStore, DbTime, StoreError, in_transaction, on_pool};

/// The customer columns in [`CustomerRow`] order, as a literal for `concat!`.
macro_rules! customer_columns {
    () => {
        "id, email, kind, status, tier, organization_id, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: Uuid,
    email: String,
    kind: String,
    status: String,
    tier: String,
    organization_id: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    customer: CustomerRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: Uuid,
    name: String,
    created_at: OffsetDateTime,
}

// === impl AccountsStore ===

impl AccountsStore<'_> {
    /// Creates an `active`, `unverified` customer. `password_hash` is a PHC string from
    /// [`crate::password::Hasher::hash`]. A second account with the same normalized email
    /// fails with [`AccountError::EmailTaken`].
    pub async fn create_customer(
        &self,
        email: &str,
        password_hash: &str,
        kind: CustomerKind,
        now: OffsetDateTime,
    ) -> Result<Customer, AccountError> {
        let email = Email::parse(email)?;
        let id = Uuid::now_v7();
        let now = DbTime::new(now);
        let result = on_pool!(self.store, |pool| {
            sqlx::query(
                "INSERT INTO customers \
                 (id, email, password_hash, kind, status, tier, organization_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7)",
            )
            .bind(id)
            .bind(email.as_str())
            .bind(password_hash)
            .bind(kind.as_str())
            .bind(CustomerStatus::Active.as_str())
            .bind(Tier::UNVERIFIED)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        match result {
            Ok(_) => Ok(Customer {
                id,
                email: email.as_str().to_owned(),
                kind,
                status: CustomerStatus::Active,
                tier: Tier::unverified(),
                organization_id: None,
                created_at: now.get(),
                updated_at: now.get(),
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AccountError::EmailTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The customer with this email (normalized before lookup), if any.
    pub async fn customer_by_email(&self, email: &str) -> Result<Option<Customer>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE email = $1"
        );
        let email = normalize_email(email);
        let row: Option<CustomerRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(&email)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(CustomerRow::into_customer).transpose()?)
    }

    /// The customer with this id, if any.
    pub async fn customer_by_id(&self, id: Uuid) -> Result<Option<Customer>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE id = $1"
        );
        let row: Option<CustomerRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(CustomerRow::into_customer).transpose()?)
    }

    /// The customer and stored password hash for a login attempt. A reseller's end customer
    /// has an account row for the ledger but no password: it is never found here, so a login
    /// as one is an unknown account (dummy work, `invalid_credentials`).
    pub(crate) async fn customer_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(Customer, String)>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            customer_columns!(),
            ", password_hash FROM customers WHERE email = $1 \
             AND NOT EXISTS (SELECT 1 FROM end_customers e WHERE e.id = customers.id)"
        );
        let email = normalize_email(email);
        let row: Option<CredentialRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(&email)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => Ok(Some((r.customer.into_customer()?, r.password_hash))),
            None => Ok(None),
        }
    }

    /// Replaces a customer's password hash (password change, or rehash after login with new
    /// parameters). Records a `password_change` access-log entry in the same transaction.
    pub async fn set_customer_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), AccountError> {
        let event = admin_event(
            AccessAction::PasswordChange,
            Subject::Customer(id),
            actor,
            now,
            None,
        );
        in_transaction!(self.store, |tx| {
            let updated = sqlx::query(
                "UPDATE customers SET password_hash = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(password_hash)
            .bind(DbTime::new(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(AccountError::CustomerNotFound);
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Changes a customer's status, records the administrative action with `reason`, and, when
    /// the customer leaves `active`, revokes all their refresh tokens — all in one transaction.
    /// Callers publish [`crate::cluster::Notice::CustomerChanged`] afterwards.
    pub async fn set_customer_status(
        &self,
        id: Uuid,
        status: CustomerStatus,
        actor: &Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Customer, AccountError> {
        self.change_customer(id, CustomerChange::Status(status), actor, reason, now)
            .await
    }

    /// Changes a customer's tier and records the administrative action with `reason` in the
    /// same transaction. Callers publish [`crate::cluster::Notice::CustomerChanged`] afterwards.
    pub async fn set_customer_tier(
        &self,
        id: Uuid,
        tier: &Tier,
        actor: &Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Customer, AccountError> {
        self.change_customer(id, CustomerChange::Tier(tier), actor, reason, now)
            .await
    }

    /// One administrative change of a customer column with its access-log row (and, for a
    /// status other than `active`, the refresh-token revocation) in one transaction.
    async fn change_customer(
        &self,
        id: Uuid,
        change: CustomerChange<'_>,
        actor: &Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Customer, AccountError> {
        const STATUS_SQL: &str = concat!(
            "UPDATE customers SET status = $1, status_reason = NULL, updated_at = $2 \
             WHERE id = $3 RETURNING ",
            customer_columns!()
        );
        const TIER_SQL: &str = concat!(
            "UPDATE customers SET tier = $1, updated_at = $2 WHERE id = $3 RETURNING ",
            customer_columns!()
        );
        let (sql, value, action, detail) = match change {
            CustomerChange::Status(status) => (
                STATUS_SQL,
                status.as_str(),
                AccessAction::CustomerStatusChange,
                serde_json::json!({ "status": status.as_str(), "reason": reason }),
            ),
            CustomerChange::Tier(tier) => (
                TIER_SQL,
                tier.as_str(),
                AccessAction::CustomerTierChange,
                serde_json::json!({ "tier": tier.as_str(), "reason": reason }),
            ),
        };
        let revoke_sessions =
            matches!(change, CustomerChange::Status(s) if s != CustomerStatus::Active);
        let event = admin_event(
            action,
            Subject::Customer(id),
            actor,
            now,
            Some(detail.to_string()),
        );
        let row: CustomerRow = in_transaction!(self.store, |tx| {
            let row: Option<CustomerRow> = sqlx::query_as(sql)
                .bind(value)
                .bind(DbTime::new(now))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(AccountError::CustomerNotFound);
            };
            if revoke_sessions {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL",
                )
                .bind(DbTime::new(now))
                .bind(Subject::Customer(id).to_string())
                .execute(&mut *tx)
                .await?;
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
            row
        });
        Ok(row.into_customer()?)
    }

    /// Creates an organization (name stored verbatim, 1..=200 characters).
    pub async fn create_organization(
        &self,
        name: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Organization, AccountError> {
        let chars = name.trim().chars().count();
        if chars == 0 || name.chars().count() > MAX_ORGANIZATION_NAME_CHARS {
            return Err(AccountError::InvalidOrganizationName);
        }
        let id = Uuid::now_v7();
        let now = DbTime::new(now);
        let event = admin_event(
            AccessAction::OrganizationCreate,
            format!("organization:{id}"),
            actor,
            now.get(),
            None,
        );
        in_transaction!(self.store, |tx| {
            sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(Organization {
            id,
            name: name.to_owned(),
            created_at: now.get(),
        })
    }

    /// The organization with this id, if any.
    pub async fn organization_by_id(&self, id: Uuid) -> Result<Option<Organization>, AccountError> {
        let row: Option<OrganizationRow> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| Organization {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }))
    }

    /// Makes `customer_id` a plain member of `organization_id` (replacing any previous
    /// membership; no invitation, no audit record — for tools and tests) and records the
    /// administrative action in the access log in the same transaction.
    pub async fn add_organization_member(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), AccountError> {
        let detail = serde_json::json!({ "organization_id": organization_id });
        let event = admin_event(
            AccessAction::OrganizationMemberAdd,
            Subject::Customer(customer_id),
            actor,
            now,
            Some(detail.to_string()),
        );
        in_transaction!(self.store, |tx| {
            let org: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM organizations WHERE id = $1")
                    .bind(organization_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if org.is_none() {
                return Err(AccountError::OrganizationNotFound);
            }
            let customer: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
                    .bind(customer_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if customer.is_none() {
                return Err(AccountError::CustomerNotFound);
            }
            tx.join(organization_id, customer_id, MemberRole::Member, now)
                .await?;
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The organization's member customers, oldest first.
    pub async fn organization_members(
        &self,
        organization_id: Uuid,
    ) -> Result<Vec<Customer>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE organization_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<CustomerRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(organization_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(CustomerRow::into_customer)
            .collect::<Result<_, _>>()?)
    }
}

/// An access-log entry for an administrative action on `subject` by `actor`.
pub(crate) fn admin_event(
    action: AccessAction,
    subject: impl ToString,
    actor: &Actor,
    now: OffsetDateTime,
    detail: Option<String>,
) -> AccessEvent {
    AccessEvent {
        at: now,
        client_ip: actor.client_ip,
        action,
        outcome: AccessOutcome::Success,
        subject: subject.to_string(),
        actor: Some(actor.name.clone()),
        detail,
    }
}

// === impl CustomerRow ===

impl CustomerRow {
    fn into_customer(self) -> Result<Customer, StoreError> {
        Ok(Customer {
            id: self.id,
            email: self.email,
            kind: parse_column(&self.kind, "customers.kind")?,
            status: parse_column(&self.status, "customers.status")?,
            tier: Tier::new(&self.tier).map_err(|_| StoreError::CorruptRow {
                column: "customers.tier",
            })?,
            organization_id: self.organization_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A customer column an administrator changes (see `AccountsStore::change_customer`).
#[derive(Clone, Copy)]
enum CustomerChange<'a> {
    Status(CustomerStatus),
    Tier(&'a Tier),
}

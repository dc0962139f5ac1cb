//! The access log: client IP, time, action, outcome and subject of every login (success and
//! failure), API-key use, token refresh, logout and administrative action — the record-keeping
//! regulators ask cloud providers for. It is an operational record, not the tamper-evident
//! audit chain.
//!
//! API-key use is recorded when a key is verified against the store, i.e. once per fill of the
//! gateway's verified-key cache, not on every proxied request.

use std::net::IpAddr;

use sqlx::{Database, Encode, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::parse_column;
use crate::store::{AccessStore, DbTime, StoreError, on_pool};

/// Largest page [`AccessStore::access_log_for_subject`] returns.
pub const MAX_PAGE: u32 = 1000;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccessAction {
    /// Account sign-up.
    Signup,
    /// Password login (customer or staff).
    Login,
    /// Refresh-token exchange.
    TokenRefresh,
    /// Logout (refresh family revoked).
    Logout,
    /// A refresh token was presented twice; its family was revoked.
    RefreshReuse,
    /// An API key was verified against the store (once per cache fill).
    ApiKeyUse,
    /// An API key was created.
    ApiKeyCreate,
    /// An API key was revoked.
    ApiKeyRevoke,
    /// A customer's status changed.
    CustomerStatusChange,
    /// A customer's tier changed.
    CustomerTierChange,
    /// A customer joined an organization.
    OrganizationMemberAdd,
    /// An organization was created.
    OrganizationCreate,
    /// A staff user was created.
    StaffCreate,
    /// A password was changed or rehashed with new parameters.
    PasswordChange,
    /// The JWT signing key was rotated.
    SigningKeyRotate,
}

/// Whether the attempt succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    /// It succeeded.
    Success,
    /// It was refused or failed.
    Failure,
}

/// One access-log entry to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    /// When it happened.
    pub at: OffsetDateTime,
    /// Client address, `None` for local actions (CLI).
    pub client_ip: Option<IpAddr>,
    /// What was attempted.
    pub action: AccessAction,
    /// Whether it succeeded.
    pub outcome: AccessOutcome,
    /// Whom it concerns: `customer:<uuid>`, `staff:<uuid>`, `api_key:<id>`, or for a failed
    /// login of an unknown account `email:<normalized email>`.
    pub subject: String,
    /// Who did it, when not the subject itself (see [`crate::accounts::Actor`]).
    pub actor: Option<String>,
    /// Free-form detail (JSON for administrative actions). Never a secret.
    pub detail: Option<String>,
}

/// A stored access-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// The entry.
    pub event: AccessEvent,
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    id: Uuid,
    occurred_at: OffsetDateTime,
    client_ip: Option<String>,
    action: String,
    outcome: String,
    subject: String,
    actor: Option<String>,
    detail: Option<String>,
}

// === impl AccessAction, AccessOutcome ===

crate::names::stored_enum!(AccessAction {
    Signup => "signup",
    Login => "login",
    TokenRefresh => "token_refresh",
    Logout => "logout",
    RefreshReuse => "refresh_reuse",
    ApiKeyUse => "api_key_use",
    ApiKeyCreate => "api_key_create",
    ApiKeyRevoke => "api_key_revoke",
    CustomerStatusChange => "customer_status_change",
    CustomerTierChange => "customer_tier_change",
    OrganizationMemberAdd => "organization_member_add",
    OrganizationCreate => "organization_create",
    StaffCreate => "staff_create",
    PasswordChange => "password_change",
    SigningKeyRotate => "signing_key_rotate",
});
crate::names::stored_enum!(AccessOutcome { Success => "success", Failure => "failure" });

// === impl AccessEvent ===

impl AccessEvent {
    /// An event with no actor and no detail.
    pub fn new(
        at: OffsetDateTime,
        client_ip: Option<IpAddr>,
        action: AccessAction,
        outcome: AccessOutcome,
        subject: impl Into<String>,
    ) -> AccessEvent {
        AccessEvent {
            at,
            client_ip,
            action,
            outcome,
            subject: subject.into(),
            actor: None,
            detail: None,
        }
    }
}

// === impl AccessStore ===

impl AccessStore<'_> {
    /// Records one access-log entry and returns its id.
    pub async fn record_access(&self, event: &AccessEvent) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        on_pool!(self.store, |pool| insert_query(id, event)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(id)
    }

    /// The newest `limit` (at most [`MAX_PAGE`]) entries about `subject`, newest first.
    pub async fn access_log_for_subject(
        &self,
        subject: &str,
        limit: u32,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        const SQL: &str = "SELECT id, occurred_at, client_ip, action, outcome, subject, actor, detail \
             FROM access_log WHERE subject = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2";
        let limit = i64::from(limit.min(MAX_PAGE));
        let rows: Vec<AccessRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(SQL)
                .bind(subject)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AccessRow::into_record).collect()
    }
}

/// The insert for one entry, usable on a pool or inside a transaction of either backend.
pub(crate) fn insert_query<DB>(
    id: Uuid,
    event: &AccessEvent,
) -> sqlx::query::Query<'static, DB, <DB as Database>::Arguments>
where
    DB: Database,
    Uuid: for<'t> Encode<'t, DB> + Type<DB>,
    DbTime: for<'t> Encode<'t, DB> + Type<DB>,
    String: for<'t> Encode<'t, DB> + Type<DB>,
    Option<String>: for<'t> Encode<'t, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO access_log (id, occurred_at, client_ip, action, outcome, subject, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(DbTime::new(event.at))
    .bind(event.client_ip.map(|ip| ip.to_string()))
    .bind(event.action.as_str().to_owned())
    .bind(event.outcome.as_str().to_owned())
    .bind(event.subject.clone())
    .bind(event.actor.clone())
    .bind(event.detail.clone())
}

// === impl AccessRow ===

impl AccessRow {
    fn into_record(self) -> Result<AccessRecord, StoreError> {
        let client_ip = match self.client_ip {
            Some(ip) => Some(parse_column(&ip, "access_log.client_ip")?),
            None => None,
        };
        Ok(AccessRecord {
            id: self.id,
            event: AccessEvent {
                at: self.occurred_at,
                client_ip,
                action: parse_column(&self.action, "access_log.action")?,
                outcome: parse_column(&self.outcome, "access_log.outcome")?,
                subject: self.subject,
                actor: self.actor,
                detail: self.detail,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in AccessAction::ALL {
            assert_eq!(a.as_str().parse::<AccessAction>().unwrap(), a);
            // serde and the stored name agree.
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!("sudo".parse::<AccessAction>().is_err());
    }
}

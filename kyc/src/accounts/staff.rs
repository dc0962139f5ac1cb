//! Store operations on staff users.

use time::OffsetDateTime;
use uuid::Uuid;

use super::customers::admin_event;
use super::{
    AccountError, Actor, Email, StaffRole, StaffUser, Subject, normalize_email, parse_column,
};
use crate::access_log::{self, AccessAction};
use crate::store::{AccountsStore, DbTime, StoreError, in_transaction, on_pool};

/// The staff columns in [`StaffRow`] order, as a literal for `concat!`.
macro_rules! staff_columns {
    () => {
        "id, email, role, created_at, disabled_at"
    };
}

#[derive(sqlx::FromRow)]
struct StaffRow {
    id: Uuid,
    email: String,
    role: String,
    created_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct StaffCredentialRow {
    #[sqlx(flatten)]
    staff: StaffRow,
    password_hash: String,
}

// === impl AccountsStore ===

impl AccountsStore<'_> {
    /// Creates a staff user and records the administrative action by `actor` in the same
    /// transaction. Duplicate (normalized) email fails with [`AccountError::EmailTaken`].
    pub async fn create_staff(
        &self,
        email: &str,
        role: StaffRole,
        password_hash: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<StaffUser, AccountError> {
        let email = Email::parse(email)?;
        let id = Uuid::now_v7();
        let now = DbTime::new(now);
        let detail = serde_json::json!({ "role": role.as_str() });
        let event = admin_event(
            AccessAction::StaffCreate,
            Subject::Staff(id),
            actor,
            now.get(),
            Some(detail.to_string()),
        );
        in_transaction!(self.store, |tx| {
            let inserted = sqlx::query(
                "INSERT INTO staff_users (id, email, role, password_hash, created_at, disabled_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(id)
            .bind(email.as_str())
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(AccountError::EmailTaken);
                }
                Err(e) => return Err(e.into()),
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(StaffUser {
            id,
            email: email.as_str().to_owned(),
            role,
            created_at: now.get(),
            disabled_at: None,
        })
    }

    /// The staff user with this email (normalized before lookup), if any.
    pub async fn staff_by_email(&self, email: &str) -> Result<Option<StaffUser>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            staff_columns!(),
            " FROM staff_users WHERE email = $1"
        );
        let email = normalize_email(email);
        let row: Option<StaffRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(&email)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(StaffRow::into_staff).transpose()?)
    }

    /// The staff user with this id, if any.
    pub async fn staff_by_id(&self, id: Uuid) -> Result<Option<StaffUser>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            staff_columns!(),
            " FROM staff_users WHERE id = $1"
        );
        let row: Option<StaffRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(StaffRow::into_staff).transpose()?)
    }

    /// The staff user and stored password hash for a login attempt.
    pub(crate) async fn staff_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(StaffUser, String)>, AccountError> {
        const SQL: &str = concat!(
            "SELECT ",
            staff_columns!(),
            ", password_hash FROM staff_users WHERE email = $1"
        );
        let email = normalize_email(email);
        let row: Option<StaffCredentialRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(&email)
            .fetch_optional(pool)
            .await?);
        match row {
            Some(r) => Ok(Some((r.staff.into_staff()?, r.password_hash))),
            None => Ok(None),
        }
    }

    /// Replaces a staff user's password hash and records it in the same transaction.
    pub async fn set_staff_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), AccountError> {
        let event = admin_event(
            AccessAction::PasswordChange,
            Subject::Staff(id),
            actor,
            now,
            None,
        );
        in_transaction!(self.store, |tx| {
            let updated = sqlx::query("UPDATE staff_users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(AccountError::StaffNotFound);
            }
            access_log::insert_query(Uuid::now_v7(), &event)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }
}

// === impl StaffRow ===

impl StaffRow {
    fn into_staff(self) -> Result<StaffUser, StoreError> {
        Ok(StaffUser {
            id: self.id,
            email: self.email,
            role: parse_column(&self.role, "staff_users.role")?,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
        })
    }
}

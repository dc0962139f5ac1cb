//! Rows and the transaction-level operations every store operation of this module shares:
//! loading a case, persisting a transition with its audit record, and changing the customer
//! row (tier, status) the way `accounts` does. One body per backend through the crate-private
//! `CaseTx` trait, like [`crate::audit::append`].

use std::future::Future;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{Postgres, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::payload::{ApplicantKind, ApplicationPayload};
use super::state::{Applicant, Approval, Case, Granted, ScreeningOutcome, Transition};
use super::suspension::SuspensionReason;
use super::{ApplicationStatus, IdvOutcome, VerificationError};
use crate::access_log::{self, AccessAction, AccessEvent, AccessOutcome};
use crate::accounts::{Actor, CustomerStatus, Subject, Tier, parse_column};
use crate::audit::{self, AuditEntry, ChainTx};
use crate::crypto::{CryptoError, MasterKey};
use crate::store::{DbTime, StoreError};

/// `SELECT` of an application with its applicant, in [`AppRow`] order.
macro_rules! app_select {
    () => {
        "SELECT a.id, a.customer_id, a.kind, a.status, a.requested_tier, a.country, \
         a.screening_list_version, a.screening_score, a.screening_decision, \
         a.screening_overridden_by, a.risk_score, a.idv_outcome, a.granted_tier, a.expires_at, \
         a.claimed_by, a.claimed_at, a.version, a.created_at, a.updated_at, a.submitted_at, \
         a.decided_at, c.email, c.organization_id \
         FROM verification_applications a JOIN customers c ON c.id = a.customer_id "
    };
}
pub(super) use app_select;

const LOAD: &str = concat!(app_select!(), "WHERE a.id = $1");

const LOAD_APPROVALS: &str = "SELECT staff_id, tier, approved_at FROM verification_approvals \
     WHERE application_id = $1 ORDER BY approved_at, staff_id";

const PERSIST: &str = "UPDATE verification_applications SET status = $1, \
     screening_list_version = $2, screening_score = $3, screening_decision = $4, \
     screening_overridden_by = $5, granted_tier = $6, expires_at = $7, claimed_by = $8, \
     claimed_at = $9, submitted_at = $10, decided_at = $11, \
     reason_sealed = COALESCE($12, reason_sealed), review_sealed = COALESCE($13, review_sealed), \
     risk_score = COALESCE($14, risk_score), updated_at = $15, version = version + 1 \
     WHERE id = $16 AND version = $17";

/// An application row with its applicant's email and organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct AppRow {
    pub(super) id: Uuid,
    pub(super) customer_id: Uuid,
    pub(super) kind: String,
    pub(super) status: String,
    pub(super) requested_tier: Option<String>,
    pub(super) country: Option<String>,
    pub(super) screening_list_version: Option<String>,
    pub(super) screening_score: Option<f64>,
    pub(super) screening_decision: Option<String>,
    pub(super) screening_overridden_by: Option<Uuid>,
    pub(super) risk_score: Option<i64>,
    pub(super) idv_outcome: Option<String>,
    pub(super) granted_tier: Option<String>,
    pub(super) expires_at: Option<OffsetDateTime>,
    pub(super) claimed_by: Option<Uuid>,
    pub(super) claimed_at: Option<OffsetDateTime>,
    pub(super) version: i64,
    pub(super) created_at: OffsetDateTime,
    pub(super) updated_at: OffsetDateTime,
    pub(super) submitted_at: Option<OffsetDateTime>,
    pub(super) decided_at: Option<OffsetDateTime>,
    pub(super) email: String,
    pub(super) organization_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    staff_id: Uuid,
    tier: String,
    approved_at: OffsetDateTime,
}

/// A case read inside a transaction.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) row: AppRow,
    pub(super) case: Case,
}

/// Columns a store operation sets besides the case's own.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub(super) reason_sealed: Option<Vec<u8>>,
    pub(super) review_sealed: Option<Vec<u8>>,
    pub(super) risk_score: Option<i64>,
}

/// A change to the customer row that goes with a transition.
#[derive(Debug, Clone)]
pub(super) enum CustomerChange {
    Tier(Tier),
    Status(CustomerStatus),
}

/// Transaction-level operations, one body per backend.
pub(super) trait CaseTx: ChainTx {
    /// The case with this id, if any.
    fn load_case(
        &mut self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Loaded>, VerificationError>> + Send;

    /// Writes the transition's case columns (refusing if the row changed since `loaded` was
    /// read) and appends its audit record, last.
    fn persist<'a>(
        &'a mut self,
        loaded: &'a Loaded,
        t: &'a Transition,
        extra: Extra,
        actor: &'a Actor,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), VerificationError>> + Send + 'a;

    /// Changes the customer's tier or status with its access-log row, as `accounts` does
    /// (leaving `active` revokes refresh tokens). Returns the previous tier.
    fn change_customer<'a>(
        &'a mut self,
        customer_id: Uuid,
        change: &'a CustomerChange,
        actor: &'a Actor,
        reason: &'a str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Tier, VerificationError>> + Send + 'a;

    /// Whether the application has a compliance plan on file.
    fn has_compliance_plan(
        &mut self,
        id: Uuid,
    ) -> impl Future<Output = Result<bool, VerificationError>> + Send;

    /// Suspends an active customer for `reason` (status and reason code, refresh tokens
    /// revoked, access-log row), or records the new reason of one already suspended. Returns
    /// `false` for a closed or unknown customer (nothing changed).
    fn suspend_with_reason<'a>(
        &'a mut self,
        customer_id: Uuid,
        reason: SuspensionReason,
        actor: &'a Actor,
        why: &'a str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, VerificationError>> + Send + 'a;
}

macro_rules! case_tx_for {
    ($db:ty) => {
        impl CaseTx for Transaction<'_, $db> {
            fn load_case(
                &mut self,
                id: Uuid,
            ) -> impl Future<Output = Result<Option<Loaded>, VerificationError>> + Send {
                async move {
                    let row: Option<AppRow> =
                        sqlx::query_as(LOAD).bind(id).fetch_optional(&mut **self).await?;
                    let Some(row) = row else { return Ok(None) };
                    let approvals: Vec<ApprovalRow> = sqlx::query_as(LOAD_APPROVALS)
                        .bind(id)
                        .fetch_all(&mut **self)
                        .await?;
                    let case = row.case(approvals)?;
                    Ok(Some(Loaded { row, case }))
                }
            }

            fn persist<'a>(
                &'a mut self,
                loaded: &'a Loaded,
                t: &'a Transition,
                extra: Extra,
                actor: &'a Actor,
                now: OffsetDateTime,
            ) -> impl Future<Output = Result<(), VerificationError>> + Send + 'a {
                async move {
                    let c = Columns::new(&loaded.row, t, now);
                    let done = sqlx::query(PERSIST)
                        .bind(c.status)
                        .bind(c.list_version)
                        .bind(c.score)
                        .bind(c.decision)
                        .bind(c.overridden_by)
                        .bind(c.granted_tier)
                        .bind(c.expires_at)
                        .bind(c.claimed_by)
                        .bind(c.claimed_at)
                        .bind(c.submitted_at)
                        .bind(c.decided_at)
                        .bind(extra.reason_sealed)
                        .bind(extra.review_sealed)
                        .bind(extra.risk_score)
                        .bind(DbTime::new(now))
                        .bind(loaded.row.id)
                        .bind(loaded.row.version)
                        .execute(&mut **self)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(VerificationError::ConcurrentUpdate);
                    }
                    if let Case::PendingReview { approvals, .. } = &t.next {
                        sqlx::query("DELETE FROM verification_approvals WHERE application_id = $1")
                            .bind(loaded.row.id)
                            .execute(&mut **self)
                            .await?;
                        for a in approvals {
                            sqlx::query(
                                "INSERT INTO verification_approvals \
                                 (application_id, staff_id, tier, approved_at) VALUES ($1, $2, $3, $4)",
                            )
                            .bind(loaded.row.id)
                            .bind(a.staff_id)
                            .bind(a.tier.as_str())
                            .bind(DbTime::new(a.at))
                            .execute(&mut **self)
                            .await?;
                        }
                    }
                    let entry = transition_entry(loaded, t, actor, now);
                    audit::append(self, &entry).await?;
                    Ok(())
                }
            }

            fn change_customer<'a>(
                &'a mut self,
                customer_id: Uuid,
                change: &'a CustomerChange,
                actor: &'a Actor,
                reason: &'a str,
                now: OffsetDateTime,
            ) -> impl Future<Output = Result<Tier, VerificationError>> + Send + 'a {
                async move {
                    let previous: Option<String> =
                        sqlx::query_scalar("SELECT tier FROM customers WHERE id = $1")
                            .bind(customer_id)
                            .fetch_optional(&mut **self)
                            .await?;
                    let previous = previous.ok_or(VerificationError::NotFound)?;
                    let previous = Tier::new(&previous).map_err(|_| StoreError::CorruptRow {
                        column: "customers.tier",
                    })?;
                    let (sql, value, action, detail) = match change {
                        CustomerChange::Tier(tier) => (
                            "UPDATE customers SET tier = $1, updated_at = $2 WHERE id = $3",
                            tier.as_str().to_owned(),
                            AccessAction::CustomerTierChange,
                            serde_json::json!({ "tier": tier.as_str(), "reason": reason }),
                        ),
                        // A status change by this path clears the reason code; a suspension
                        // with a reason sets it afterwards (`suspend_with_reason`).
                        CustomerChange::Status(status) => (
                            "UPDATE customers SET status = $1, status_reason = NULL, \
                             updated_at = $2 WHERE id = $3",
                            status.as_str().to_owned(),
                            AccessAction::CustomerStatusChange,
                            serde_json::json!({ "status": status.as_str(), "reason": reason }),
                        ),
                    };
                    sqlx::query(sql)
                        .bind(value)
                        .bind(DbTime::new(now))
                        .bind(customer_id)
                        .execute(&mut **self)
                        .await?;
                    if let CustomerChange::Status(status) = change
                        && *status != CustomerStatus::Active
                    {
                        sqlx::query(
                            "UPDATE refresh_tokens SET revoked_at = $1 \
                             WHERE subject = $2 AND revoked_at IS NULL",
                        )
                        .bind(DbTime::new(now))
                        .bind(Subject::Customer(customer_id).to_string())
                        .execute(&mut **self)
                        .await?;
                    }
                    let event = AccessEvent {
                        at: now,
                        client_ip: actor.client_ip,
                        action,
                        outcome: AccessOutcome::Success,
                        subject: Subject::Customer(customer_id).to_string(),
                        actor: Some(actor.name.clone()),
                        detail: Some(detail.to_string()),
                    };
                    access_log::insert_query(Uuid::now_v7(), &event)
                        .execute(&mut **self)
                        .await?;
                    Ok(previous)
                }
            }

            fn has_compliance_plan(
                &mut self,
                id: Uuid,
            ) -> impl Future<Output = Result<bool, VerificationError>> + Send {
                async move {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM verification_documents \
                         WHERE application_id = $1 AND doc_type = 'compliance_plan'",
                    )
                    .bind(id)
                    .fetch_one(&mut **self)
                    .await?;
                    Ok(n > 0)
                }
            }

            fn suspend_with_reason<'a>(
                &'a mut self,
                customer_id: Uuid,
                reason: SuspensionReason,
                actor: &'a Actor,
                why: &'a str,
                now: OffsetDateTime,
            ) -> impl Future<Output = Result<bool, VerificationError>> + Send + 'a {
                async move {
                    let status: Option<String> =
                        sqlx::query_scalar("SELECT status FROM customers WHERE id = $1")
                            .bind(customer_id)
                            .fetch_optional(&mut **self)
                            .await?;
                    let status: CustomerStatus = match status {
                        Some(s) => parse_column(&s, "customers.status")?,
                        None => return Ok(false),
                    };
                    match status {
                        CustomerStatus::Closed => return Ok(false),
                        CustomerStatus::Suspended => {}
                        CustomerStatus::Active => {
                            let change = CustomerChange::Status(CustomerStatus::Suspended);
                            self.change_customer(customer_id, &change, actor, why, now)
                                .await?;
                        }
                    }
                    sqlx::query("UPDATE customers SET status_reason = $1 WHERE id = $2")
                        .bind(reason.as_str())
                        .bind(customer_id)
                        .execute(&mut **self)
                        .await?;
                    Ok(true)
                }
            }
        }
    };
}

case_tx_for!(Sqlite);
case_tx_for!(Postgres);

/// The audit record of a transition: subject `application:<id>`, detail with the customer.
fn transition_entry(
    loaded: &Loaded,
    t: &Transition,
    actor: &Actor,
    now: OffsetDateTime,
) -> AuditEntry {
    let mut detail = t.detail.clone();
    if let Some(map) = detail.as_object_mut() {
        map.insert(
            "customer_id".into(),
            serde_json::json!(loaded.row.customer_id),
        );
    }
    AuditEntry::new(
        now,
        actor,
        t.action,
        format!("application:{}", loaded.row.id),
    )
    .with_detail(detail)
}

/// The case columns after a transition.
struct Columns {
    status: &'static str,
    list_version: Option<String>,
    score: Option<f64>,
    decision: Option<&'static str>,
    overridden_by: Option<Uuid>,
    granted_tier: Option<String>,
    expires_at: Option<DbTime>,
    claimed_by: Option<Uuid>,
    claimed_at: Option<DbTime>,
    submitted_at: Option<DbTime>,
    decided_at: Option<DbTime>,
}

impl Columns {
    fn new(row: &AppRow, t: &Transition, now: OffsetDateTime) -> Columns {
        let next = t.next.status();
        let mut c = Columns {
            status: next.as_str(),
            list_version: row.screening_list_version.clone(),
            score: row.screening_score,
            decision: row
                .screening_decision
                .as_deref()
                .and_then(|d| d.parse::<super::ScreeningDecision>().ok())
                .map(|d| d.as_str()),
            overridden_by: row.screening_overridden_by,
            granted_tier: row.granted_tier.clone(),
            expires_at: row.expires_at.map(DbTime::new),
            claimed_by: row.claimed_by,
            claimed_at: row.claimed_at.map(DbTime::new),
            submitted_at: row.submitted_at.map(DbTime::new),
            decided_at: row.decided_at.map(DbTime::new),
        };
        match &t.next {
            Case::PendingReview { screening, .. } => {
                c.list_version = Some(screening.list_version.clone());
                c.score = Some(screening.score);
                c.decision = Some(screening.decision.as_str());
                c.overridden_by = screening.overridden_by;
            }
            Case::Approved(g) | Case::Suspended(g) => {
                c.granted_tier = Some(g.tier.as_str().to_owned());
                c.expires_at = g.expires_at.map(DbTime::new);
            }
            Case::Submitted => c.submitted_at = Some(DbTime::new(now)),
            _ => {}
        }
        if next != ApplicationStatus::PendingReview {
            c.claimed_by = None;
            c.claimed_at = None;
        }
        if matches!(
            next,
            ApplicationStatus::Approved
                | ApplicationStatus::Rejected
                | ApplicationStatus::NeedsInfo
        ) && t.detail["from"] != serde_json::json!("suspended")
        {
            c.decided_at = Some(DbTime::new(now));
        }
        c
    }
}

// === impl AppRow ===

impl AppRow {
    pub(super) fn status(&self) -> Result<ApplicationStatus, StoreError> {
        parse_column(&self.status, "verification_applications.status")
    }

    pub(super) fn kind(&self) -> Result<ApplicantKind, StoreError> {
        parse_column(&self.kind, "verification_applications.kind")
    }

    pub(super) fn idv(&self) -> Result<Option<IdvOutcome>, StoreError> {
        self.idv_outcome
            .as_deref()
            .map(|s| parse_column(s, "verification_applications.idv_outcome"))
            .transpose()
    }

    pub(super) fn granted_tier(&self) -> Result<Option<Tier>, StoreError> {
        self.granted_tier
            .as_deref()
            .map(|t| {
                Tier::new(t).map_err(|_| StoreError::CorruptRow {
                    column: "verification_applications.granted_tier",
                })
            })
            .transpose()
    }

    /// The stored screening outcome, if screening completed.
    pub(super) fn screening(&self) -> Result<Option<ScreeningOutcome>, StoreError> {
        let (Some(list_version), Some(score), Some(decision)) = (
            &self.screening_list_version,
            self.screening_score,
            &self.screening_decision,
        ) else {
            return Ok(None);
        };
        Ok(Some(ScreeningOutcome {
            list_version: list_version.clone(),
            score,
            decision: parse_column(decision, "verification_applications.screening_decision")?,
            overridden_by: self.screening_overridden_by,
        }))
    }

    pub(super) fn applicant(&self) -> Result<Applicant, StoreError> {
        Ok(Applicant {
            customer_id: self.customer_id,
            email: self.email.clone(),
            organization_id: self.organization_id,
            kind: self.kind()?,
        })
    }

    fn case(&self, approvals: Vec<ApprovalRow>) -> Result<Case, StoreError> {
        let corrupt = |column| StoreError::CorruptRow { column };
        let granted = || -> Result<Granted, StoreError> {
            let tier = self
                .granted_tier()?
                .ok_or(corrupt("verification_applications.granted_tier"))?;
            let screening = self
                .screening()?
                .ok_or(corrupt("verification_applications.screening_decision"))?;
            Granted::restore(tier, self.expires_at, &screening)
                .map_err(|_| corrupt("verification_applications.screening_decision"))
        };
        Ok(match self.status()? {
            ApplicationStatus::Draft => Case::Draft,
            ApplicationStatus::Submitted => Case::Submitted,
            ApplicationStatus::Screening => Case::Screening,
            ApplicationStatus::PendingReview => Case::PendingReview {
                screening: self
                    .screening()?
                    .ok_or(corrupt("verification_applications.screening_decision"))?,
                approvals: approvals
                    .into_iter()
                    .map(|a| {
                        Ok(Approval {
                            staff_id: a.staff_id,
                            tier: Tier::new(&a.tier)
                                .map_err(|_| corrupt("verification_approvals.tier"))?,
                            at: a.approved_at,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
            },
            ApplicationStatus::NeedsInfo => Case::NeedsInfo,
            ApplicationStatus::Approved => Case::Approved(granted()?),
            ApplicationStatus::Rejected => Case::Rejected,
            ApplicationStatus::Suspended => Case::Suspended(granted()?),
            ApplicationStatus::Expired => Case::Expired,
            ApplicationStatus::Closed => Case::Closed,
        })
    }
}

/// An application's sealed payload with its retention marker, for [`open_payload`].
pub(super) const PAYLOAD_OF: &str =
    "SELECT payload_sealed, identity_purged_at FROM verification_applications WHERE id = $1";

/// A row of [`PAYLOAD_OF`].
pub(super) type SealedPayload = (Vec<u8>, Option<OffsetDateTime>);

/// Opens application `id`'s payload read by [`PAYLOAD_OF`]; one that retention withdrew is
/// [`VerificationError::IdentityPurged`], never a failed decryption of the emptied column.
pub(super) fn open_payload(
    key: &MasterKey,
    id: Uuid,
    (sealed, purged_at): &SealedPayload,
) -> Result<ApplicationPayload, VerificationError> {
    match purged_at {
        Some(at) => Err(VerificationError::IdentityPurged { at: *at }),
        None => open_json(key, id, super::applications::PAYLOAD, sealed),
    }
}

/// Seals a value as JSON, bound to `id` and a purpose label.
pub(super) fn seal_json<T: Serialize>(
    key: &MasterKey,
    id: Uuid,
    purpose: &str,
    value: &T,
) -> Result<Vec<u8>, VerificationError> {
    let json = serde_json::to_vec(value).map_err(|_| CryptoError::SealFailed)?;
    Ok(key.seal(&json, &aad(id, purpose))?)
}

/// Opens a value sealed by [`seal_json`].
pub(super) fn open_json<T: DeserializeOwned>(
    key: &MasterKey,
    id: Uuid,
    purpose: &str,
    sealed: &[u8],
) -> Result<T, VerificationError> {
    let json = key.open(sealed, &aad(id, purpose))?;
    Ok(serde_json::from_slice(&json).map_err(|_| CryptoError::OpenFailed)?)
}

/// The payload's associated data is the bare application id (as the design says); other
/// sealed columns add a purpose label so they cannot be swapped with it.
fn aad(id: Uuid, purpose: &str) -> Vec<u8> {
    let mut aad = id.as_bytes().to_vec();
    if !purpose.is_empty() {
        aad.push(b':');
        aad.extend_from_slice(purpose.as_bytes());
    }
    aad
}

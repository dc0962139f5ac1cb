//! Suspensions the verification flow imposes by itself, and the screening hold on compute.
//!
//! A confirmed denied-party match (a reviewer rejects a case whose screening is a `hit`), an
//! application naming an embargoed jurisdiction, and a new hit found by a re-screen each suspend
//! the customer at once — whatever their tier, trial included — with a bounded [`SuspensionReason`]
//! the data plane shows in its 403 problem, in the same transaction as the decision and with its
//! own audit record (`kyc.customer.suspended`, or the re-screen's `kyc.rescreen.suspended`). A
//! screening `hit` still awaiting review does not suspend: it bars job submission only
//! ([`VerificationStore::screening_hold`]) until a reviewer clears or confirms it.

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::VerificationError;
use super::records::CaseTx;
use crate::accounts::Actor;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::store::{VerificationStore, in_transaction, on_pool};

/// Audit action of a suspension the verification flow imposed (subject `customer:<id>`).
pub const SUSPENDED_ACTION: AuditAction = AuditAction::CustomerSuspended;

/// Why a customer is suspended: a bounded code, shown to the customer as the 403 problem's
/// `reason` and usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspensionReason {
    /// A reviewer confirmed a denied-party screening match.
    DeniedParty,
    /// The application names an embargoed jurisdiction.
    EmbargoedJurisdiction,
    /// A re-screen against a new list version found a new hit; pending review.
    ScreeningHit,
    /// Staff (or an operator) suspended the account.
    Staff,
}

// === impl SuspensionReason ===

impl SuspensionReason {
    /// Every reason.
    pub const ALL: [SuspensionReason; 4] = [
        SuspensionReason::DeniedParty,
        SuspensionReason::EmbargoedJurisdiction,
        SuspensionReason::ScreeningHit,
        SuspensionReason::Staff,
    ];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            SuspensionReason::DeniedParty => "denied_party",
            SuspensionReason::EmbargoedJurisdiction => "embargoed_jurisdiction",
            SuspensionReason::ScreeningHit => "screening_hit",
            SuspensionReason::Staff => "staff",
        }
    }

    /// The reason of a stored code; an unknown or missing code reads as [`SuspensionReason::Staff`]
    /// (suspensions without a code are administrative ones).
    pub fn from_code(code: Option<&str>) -> SuspensionReason {
        SuspensionReason::ALL
            .into_iter()
            .find(|r| Some(r.as_str()) == code)
            .unwrap_or(SuspensionReason::Staff)
    }
}

/// Suspends `customer_id` for `reason` inside `tx` and appends the audit record `action` with
/// `detail` (plus the reason code). Nothing happens to a closed or unknown customer.
pub(super) async fn suspend<T: CaseTx>(
    tx: &mut T,
    customer_id: Uuid,
    reason: SuspensionReason,
    action: AuditAction,
    mut detail: Value,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<bool, VerificationError> {
    let why = format!("suspended: {}", reason.as_str());
    if !tx
        .suspend_with_reason(customer_id, reason, actor, &why, now)
        .await?
    {
        return Ok(false);
    }
    if let Some(map) = detail.as_object_mut() {
        map.insert("reason".into(), json!(reason.as_str()));
    }
    let entry =
        AuditEntry::new(now, actor, action, format!("customer:{customer_id}")).with_detail(detail);
    audit::append(tx, &entry).await?;
    Ok(true)
}

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// Suspends `customer_id` for `reason` with the audit record `action` (+ `detail`) in one
    /// transaction; `false` when the customer is closed or unknown. Callers publish
    /// `Notice::CustomerChanged` afterwards.
    pub async fn suspend_for_verification(
        &self,
        customer_id: Uuid,
        reason: SuspensionReason,
        action: AuditAction,
        detail: Value,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, VerificationError> {
        let done = in_transaction!(self.store, |tx| {
            suspend(&mut tx, customer_id, reason, action, detail, actor, now).await?
        });
        Ok(done)
    }

    /// Why `customer_id` is suspended (`None` when the customer is unknown).
    pub async fn suspension_reason(
        &self,
        customer_id: Uuid,
    ) -> Result<Option<SuspensionReason>, VerificationError> {
        let row: Option<Option<String>> = on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT status_reason FROM customers WHERE id = $1"
        )
        .bind(customer_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|code| SuspensionReason::from_code(code.as_deref())))
    }

    /// Whether a denied-party screening `hit` of one of the customer's applications awaits a
    /// reviewer (pending review or back with the applicant, not overridden): such a customer
    /// may not submit jobs until a reviewer clears the match (override) or confirms it
    /// (reject, which suspends).
    pub async fn screening_hold(&self, customer_id: Uuid) -> Result<bool, VerificationError> {
        // COUNT(*) is a 64-bit integer on both backends (a bare `1` is 32-bit on PostgreSQL).
        let held: i64 = on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM verification_applications WHERE customer_id = $1 \
             AND status IN ('pending_review', 'needs_info') AND screening_decision = 'hit' \
             AND screening_overridden_by IS NULL"
        )
        .bind(customer_id)
        .fetch_one(pool)
        .await?);
        Ok(held > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_a_missing_code_is_staff() {
        for r in SuspensionReason::ALL {
            assert_eq!(SuspensionReason::from_code(Some(r.as_str())), r);
        }
        assert_eq!(SuspensionReason::from_code(None), SuspensionReason::Staff);
        assert_eq!(
            SuspensionReason::from_code(Some("whatever")),
            SuspensionReason::Staff
        );
    }
}

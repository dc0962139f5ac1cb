//! The one conflict-of-interest check for staff actions that touch a customer: a staff member
//! may not act on an account tied to them — the same email, or the same organization. The rule
//! itself is [`check_conflict`](super::state::check_conflict), the one the application state
//! machine applies to verification decisions; this module applies it to any customer (job-review
//! decisions, group links, report filing), loading both sides from the store.
//!
//! A staff member's organizations are those the caller names plus the organizations of any
//! customer account registered with the staff member's own email (a reviewer who is also a
//! customer is tied to that customer's organization).

use uuid::Uuid;

use super::state::{Applicant, check_conflict};
use super::{StaffCaller, VerificationError};
use crate::accounts::parse_column;
use crate::store::{VerificationStore, on_pool};

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// Refuses ([`TransitionError::ConflictOfInterest`](super::TransitionError)) when the staff
    /// member is tied to `customer_id`; [`VerificationError::NotFound`] when there is no such
    /// customer, [`VerificationError::StaffUnknown`] for a disabled or unknown staff member.
    pub async fn check_staff_conflict(
        &self,
        staff: &StaffCaller,
        customer_id: Uuid,
    ) -> Result<(), VerificationError> {
        let party = self.staff_party(staff).await?;
        let row: Option<(String, Option<Uuid>, String)> = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT email, organization_id, kind FROM customers WHERE id = $1")
                .bind(customer_id)
                .fetch_optional(pool)
                .await?
        });
        let (email, organization_id, kind) = row.ok_or(VerificationError::NotFound)?;
        let customer = Applicant {
            customer_id,
            email,
            organization_id,
            kind: parse_column(&kind, "customers.kind")?,
        };
        check_conflict(&party, &customer)?;
        Ok(())
    }

    /// The organizations of customer accounts registered with `email` (a staff member's ties).
    pub(super) async fn organizations_of_email(
        &self,
        email: &str,
    ) -> Result<Vec<Uuid>, VerificationError> {
        let orgs: Vec<Uuid> = on_pool!(self.store, |pool| {
            sqlx::query_scalar(
                "SELECT organization_id FROM customers \
                 WHERE lower(email) = lower($1) AND organization_id IS NOT NULL",
            )
            .bind(email)
            .fetch_all(pool)
            .await?
        });
        Ok(orgs)
    }
}

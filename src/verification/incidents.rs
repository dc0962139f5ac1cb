//! Abuse incidents through the [`Verification`] service: staff record an incident, read and list
//! them, move one along open → reported → closed, export one as a STIX bundle, and read the
//! review flags partners' bundles raised on a customer. Anything that names customers goes
//! through the conflict-of-interest guard first, like every staff action on a customer (a
//! refusal is audited as `kyc.staff_action.refused`); the store writes each change with its
//! audit record.

use computegate_kyc::incidents::{
    ImportReport, Incident, IncidentError, IncidentFlag, IncidentStatus, IncidentSummary,
    NewIncident, Provider, Sharing,
};
use computegate_kyc::verification::{StaffCaller, VerificationError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Verification;

/// Why a staff operation on incidents failed: the incident rules, or the staff guard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentActionError {
    /// Refused or failed by the incident rules or the store.
    #[error(transparent)]
    Incident(#[from] IncidentError),
    /// Refused by the staff guard (conflict of interest, unknown staff user).
    #[error(transparent)]
    Staff(#[from] VerificationError),
}

// === impl Verification ===

impl Verification {
    /// The provider identity this deployment's bundles carry.
    pub fn stix_provider(&self) -> Provider {
        Provider::of(self.master(), Provider::DEFAULT_NAME)
    }

    /// Records `request` for a staff member tied to none of its customers.
    pub async fn record_incident(
        &self,
        caller: &StaffCaller,
        request: NewIncident,
        now: OffsetDateTime,
    ) -> Result<Incident, IncidentActionError> {
        let valid = request.validate()?;
        self.guard_staff_action(
            caller,
            valid.customers(),
            "incident:new".into(),
            "incident.create",
        )
        .await?;
        let incident = self
            .store()
            .incidents()
            .create_incident(self.master(), &valid, &caller.actor(), now)
            .await?;
        Ok(incident)
    }

    /// Incident `id` with its indicator values, for a staff member tied to none of its
    /// customers.
    pub async fn incident_for_staff(
        &self,
        caller: &StaffCaller,
        id: Uuid,
    ) -> Result<Incident, IncidentActionError> {
        let incident = self
            .store()
            .incidents()
            .incident(self.master(), id)
            .await?
            .ok_or(IncidentError::NotFound)?;
        self.guard_staff_action(
            caller,
            &incident.customers,
            format!("incident:{id}"),
            "incident.view",
        )
        .await?;
        Ok(incident)
    }

    /// A page of incidents, newest first (no indicator values).
    pub async fn incident_page(
        &self,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<IncidentSummary>, IncidentActionError> {
        Ok(self.store().incidents().incident_page(after, limit).await?)
    }

    /// Moves incident `id` to `to`.
    pub async fn move_incident(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        to: IncidentStatus,
        now: OffsetDateTime,
    ) -> Result<IncidentSummary, IncidentActionError> {
        let incident = self.incident_for_staff(caller, id).await?;
        let summary = self
            .store()
            .incidents()
            .set_incident_status(incident.id, to, &caller.actor(), now)
            .await?;
        Ok(summary)
    }

    /// Incident `id` as a STIX bundle for `sharing` (the export is audited).
    pub async fn incident_bundle(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        sharing: Sharing,
        now: OffsetDateTime,
    ) -> Result<serde_json::Value, IncidentActionError> {
        let incident = self.incident_for_staff(caller, id).await?;
        let (bundle, _) = self
            .store()
            .incidents()
            .export_bundle(
                self.master(),
                &self.stix_provider(),
                Some(incident.id),
                sharing,
                &caller.actor(),
                now,
            )
            .await?;
        Ok(bundle)
    }

    /// Imports a partner's bundle: each customer one of its indicators matches gets a review
    /// flag (audited with the import).
    pub async fn import_incident_bundle(
        &self,
        caller: &StaffCaller,
        bundle: &[u8],
        now: OffsetDateTime,
    ) -> Result<ImportReport, IncidentActionError> {
        let report = self
            .store()
            .incidents()
            .import_bundle(
                self.master(),
                &self.stix_provider(),
                bundle,
                &caller.actor(),
                now,
            )
            .await?;
        Ok(report)
    }

    /// The review flags partners' bundles raised on `customer_id`, for a staff member not tied
    /// to the customer.
    pub async fn incident_flags(
        &self,
        caller: &StaffCaller,
        customer_id: Uuid,
    ) -> Result<Vec<IncidentFlag>, IncidentActionError> {
        self.guard_staff_action(
            caller,
            &[customer_id],
            format!("customer:{customer_id}"),
            "incident.flags.view",
        )
        .await?;
        Ok(self
            .store()
            .incidents()
            .flags_of_customer(customer_id)
            .await?)
    }
}

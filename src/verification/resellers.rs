//! Resellers through the [`Verification`] service: staff mark a KYB-verified organization as
//! reseller, suspend or resume it and work the flagged ones; a reseller's accounts register end
//! customers — validated like an application, screened at once against the latest list with the
//! same engine and the same parties, and stored with the outcome — and read them back. Staff
//! actions go through the conflict-of-interest guard (against the organization's owner) like
//! every staff action on a customer. What a reseller's job runs as is decided at admission
//! (`ledger_port`), from the store, so nothing here needs to tell the data plane's caches.

use computegate_kyc::accounts::Tier;
use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::verification::{
    ApplicationPayload, CustomerCaller, EndCustomer, EndCustomerDecision,
    EndCustomerScreeningResult, NewEndCustomer, Registration, Reseller, ResellerAction,
    ResellerError, ResellerStatus, ScreeningDecision, StaffCaller, StaffEndCustomer,
    validate_identity,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Verification, screen_subjects, subjects_of};

// === impl Verification ===

impl Verification {
    /// Staff mark organization `id` as a reseller (KYB-verified organizations only).
    pub async fn mark_reseller(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Reseller, ResellerError> {
        self.guard_reseller_action(caller, id, "reseller.mark")
            .await?;
        self.store()
            .verification()
            .mark_reseller(id, &caller.actor(), now)
            .await
    }

    /// Staff suspend or resume reseller `id`, with `reason` in the audit record.
    pub async fn change_reseller(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        action: ResellerAction,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Reseller, ResellerError> {
        let attempted = match action {
            ResellerAction::Suspend => "reseller.suspend",
            ResellerAction::Resume => "reseller.resume",
        };
        self.guard_reseller_action(caller, id, attempted).await?;
        self.store()
            .verification()
            .change_reseller(id, action, reason, &caller.actor(), now)
            .await
    }

    /// A page of resellers (of one standing, when given), longest in it first.
    pub async fn resellers(
        &self,
        status: Option<ResellerStatus>,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Reseller>, ResellerError> {
        self.store()
            .verification()
            .resellers_page(status, after, limit)
            .await
    }

    /// Reseller `id` as staff see it.
    pub async fn reseller(&self, id: Uuid) -> Result<Reseller, ResellerError> {
        (self.store().verification().reseller(id).await?).ok_or(ResellerError::NotFound)
    }

    /// Staff clear or refuse end customer `id` whose screening is under review (checked for
    /// conflicts against its reseller's owner).
    pub async fn decide_end_customer(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        decision: EndCustomerDecision,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), ResellerError> {
        let found = self
            .store()
            .verification()
            .end_customer_for_staff(self.master(), id)
            .await?;
        let reseller = found
            .ok_or(ResellerError::NotFound)?
            .end_customer
            .reseller_id;
        self.guard_reseller_action(caller, reseller, "end_customer.decide")
            .await?;
        self.store()
            .verification()
            .decide_end_customer(id, decision, reason, &caller.actor(), now)
            .await?;
        Ok(())
    }

    /// End customer `id` with its identity, for staff not tied to its reseller; the read is
    /// audited (`kyc.end_customer.viewed`).
    pub async fn end_customer_for_staff(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<StaffEndCustomer, ResellerError> {
        let found = self
            .store()
            .verification()
            .end_customer_for_staff(self.master(), id)
            .await?;
        let found = found.ok_or(ResellerError::NotFound)?;
        self.guard_reseller_action(caller, found.end_customer.reseller_id, "end_customer.view")
            .await?;
        let entry = AuditEntry::new(
            now,
            &caller.actor(),
            AuditAction::EndCustomerViewed,
            format!("customer:{id}"),
        );
        self.store()
            .audit()
            .record_audit(&entry)
            .await
            .map_err(ResellerError::Store)?;
        Ok(found)
    }

    /// The caller's reseller registers an end customer with `payload` (every bad field at
    /// once), screened now: `cleared`, `review` (the review band, or no list imported yet) or
    /// `refused` (a hit, which suspends the end customer's account at once). The end customer's
    /// account carries the caller's tier, whose caps its jobs run under.
    pub async fn register_end_customer(
        &self,
        caller: &CustomerCaller,
        tier: &str,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<Registration, ResellerError> {
        let reseller = self.reseller_of_caller(caller).await?;
        validate_identity(payload, now)?;
        let tier = Tier::new(tier).map_err(|_| ResellerError::NotReseller)?;
        let screening = self.screen_end_customer(payload).await?;
        let new = NewEndCustomer {
            reseller_id: reseller,
            payload,
            screening: &screening,
            tier: &tier,
        };
        let registered = self
            .store()
            .verification()
            .register_end_customer(self.master(), &new, &caller.actor(), now)
            .await?;
        if registered.already_registered {
            // No new end customer, yet a reseller submitting an identity again (perhaps spelt
            // another way, perhaps screened another way now) belongs in the record beside it.
            let entry = AuditEntry::new(
                now,
                &caller.actor(),
                AuditAction::EndCustomerRegistrationRepeated,
                format!("customer:{}", registered.end_customer.id),
            )
            .with_detail(serde_json::json!({
                "reseller_id": reseller,
                "screening_now": screening.decision.as_str(),
                "list_version": screening.list_version,
                "score": screening.score,
            }));
            self.store()
                .audit()
                .record_audit(&entry)
                .await
                .map_err(ResellerError::Store)?;
        } else {
            self.stats_changed();
        }
        Ok(registered)
    }

    /// End customer `id` of the caller's reseller.
    pub async fn end_customer(
        &self,
        caller: &CustomerCaller,
        id: Uuid,
    ) -> Result<EndCustomer, ResellerError> {
        let reseller = self.reseller_of_caller(caller).await?;
        let found = self
            .store()
            .verification()
            .end_customer(reseller, id)
            .await?;
        found.ok_or(ResellerError::NotFound)
    }

    /// A page of the caller's reseller's end customers, newest first.
    pub async fn end_customers(
        &self,
        caller: &CustomerCaller,
        after: Option<(OffsetDateTime, Uuid)>,
        limit: u32,
    ) -> Result<Vec<EndCustomer>, ResellerError> {
        let reseller = self.reseller_of_caller(caller).await?;
        self.store()
            .verification()
            .end_customers_page(reseller, after, limit)
            .await
    }

    /// The reseller the caller acts for; refused for anyone else, and for a suspended one.
    async fn reseller_of_caller(&self, caller: &CustomerCaller) -> Result<Uuid, ResellerError> {
        match self
            .store()
            .verification()
            .reseller_of(caller.customer_id)
            .await?
        {
            None => Err(ResellerError::NotReseller),
            Some((_, ResellerStatus::Suspended)) => Err(ResellerError::Suspended),
            Some((id, _)) => Ok(id),
        }
    }

    /// Screens an end customer's parties (those of an application with the same identity)
    /// against the latest list; with no list imported, nothing is cleared.
    async fn screen_end_customer(
        &self,
        payload: &ApplicationPayload,
    ) -> Result<EndCustomerScreeningResult, ResellerError> {
        let Some(list) = self.current_list().await? else {
            return Ok(EndCustomerScreeningResult {
                list_version: None,
                decision: ScreeningDecision::Review,
                score: 0.0,
            });
        };
        let (summary, results) = screen_subjects(&list, &subjects_of(payload));
        let hits = results
            .iter()
            .filter(|(_, r)| r.decision == computegate_kyc::screening::Decision::Hit)
            .count();
        self.metrics()
            .screening_hits(list.version.format, hits as u64);
        Ok(EndCustomerScreeningResult {
            list_version: Some(summary.list_version.clone()),
            decision: summary.decision(),
            score: summary.score(),
        })
    }

    /// The conflict-of-interest guard for a staff action on organization `id` (checked
    /// against its owner; refusals audited).
    async fn guard_reseller_action(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        attempted: &'static str,
    ) -> Result<(), ResellerError> {
        let owner = self.store().verification().organization_owner(id).await?;
        let owners: Vec<Uuid> = owner.into_iter().collect();
        let subject = format!("organization:{id}");
        self.guard_staff_action(caller, &owners, subject, attempted)
            .await?;
        Ok(())
    }
}

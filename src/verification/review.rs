//! Staff review operations through the [`Verification`] service: case files, claims,
//! decisions, screening overrides, customer suspension and document downloads, and the
//! conflict-of-interest guard of the other staff actions on customers. A refusal that is
//! a denial — a role that may not, a staff member tied to the applicant, the same reviewer
//! approving twice — is written to the audit chain (`kyc.staff_action.refused`): attempts beyond
//! one's role matter to auditors. Decisions are counted in the funnel, and every change of a
//! customer's status or tier is announced to the data plane here.

use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::cluster::Notice;
use computegate_kyc::verification::{
    ApplicationStatus, DecisionOutcome, DecisionRequest, StaffApplicationView, StaffCaller,
    StaffDecision, StaffDocument, TransitionError, VerificationError,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{CustomerAction, Verification};

// === impl Verification ===

impl Verification {
    /// The case file of application `id` (the read is audited by the store).
    pub async fn case_file(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<StaffApplicationView, VerificationError> {
        let view = self
            .store()
            .verification()
            .application_for_staff(self.master(), caller, id, now)
            .await;
        self.audit_denial(caller, application(id), "view", view)
            .await
    }

    /// Claims application `id` for the caller.
    pub async fn claim(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let done = self
            .store()
            .verification()
            .claim_application(caller, id, now)
            .await;
        self.audit_denial(caller, application(id), "claim", done)
            .await
    }

    /// Releases the caller's claim on application `id`.
    pub async fn unclaim(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let done = self
            .store()
            .verification()
            .unclaim_application(caller, id, now)
            .await;
        self.audit_denial(caller, application(id), "unclaim", done)
            .await
    }

    /// Decides application `id`, counts the decision, and tells the data plane when a tier was
    /// granted or the case rejected (which suspends a confirmed denied-party match).
    pub async fn decide(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        request: DecisionRequest,
        now: OffsetDateTime,
    ) -> Result<DecisionOutcome, VerificationError> {
        let approving = matches!(request.action, StaffDecision::Approve { .. });
        let outcome = self
            .store()
            .verification()
            .decide_application(self.master(), caller, id, request, now)
            .await;
        let outcome = self
            .audit_denial(caller, application(id), "decide", outcome)
            .await?;
        match outcome.status {
            ApplicationStatus::Approved => {
                self.metrics().decision("approved");
                self.metrics().funnel("approved");
            }
            ApplicationStatus::Rejected => {
                self.metrics().decision("rejected");
                self.metrics().funnel("rejected");
            }
            ApplicationStatus::NeedsInfo => self.metrics().decision("info_requested"),
            _ if approving => self.metrics().decision("first_approval"),
            _ => {}
        }
        self.stats_changed();
        // A grant changes the tier; a rejection may suspend (a confirmed denied-party match).
        if outcome.granted_tier.is_some() || outcome.status == ApplicationStatus::Rejected {
            match self.owner_of(id).await {
                Some(customer_id) => self.customer_changed(customer_id).await,
                // Unknown owner: drop every cached principal rather than serve a stale tier.
                None => self.identity().announce(Notice::Resync).await,
            }
        }
        Ok(outcome)
    }

    /// Rules a `review`/`hit` screening match of application `id` a false positive.
    pub async fn override_screening(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let done = self
            .store()
            .verification()
            .override_application_screening(caller, id, reason, now)
            .await;
        self.audit_denial(caller, application(id), "override_screening", done)
            .await
    }

    /// Suspends, resumes or closes a customer and tells the data plane at once.
    pub async fn act_on_customer(
        &self,
        caller: &StaffCaller,
        customer_id: Uuid,
        action: CustomerAction,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let store = self.store();
        let done = match action {
            CustomerAction::Suspend => {
                store
                    .verification()
                    .suspend_customer(caller, customer_id, reason, now)
                    .await
            }
            CustomerAction::Resume => {
                store
                    .verification()
                    .resume_customer(caller, customer_id, reason, now)
                    .await
            }
            CustomerAction::Close => {
                store
                    .verification()
                    .close_customer(caller, customer_id, reason, now)
                    .await
            }
        };
        let subject = format!("customer:{customer_id}");
        self.audit_denial(caller, subject, action.name(), done)
            .await?;
        self.customer_changed(customer_id).await;
        Ok(())
    }

    /// Document `id` with its decrypted bytes; the download is audited by the store before the
    /// bytes leave.
    pub async fn download(
        &self,
        caller: &StaffCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<StaffDocument, VerificationError> {
        let doc = self
            .store()
            .verification()
            .document_for_staff(self.master(), caller, id, now)
            .await;
        self.audit_denial(caller, format!("document:{id}"), "download", doc)
            .await
    }

    /// The conflict-of-interest guard of staff actions outside the application workflow (job
    /// reviews, group links, report filing): refuses, and audits the refusal as
    /// `kyc.staff_action.refused` naming `attempted` and `subject`, when the staff member is
    /// tied to any of `customers` (same email or organization). A customer that does not exist
    /// is left to the action itself to report.
    pub async fn guard_staff_action(
        &self,
        caller: &StaffCaller,
        customers: &[Uuid],
        subject: String,
        attempted: &'static str,
    ) -> Result<(), VerificationError> {
        for &customer in customers {
            match self
                .store()
                .verification()
                .check_staff_conflict(caller, customer)
                .await
            {
                Ok(()) | Err(VerificationError::NotFound) => {}
                Err(e) => return self.audit_denial(caller, subject, attempted, Err(e)).await,
            }
        }
        Ok(())
    }

    /// Passes `result` through; a denial is first written to the audit chain.
    async fn audit_denial<T>(
        &self,
        caller: &StaffCaller,
        subject: String,
        attempted: &'static str,
        result: Result<T, VerificationError>,
    ) -> Result<T, VerificationError> {
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let denial = matches!(
            e,
            VerificationError::RoleNotPermitted
                | VerificationError::Transition(
                    TransitionError::ConflictOfInterest
                        | TransitionError::NotPermitted { .. }
                        | TransitionError::DuplicateApprover
                )
        );
        if denial {
            let entry = AuditEntry::new(
                OffsetDateTime::now_utc(),
                &caller.actor(),
                AuditAction::StaffActionRefused,
                subject,
            )
            .with_detail(serde_json::json!({ "attempted": attempted, "why": e.to_string() }));
            if let Err(err) = self.store().audit().record_audit(&entry).await {
                tracing::warn!(error = %err, "could not record a refused staff action");
            }
            tracing::info!(staff = %caller.staff_id, attempted, why = %e, "staff action refused");
        }
        Err(e)
    }
}

/// The audit subject of application `id`.
fn application(id: Uuid) -> String {
    format!("application:{id}")
}

//! What an audit record says happened: every action the product writes to the chain.
//!
//! One variant per action, stored as `<area>.<noun>.<past-tense verb>` (lowercase, see
//! [`is_valid_action`](super::is_valid_action)) so staff can filter on it. The stored strings
//! are data: records already in the chain hold them and their hashes cover them, so a name is
//! never changed, only added. Records read back keep their action as text
//! ([`AuditRecord::action`](super::AuditRecord::action)), because the chain may hold names
//! from older or newer versions.

use crate::names::stored_enum;

/// An action written to the audit chain. Exhaustive inside the workspace: a new action is a
/// new variant here, and every `match` on it must say what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A customer opened a KYC/KYB application.
    ApplicationCreated,
    /// A customer changed a draft or a needs-info application.
    ApplicationUpdated,
    /// A customer submitted an application.
    ApplicationSubmitted,
    /// Staff opened an application (personal data read).
    ApplicationViewed,
    /// Staff claimed an application for review.
    ApplicationClaimed,
    /// Staff released a claim.
    ApplicationUnclaimed,
    /// Screening found a confirmed hit; the application was rejected without review.
    ApplicationAutoRejected,
    /// Staff rejected an application.
    ApplicationRejected,
    /// Staff asked the applicant for more.
    ApplicationInfoRequested,
    /// The first of two senior approvals for the top tier.
    ApplicationApprovalRecorded,
    /// An application was approved and its tier granted.
    ApplicationApproved,
    /// An approved application was suspended.
    ApplicationSuspended,
    /// A suspended application was resumed.
    ApplicationResumed,
    /// An application was closed.
    ApplicationClosed,
    /// An application expired (re-verification due).
    ApplicationExpired,
    /// A newer application replaced this one.
    ApplicationSuperseded,
    /// Screening of an application began.
    ScreeningStarted,
    /// Screening of an application finished.
    ScreeningCompleted,
    /// Staff overrode a screening result.
    ScreeningOverridden,
    /// A customer uploaded a document.
    DocumentUploaded,
    /// Staff downloaded a document.
    DocumentDownloaded,
    /// An identity-verification provider reported a result.
    IdvRecorded,
    /// Re-screening found a hit and suspended the customer's approval.
    RescreenSuspended,
    /// The verification flow suspended a customer by itself (a confirmed denied-party match,
    /// an embargoed jurisdiction), with the reason code.
    CustomerSuspended,
    /// A staff action was refused (role, four-eyes or state).
    StaffActionRefused,
    /// Staff changed a customer's status (suspend, resume, close).
    CustomerStatusChanged,
    /// A denied-party list was imported.
    ScreeningListImported,
    /// A re-screening run over every approved customer finished.
    RescreenCompleted,
    /// A job was admitted against the budgets.
    JobAdmitted,
    /// A job was held for staff review.
    JobHeld,
    /// A job was denied.
    JobDenied,
    /// A job's reservation was released.
    JobReleased,
    /// A job's lease ended without a final usage event; closed at its reservation.
    JobExpired,
    /// A customer or staff closed a job.
    JobClosed,
    /// The approval a never-run job consumed was given back.
    ReviewRestored,
    /// A report of a never-run job was withdrawn.
    ReportWithdrawn,
    /// A usage event was applied to a job.
    UsageRecorded,
    /// Customers were linked into one group.
    GroupLinked,
    /// Staff unlinked a customer from its group.
    GroupUnlinked,
    /// A threshold crossing created a training-run report.
    ReportCreated,
    /// Staff filed a report with the authority.
    ReportFiled,
    /// Staff attached identity data to a report.
    ReportIdentityAttached,
    /// Staff exported reports.
    ReportsExported,
    /// Staff approved a held job.
    LedgerReviewApproved,
    /// Staff denied a held job.
    LedgerReviewDenied,
    /// A KYB approval created the applicant's organization and made the applicant its owner.
    OrganizationCreated,
    /// A KYB re-verification linked the applicant's existing organization (owner kept).
    OrganizationLinked,
    /// An organization's owner invited an email address to join.
    InvitationCreated,
    /// An organization's owner revoked a pending invitation.
    InvitationRevoked,
    /// A customer accepted an invitation and joined the organization.
    MemberJoined,
    /// Staff removed a member from an organization.
    MemberRemoved,
    /// Staff read an organization's membership (personal data read).
    MembershipViewed,
    /// Staff recorded an abuse incident.
    IncidentCreated,
    /// Staff moved an incident along open → reported → closed.
    IncidentStatusChanged,
    /// Incidents were exported as a STIX bundle (for a partner or an authority).
    IncidentsExported,
    /// A partner's STIX bundle was imported.
    IncidentBundleImported,
    /// A partner's indicator matched a customer, who got a review flag.
    IncidentFlagRaised,
    /// A retention run purged or redacted expired records (counts per class only).
    RetentionApplied,
    /// Staff marked a KYB-verified organization as a reseller.
    ResellerMarked,
    /// The pass-through rule flagged a reseller for review (too many jobs refused for their
    /// end customer).
    ResellerFlagged,
    /// Staff suspended a reseller: none of its jobs run.
    ResellerSuspended,
    /// Staff resumed a suspended or flagged reseller.
    ResellerResumed,
    /// A reseller registered an end customer (screened at once).
    EndCustomerRegistered,
    /// A reseller registered again an identity it had registered: no new end customer, the
    /// existing one answered (`already_registered`).
    EndCustomerRegistrationRepeated,
    /// Staff cleared or refused an end customer whose screening was in the review band.
    EndCustomerDecided,
    /// Staff opened an end customer's identity (personal data read).
    EndCustomerViewed,
    /// A policy was put in force (at start-up or on reload) that differs from the last one
    /// recorded: version, effective date, digest of its text, trigger.
    PolicyLoaded,
}

stored_enum!(AuditAction {
    ApplicationCreated => "kyc.application.created",
    ApplicationUpdated => "kyc.application.updated",
    ApplicationSubmitted => "kyc.application.submitted",
    ApplicationViewed => "kyc.application.viewed",
    ApplicationClaimed => "kyc.application.claimed",
    ApplicationUnclaimed => "kyc.application.unclaimed",
    ApplicationAutoRejected => "kyc.application.auto_rejected",
    ApplicationRejected => "kyc.application.rejected",
    ApplicationInfoRequested => "kyc.application.info_requested",
    ApplicationApprovalRecorded => "kyc.application.approval_recorded",
    ApplicationApproved => "kyc.application.approved",
    ApplicationSuspended => "kyc.application.suspended",
    ApplicationResumed => "kyc.application.resumed",
    ApplicationClosed => "kyc.application.closed",
    ApplicationExpired => "kyc.application.expired",
    ApplicationSuperseded => "kyc.application.superseded",
    ScreeningStarted => "kyc.screening.started",
    ScreeningCompleted => "kyc.screening.completed",
    ScreeningOverridden => "kyc.screening.overridden",
    DocumentUploaded => "kyc.document.uploaded",
    DocumentDownloaded => "kyc.document.downloaded",
    IdvRecorded => "kyc.idv.recorded",
    RescreenSuspended => "kyc.rescreen.suspended",
    CustomerSuspended => "kyc.customer.suspended",
    StaffActionRefused => "kyc.staff_action.refused",
    CustomerStatusChanged => "customer.status.changed",
    ScreeningListImported => "screening.list.imported",
    RescreenCompleted => "screening.rescreen.completed",
    JobAdmitted => "ledger.job.admitted",
    JobHeld => "ledger.job.held",
    JobDenied => "ledger.job.denied",
    JobReleased => "ledger.job.released",
    JobExpired => "ledger.job.expired",
    JobClosed => "ledger.job.closed",
    ReviewRestored => "ledger.review.restored",
    ReportWithdrawn => "ledger.report.withdrawn",
    UsageRecorded => "ledger.usage.recorded",
    GroupLinked => "ledger.group.linked",
    GroupUnlinked => "ledger.group.unlinked",
    ReportCreated => "ledger.report.created",
    ReportFiled => "ledger.report.filed",
    ReportIdentityAttached => "ledger.report.identity_attached",
    ReportsExported => "ledger.reports.exported",
    LedgerReviewApproved => "ledger.review.approved",
    LedgerReviewDenied => "ledger.review.denied",
    OrganizationCreated => "kyc.organization.created",
    OrganizationLinked => "kyc.organization.linked",
    InvitationCreated => "organization.invitation.created",
    InvitationRevoked => "organization.invitation.revoked",
    MemberJoined => "organization.member.joined",
    MemberRemoved => "organization.member.removed",
    MembershipViewed => "organization.membership.viewed",
    IncidentCreated => "incident.incident.created",
    IncidentStatusChanged => "incident.status.changed",
    IncidentsExported => "incident.bundle.exported",
    IncidentBundleImported => "incident.bundle.imported",
    IncidentFlagRaised => "incident.flag.raised",
    RetentionApplied => "retention.run.completed",
    ResellerMarked => "kyc.reseller.marked",
    ResellerFlagged => "kyc.reseller.flagged",
    ResellerSuspended => "kyc.reseller.suspended",
    ResellerResumed => "kyc.reseller.resumed",
    EndCustomerRegistered => "kyc.end_customer.registered",
    EndCustomerRegistrationRepeated => "kyc.end_customer.registration_repeated",
    EndCustomerDecided => "kyc.end_customer.decided",
    EndCustomerViewed => "kyc.end_customer.viewed",
    PolicyLoaded => "policy.version.loaded",
});

// === impl AuditAction ===

impl AsRef<str> for AuditAction {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for AuditAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for AuditAction {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::is_valid_action;

    #[test]
    fn every_action_follows_the_naming_rule_and_round_trips() {
        for action in AuditAction::ALL {
            assert!(is_valid_action(action), "{action}");
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
        }
        assert_eq!(AuditAction::ALL.len(), 67);
        assert_eq!(
            AuditAction::ReportIdentityAttached,
            "ledger.report.identity_attached"
        );
    }
}

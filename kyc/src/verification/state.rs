//! The application state machine, as pure values:
//!
//! ```text
//! draft ──submit──▶ submitted ──begin_application_screening──▶ screening ──complete_screening──▶ pending_review
//!   ▲                   │ auto_reject (embargo)        │ auto_reject                   │
//!   │                   ▼                              ▼                               ├─approve(tier)─▶ approved(tier)
//! needs_info ◀──request_info─────────────────────────────────────────────────────────┤                 │
//!   └──submit──▶ submitted                                                           └─reject─▶ rejected
//!
//! approved ──suspend──▶ suspended ──resume──▶ approved      approved|suspended ──close──▶ closed
//! approved ──expire (re-verification due) | supersede (newer approval)──▶ expired
//! ```
//!
//! [`Case::apply`] consumes the current case and returns a [`Transition`] — the next case plus
//! the one audit record describing the move — or a [`TransitionError`]. Only the allowed party
//! moves each edge: the applicant submits, the system screens and expires, staff decide.
//!
//! An approved case holds a [`ScreeningCleared`], which only [`ScreeningCleared::check`] can
//! make, from a screening outcome that is clear or was overridden by staff. So no code path —
//! including loading a stored case — yields `approved` without a cleared screening. The top
//! tier (`validated_end_user`) needs two distinct `senior_reviewer` approvals and a compliance
//! plan on file; no staff member may act on a case of their own organization or their own
//! email. An approval also needs the evidence the tier's policy `requires` (a verified IDV
//! outcome, a compliance plan), or — where the kind allows it — the reviewer's documented manual
//! check, which the audit record carries as such.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use computegate_policy::Evidence;

use super::payload::ApplicantKind;
use crate::accounts::{StaffRole, Tier};
use crate::audit::AuditAction;
use crate::names::stored_enum;

/// Longest decision reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    /// Being filled in by the customer.
    Draft,
    /// Handed in; waiting for screening.
    Submitted,
    /// Being screened against denied-party lists.
    Screening,
    /// Waiting for a staff decision.
    PendingReview,
    /// Staff asked the customer for more; the customer edits and resubmits.
    NeedsInfo,
    /// Approved to a tier.
    Approved,
    /// Refused (by staff, or automatically for an embargoed jurisdiction).
    Rejected,
    /// Approval suspended by staff.
    Suspended,
    /// Approval lapsed (re-verification due) or replaced by a newer one.
    Expired,
    /// Closed for good.
    Closed,
}

/// A screening decision (the screening engine's decision for the worst-scoring party).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreeningDecision {
    /// Below the review threshold.
    Clear,
    /// In the review band: a person decides.
    Review,
    /// At or above the hit threshold.
    Hit,
}

/// The screening result an application's review rests on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScreeningOutcome {
    /// The list version screened against.
    pub list_version: String,
    /// Highest score among the screened parties, `[0, 1]`.
    pub score: f64,
    /// Decision for the worst party.
    pub decision: ScreeningDecision,
    /// The staff member who ruled a `review` / `hit` a false positive, if any.
    pub overridden_by: Option<Uuid>,
}

/// Proof that the screening behind an approval was clear or overridden. Its fields are
/// private: the only way to get one is [`ScreeningCleared::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningCleared {
    list_version: String,
    overridden_by: Option<Uuid>,
}

/// One staff approval on the way to an approved case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Approval {
    /// Who approved.
    pub staff_id: Uuid,
    /// To which tier.
    pub tier: Tier,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A granted tier: what an approved (or suspended) case carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    /// The tier granted.
    pub tier: Tier,
    /// When re-verification is due, if the tier has a period.
    pub expires_at: Option<OffsetDateTime>,
    cleared: ScreeningCleared,
}

/// An application's state with the data each state needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Case {
    /// See [`ApplicationStatus::Draft`].
    Draft,
    /// See [`ApplicationStatus::Submitted`].
    Submitted,
    /// See [`ApplicationStatus::Screening`].
    Screening,
    /// Waiting for staff, with the screening it rests on and approvals so far.
    PendingReview {
        /// The screening outcome.
        screening: ScreeningOutcome,
        /// Approvals given so far (only the top tier needs more than one).
        approvals: Vec<Approval>,
    },
    /// See [`ApplicationStatus::NeedsInfo`].
    NeedsInfo,
    /// Approved.
    Approved(Granted),
    /// See [`ApplicationStatus::Rejected`].
    Rejected,
    /// Approval suspended; resuming restores it.
    Suspended(Granted),
    /// See [`ApplicationStatus::Expired`].
    Expired,
    /// See [`ApplicationStatus::Closed`].
    Closed,
}

/// A staff member acting on a case, with what conflict checks need. The caller supplies the
/// organizations the staff member belongs to (or is otherwise tied to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffParty {
    /// Staff user id.
    pub id: Uuid,
    /// Role.
    pub role: StaffRole,
    /// Normalized email.
    pub email: String,
    /// Organizations the staff member is tied to.
    pub organization_ids: Vec<Uuid>,
}

/// Who is moving the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A customer (only the applicant may act).
    Customer(Uuid),
    /// The system: screening, jurisdiction rules, expiry.
    System,
    /// A staff member.
    Staff(StaffParty),
}

/// The applicant, for ownership and conflict checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    /// The customer who applied.
    pub customer_id: Uuid,
    /// Their normalized email.
    pub email: String,
    /// Their organization, if any.
    pub organization_id: Option<Uuid>,
    /// Individual or organization application.
    pub kind: ApplicantKind,
}

/// Facts a transition may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseContext {
    /// The applicant.
    pub applicant: Applicant,
    /// Whether a `compliance_plan` document is on file.
    pub has_compliance_plan: bool,
    /// Whether the latest identity-verification outcome of the application is `verified`.
    pub idv_verified: bool,
    /// Re-verification period of the tier being approved (policy), if any.
    pub reverify_after: Option<Duration>,
    /// Now.
    pub now: OffsetDateTime,
}

/// The evidence side of an approval: what the tier's policy requires on file, and the checks the
/// reviewer documents in place of evidence that is not on file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalEvidence {
    /// The tier's `requires` list (policy data).
    pub required: Vec<Evidence>,
    /// Manual checks the reviewer documents, one per evidence kind at most.
    pub manual_checks: Vec<ManualCheck>,
}

/// A reviewer's documented check standing in for evidence that is not on file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManualCheck {
    /// The evidence it stands in for (one whose kind allows a manual check).
    pub evidence: Evidence,
    /// What the reviewer checked and how (1..=1000 characters).
    pub note: String,
}

/// What happens to a case.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The applicant hands the application in.
    Submit,
    /// The system starts screening.
    BeginScreening,
    /// The system records the screening outcome.
    CompleteScreening(ScreeningOutcome),
    /// The system refuses the application (embargoed jurisdiction).
    AutoReject {
        /// Why.
        reason: String,
    },
    /// Staff rule a screening match a false positive.
    OverrideScreening {
        /// Why.
        reason: String,
    },
    /// Staff approve to a tier.
    Approve {
        /// The tier granted.
        tier: Tier,
        /// Why.
        reason: String,
        /// What the tier requires and the reviewer's manual checks.
        evidence: ApprovalEvidence,
    },
    /// Staff reject.
    Reject {
        /// Why.
        reason: String,
    },
    /// Staff ask the applicant for more.
    RequestInfo {
        /// What is needed.
        reason: String,
    },
    /// Staff suspend an approval.
    Suspend {
        /// Why.
        reason: String,
    },
    /// Staff lift a suspension.
    Resume {
        /// Why.
        reason: String,
    },
    /// Staff close the case for good.
    Close {
        /// Why.
        reason: String,
    },
    /// The system lets a due approval lapse.
    Expire,
    /// The system retires an approval replaced by a newer one.
    Supersede,
}

/// The result of a transition: the next case and the audit record that describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The case after the move.
    pub next: Case,
    /// Audit action, e.g. `kyc.application.approved`.
    pub action: AuditAction,
    /// Audit detail: `from`, `to`, and the event's data (reason, tier, …).
    pub detail: serde_json::Value,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The event does not apply in this state.
    #[error("cannot {event} an application that is {from}")]
    NotAllowed {
        /// Current status.
        from: ApplicationStatus,
        /// The event's name.
        event: &'static str,
    },
    /// This party may not do this (wrong kind of actor, role or customer).
    #[error("not permitted to {event}")]
    NotPermitted {
        /// The event's name.
        event: &'static str,
    },
    /// The staff member is tied to the applicant (same organization or same person).
    #[error("staff member is tied to the applicant and may not act on this application")]
    ConflictOfInterest,
    /// Approval needs a clear (or overridden) screening.
    #[error("screening is not clear")]
    ScreeningNotCleared,
    /// The top tier needs a compliance plan on file.
    #[error("a compliance plan document is required for this tier")]
    CompliancePlanMissing,
    /// The tier's policy requires evidence that is neither on file nor covered by a manual check.
    #[error(
        "approval to {tier} needs evidence that is missing: {}",
        display_list(missing)
    )]
    EvidenceMissing {
        /// The tier applied for.
        tier: String,
        /// Each missing kind, in policy order.
        missing: Vec<Evidence>,
    },
    /// A manual check was offered for evidence that must be on file.
    #[error("{0} cannot be replaced by a manual check; it must be on file")]
    ManualCheckNotAccepted(Evidence),
    /// The tier cannot be granted to this kind of application.
    #[error("tier {0} cannot be granted to this application")]
    TierNotAllowed(String),
    /// The same reviewer approved twice; a second, different senior reviewer is needed.
    #[error("this reviewer already approved; a second senior reviewer must approve")]
    DuplicateApprover,
    /// The approval is not due to expire yet.
    #[error("approval is not due for re-verification")]
    NotDue,
    /// A reason is required (1..=1000 characters).
    #[error("a reason of 1..={MAX_REASON_CHARS} characters is required")]
    ReasonRequired,
}

// === impl ScreeningCleared ===

impl ScreeningCleared {
    /// The proof, when `outcome` is clear or was overridden by staff.
    pub fn check(outcome: &ScreeningOutcome) -> Result<ScreeningCleared, TransitionError> {
        if outcome.decision == ScreeningDecision::Clear || outcome.overridden_by.is_some() {
            Ok(ScreeningCleared {
                list_version: outcome.list_version.clone(),
                overridden_by: outcome.overridden_by,
            })
        } else {
            Err(TransitionError::ScreeningNotCleared)
        }
    }

    /// The list version the cleared screening used.
    pub fn list_version(&self) -> &str {
        &self.list_version
    }

    /// Who overrode a match, when the screening was not clear by itself.
    pub fn overridden_by(&self) -> Option<Uuid> {
        self.overridden_by
    }
}

// === impl Granted ===

impl Granted {
    /// Rebuilds a granted tier from stored data; refuses when the stored screening is not
    /// cleared (a corrupt or tampered row).
    pub fn restore(
        tier: Tier,
        expires_at: Option<OffsetDateTime>,
        screening: &ScreeningOutcome,
    ) -> Result<Granted, TransitionError> {
        Ok(Granted {
            tier,
            expires_at,
            cleared: ScreeningCleared::check(screening)?,
        })
    }

    /// The screening proof the grant rests on.
    pub fn cleared(&self) -> &ScreeningCleared {
        &self.cleared
    }
}

// === impl Case ===

impl Case {
    /// The status name of this case.
    pub fn status(&self) -> ApplicationStatus {
        match self {
            Case::Draft => ApplicationStatus::Draft,
            Case::Submitted => ApplicationStatus::Submitted,
            Case::Screening => ApplicationStatus::Screening,
            Case::PendingReview { .. } => ApplicationStatus::PendingReview,
            Case::NeedsInfo => ApplicationStatus::NeedsInfo,
            Case::Approved(_) => ApplicationStatus::Approved,
            Case::Rejected => ApplicationStatus::Rejected,
            Case::Suspended(_) => ApplicationStatus::Suspended,
            Case::Expired => ApplicationStatus::Expired,
            Case::Closed => ApplicationStatus::Closed,
        }
    }

    /// Applies `event` by `party`, consuming the case.
    pub fn apply(
        self,
        party: &Party,
        event: Event,
        ctx: &CaseContext,
    ) -> Result<Transition, TransitionError> {
        let from = self.status();
        let name = event.name();
        let not_allowed = TransitionError::NotAllowed { from, event: name };
        let (next, action, extra) = match (self, event) {
            (Case::Draft | Case::NeedsInfo, Event::Submit) => {
                require_applicant(party, ctx, name)?;
                (
                    Case::Submitted,
                    AuditAction::ApplicationSubmitted,
                    json!({}),
                )
            }
            (Case::Submitted, Event::BeginScreening) => {
                require_system(party, name)?;
                (Case::Screening, AuditAction::ScreeningStarted, json!({}))
            }
            (Case::Screening, Event::CompleteScreening(outcome)) => {
                require_system(party, name)?;
                let extra = json!({
                    "list_version": outcome.list_version,
                    "score": outcome.score,
                    "decision": outcome.decision,
                });
                let next = Case::PendingReview {
                    screening: ScreeningOutcome {
                        overridden_by: None,
                        ..outcome
                    },
                    approvals: Vec::new(),
                };
                (next, AuditAction::ScreeningCompleted, extra)
            }
            (Case::Submitted | Case::Screening, Event::AutoReject { reason }) => {
                require_system(party, name)?;
                let reason = check_reason(reason)?;
                (
                    Case::Rejected,
                    AuditAction::ApplicationAutoRejected,
                    json!({ "reason": reason }),
                )
            }
            (Case::PendingReview { screening, .. }, Event::OverrideScreening { reason }) => {
                let staff = require_staff(party, ctx, name, REVIEWERS)?;
                let reason = check_reason(reason)?;
                if screening.decision == ScreeningDecision::Clear
                    || screening.overridden_by.is_some()
                {
                    return Err(not_allowed);
                }
                if screening.decision == ScreeningDecision::Hit
                    && staff.role != StaffRole::SeniorReviewer
                {
                    return Err(TransitionError::NotPermitted { event: name });
                }
                let extra = json!({ "reason": reason, "decision": screening.decision });
                let next = Case::PendingReview {
                    screening: ScreeningOutcome {
                        overridden_by: Some(staff.id),
                        ..screening
                    },
                    approvals: Vec::new(),
                };
                (next, AuditAction::ScreeningOverridden, extra)
            }
            (
                Case::PendingReview {
                    screening,
                    approvals,
                },
                Event::Approve {
                    tier,
                    reason,
                    evidence,
                },
            ) => return approve(party, ctx, screening, approvals, tier, reason, evidence),
            (Case::PendingReview { .. }, Event::Reject { reason }) => {
                require_staff(party, ctx, name, REVIEWERS)?;
                let reason = check_reason(reason)?;
                (
                    Case::Rejected,
                    AuditAction::ApplicationRejected,
                    json!({ "reason": reason }),
                )
            }
            (Case::PendingReview { .. }, Event::RequestInfo { reason }) => {
                require_staff(party, ctx, name, REVIEWERS)?;
                let reason = check_reason(reason)?;
                (
                    Case::NeedsInfo,
                    AuditAction::ApplicationInfoRequested,
                    json!({ "reason": reason }),
                )
            }
            (Case::Approved(granted), Event::Suspend { reason }) => {
                require_staff(party, ctx, name, SUSPENDERS)?;
                let reason = check_reason(reason)?;
                let extra = json!({ "reason": reason, "tier": granted.tier.as_str() });
                (
                    Case::Suspended(granted),
                    AuditAction::ApplicationSuspended,
                    extra,
                )
            }
            (Case::Suspended(granted), Event::Resume { reason }) => {
                require_staff(party, ctx, name, SENIORS)?;
                let reason = check_reason(reason)?;
                let extra = json!({ "reason": reason, "tier": granted.tier.as_str() });
                (
                    Case::Approved(granted),
                    AuditAction::ApplicationResumed,
                    extra,
                )
            }
            (Case::Approved(_) | Case::Suspended(_), Event::Close { reason }) => {
                require_staff(party, ctx, name, SENIORS)?;
                let reason = check_reason(reason)?;
                (
                    Case::Closed,
                    AuditAction::ApplicationClosed,
                    json!({ "reason": reason }),
                )
            }
            (Case::Approved(granted), Event::Expire) => {
                require_system(party, name)?;
                match granted.expires_at {
                    Some(due) if due <= ctx.now => {}
                    _ => return Err(TransitionError::NotDue),
                }
                let extra = json!({ "tier": granted.tier.as_str() });
                (Case::Expired, AuditAction::ApplicationExpired, extra)
            }
            (Case::Approved(granted), Event::Supersede) => {
                require_system(party, name)?;
                let extra = json!({ "tier": granted.tier.as_str() });
                (Case::Expired, AuditAction::ApplicationSuperseded, extra)
            }
            _ => return Err(not_allowed),
        };
        Ok(Transition::new(from, next, action, extra))
    }
}

/// Who may review, override and decide.
const REVIEWERS: &[StaffRole] = &[StaffRole::Reviewer, StaffRole::SeniorReviewer];
/// Who may suspend an approval.
const SUSPENDERS: &[StaffRole] = &[
    StaffRole::Reviewer,
    StaffRole::SeniorReviewer,
    StaffRole::Admin,
];
/// Who may resume or close.
const SENIORS: &[StaffRole] = &[StaffRole::SeniorReviewer, StaffRole::Admin];

/// The approval edge: single approval for ordinary tiers, two distinct seniors for the top tier.
fn approve(
    party: &Party,
    ctx: &CaseContext,
    screening: ScreeningOutcome,
    mut approvals: Vec<Approval>,
    tier: Tier,
    reason: String,
    evidence: ApprovalEvidence,
) -> Result<Transition, TransitionError> {
    const NAME: &str = "approve";
    let staff = require_staff(party, ctx, NAME, REVIEWERS)?;
    let reason = check_reason(reason)?;
    check_tier_fits(&tier, ctx.applicant.kind)?;
    let cleared = ScreeningCleared::check(&screening)?;
    let on_file = check_evidence(ctx, &tier, &evidence)?;
    let top = tier.as_str() == Tier::VALIDATED_END_USER;
    if top {
        if staff.role != StaffRole::SeniorReviewer {
            return Err(TransitionError::NotPermitted { event: NAME });
        }
        if !ctx.has_compliance_plan {
            return Err(TransitionError::CompliancePlanMissing);
        }
        // Earlier approvals count only toward the same tier.
        approvals.retain(|a| a.tier == tier);
        if approvals.iter().any(|a| a.staff_id == staff.id) {
            return Err(TransitionError::DuplicateApprover);
        }
    } else {
        approvals.clear();
    }
    approvals.push(Approval {
        staff_id: staff.id,
        tier: tier.clone(),
        at: ctx.now,
    });
    let approvers: Vec<Uuid> = approvals.iter().map(|a| a.staff_id).collect();
    let extra = json!({
        "reason": reason,
        "tier": tier.as_str(),
        "approvers": approvers,
        "evidence": { "on_file": on_file, "manual_checks": evidence.manual_checks },
    });
    if top && approvals.len() < 2 {
        let next = Case::PendingReview {
            screening,
            approvals,
        };
        return Ok(Transition::new(
            ApplicationStatus::PendingReview,
            next,
            AuditAction::ApplicationApprovalRecorded,
            extra,
        ));
    }
    let granted = Granted {
        tier,
        expires_at: ctx.reverify_after.map(|d| ctx.now + d),
        cleared,
    };
    Ok(Transition::new(
        ApplicationStatus::PendingReview,
        Case::Approved(granted),
        AuditAction::ApplicationApproved,
        extra,
    ))
}

/// The required evidence on file, or the refusal naming what is missing. A manual check counts
/// only for a kind that allows one; one offered for any other kind is refused outright.
fn check_evidence(
    ctx: &CaseContext,
    tier: &Tier,
    evidence: &ApprovalEvidence,
) -> Result<Vec<Evidence>, TransitionError> {
    if let Some(check) =
        (evidence.manual_checks.iter()).find(|c| !c.evidence.manual_check_allowed())
    {
        return Err(TransitionError::ManualCheckNotAccepted(check.evidence));
    }
    let on_file = |e: Evidence| match e {
        Evidence::IdvVerified => ctx.idv_verified,
        Evidence::CompliancePlan => ctx.has_compliance_plan,
    };
    let checked = |e: Evidence| evidence.manual_checks.iter().any(|c| c.evidence == e);
    let missing: Vec<Evidence> = (evidence.required.iter().copied())
        .filter(|e| !on_file(*e) && !checked(*e))
        .collect();
    if !missing.is_empty() {
        return Err(TransitionError::EvidenceMissing {
            tier: tier.as_str().to_owned(),
            missing,
        });
    }
    Ok(Evidence::ALL.into_iter().filter(|e| on_file(*e)).collect())
}

fn display_list(items: &[Evidence]) -> String {
    items
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_tier_fits(tier: &Tier, kind: ApplicantKind) -> Result<(), TransitionError> {
    let fits = match tier.as_str() {
        Tier::UNVERIFIED => false,
        Tier::IDENTITY_VERIFIED => kind == ApplicantKind::Individual,
        Tier::ORGANIZATION_VERIFIED | Tier::VALIDATED_END_USER => {
            kind == ApplicantKind::Organization
        }
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(TransitionError::TierNotAllowed(tier.as_str().to_owned()))
    }
}

fn require_applicant(
    party: &Party,
    ctx: &CaseContext,
    event: &'static str,
) -> Result<(), TransitionError> {
    match party {
        Party::Customer(id) if *id == ctx.applicant.customer_id => Ok(()),
        _ => Err(TransitionError::NotPermitted { event }),
    }
}

fn require_system(party: &Party, event: &'static str) -> Result<(), TransitionError> {
    match party {
        Party::System => Ok(()),
        _ => Err(TransitionError::NotPermitted { event }),
    }
}

/// A staff party with one of `roles`, not tied to the applicant.
fn require_staff<'p>(
    party: &'p Party,
    ctx: &CaseContext,
    event: &'static str,
    roles: &[StaffRole],
) -> Result<&'p StaffParty, TransitionError> {
    let Party::Staff(staff) = party else {
        return Err(TransitionError::NotPermitted { event });
    };
    if !roles.contains(&staff.role) {
        return Err(TransitionError::NotPermitted { event });
    }
    check_conflict(staff, &ctx.applicant)?;
    Ok(staff)
}

/// Refuses a staff member tied to the applicant: the same email, or a member of the
/// applicant's organization.
pub fn check_conflict(staff: &StaffParty, applicant: &Applicant) -> Result<(), TransitionError> {
    let same_person = staff.email.eq_ignore_ascii_case(&applicant.email);
    let same_org = applicant
        .organization_id
        .is_some_and(|org| staff.organization_ids.contains(&org));
    if same_person || same_org {
        Err(TransitionError::ConflictOfInterest)
    } else {
        Ok(())
    }
}

fn check_reason(reason: String) -> Result<String, TransitionError> {
    let trimmed = reason.trim();
    if trimmed.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(TransitionError::ReasonRequired);
    }
    Ok(trimmed.to_owned())
}

// === impl Transition ===

impl Transition {
    fn new(
        from: ApplicationStatus,
        next: Case,
        action: AuditAction,
        mut detail: serde_json::Value,
    ) -> Transition {
        if let Some(map) = detail.as_object_mut() {
            map.insert("from".into(), json!(from));
            map.insert("to".into(), json!(next.status()));
        }
        Transition {
            next,
            action,
            detail,
        }
    }
}

// === impl Event ===

impl Event {
    /// A short name for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Submit => "submit",
            Event::BeginScreening => "begin screening",
            Event::CompleteScreening(_) => "complete screening",
            Event::AutoReject { .. } => "auto-reject",
            Event::OverrideScreening { .. } => "override screening",
            Event::Approve { .. } => "approve",
            Event::Reject { .. } => "reject",
            Event::RequestInfo { .. } => "request info",
            Event::Suspend { .. } => "suspend",
            Event::Resume { .. } => "resume",
            Event::Close { .. } => "close",
            Event::Expire => "expire",
            Event::Supersede => "supersede",
        }
    }
}

// === impl ApplicationStatus ===

stored_enum!(ApplicationStatus {
    Draft => "draft",
    Submitted => "submitted",
    Screening => "screening",
    PendingReview => "pending_review",
    NeedsInfo => "needs_info",
    Approved => "approved",
    Rejected => "rejected",
    Suspended => "suspended",
    Expired => "expired",
    Closed => "closed",
});

impl ApplicationStatus {
    /// Whether the application is still on its way to a decision (a customer has at most one).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ApplicationStatus::Draft
                | ApplicationStatus::Submitted
                | ApplicationStatus::Screening
                | ApplicationStatus::PendingReview
                | ApplicationStatus::NeedsInfo
        )
    }
}

// === impl ScreeningDecision ===

stored_enum!(ScreeningDecision { Clear => "clear", Review => "review", Hit => "hit" });

#[cfg(test)]
mod tests;

//! What the services' refusals answer: one `From` impl per service error (identity, verification,
//! webhooks, ledger, metering), so that a handler's `?` is its whole error handling.

use computegate_kyc::accounts::membership::{InvitationState, MembershipError};
use computegate_kyc::api_keys::KeyError;
use computegate_kyc::incidents::{IncidentError, StixError};
use computegate_kyc::ledger::LedgerError;
use computegate_kyc::login::LoginError;
use computegate_kyc::verification::webhooks::WebhookError;
use computegate_kyc::verification::{
    DocumentError, FieldError, ResellerError, TransitionError, VerificationError,
};

use super::{ApiError, internal, unavailable};
use crate::identity::IdentityError;
use crate::metering::MeteringError;
use crate::verification::{IncidentActionError, OrganizationError};

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Auth(e) => ApiError::Auth(e),
            IdentityError::InvalidSignUp(fields) => ApiError::Invalid(fields),
            IdentityError::SignUpThrottled(after) => ApiError::Throttled(after),
            IdentityError::EmailTaken => ApiError::Conflict("the email is already registered"),
            IdentityError::Login(e) => login_refused(e),
            IdentityError::RefreshInvalid => {
                ApiError::Unauthenticated("the refresh token is not valid")
            }
            IdentityError::RefreshReused => ApiError::Unauthenticated(
                "the refresh token was already used; its session is revoked",
            ),
            IdentityError::NotACustomerSession => {
                ApiError::Unauthenticated("the refresh token is not a customer's")
            }
            IdentityError::AccountGone => ApiError::Unauthenticated("the account no longer exists"),
            IdentityError::AccountInactive => ApiError::Forbidden("the account is not active"),
            IdentityError::Key(e) => key_refused(e),
            IdentityError::Unavailable(e) => unavailable(e),
            other => internal(other),
        }
    }
}

fn login_refused(e: LoginError) -> ApiError {
    match e {
        LoginError::InvalidCredentials => {
            ApiError::Unauthenticated("the email or password is wrong")
        }
        LoginError::Throttled { retry_after } => ApiError::Throttled(retry_after),
        LoginError::AccountSuspended => ApiError::Forbidden("the account is suspended"),
        LoginError::AccountClosed => ApiError::Forbidden("the account is closed"),
        LoginError::StaffDisabled => ApiError::Forbidden("the staff user is disabled"),
        other => unavailable(other),
    }
}

fn key_refused(e: KeyError) -> ApiError {
    match e {
        KeyError::NotFound => ApiError::NotFound,
        KeyError::InvalidName => ApiError::field("name", "must be 1–100 characters"),
        KeyError::InvalidScope => {
            ApiError::field("scopes", "contains an unknown or malformed scope")
        }
        KeyError::ExpiryInPast => ApiError::field("expires_at", "must be in the future"),
        KeyError::TooManyKeys => {
            ApiError::Conflict("the account has the maximum number of active keys")
        }
        other => unavailable(other),
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::UnknownProvider => ApiError::BadSignature("unknown webhook provider"),
            WebhookError::MissingSignature => ApiError::BadSignature("missing webhook signature"),
            WebhookError::MalformedSignature => {
                ApiError::BadSignature("malformed webhook signature header")
            }
            WebhookError::StaleTimestamp => {
                ApiError::BadSignature("webhook timestamp outside the tolerance window")
            }
            WebhookError::BadSignature => {
                ApiError::BadSignature("webhook signature does not match")
            }
            WebhookError::MissingReference => {
                ApiError::field("reference", "the event names no application reference")
            }
            other => ApiError::MalformedBody(other.to_string()),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::ReviewNotFound
            | LedgerError::UnknownJob
            | LedgerError::UnknownCustomer
            | LedgerError::ReportNotFound => ApiError::NotFound,
            LedgerError::ReviewAlreadyResolved => {
                ApiError::Conflict("the review is already resolved")
            }
            LedgerError::ReportAlreadyFiled => ApiError::Conflict("the report is already filed"),
            LedgerError::NotStaff => ApiError::Forbidden("staff only"),
            LedgerError::ExportTooLarge { .. } => {
                ApiError::field("since", "the export is too large; use a later date")
            }
            LedgerError::CounterDecreased { .. } => {
                ApiError::Conflict("accelerator-seconds may not decrease")
            }
            LedgerError::JobNotOpen { .. } => ApiError::Conflict("the job is not open"),
            LedgerError::Invalid(why) => ApiError::field("request", why),
            other => unavailable(other),
        }
    }
}

impl From<MeteringError> for ApiError {
    fn from(e: MeteringError) -> Self {
        match e {
            MeteringError::Ledger(e) => e.into(),
            MeteringError::UnknownAccelerator => {
                ApiError::field("accelerator_type", "is not in the accelerator table")
            }
            MeteringError::NoPeak => {
                ApiError::field("accelerator_type", "has no peak for the default precision")
            }
            other => unavailable(other),
        }
    }
}

impl From<VerificationError> for ApiError {
    fn from(e: VerificationError) -> Self {
        verification_refused(e)
    }
}

/// What a refused verification operation answers.
fn verification_refused(e: VerificationError) -> ApiError {
    match e {
        VerificationError::Invalid(errors) => ApiError::InvalidFields(errors),
        VerificationError::NotFound => ApiError::NotFound,
        VerificationError::Transition(t) => transition_refused(t),
        VerificationError::ApplicationInProgress { id, status } => {
            ApiError::ApplicationInProgress { id, status }
        }
        VerificationError::NotEditable(status) => ApiError::InvalidState(format!(
            "the application cannot be edited while it is {status}"
        )),
        e @ VerificationError::IdentityPurged { .. } => ApiError::InvalidState(e.to_string()),
        VerificationError::StaffUnknown => {
            ApiError::Forbidden("the staff user is unknown or disabled")
        }
        VerificationError::RoleNotPermitted => {
            ApiError::Forbidden("your staff role does not allow this")
        }
        VerificationError::ClaimedByOther => {
            ApiError::Conflict("the application is claimed by another reviewer")
        }
        VerificationError::ConcurrentUpdate => {
            ApiError::Conflict("the application was changed concurrently; retry")
        }
        VerificationError::Document(d) => document_refused(d),
        VerificationError::Store(e) => unavailable(e),
        other => internal(other),
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::NotFound => ApiError::NotFound,
            MembershipError::NotOwner => {
                ApiError::Forbidden("only the organization's owner may do this")
            }
            MembershipError::NotOrganizationTier => ApiError::Forbidden(
                "the owner's account must hold an organization tier (organization_verified or validated_end_user)",
            ),
            MembershipError::AccountNotActive => ApiError::Forbidden("the account is not active"),
            MembershipError::OrganizationInactive => {
                ApiError::Conflict("the organization's owner account is not active")
            }
            MembershipError::OrganizationAccount => {
                ApiError::Forbidden("an organization account cannot join another organization")
            }
            MembershipError::InvalidEmail => ApiError::field("email", "not a valid email address"),
            MembershipError::AlreadyMember => {
                ApiError::Conflict("the account is already a member of this organization")
            }
            MembershipError::InAnotherOrganization => {
                ApiError::Conflict("the account already belongs to another organization")
            }
            MembershipError::AlreadyInvited => {
                ApiError::Conflict("the address already has a pending invitation")
            }
            MembershipError::TooManyInvitations => {
                ApiError::Conflict("the organization has the maximum number of pending invitations")
            }
            MembershipError::NotPending(state) => ApiError::InvalidState(format!(
                "the invitation is {}",
                match state {
                    InvitationState::Pending => "pending",
                    InvitationState::Accepted => "accepted",
                    InvitationState::Revoked => "revoked",
                    InvitationState::Expired => "expired",
                }
            )),
            MembershipError::OwnerNotRemovable => ApiError::InvalidState(
                "the owner cannot be removed; suspend or close the owner's account instead".into(),
            ),
            MembershipError::ReasonRequired => {
                ApiError::field("reason", "required, at most 1000 characters")
            }
            MembershipError::Store(e) => unavailable(e),
            other => internal(other),
        }
    }
}

impl From<ResellerError> for ApiError {
    fn from(e: ResellerError) -> Self {
        match e {
            ResellerError::Invalid(errors) => ApiError::InvalidFields(errors),
            ResellerError::NotFound => ApiError::NotFound,
            ResellerError::NotReseller => {
                ApiError::Forbidden("only a reseller organization's accounts may do this")
            }
            ResellerError::NotVerified => ApiError::InvalidState(
                "only a KYB-verified organization (an approved organization application, owner \
                 active) can be marked as reseller"
                    .into(),
            ),
            ResellerError::AlreadyReseller => {
                ApiError::Conflict("the organization is a reseller already")
            }
            ResellerError::Suspended => ApiError::Forbidden("the reseller is suspended"),
            ResellerError::NotUnderReview(screening) => ApiError::InvalidState(format!(
                "the end customer's screening is {screening}; only one under review is decided"
            )),
            ResellerError::Unchanged(status) => {
                ApiError::InvalidState(format!("the reseller is {status} already"))
            }
            ResellerError::Verification(e) => verification_refused(e),
            ResellerError::Store(e) => unavailable(e),
            ResellerError::Screening(e) => unavailable(e),
        }
    }
}

impl From<OrganizationError> for ApiError {
    fn from(e: OrganizationError) -> Self {
        match e {
            OrganizationError::Membership(e) => e.into(),
            OrganizationError::Staff(e) => e.into(),
        }
    }
}

impl From<IncidentActionError> for ApiError {
    fn from(e: IncidentActionError) -> Self {
        match e {
            IncidentActionError::Incident(e) => e.into(),
            IncidentActionError::Staff(e) => e.into(),
        }
    }
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::Invalid(fields) => ApiError::Invalid(fields),
            IncidentError::NotFound => ApiError::NotFound,
            IncidentError::Transition { from, to } => {
                ApiError::InvalidState(format!("an incident that is {from} cannot become {to}"))
            }
            IncidentError::Bundle(StixError::TooLarge { limit }) => {
                ApiError::PayloadTooLarge(format!("a bundle is at most {limit} bytes"))
            }
            IncidentError::Bundle(e) => ApiError::MalformedBody(e.to_string()),
            IncidentError::OwnBundle => {
                ApiError::Conflict("the bundle is this deployment's own export")
            }
            IncidentError::Store(e) => unavailable(e),
            other => internal(other),
        }
    }
}

fn transition_refused(t: TransitionError) -> ApiError {
    let field = |field: &str, code: &'static str, problem: String| {
        ApiError::InvalidFields(vec![FieldError {
            field: field.into(),
            code,
            problem,
        }])
    };
    match t {
        TransitionError::NotPermitted { .. } => {
            ApiError::Forbidden("your role or account may not do this")
        }
        TransitionError::ConflictOfInterest => {
            ApiError::Forbidden("you are tied to the applicant and may not act on this application")
        }
        TransitionError::DuplicateApprover => ApiError::Forbidden(
            "you already approved this application; a second, different senior reviewer must approve",
        ),
        TransitionError::TierNotAllowed(tier) => field(
            "tier",
            "not_allowed",
            format!("tier {tier} cannot be granted to this application"),
        ),
        TransitionError::ReasonRequired => field("reason", "missing", t.to_string()),
        TransitionError::EvidenceMissing { tier, missing } => {
            ApiError::EvidenceMissing { tier, missing }
        }
        TransitionError::ManualCheckNotAccepted(_) => {
            field("manual_checks", "not_allowed", t.to_string())
        }
        other => ApiError::InvalidState(other.to_string()),
    }
}

fn document_refused(d: DocumentError) -> ApiError {
    match d {
        DocumentError::TooLarge { .. } => ApiError::PayloadTooLarge(d.to_string()),
        DocumentError::UnsupportedType => ApiError::UnsupportedMediaType(d.to_string()),
        DocumentError::Empty | DocumentError::LyingContentType { .. } => {
            ApiError::field("file", &d.to_string())
        }
        DocumentError::TooMany => {
            ApiError::Conflict("the application holds the maximum number of documents")
        }
        DocumentError::ApplicationClosed => {
            ApiError::Conflict("documents can only be added while the application is open")
        }
        other => ApiError::field("file", &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_client_errors() {
        let status = |e: VerificationError| ApiError::from(e).to_problem().status().as_u16();
        assert_eq!(status(VerificationError::NotFound), 404);
        assert_eq!(status(VerificationError::RoleNotPermitted), 403);
        let purged = VerificationError::IdentityPurged {
            at: time::OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            status(purged),
            409,
            "a withdrawn payload is a state, not a failure"
        );
        let open = VerificationError::ApplicationInProgress {
            id: uuid::Uuid::nil(),
            status: computegate_kyc::verification::ApplicationStatus::NeedsInfo,
        };
        let doc = ApiError::from(open).to_problem().to_json();
        assert_eq!(doc["status"], 409);
        assert_eq!(doc["application_id"], uuid::Uuid::nil().to_string());
        assert_eq!(doc["application_status"], "needs_info");
        assert_eq!(
            doc["application"],
            format!("/computegate/v1/kyc/applications/{}", uuid::Uuid::nil())
        );
        assert_eq!(status(TransitionError::ConflictOfInterest.into()), 403);
        assert_eq!(status(TransitionError::DuplicateApprover.into()), 403);
        assert_eq!(status(TransitionError::ScreeningNotCleared.into()), 409);
        assert_eq!(status(TransitionError::ReasonRequired.into()), 422);
        let missing = TransitionError::EvidenceMissing {
            tier: "identity_verified".into(),
            missing: vec![computegate_policy::Evidence::IdvVerified],
        };
        assert_eq!(status(missing.into()), 422);
        assert_eq!(status(DocumentError::UnsupportedType.into()), 415);
        let membership = |e: MembershipError| ApiError::from(e).to_problem().status().as_u16();
        assert_eq!(membership(MembershipError::NotOwner), 403);
        assert_eq!(membership(MembershipError::NotFound), 404);
        assert_eq!(membership(MembershipError::InAnotherOrganization), 409);
        assert_eq!(
            membership(MembershipError::NotPending(InvitationState::Expired)),
            409
        );
        assert_eq!(membership(MembershipError::InvalidEmail), 422);
        assert_eq!(status(DocumentError::TooLarge { max: 1 }.into()), 413);
        assert_eq!(
            status(
                DocumentError::LyingContentType {
                    declared: "application/pdf".into(),
                    actual: "image/png"
                }
                .into()
            ),
            422
        );
    }
}

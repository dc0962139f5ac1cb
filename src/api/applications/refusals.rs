//! What a refused verification operation answers: the one translation of the store's
//! `VerificationError` into [`ApiError`] variants, shared by the customer, webhook and staff
//! verification routes.

use computegate_kyc::verification::{
    DocumentError, FieldError, TransitionError, VerificationError,
};

use crate::api::error::{ApiError, internal, unavailable};

/// What a refused verification operation answers.
pub(crate) fn refused(e: VerificationError) -> ApiError {
    match e {
        VerificationError::Invalid(errors) => ApiError::InvalidFields(errors),
        VerificationError::NotFound => ApiError::NotFound,
        VerificationError::Transition(t) => transition_refused(t),
        VerificationError::ApplicationInProgress => {
            ApiError::Conflict("an application is already in progress")
        }
        VerificationError::NotEditable(status) => ApiError::InvalidState(format!(
            "the application cannot be edited while it is {status}"
        )),
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
        let status = |e: VerificationError| refused(e).to_problem().status().as_u16();
        assert_eq!(status(VerificationError::NotFound), 404);
        assert_eq!(status(VerificationError::RoleNotPermitted), 403);
        assert_eq!(status(VerificationError::ApplicationInProgress), 409);
        assert_eq!(status(TransitionError::ConflictOfInterest.into()), 403);
        assert_eq!(status(TransitionError::DuplicateApprover.into()), 403);
        assert_eq!(status(TransitionError::ScreeningNotCleared.into()), 409);
        assert_eq!(status(TransitionError::ReasonRequired.into()), 422);
        assert_eq!(status(DocumentError::UnsupportedType.into()), 415);
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

//! The organization: its members (email, tier, status, role) and, for the owner, the pending
//! invitations, inviting by email (the acceptance token is shown once, to pass on) and revoking
//! an invitation; for everyone, the invitations addressed to them and accepting one with its
//! token. The verification service's membership methods do the work, as for the JSON API.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use computegate_kyc::accounts::membership::MemberRole;
use time::OffsetDateTime;
use uuid::Uuid;

use super::display::date;
use super::session::SignedIn;
use super::surface::{Done, DoneQuery};
use crate::api::error::ApiError;
use crate::api::page::MAX_LIMIT;
use crate::verification::Verification;
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

#[derive(Template)]
#[template(path = "portal/organization.html")]
struct OrganizationPage {
    chrome: Chrome,
    done: Option<&'static str>,
    errors: FormErrors,
    accept_errors: FormErrors,
    organization: Option<OrgView>,
    /// `(invitation id, organization name, expires)` addressed to the caller.
    received: Vec<(String, String, String)>,
    /// The email invited and the token to pass on (this answer only).
    invited: Option<(String, String)>,
    email: String,
}

struct OrgView {
    name: String,
    is_owner: bool,
    /// `(email, tier, status, role, joined)`.
    members: Vec<(String, String, String, String, String)>,
    /// `(id, email, expires)`.
    invitations: Vec<(String, String, String)>,
}

#[derive(serde::Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
}

#[derive(serde::Deserialize)]
pub(crate) struct InvitationForm {
    #[serde(default)]
    invitation_id: String,
    #[serde(default)]
    token: String,
}

// === handlers ===

/// `GET /organization`.
pub(crate) async fn page(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let page = org_page(&kyc, &me).await?;
    Ok(render(&OrganizationPage {
        done: q.done.map(Done::message),
        ..page
    }))
}

/// `POST /organization/invite`: `email` (owner only).
pub(crate) async fn invite(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    match kyc
        .invite_member(&me.caller.kyc(), form.email.trim(), now)
        .await
    {
        Ok(invitation) => {
            let page = org_page(&kyc, &me).await?;
            let token = invitation.token.unwrap_or_default();
            let page = OrganizationPage {
                invited: Some((invitation.email, token)),
                ..page
            };
            Ok((StatusCode::CREATED, render(&page)).into_response())
        }
        Err(e) => {
            let errors = field_errors(ApiError::from(e), "email")?;
            let page = org_page(&kyc, &me).await?;
            let page = OrganizationPage {
                errors,
                email: form.email,
                ..page
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

/// `POST /organization/revoke`: `invitation_id` (owner only).
pub(crate) async fn revoke(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<InvitationForm>,
) -> Result<Response, WebError> {
    let id = Uuid::parse_str(&form.invitation_id).map_err(|_| WebError::NotFound)?;
    kyc.revoke_invitation(&me.caller.kyc(), id, OffsetDateTime::now_utc())
        .await
        .map_err(ApiError::from)?;
    Ok(Done::InvitationRevoked.redirect("organization"))
}

/// `POST /organization/accept`: `invitation_id`, `token`.
pub(crate) async fn accept(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<InvitationForm>,
) -> Result<Response, WebError> {
    let id = Uuid::parse_str(&form.invitation_id).map_err(|_| WebError::NotFound)?;
    let now = OffsetDateTime::now_utc();
    match kyc
        .accept_invitation(&me.caller.kyc(), id, form.token.trim(), now)
        .await
    {
        Ok(_) => Ok(Done::Joined.redirect("organization")),
        Err(e) => {
            let accept_errors = field_errors(ApiError::from(e), "token")?;
            let page = org_page(&kyc, &me).await?;
            let page = OrganizationPage {
                accept_errors,
                ..page
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

// === helpers ===

/// A membership refusal shown next to `field`: field errors as they are; a refusal of the
/// action itself (not the owner, already a member, …) in its own words; outages as pages.
fn field_errors(e: ApiError, field: &str) -> Result<FormErrors, WebError> {
    match e {
        ApiError::Forbidden(why) | ApiError::Conflict(why) => {
            let mut errors = FormErrors::new();
            errors.add(field, sentence(why));
            Ok(errors)
        }
        ApiError::InvalidState(why) => {
            let mut errors = FormErrors::new();
            errors.add(field, sentence(&why));
            Ok(errors)
        }
        ApiError::NotFound => {
            let mut errors = FormErrors::new();
            errors.add(field, "No such invitation, or the token does not match it.");
            Ok(errors)
        }
        other => FormErrors::from_refusal(other),
    }
}

/// `why` as a sentence: capital first letter, final full stop.
fn sentence(why: &str) -> String {
    let mut out: String = why.chars().take(1).flat_map(char::to_uppercase).collect();
    out.push_str(why.get(1..).unwrap_or_default());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

async fn org_page(kyc: &Verification, me: &SignedIn) -> Result<OrganizationPage, WebError> {
    let now = OffsetDateTime::now_utc();
    let view = kyc
        .organization_of(me.caller.customer_id, now)
        .await
        .map_err(ApiError::from)?;
    let organization = view.map(|o| OrgView {
        name: o.name,
        is_owner: o.your_role == Some(MemberRole::Owner),
        members: (o.members.into_iter())
            .map(|m| {
                (
                    m.email,
                    m.tier.as_str().to_owned(),
                    m.status.as_str().to_owned(),
                    m.role.as_str().to_owned(),
                    date(m.joined_at),
                )
            })
            .collect(),
        invitations: (o.invitations.into_iter())
            .filter(|i| i.accepted_at.is_none() && i.revoked_at.is_none())
            .map(|i| (i.id.to_string(), i.email, date(i.expires_at)))
            .collect(),
    });
    let received = kyc
        .invitations_received(me.caller.customer_id, now, None, MAX_LIMIT)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|i| (i.id.to_string(), i.organization_name, date(i.expires_at)))
        .collect();
    Ok(OrganizationPage {
        chrome: me.chrome("Organization", "organization"),
        done: None,
        errors: FormErrors::new(),
        accept_errors: FormErrors::new(),
        organization,
        received,
        invited: None,
        email: String::new(),
    })
}

//! The compliance console: the staff's browser surface at `/console/` on the admin listener,
//! built on the shared web foundation ([`crate::web`]). Staff sign in with the staff password
//! grant; every page then acts as the staff API does, through the same services and the same
//! role types ([`StaffCaller`] with [`AnyStaff`], [`CaseReaders`], [`AuditReaders`],
//! [`Acting`]), so a role refused by the API is refused by the console, with the same words.
//!
//! Pages: the review queue ([`cases`]), a case file with its decision forms, an organization's
//! members; training runs, job reviews and threshold reports with export ([`compute`]); the
//! resellers, flagged ones first ([`resellers`]); the
//! audit chain's search and verification ([`audit`]); abuse incidents and their status moves
//! ([`incidents`]); an ad-hoc screening search
//! ([`screening`]); the policy in force ([`policy`]). [`records`] turns serialized records into
//! the tables and field lists the templates show.

pub mod audit;
pub mod cases;
pub mod compute;
pub mod incidents;
pub mod policy;
pub mod records;
pub mod resellers;
pub mod screening;
pub mod session;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use computegate_kyc::crypto::MasterKey;

use crate::api::ApiState;
use crate::api::extract::{AnyStaff, Client, StaffCaller, StaffRoles};
use crate::identity::Identity;
use crate::web::{Browser, Chrome, CsrfKey, Surface, WebError};

/// The console's surface.
pub static CONSOLE: Surface = Surface {
    name: "Computegate console",
    root: "/console",
    cookie: "cg_console",
};

/// The navigation: `(path under /console, label)`.
const NAV: &[(&str, &str)] = &[
    ("", "Review queue"),
    ("runs", "Runs"),
    ("job-reviews", "Job reviews"),
    ("reports", "Reports"),
    ("resellers", "Resellers"),
    ("incidents", "Incidents"),
    ("audit", "Audit"),
    ("screening", "Screening search"),
    ("policy", "Policy"),
];

/// The console's pages under `/console/`, with the foundation's layers.
pub fn router(master: &MasterKey) -> Router<ApiState> {
    let pages = Router::new()
        .merge(session::routes())
        .merge(cases::routes())
        .merge(compute::routes())
        .merge(resellers::routes())
        .merge(incidents::routes())
        .merge(audit::routes())
        .merge(screening::routes())
        .merge(policy::routes());
    crate::web::mount(&CONSOLE, CsrfKey::derive(master, "console"), pages)
}

/// A signed-in staff member allowed by `R`, with the browser session. A page that needs a role
/// the caller lacks answers 403 with the staff API's words; no session → the sign-in page.
pub struct Staff<R: StaffRoles = AnyStaff> {
    /// The caller, as the staff API would see it.
    pub caller: StaffCaller<R>,
    /// The session (CSRF token, sign-out).
    pub browser: Browser,
}

impl<R: StaffRoles> Staff<R> {
    /// The layout of a page titled `title`, with the navigation (`current` marked).
    pub fn chrome(&self, title: impl Into<String>, current: &str) -> Chrome {
        let who = format!(
            "{} ({})",
            self.caller.user.email,
            self.caller.user.role.as_str()
        );
        self.browser.chrome(title).signed_in(who, NAV, current)
    }
}

impl<S, R> FromRequestParts<S> for Staff<R>
where
    S: Send + Sync,
    std::sync::Arc<Identity>: axum::extract::FromRef<S>,
    R: StaffRoles,
{
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        let browser = Browser::from_request_parts(parts, state).await?;
        let Client(client) = Client::from_request_parts(parts, state)
            .await
            .map_err(WebError::from)?;
        let tokens = browser.tokens().ok_or(WebError::SignInRequired)?;
        let identity = <std::sync::Arc<Identity> as axum::extract::FromRef<S>>::from_ref(state);
        let user = identity
            .authenticate_staff(&tokens.access)
            .await
            .map_err(|e| WebError::from(crate::api::error::ApiError::Auth(e)))?;
        let caller = StaffCaller::new(user, client.ip)?;
        Ok(Staff { caller, browser })
    }
}

/// The reason of a one-field action form (override, suspend, review decision), checked as the
/// staff API checks it; a bad one is a 400 page saying what is wrong.
fn reason(text: &str) -> Result<String, WebError> {
    crate::api::review::requests::reason_of(Some(text)).map_err(|(_, why)| {
        WebError::BadRequest(format!("The reason {why}. Go back and give one."))
    })
}

#[cfg(test)]
mod tests;

//! The customer portal: server-rendered pages on the public listener under
//! `/computegate/account/` for the people who are not curl users — sign up and sign in, the
//! verification form (individual; organization with its representative and beneficial owners),
//! document upload, the application's status with exactly what is missing, the current tier with
//! its caps and what the next tier needs, the organization's members and invitations, API keys
//! (created with scopes and shown once; revoked), jobs with their estimated and measured FLOP,
//! usage against every budget with the thresholds ahead, and notices.
//!
//! Built on the shared foundation ([`crate::web`]): the session cookie carries the identity
//! service's own tokens, every form carries a CSRF token, every page the security headers. The
//! handlers call the same service methods as the JSON API (`Identity`, `Verification`,
//! `Metering`); nothing is decided here. Works without JavaScript (there is none).

mod account;
mod application;
pub(crate) mod application_form;
mod display;
mod keys;
mod organization;
mod session;
mod surface;
mod usage;

use crate::api::state::ApiState;
use crate::web::{self, CsrfKey};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use self::surface::SURFACE;

/// Largest urlencoded form the portal takes (the application form with four owners is a few
/// KiB; this leaves room for long descriptions).
const FORM_LIMIT: usize = 64 * 1024;

/// Multipart framing allowed on top of the document size limit.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The portal's routes, for the public listener's customer router.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let key = CsrfKey::derive(state.kyc.master(), "portal");
    let upload_limit = state.kyc.limits().max_bytes + MULTIPART_OVERHEAD;
    let pages = Router::new()
        .route("/", get(account::overview))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/application",
            get(application::page).post(application::save),
        )
        .route(
            "/application/documents",
            post(application::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/organization", get(organization::page))
        .route("/organization/invite", post(organization::invite))
        .route("/organization/revoke", post(organization::revoke))
        .route("/organization/accept", post(organization::accept))
        .route("/keys", get(keys::page).post(keys::create))
        .route("/keys/revoke", post(keys::revoke))
        .route("/usage", get(usage::page))
        .layer(DefaultBodyLimit::max(FORM_LIMIT));
    web::mount(&SURFACE, key, pages)
}

#[cfg(test)]
mod tests;

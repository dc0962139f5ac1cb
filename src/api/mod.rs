//! The gateway's own HTTP APIs, built with axum and mounted into the data plane through the
//! gateway's `ControlPlane` port ([`RouterPlane`]): the customer API on the public listener
//! (`/computegate/v1/…`, `/.well-known/jwks.json`) and the staff API on the admin listener
//! (`/staff/v1/…`).
//!
//! Handlers only translate HTTP: the extractors of [`extract`] say who may call, one service
//! method does the work ([`Identity`](crate::identity::Identity),
//! [`Verification`](crate::verification::Verification), [`Metering`](crate::metering::Metering)),
//! and [`error`] maps every refusal to a problem document. The routers are composed here and
//! only here; no module below imports from this one.

pub mod applications;
pub mod customer;
pub mod error;
pub mod extract;
pub mod incidents;
pub mod jobs;
pub mod metering;
pub mod openapi;
pub mod organizations;
pub mod page;
pub mod plane;
pub mod resellers;
pub mod review;
pub mod state;
pub mod tokens;
pub mod usage;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;

use axum::middleware::map_response;
use axum::{Extension, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::plane::RouterPlane;
pub use self::state::ApiState;

/// Path prefixes the customer API owns on the public listener.
pub const CUSTOMER_PREFIXES: &[&str] = &["/computegate/", "/.well-known/"];

/// Path prefixes the staff API owns on the admin listener.
pub const STAFF_PREFIXES: &[&str] = &["/staff/", "/console"];

/// The customer API's routes with their OpenAPI document.
pub(crate) fn customer_api(state: &ApiState) -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::CustomerDoc::openapi())
        .merge(tokens::customer_routes())
        .merge(customer::routes())
        .merge(applications::routes(&state.kyc))
        .merge(webhooks::routes())
        .merge(usage::routes())
        .merge(jobs::customer_routes())
        .merge(organizations::customer_routes())
        .merge(resellers::customer_routes())
        .routes(routes!(openapi::customer_document))
}

/// The staff API's routes with their OpenAPI document.
pub(crate) fn staff_api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::StaffDoc::openapi())
        .merge(tokens::staff_routes())
        .merge(review::routes())
        .merge(metering::routes())
        .merge(jobs::staff_routes())
        .merge(organizations::staff_routes())
        .merge(incidents::routes())
        .merge(resellers::staff_routes())
        .routes(routes!(openapi::staff_document))
}

/// The customer API: sign-up, tokens, keys and JWKS; verification applications and documents;
/// IDV webhooks; usage events from the compute platform; organization membership; its OpenAPI
/// document; and the customer portal's pages under `/computegate/account/` ([`crate::portal`]).
pub fn customer_router(state: ApiState) -> Router {
    let api = customer_api(&state);
    let pages = crate::portal::router(&state);
    finish(api, pages, state)
}

/// The staff API: staff sign-in, the review queue and decisions, the audit chain, the
/// compute-metering records, organization membership, and abuse incidents with their STIX
/// export; its OpenAPI document; and the
/// compliance console's pages under `/console/` ([`crate::console`]).
pub fn staff_router(state: ApiState) -> Router {
    let pages = crate::console::router(state.kyc.master());
    finish(staff_api(), pages, state)
}

/// The served router: the routes, the document they make (for its own route), problem
/// documents for unknown paths and bare 405s; then the browser surface's `pages`, which answer
/// their own errors as HTML pages and so join after the problem layers.
fn finish(api: OpenApiRouter<ApiState>, pages: Router<ApiState>, state: ApiState) -> Router {
    let (router, doc) = api.split_for_parts();
    router
        .fallback(|| async { error::ApiError::NoRoute })
        .layer(map_response(error::problem_for_bare_405))
        .layer(Extension(openapi::Rendered::new(doc)))
        .merge(pages)
        .with_state(state)
}

/// The customer API as the public listener's control plane.
pub fn customer_plane(state: ApiState) -> Arc<RouterPlane> {
    RouterPlane::new(CUSTOMER_PREFIXES, customer_router(state))
}

/// The staff API as the admin listener's control plane.
pub fn staff_plane(state: ApiState) -> Arc<RouterPlane> {
    RouterPlane::new(STAFF_PREFIXES, staff_router(state))
}

//! The shared foundation of the browser surfaces (the customer portal at
//! `/computegate/account/` and the staff console at `/console/`): server-rendered HTML with
//! askama templates under `templates/`, one hand-written stylesheet, security headers, a cookie
//! session over the identity service's own tokens, CSRF tokens on every form, form errors next to
//! their field, and HTML error pages.
//!
//! A surface is described once by a [`Surface`] and wrapped by [`mount`], which nests its pages
//! under the surface's root and adds, in this order (outermost first):
//!
//! 1. [`headers::secure_headers`]: CSP, `X-Content-Type-Options`, `Referrer-Policy`,
//!    `X-Frame-Options` on every answer, and `Cache-Control: no-store` unless the handler set
//!    another (only the stylesheet does);
//! 2. [`error::html_errors`]: any 4xx/5xx that is not already an HTML page (a rejection, a 405,
//!    a 413 from a body limit, a [`WebError`]) is rendered as the surface's error page;
//! 3. [`session::track`]: reads the surface's cookie into a [`Browser`] for the handlers and
//!    writes it back when a handler signed in, out, or renewed the tokens;
//! 4. the stylesheet at `<root>/assets/site.css` ([`assets`]) and an HTML 404 fallback.
//!
//! A handler then takes a [`Browser`] (the session: its tokens, its CSRF token), a
//! [`CsrfForm`] for a POST (refused 403 without the right token), renders a template whose struct
//! carries a [`Chrome`] (the layout's data: title, navigation, who is signed in, the CSRF token)
//! with [`render`], and answers a failure with a [`WebError`] (or a form page with
//! [`FormErrors`]). Templates extend `web/base.html` and use the macros of `web/forms.html`.
//!
//! Nothing here knows customers or staff: the session holds an opaque access/refresh token pair
//! issued by `Identity::password_grant`, and each surface checks it with the identity service.

pub mod assets;
pub mod chrome;
pub mod csrf;
pub mod error;
pub mod forms;
pub mod headers;
pub mod page;
pub mod session;
pub mod surface;

use axum::Router;
use axum::middleware::{from_fn_with_state, map_response};

pub use self::chrome::{Chrome, NavLink};
pub use self::csrf::CsrfKey;
pub use self::error::WebError;
pub use self::forms::{CsrfForm, FormErrors};
pub use self::page::render;
pub use self::session::{Browser, TokenPair};
pub use self::surface::Surface;

/// Wraps a surface's pages (routes relative to its root, e.g. `/login`; `/` is the start page
/// at the root itself, and `<root>/` redirects there) with the stylesheet, the session cookie,
/// HTML error pages and the security headers, nested under `surface.root`.
/// `key` signs the CSRF tokens (derive it from the master key with [`CsrfKey::derive`], one
/// label per surface).
pub fn mount<S>(surface: &'static Surface, key: CsrfKey, pages: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let state = session::SessionConfig::new(surface, key);
    let inner = pages
        .merge(assets::routes())
        .fallback(|| async { WebError::NotFound })
        .layer(from_fn_with_state(state, session::track))
        .layer(from_fn_with_state(surface, error::html_errors))
        .layer(map_response(headers::secure_headers));
    // The start page is the root itself; `<root>/` (as people type it) is sent there.
    let start = surface.root;
    Router::new()
        .nest(surface.root, inner)
        .route(
            &format!("{}/", surface.root),
            axum::routing::get(move || async move { axum::response::Redirect::permanent(start) }),
        )
        .layer(map_response(headers::secure_headers))
}

#[cfg(test)]
mod tests;

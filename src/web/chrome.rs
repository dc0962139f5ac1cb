//! The layout's data and the one way a page is rendered. Every page template extends
//! `web/base.html`, and its struct has a `chrome: Chrome` field the layout reads: the page title,
//! the surface (name, stylesheet, root), the navigation, who is signed in and the session's CSRF
//! token (for the sign-out button and the page's own forms).

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::Surface;
use super::error::WebError;
use super::session::Browser;

/// What the layout shows around a page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The surface.
    pub surface: &'static Surface,
    /// The page's own title (the `<title>` adds the surface's name; the `<h1>` is the page's).
    pub title: String,
    /// Navigation links (empty for signed-out pages).
    pub nav: Vec<NavLink>,
    /// Who is signed in, as the banner shows it (`None`: nobody; no sign-out button).
    pub user: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
}

/// One navigation link.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Absolute path.
    pub href: String,
    /// What it says.
    pub label: &'static str,
    /// Whether it is the page being shown (`aria-current="page"`).
    pub current: bool,
}

// === impl Chrome ===

impl Chrome {
    /// The chrome of a page of `browser`'s surface, without navigation or user.
    pub fn new(browser: &Browser, title: impl Into<String>) -> Chrome {
        Chrome {
            surface: browser.surface(),
            title: title.into(),
            nav: Vec::new(),
            user: None,
            csrf: browser.csrf_token(),
        }
    }

    /// The chrome of a page outside any session (error pages).
    pub fn bare(surface: &'static Surface, title: impl Into<String>) -> Chrome {
        Chrome {
            surface,
            title: title.into(),
            nav: Vec::new(),
            user: None,
            csrf: String::new(),
        }
    }

    /// Adds the signed-in user and the navigation; `links` are `(path under the root, label)`
    /// and the one equal to `current` is marked as the current page.
    pub fn signed_in(
        mut self,
        user: impl Into<String>,
        links: &[(&str, &'static str)],
        current: &str,
    ) -> Chrome {
        self.user = Some(user.into());
        self.nav = links
            .iter()
            .map(|(path, label)| NavLink {
                href: self.surface.path(path),
                label,
                current: *path == current,
            })
            .collect();
        self
    }
}

/// Renders a page as `text/html`; a template failure is an internal error page.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => WebError::Internal(format!("template failed: {e}")).into_response(),
    }
}

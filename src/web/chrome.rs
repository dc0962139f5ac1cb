//! The layout's data and the one way a page is rendered. Every page template extends
//! `web/base.html`, and its struct has a `chrome: Chrome` field the layout reads: the page title,
//! the surface (name, stylesheet, root), the navigation, who is signed in and the session's CSRF
//! token (for the sign-out button and the page's own forms).

use super::surface::Surface;

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
    /// The chrome of a page of `surface` whose forms carry `csrf` (empty outside a session),
    /// without navigation or user. A handler usually calls `Browser::chrome` instead.
    pub fn new(surface: &'static Surface, csrf: String, title: impl Into<String>) -> Chrome {
        Chrome {
            surface,
            title: title.into(),
            nav: Vec::new(),
            user: None,
            csrf,
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

//! A browser surface: its name, where it lives, which cookie carries its session.

use super::assets;

/// One browser surface: where it lives, what it is called, which cookie carries its session.
#[derive(Debug)]
pub struct Surface {
    /// The surface's name in page titles and the banner (`Computegate account`).
    pub name: &'static str,
    /// Path prefix without a trailing slash (`/computegate/account`); the session cookie's
    /// `Path`.
    pub root: &'static str,
    /// The session cookie's name.
    pub cookie: &'static str,
}

// === impl Surface ===

impl Surface {
    /// An absolute path under the surface: `path("login")` is `<root>/login`; `path("")` is
    /// the root itself (its start page).
    pub fn path(&self, rest: &str) -> String {
        match rest.trim_start_matches('/') {
            "" => self.root.to_owned(),
            rest => format!("{}/{rest}", self.root),
        }
    }

    /// The stylesheet's path, versioned by its content so that it can be cached for long.
    pub fn stylesheet(&self) -> String {
        format!("{}/assets/site.css?v={}", self.root, assets::version())
    }
}

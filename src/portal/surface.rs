//! What every portal page shares: the surface (root, cookie), the signed-in navigation, and the
//! fixed messages a page shows after a form's redirect.

use axum::response::{IntoResponse, Redirect, Response};

use crate::web::Surface;

/// The portal's surface: its root on the public listener and its cookie.
pub static SURFACE: Surface = Surface {
    name: "Computegate account",
    root: "/computegate/account",
    cookie: "cg_account",
};

/// The signed-in navigation: `(path under the root, label)`.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("", "Overview"),
    ("application", "Verification"),
    ("organization", "Organization"),
    ("keys", "API keys"),
    ("usage", "Usage and jobs"),
];

/// What a redirect after a successful form says on the page it lands on (`?done=`); a fixed
/// set, so nothing typed into a URL is ever shown.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Done {
    /// The application form was saved.
    Saved,
    /// The application was handed in.
    Submitted,
    /// A document was uploaded.
    Uploaded,
    /// A key was revoked.
    Revoked,
    /// An invitation was revoked.
    InvitationRevoked,
    /// The session ended.
    SignedOut,
    /// An invitation was accepted.
    Joined,
}

/// `?done=` after a redirect (anything else in the query is ignored; an unknown value is a
/// 400 page).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DoneQuery {
    pub(crate) done: Option<Done>,
}

// === impl Done ===

impl Done {
    /// Where a form's success lands: `page` (a path under the root) with `?done=`.
    pub(crate) fn redirect(self, page: &str) -> Response {
        let to = format!("{}?done={}", SURFACE.path(page), self.as_str());
        Redirect::to(&to).into_response()
    }

    fn as_str(self) -> &'static str {
        match self {
            Done::Saved => "saved",
            Done::Submitted => "submitted",
            Done::Uploaded => "uploaded",
            Done::Revoked => "revoked",
            Done::InvitationRevoked => "invitation_revoked",
            Done::SignedOut => "signed_out",
            Done::Joined => "joined",
        }
    }

    /// What the page says.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Done::Saved => "Your application was saved.",
            Done::Submitted => "Your application was handed in.",
            Done::Uploaded => "The document was uploaded.",
            Done::Revoked => "The key was revoked. It stops working at once.",
            Done::InvitationRevoked => "The invitation was revoked.",
            Done::SignedOut => "You are signed out.",
            Done::Joined => "You joined the organization.",
        }
    }
}

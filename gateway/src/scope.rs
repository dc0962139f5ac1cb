//! API-key scopes: what a credential may do on the data plane, decided from the route class and
//! the method alone, so the check runs from the cached principal with no store round trip.
//!
//! - `read`: safe methods (`GET`, `HEAD`, `OPTIONS`) on `authenticated` routes;
//! - `jobs`: job submission (`job_submit` routes) and job actions (every other method on
//!   `authenticated` routes: cancel, close, delete, …).
//!
//! Account and key management (`/computegate/v1/keys`, logout, …) is never done with an API
//! key, whatever its scopes: the customer API asks for a session token there. Access tokens
//! (JWT sessions) carry every data-plane scope.

use http::Method;

use crate::config::RouteClass;

/// One data-plane scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Safe methods on authenticated routes.
    Read,
    /// Job submission and job actions.
    Jobs,
}

/// A set of scopes (a small bit set, copied with the principal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

/// Names accepted for new keys, in [`Scope`] order.
pub const SCOPE_NAMES: [&str; 2] = ["read", "jobs"];

// === impl Scope ===

impl Scope {
    /// The scope's name (`read`, `jobs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Jobs => "jobs",
        }
    }

    /// The scope named `name`; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "jobs" => Some(Scope::Jobs),
            _ => None,
        }
    }

    /// The scope a request of `method` on a route of `class` needs; `None` on public routes.
    pub fn required(class: RouteClass, method: &Method) -> Option<Scope> {
        match class {
            RouteClass::Public => None,
            RouteClass::JobSubmit => Some(Scope::Jobs),
            RouteClass::Authenticated if is_safe(method) => Some(Scope::Read),
            RouteClass::Authenticated => Some(Scope::Jobs),
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Jobs => 2,
        }
    }
}

// === impl Scopes ===

impl Scopes {
    /// Every data-plane scope (sessions, and keys created before scopes were enforced).
    pub const ALL: Scopes = Scopes(1 | 2);
    /// No scope.
    pub const NONE: Scopes = Scopes(0);

    /// The scopes of a stored key. Unknown names grant nothing; an empty list is a key made
    /// before scopes were enforced, which could do everything a session can, and keeps that.
    pub fn of_key<S: AsRef<str>>(names: &[S]) -> Scopes {
        if names.is_empty() {
            return Scopes::ALL;
        }
        Scopes(
            names
                .iter()
                .filter_map(|n| Scope::parse(n.as_ref()))
                .fold(0, |bits, s| bits | s.bit()),
        )
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// `Err(missing)` when a request of `method` on a route of `class` needs a scope not in
    /// the set.
    pub fn allow(self, class: RouteClass, method: &Method) -> Result<(), Scope> {
        match Scope::required(class, method) {
            Some(s) if !self.contains(s) => Err(s),
            _ => Ok(()),
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_keys_read_and_nothing_else() {
        let read = Scopes::of_key(&["read"]);
        assert_eq!(read.allow(RouteClass::Authenticated, &Method::GET), Ok(()));
        assert_eq!(read.allow(RouteClass::Authenticated, &Method::HEAD), Ok(()));
        assert_eq!(
            read.allow(RouteClass::JobSubmit, &Method::POST),
            Err(Scope::Jobs)
        );
        assert_eq!(
            read.allow(RouteClass::Authenticated, &Method::DELETE),
            Err(Scope::Jobs)
        );
        assert_eq!(read.allow(RouteClass::Public, &Method::POST), Ok(()));
    }

    #[test]
    fn jobs_keys_act_but_do_not_read() {
        let jobs = Scopes::of_key(&["jobs"]);
        assert_eq!(jobs.allow(RouteClass::JobSubmit, &Method::POST), Ok(()));
        assert_eq!(jobs.allow(RouteClass::Authenticated, &Method::POST), Ok(()));
        assert_eq!(
            jobs.allow(RouteClass::Authenticated, &Method::GET),
            Err(Scope::Read)
        );
    }

    #[test]
    fn unknown_names_grant_nothing_and_legacy_keys_everything() {
        let odd = Scopes::of_key(&["keys", "admin"]);
        assert_eq!(odd, Scopes::NONE);
        assert_eq!(Scopes::of_key::<&str>(&[]), Scopes::ALL);
        for name in SCOPE_NAMES {
            assert_eq!(Scope::parse(name).map(Scope::as_str), Some(name));
        }
    }
}

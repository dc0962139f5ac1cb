//! How a gateway route treats its callers: the one fact about routes that tier rules need
//! (a `job_submit` route accepts job submissions from tiers with `job_submit = true`).

use serde::Deserialize;

/// How a route treats its callers. Exhaustive: the gateway matches on it, so a new class is a
/// compile error wherever it must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteClass {
    /// No credential needed.
    Public,
    /// A verified identity is required.
    Authenticated,
    /// A verified identity is required and the body is a training-job specification.
    JobSubmit,
}

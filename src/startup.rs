//! The error that stops the process at start because of its configuration (an unreadable TLS
//! key, a missing master key, a bad policy file, a bad command-line value): `main` answers it
//! with exit code 2 instead of 1. It lives apart from [`crate::serve`] so that the modules that
//! raise it (identity, policy file, operator and screening commands) need not import the
//! start-up code that imports them.

/// A configuration problem found only at start (e.g. unreadable TLS key): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupConfigError(pub String);

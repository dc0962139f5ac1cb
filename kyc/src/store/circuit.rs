//! The store's circuit: once the database is known to be down, every store call fails at once
//! with [`StoreError::Down`] (answered 503 + `Retry-After`) instead of waiting the pool's
//! acquire timeout, and a background probe closes the circuit as soon as the database answers.
//!
//! The probe (`health`, [`Store::watch_health`](super::Store::watch_health)) runs only in the
//! gateway and only on PostgreSQL; tools that open a store never arm the circuit, and an embedded
//! SQLite file has no server to lose. Each probe opens a *fresh* connection (outside the pool) and
//! runs `SELECT 1`: a pool that is merely busy under load must not read as an outage. "Known down"
//! means the last probe failed: a refused connection, or no answer within the probe timeout (a hung
//! server). Detection therefore takes at most one probe interval plus one probe timeout; requests
//! already waiting when the circuit opens keep their own timeouts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::StoreError;

/// Circuit state shared by every clone of a [`Store`](super::Store).
#[derive(Debug, Default)]
pub(crate) struct Circuit {
    /// A probe is running (only then does `open` mean anything).
    armed: AtomicBool,
    /// The last probe failed.
    open: AtomicBool,
}

/// How the gateway probes the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthProbe {
    /// Time between probes. The circuit opens and closes at most this late (plus `timeout`).
    pub interval: Duration,
    /// Longest a probe may take before the database counts as down (a hang).
    pub timeout: Duration,
}

// === impl Circuit ===

impl Circuit {
    /// `Err(StoreError::Down)` while armed and open.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.armed.load(Ordering::Acquire) && self.open.load(Ordering::Acquire) {
            Err(StoreError::Down)
        } else {
            Ok(())
        }
    }

    /// Marks a probe as running: from now on `open` decides.
    pub(super) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Records one probe's answer; whether the state changed (closed ↔ open).
    pub(super) fn record(&self, up: bool) -> bool {
        let was_open = self.open.swap(!up, Ordering::AcqRel);
        was_open == up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarmed_circuit_never_refuses() {
        let c = Circuit::default();
        c.open.store(true, Ordering::Release);
        assert!(c.check().is_ok());
        c.armed.store(true, Ordering::Release);
        assert!(matches!(c.check(), Err(StoreError::Down)));
        c.open.store(false, Ordering::Release);
        assert!(c.check().is_ok());
    }
}

//! The store's circuit: once the database is known to be down, every store call fails at once
//! with [`StoreError::Down`] (answered 503 + `Retry-After`) instead of waiting the pool's
//! acquire timeout, and a background probe closes the circuit as soon as the database answers.
//!
//! The probe runs only in the gateway ([`Store::watch_health`]) and only on PostgreSQL; tools
//! that open a store never arm the circuit, and an embedded SQLite file has no server to lose.
//! Each probe opens a *fresh* connection (outside the pool) and runs `SELECT 1`: a pool that
//! is merely busy under load must not read as an outage. "Known down" means the last probe
//! failed: a refused connection, or no answer within the probe timeout (a hung server).
//! Detection therefore takes at most one probe interval plus one probe timeout; requests
//! already waiting when the circuit opens keep their own timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Store, StoreError};

/// Circuit state shared by every clone of a [`Store`].
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
}

// === impl Store ===

impl Store {
    /// On PostgreSQL, arms the circuit and probes the database every `probe.interval` until
    /// the returned task is aborted (or the process ends); `on_change(down)` is called on every
    /// change of state (for metrics and logs). On SQLite, does nothing and returns `None`.
    pub fn watch_health(
        &self,
        probe: HealthProbe,
        on_change: impl Fn(bool) + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.kind() != super::BackendKind::Postgres {
            return None;
        }
        Some(self.spawn_probe(probe, on_change))
    }

    fn spawn_probe(
        &self,
        probe: HealthProbe,
        on_change: impl Fn(bool) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let circuit: Arc<Circuit> = self.circuit.clone();
        circuit.armed.store(true, Ordering::Release);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(probe.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let up = matches!(
                    tokio::time::timeout(probe.timeout, store.probe_once()).await,
                    Ok(Ok(()))
                );
                let was_open = circuit.open.swap(!up, Ordering::AcqRel);
                if was_open == up {
                    if up {
                        tracing::info!("database answers again; store circuit closed");
                    } else {
                        tracing::warn!("database unreachable; store circuit open (failing fast)");
                    }
                    on_change(!up);
                }
            }
        })
    }

    /// One probe: a fresh connection (never a pooled one: a busy pool is not an outage) and
    /// `SELECT 1`. SQLite (only reached by the unit test) pings through the pool.
    async fn probe_once(&self) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        match self.backend() {
            super::Backend::Postgres(pool) => {
                let options = pool.connect_options();
                let mut conn = sqlx::PgConnection::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await?;
                Ok(())
            }
            super::Backend::Sqlite(_) => self.ping().await,
        }
    }

    /// Whether the circuit is open now (the database is known to be down).
    pub fn known_down(&self) -> bool {
        self.circuit.check().is_err()
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

    #[tokio::test]
    async fn the_probe_opens_and_closes_the_circuit() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = changes.clone();
        let probe = HealthProbe {
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(200),
        };
        assert!(
            store.watch_health(probe, |_| ()).is_none(),
            "SQLite has no circuit"
        );
        // The probe loop itself, driven on SQLite (which pings through the pool).
        let task = store.spawn_probe(probe, move |down| seen.lock().unwrap().push(down));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!store.known_down());
        store.close().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(store.known_down(), "a closed pool is down");
        assert!(store.ping().await.is_err());
        assert_eq!(*changes.lock().unwrap(), vec![true]);
        task.abort();
    }
}

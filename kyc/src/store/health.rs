//! Health of the database behind a [`Store`]: the readiness round trip ([`Store::ping`]) and the
//! gateway's background probe ([`Store::watch_health`]) that opens and closes the store's
//! circuit (the state itself lives in `circuit`).

use std::sync::Arc;

use super::backend::{Backend, BackendKind, Store};
use super::circuit::{Circuit, HealthProbe};
use super::error::StoreError;

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
        if self.kind() != BackendKind::Postgres {
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
        circuit.arm();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(probe.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let up = matches!(
                    tokio::time::timeout(probe.timeout, store.probe_once()).await,
                    Ok(Ok(()))
                );
                if circuit.record(up) {
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
            Backend::Postgres(pool) => {
                let options = pool.connect_options();
                let mut conn = sqlx::PgConnection::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await?;
                Ok(())
            }
            Backend::Sqlite(_) => self.ping().await,
        }
    }

    /// Whether the circuit is open now (the database is known to be down).
    pub fn known_down(&self) -> bool {
        self.circuit.check().is_err()
    }
    /// A cheap round trip proving the database answers (for readiness probes).
    /// Bypasses the store circuit: the health probe uses it to learn that the database is back.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.backend() {
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

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

//! The lease sweep: every replica closes, every [`SWEEP_EVERY`], the jobs whose lease (time
//! limit plus the policy's `lease_grace`) ended without a final usage event. The ledger makes a
//! job expire once however many replicas sweep (`computegate_kyc::ledger` `close` module), so
//! no leader election is needed. The same loop purges expired idempotency keys of job
//! submissions (one indexed read when none is due).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Metering;

/// Time between sweeps: how late past its lease end a job may be closed (one indexed query when
/// nothing is due).
const SWEEP_EVERY: Duration = Duration::from_secs(2);

// === impl Metering ===

impl Metering {
    /// Starts the lease sweep; it ends when `stop` turns true or the service is dropped.
    pub fn spawn_lease_sweep(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break;
                        }
                        continue;
                    }
                }
                let Some(metering) = weak.upgrade() else {
                    break;
                };
                metering.sweep_leases().await;
            }
        });
    }

    async fn sweep_leases(&self) {
        match self
            .store
            .ledger()
            .expire_leases(OffsetDateTime::now_utc())
            .await
        {
            Ok(sweep) => {
                if !sweep.expired.is_empty() {
                    tracing::info!(jobs = sweep.expired.len(), "closed jobs whose lease ended");
                    self.metrics.leases_expired(sweep.expired.len());
                }
            }
            Err(e) => tracing::warn!(error = %e, "lease sweep failed; retrying"),
        }
        let purged = self
            .store
            .ledger()
            .purge_idempotency_keys(OffsetDateTime::now_utc())
            .await;
        match purged {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "purged expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "idempotency key purge failed; retrying"),
        }
    }
}

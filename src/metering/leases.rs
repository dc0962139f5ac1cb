//! The lease sweep: every replica closes, every [`SWEEP_EVERY`], the jobs whose lease (time
//! limit plus the policy's `lease_grace`) ended without a final usage event. The ledger makes a
//! job expire once however many replicas sweep (`computegate_kyc::ledger` `close` module), so
//! no leader election is needed. The same loop purges expired idempotency keys of job
//! submissions (one indexed read when none is due).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::Metering;
use crate::periodic::every;

/// Time between sweeps: how late past its lease end a job may be closed (one indexed query when
/// nothing is due).
const SWEEP_EVERY: Duration = Duration::from_secs(2);

// === impl Metering ===

impl Metering {
    /// Starts the lease sweep; it ends when `stop` turns true or the service is dropped.
    pub fn spawn_lease_sweep(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        every(self, stop, SWEEP_EVERY, |metering| async move {
            metering.sweep_leases().await;
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

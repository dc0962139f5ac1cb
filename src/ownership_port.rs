//! The gateway's job-ownership port implemented with the ledger: an upstream's job id is bound to
//! the ledger job the gateway admitted, whose customer owns it.

use std::sync::Arc;

use computegate_gateway::auth::BoxFuture;
use computegate_gateway::ownership::{JobOwners, OwnersUnavailable};
use computegate_kyc::Store;
use computegate_kyc::ledger::LedgerError;
use uuid::Uuid;

/// [`JobOwners`] over the store.
pub struct StoreJobOwners {
    store: Store,
}

// === impl StoreJobOwners ===

impl StoreJobOwners {
    /// Owners read from and bound in `store`.
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

impl JobOwners for StoreJobOwners {
    fn bind(
        &self,
        job_id: String,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<(), OwnersUnavailable>> {
        let store = self.store.clone();
        Box::pin(async move {
            let Ok(job) = Uuid::parse_str(&job_id) else {
                return Ok(());
            };
            match store
                .ledger()
                .bind_upstream_job(job, &upstream, &upstream_job_id)
                .await
            {
                Ok(()) => Ok(()),
                // Not retryable: the id is unusable or the job is gone; the job stays unowned.
                Err(e @ (LedgerError::Invalid(_) | LedgerError::UnknownJob)) => {
                    tracing::warn!(job = %job, error = %e, "upstream job id not bound");
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(job = %job, error = %e, "binding an upstream job id failed");
                    Err(OwnersUnavailable)
                }
            }
        })
    }

    fn owner(
        &self,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<Option<String>, OwnersUnavailable>> {
        let store = self.store.clone();
        Box::pin(async move {
            if upstream_job_id.len() > computegate_kyc::ledger::MAX_UPSTREAM_ID_LEN {
                return Ok(None);
            }
            match store
                .ledger()
                .upstream_job_owner(&upstream, &upstream_job_id)
                .await
            {
                Ok(owner) => Ok(owner.map(|c| c.to_string())),
                Err(e) => {
                    tracing::debug!(error = %e, "looking up a job's owner failed");
                    Err(OwnersUnavailable)
                }
            }
        })
    }
}

//! `LedgerStore::admit`: validates the request and runs the admission transaction
//! ([`super::admit_tx`]) — one per job on PostgreSQL; on SQLite, admissions that queue for the
//! writer share one transaction and one commit ([`batch`]).

mod batch;

use uuid::Uuid;

use super::admit_tx::{admit_in, validate};
use super::model::{AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError};
use crate::store::{Backend, LedgerStore, in_transaction};

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// Admits, holds or denies one job in a single transaction (see the module docs of
    /// [`crate::ledger`] for the locking and what counts where). The decision, its job row,
    /// crossings, review hold or reports and the audit record are committed before this
    /// returns; on any error nothing is recorded and nothing is reserved (fail closed).
    ///
    /// A linked-group change that commits while the admission waits for its locks makes it
    /// start over (at most three times, then [`LedgerError::Contended`]).
    pub async fn admit(&self, req: &AdmissionRequest) -> Result<AdmissionDecision, LedgerError> {
        self.admit_with(req, &AdmissionOptions::default()).await
    }

    /// [`Self::admit`] with a projection for the thresholds and/or a review hold the caller
    /// asks for (see [`AdmissionOptions`]).
    pub async fn admit_with(
        &self,
        req: &AdmissionRequest,
        options: &AdmissionOptions,
    ) -> Result<AdmissionDecision, LedgerError> {
        validate(req, options)?;
        let job_id = Uuid::now_v7();
        if let Backend::Sqlite(pool) = self.store.backend() {
            return batch::admit(self.store, pool, req, options, job_id).await;
        }
        for _ in 0..super::model::MAX_ATTEMPTS {
            let attempt = in_transaction!(self.store, |tx| admit_in(&mut tx, req, options, job_id)
                .await?);
            if let Some(decision) = attempt {
                return Ok(decision);
            }
        }
        Err(LedgerError::Contended)
    }
}

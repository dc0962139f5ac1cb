//! `LedgerStore::admit`: validates the request and runs the admission transaction
//! ([`super::admit_tx`]); admissions that queue for their turn share one transaction and one
//! commit ([`batch`]), on both backends.

mod batch;
mod bulk;

pub use batch::AdmissionBatchStats;

use uuid::Uuid;

use super::admit_tx::validate;
use super::model::{AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError};
use crate::store::LedgerStore;

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
        batch::admit(self.store, req, options, Uuid::now_v7()).await
    }
}

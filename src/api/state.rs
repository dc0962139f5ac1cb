//! What the control-plane handlers share: the identity, verification and metering services.
//! One state for every router; a handler takes the part it needs (`State<Arc<Identity>>`, …)
//! and the extractors find the identity service through [`FromRef`].

use std::sync::Arc;

use axum::extract::FromRef;

use crate::identity::Identity;
use crate::metering::Metering;
use crate::verification::Verification;

/// The services behind the control-plane APIs.
#[derive(Clone, FromRef)]
pub struct ApiState {
    /// Accounts, credentials, sessions.
    pub identity: Arc<Identity>,
    /// Verification (KYC/KYB) applications, review, screening.
    pub kyc: Arc<Verification>,
    /// The compute ledger's staff operations and usage intake.
    pub metering: Arc<Metering>,
}

//! The domain handles: `store.accounts()`, `store.credentials()`, `store.verification()`,
//! `store.screening()`, `store.ledger()`, `store.audit()`, `store.access()`,
//! `store.incidents()` and `store.retention()`, so where something is saved is visible from the
//! type of the call. Each handle is a `Copy` borrow of the [`Store`];
//! its methods live in `impl` blocks next to their domain (the module named on each handle).
//! Handles deliberately do not deref to [`Store`]: infrastructure (connect, migrate, health,
//! backend kind) is reached on the store itself, never through a domain.

use super::backend::Store;

/// Customers, organizations and staff users, and logging them in (`crate::accounts`,
/// `crate::login`): who exists and with which password, status and tier.
///
/// Obtained with [`Store::accounts`].
#[derive(Debug, Clone, Copy)]
pub struct AccountsStore<'s> {
    pub(crate) store: &'s Store,
}

/// What a caller presents after logging in (`crate::refresh`, `crate::api_keys`,
/// `crate::revocation`, `crate::tokens`): refresh-token families, API keys, revoked access
/// tokens and the token signing keys.
///
/// Obtained with [`Store::credentials`].
#[derive(Debug, Clone, Copy)]
pub struct CredentialsStore<'s> {
    pub(crate) store: &'s Store,
}

/// KYC applications and what hangs off them (`crate::verification`): drafts, documents, IDV
/// fetches, staff review and customer actions, suspension and verified jurisdictions.
///
/// Obtained with [`Store::verification`].
#[derive(Debug, Clone, Copy)]
pub struct VerificationStore<'s> {
    pub(crate) store: &'s Store,
}

/// Sanctions lists and screening results (`crate::screening`).
///
/// Obtained with [`Store::screening`].
#[derive(Debug, Clone, Copy)]
pub struct ScreeningStore<'s> {
    pub(crate) store: &'s Store,
}

/// The compute ledger (`crate::ledger`): admission, usage, review holds, linked groups, runs
/// and training-run reports.
///
/// Obtained with [`Store::ledger`].
#[derive(Debug, Clone, Copy)]
pub struct LedgerStore<'s> {
    pub(crate) store: &'s Store,
}

/// The hash-chained audit trail (`crate::audit`): appending, reading, exporting and verifying it.
///
/// Obtained with [`Store::audit`].
#[derive(Debug, Clone, Copy)]
pub struct AuditStore<'s> {
    pub(crate) store: &'s Store,
}

/// Retention (`crate::retention`): purging and redacting records whose period ran out.
///
/// Obtained with [`Store::retention`].
#[derive(Debug, Clone, Copy)]
pub struct RetentionStore<'s> {
    pub(crate) store: &'s Store,
}

/// The access log (`crate::access_log`): who read which personal data.
///
/// Obtained with [`Store::access`].
#[derive(Debug, Clone, Copy)]
pub struct AccessStore<'s> {
    pub(crate) store: &'s Store,
}

/// Abuse incidents, their STIX export, and the review flags partners' bundles raise
/// (`crate::incidents`).
///
/// Obtained with [`Store::incidents`].
#[derive(Debug, Clone, Copy)]
pub struct IncidentsStore<'s> {
    pub(crate) store: &'s Store,
}

// === impl Store ===

impl Store {
    /// The accounts handle ([`AccountsStore`]).
    pub fn accounts(&self) -> AccountsStore<'_> {
        AccountsStore { store: self }
    }

    /// The credentials handle ([`CredentialsStore`]).
    pub fn credentials(&self) -> CredentialsStore<'_> {
        CredentialsStore { store: self }
    }

    /// The verification handle ([`VerificationStore`]).
    pub fn verification(&self) -> VerificationStore<'_> {
        VerificationStore { store: self }
    }

    /// The screening handle ([`ScreeningStore`]).
    pub fn screening(&self) -> ScreeningStore<'_> {
        ScreeningStore { store: self }
    }

    /// The ledger handle ([`LedgerStore`]).
    pub fn ledger(&self) -> LedgerStore<'_> {
        LedgerStore { store: self }
    }

    /// The audit handle ([`AuditStore`]).
    pub fn audit(&self) -> AuditStore<'_> {
        AuditStore { store: self }
    }

    /// The access handle ([`AccessStore`]).
    pub fn access(&self) -> AccessStore<'_> {
        AccessStore { store: self }
    }

    /// The incidents handle ([`IncidentsStore`]).
    pub fn incidents(&self) -> IncidentsStore<'_> {
        IncidentsStore { store: self }
    }

    /// The retention handle ([`RetentionStore`]).
    pub fn retention(&self) -> RetentionStore<'_> {
        RetentionStore { store: self }
    }
}

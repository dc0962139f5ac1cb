//! Verification against SQLite and PostgreSQL: applications through the state machine, the
//! four-eyes rule, documents, IDV events, suspension and expiry — each flow ending with an
//! intact audit chain.

#[path = "../support/mod.rs"]
mod support;

mod fixtures;

mod documents;
mod idv;
mod jurisdictions;
mod lifecycle;
mod linking;
mod organizations;
mod random_ops;
mod resellers;
mod retention;
mod review;

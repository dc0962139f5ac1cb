//! The compute ledger suite, run unchanged against SQLite (a temporary file) and PostgreSQL (a
//! database per test; those variants are ignored by default and run with
//! `cargo test -p computegate-kyc ledger -- --include-ignored`). Every test path starts with
//! `ledger::`, so that filter selects exactly this suite and the ledger's unit tests.

#[path = "support/mod.rs"]
mod support;

mod ledger {
    mod admission;
    mod fixtures;
    mod groups;
    mod idempotency;
    mod pages;
    mod race;
    mod reports;
    mod thresholds;
    mod usage;
}

//! The audit chain against SQLite and PostgreSQL: append, page, export, verify, tampering
//! caught (edit, deletion, reorder, truncation) and concurrent writers kept in one line; retention
//! redaction (the only change the guard allows, verified) and its once-a-day claim; policy loads
//! recorded once per change.

#[path = "../support/mod.rs"]
mod support;

mod chain;
mod policy_loads;
mod retention;

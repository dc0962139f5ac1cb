//! The audit chain against SQLite and PostgreSQL: append, page, export, verify, tampering
//! caught (edit, deletion, reorder, truncation) and concurrent writers kept in one line.

#[path = "../support/mod.rs"]
mod support;

mod chain;

//! One store suite, run unchanged against SQLite (a temporary file) and PostgreSQL (a
//! database created per test and dropped after it). Each submodule lists its tests in
//! `store_suite!`, which expands them once per backend; the PostgreSQL variants are ignored by
//! default and run with `cargo test -p computegate-kyc -- --include-ignored`.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod api_keys;
mod incidents;
mod login;
mod refresh;
mod schema;
mod signing;

//! Computegate: a know-your-customer gateway in front of GPU / training-compute APIs.
//!
//! The root crate is the binary's library: the command line ([`cli`]), process start-up
//! ([`serve`], [`demo`]), logging ([`telemetry`]) and the simulated compute API ([`sim`]).

pub mod annual_report;
pub mod api;
pub mod arguments;
pub mod cli;
pub mod console;
pub mod demo;
pub mod environment;
pub mod identity;
pub mod incidents_cli;
pub mod ledger_metrics;
pub mod ledger_port;
pub mod metering;
pub mod migrate_cli;
pub mod operator;
pub mod ownership_port;
mod periodic;
pub mod policy_file;
pub mod portal;
pub mod progress;
pub mod ratelimit_redis;
pub mod report_identity;
pub mod report_pdf;
pub mod retention;
pub mod screening_cli;
pub mod serve;
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod verification;
pub mod web;

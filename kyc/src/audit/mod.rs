//! The audit chain: an append-only, hash-linked record of every decision that matters — KYC
//! transitions, reviews, document downloads, tier and status changes, auth and key events,
//! policy changes, job admissions — with who did it, from which IP and when. Tracing is not
//! the audit log; this is.
//!
//! # Records and hashes
//!
//! Table `audit_log` holds `(seq, at, actor, actor_ip, action, subject, detail, prev_hash,
//! hash)`. `seq` starts at 1 and has no gaps; `prev_hash` is the previous record's `hash`
//! ([`GENESIS_HASH`], 32 zero bytes, for record 1); and
//!
//! ```text
//! hash = SHA-256(prev_hash ‖ canonical JSON of {action, actor, actor_ip, at, detail, prev_hash,
//! seq, subject})
//! ```
//!
//! where canonical JSON has keys sorted by UTF-8 bytes, no whitespace, `prev_hash` in lowercase
//! hex and `at` as RFC 3339 UTC with six fraction digits (`2030-01-01T00:00:00.000000Z`).
//! `detail` is stored as exactly the canonical text that was hashed. A JSON-lines export line
//! is that same object plus `"hash"`, so anyone can re-verify an export without this code.
//! `at` is the caller's clock; `seq` is the order.
//!
//! [`AuditStore::verify_audit_chain`] walks the table in `seq` order and reports the first broken
//! link: an edited record (hash mismatch), a deleted one (a `seq` gap, a truncated tail, or a
//! `prev_hash` that matches no predecessor), or a reordered one (a record whose hash is valid
//! for another position). A chain can only be checked against itself: someone who rewrites
//! the whole tail and the head row is caught only by comparing [`ChainHead`] with a copy kept
//! elsewhere (print it from `audit verify` into another system).
//!
//! # Redaction
//!
//! Retention (`crate::retention`) may redact records older than the policy's period: the
//! database allows exactly one change to a record — `actor_ip` cleared, `detail` replaced by
//! [`REDACTED_DETAIL`], `redacted_at` set, every other column kept. Verification checks a
//! redacted record's links instead of its hash (see `verify.rs` and `crate::retention`).
//!
//! # Appending inside the caller's transaction
//!
//! A change and its audit record commit together or not at all. Inside kyc, write:
//!
//! ```ignore
//! in_transaction!(self, |tx| {
//!     sqlx::query("UPDATE …").execute(&mut *tx).await?;   // the change
//!     audit::append(&mut tx, &entry).await?;               // last, just before commit
//!     value
//! })
//! ```
//!
//! [`append`] is one generic function over the crate-private `ChainTx` trait, which is implemented
//! for `sqlx::Transaction` of SQLite and of PostgreSQL (one body, expanded per backend like
//! `in_transaction!`), so it only accepts a transaction — never a pool — and its errors are plain
//! [`StoreError`]s that every domain error already converts from. Code outside kyc (the binary:
//! policy reloads, gateway decisions) uses [`AuditStore::record_audit`], which runs the append in
//! its own transaction.
//!
//! # Serializing writers
//!
//! The one-row table `audit_head` holds the last `seq` and `hash`. Every append advances it
//! while holding its lock: on PostgreSQL the row lock, so appends from every process queue
//! there and the chain stays one line; on SQLite the write transaction (`BEGIN IMMEDIATE`,
//! after the store's in-process writer lock) already serializes writers.
//!
//! - SQLite: `UPDATE audit_head SET seq = seq + n … RETURNING seq, hash` (n records, 1 for one), hashed
//!   here, then the new head hash and the record (three statements, all in process).
//! - PostgreSQL: one statement that locks the head (`SELECT … FOR UPDATE` in a CTE), hashes the
//!   record with the server's `sha256()` (PostgreSQL 11 or newer) over the canonical text built
//!   here around the two values only the head knows (`prev_hash` and `seq`), advances the head and
//!   inserts the record. The hash is recomputed here from the returned `seq` and `prev_hash`; any
//!   difference fails the append, so the server can never write a link this code would not verify.
//!   The head lock is thus held for one round trip plus the commit.
//!
//! The lock is held until the caller commits, which is why callers **append last**: every
//! statement after the append lengthens the time other writers wait, and taking other row
//! locks after it invites deadlocks.
//!
//! # Throughput and group commit
//!
//! With one head lock per transaction the chain admits one committing transaction at a time:
//! on PostgreSQL each holds the lock across its commit, so appends cannot share a WAL flush and
//! the ceiling is one `fdatasync` plus one round trip per record (about 1.5–2.0 k appends/s on
//! the 2-core benchmark machine; see BENCHMARKS.md). Job admission, the busiest writer, therefore
//! group-commits (see `crate::ledger`): the admissions that queued while the previous batch ran
//! are decided in one transaction and their records appended together with [`append_all`] —
//! one head update and one multi-row insert for the run (SQLite: advance the head by `n`, link
//! in Rust, set the head hash, insert; PostgreSQL: lock and read the head, link in Rust, then
//! update the head and insert in one statement) — and committed once.
//!
mod action;
mod canonical;
mod chain;
mod export;
mod policy_loads;
mod verify;

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::accounts::Actor;
use crate::store::StoreError;

pub use self::action::AuditAction;
pub(crate) use self::chain::{ChainTx, append, append_all};
pub use self::export::{AuditFilter, ExportFormat, MAX_AUDIT_PAGE};
pub use self::policy_loads::{PolicyLoad, PolicyTrigger};
pub use self::verify::{AuditVerification, BrokenLink, BrokenReason};

/// Length of every chain hash (SHA-256).
pub const HASH_LEN: usize = 32;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; HASH_LEN] = [0; HASH_LEN];

/// The `detail` of a record retention redacted (`actor_ip` is cleared with it); see
/// `crate::retention`.
pub const REDACTED_DETAIL: &str = "{\"redacted\":true}";

/// Key of a retention record's `detail` giving the highest `seq` redacted so far; `verify`
/// refuses redacted records beyond it.
pub const REDACTED_THROUGH_KEY: &str = "redacted_through_seq";

/// Canonical `detail` longer than this is replaced by a digest of it (see [`AuditEntry`]).
pub const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// One record to append. `action` is an [`AuditAction`], stored as
/// `<area>.<noun>.<past-tense verb>` (`kyc.application.submitted`), so staff can filter on it;
/// anything variable goes into `detail`.
///
/// `detail` must never hold secrets; personal data only where the record needs it (an id is
/// better than a name). A canonical `detail` larger than [`MAX_DETAIL_BYTES`] is stored as
/// `{"truncated":true,"bytes":n,"sha256":"…"}` rather than failing the change it records.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When it happened (the caller's clock; stored as UTC microseconds).
    pub at: OffsetDateTime,
    /// Who did it and from where.
    pub actor: Actor,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to: `customer:<uuid>`, `application:<uuid>`, `staff:<uuid>`, …
    pub subject: String,
    /// Structured detail (a JSON object by convention).
    pub detail: serde_json::Value,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it happened (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `staff:<uuid>`, `customer:<uuid>` or `system:<label>`.
    pub actor: String,
    /// The actor's address, when the action came over the network.
    #[schema(value_type = Option<String>)]
    pub actor_ip: Option<IpAddr>,
    /// What happened.
    pub action: String,
    /// What it happened to.
    pub subject: String,
    /// Structured detail.
    pub detail: serde_json::Value,
    /// The previous record's hash.
    #[schema(value_type = String)]
    pub prev_hash: ChainHash,
    /// This record's hash.
    #[schema(value_type = String)]
    pub hash: ChainHash,
}

/// A SHA-256 chain hash; `Display` and serde use lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; HASH_LEN]);

/// The newest record's position and hash, as kept in `audit_head`. Keep a copy outside the
/// database to detect a rewritten tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// Last `seq` (0 for an empty chain).
    pub seq: i64,
    /// Last hash ([`GENESIS_HASH`] for an empty chain).
    pub hash: ChainHash,
}

/// Why an audit read or export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Writing the export failed.
    #[error("writing the audit export failed")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(AuditError);

// === impl AuditEntry ===

impl AuditEntry {
    /// An entry with an empty-object detail.
    pub fn new(
        at: OffsetDateTime,
        actor: &Actor,
        action: AuditAction,
        subject: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.clone(),
            action,
            subject: subject.into(),
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The same entry with `detail`.
    pub fn with_detail(mut self, detail: serde_json::Value) -> AuditEntry {
        self.detail = detail;
        self
    }
}

/// Whether `action` follows the naming rule: 3..=100 bytes of `a-z0-9_.`, dot-separated, no
/// empty segment (every [`AuditAction`] does; a test checks).
pub fn is_valid_action(action: impl AsRef<str>) -> bool {
    let action = action.as_ref();
    (3..=100).contains(&action.len())
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && action.split('.').all(|seg| !seg.is_empty())
}

// === impl ChainHash ===

impl ChainHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From a stored column; `None` unless exactly [`HASH_LEN`] bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<ChainHash> {
        bytes.try_into().ok().map(ChainHash)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl serde::Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names() {
        for ok in [
            "auth.login",
            "kyc.application.submitted",
            "key.created",
            "a_b.c2",
        ] {
            assert!(is_valid_action(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Auth.login",
            "auth..login",
            ".x.y",
            "auth login",
            "x.y.",
        ] {
            assert!(!is_valid_action(bad), "{bad}");
        }
    }
}

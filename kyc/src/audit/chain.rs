//! Appending to the chain (inside a caller's transaction or in its own) and reading the head.

use std::future::Future;

use super::canonical::{RecordFields, record_hash, record_json_parts, to_canonical};
use super::{
    AuditAction, AuditEntry, AuditRecord, ChainHash, ChainHead, GENESIS_HASH, MAX_DETAIL_BYTES,
    is_valid_action,
};
use crate::store::{AuditStore, DbTime, StoreError, in_transaction, on_pool};
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgBindIterExt as _;
use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};

/// SQLite: stores the new record's hash in the head.
const SET_HEAD_HASH: &str = "UPDATE audit_head SET hash = $1 WHERE id = 1";

/// SQLite: advances the head past `$1` records at once and returns the new `seq` with the
/// previous hash (the hash column is set afterwards, by [`SET_HEAD_HASH`]).
const ADVANCE_HEAD_BY: &str =
    "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";

/// PostgreSQL: locks the head for a run of records and reads it.
const LOCK_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";

/// PostgreSQL: moves the head to `$1` (seq) and `$2` (hash) and inserts the linked run, one array
/// per column.
const APPEND_RUN: &str = "WITH head AS (UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1) \
     INSERT INTO audit_log (seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash) \
     SELECT * FROM unnest($3::int8[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], \
       $8::text[], $9::text[], $10::bytea[], $11::bytea[])";

/// SQLite: most records in one multi-row insert (9 parameters each stays far below its limit
/// of 32 766).
const MAX_RECORDS_PER_INSERT: usize = 512;

/// PostgreSQL: the whole append in one statement, so the head lock is held for one round trip
/// and the commit (every round trip under it is paid by every queued writer). It locks the
/// head (`FOR UPDATE` reads the newest version once the lock is granted), hashes the record
/// with the server's `sha256` over the canonical text around the two values only the head
/// knows — `$7` is the text up to `"prev_hash":"`, `$8` the text after `seq` (see
/// `canonical::record_json_parts`) — advances the head and inserts the record. The caller
/// recomputes the hash in Rust and fails the transaction on any difference.
const APPEND_RECORD: &str = "WITH prev AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE), \
     next AS (SELECT seq + 1 AS seq, hash AS prev_hash, \
        sha256(hash || $7 || convert_to(encode(hash, 'hex') || '\",\"seq\":' || (seq + 1)::text, \
          'UTF8') || $8) AS hash \
        FROM prev), \
     head AS (UPDATE audit_head SET seq = next.seq, hash = next.hash FROM next \
        WHERE audit_head.id = 1) \
     INSERT INTO audit_log (seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash) \
     SELECT next.seq, $1, $2, $3, $4, $5, $6, next.prev_hash, next.hash FROM next \
     RETURNING seq, prev_hash, hash";

/// A write transaction of either backend that records can be appended in. Implemented for
/// `sqlx::Transaction<'_, Sqlite>` and `sqlx::Transaction<'_, Postgres>` only, so an append can
/// never run outside a transaction.
pub(crate) trait ChainTx: Send {
    /// Links `entry` after the current head and inserts it.
    fn append_prepared<'a>(
        &'a mut self,
        entry: &'a Prepared,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send + 'a;

    /// Links `entries` after the current head, one after the other, and inserts them with one
    /// head update and one multi-row insert: a run of records costs a few statements, not a
    /// few per record.
    fn append_run<'a>(
        &'a mut self,
        entries: &'a [Prepared],
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send + 'a;
}

/// An entry with its text columns ready to bind.
#[derive(Debug)]
pub(crate) struct Prepared {
    at: DbTime,
    actor: String,
    actor_ip: Option<String>,
    action: AuditAction,
    subject: String,
    detail_text: String,
    detail: serde_json::Value,
}

/// Appends `entry` to the chain inside the caller's transaction and returns the stored record.
/// Call it last in the transaction (see the module docs): the head lock is held until commit.
pub(crate) async fn append<T: ChainTx>(
    tx: &mut T,
    entry: &AuditEntry,
) -> Result<AuditRecord, StoreError> {
    let prepared = Prepared::new(entry);
    tx.append_prepared(&prepared).await
}

/// Appends `entries` to the chain, in order, inside the caller's transaction, in a constant
/// number of statements; returns the stored records. Call it last, as [`append`].
pub(crate) async fn append_all<T: ChainTx>(
    tx: &mut T,
    entries: &[AuditEntry],
) -> Result<Vec<AuditRecord>, StoreError> {
    match entries {
        [] => Ok(Vec::new()),
        [one] => Ok(vec![append(tx, one).await?]),
        _ => {
            let prepared: Vec<Prepared> = entries.iter().map(Prepared::new).collect();
            tx.append_run(&prepared).await
        }
    }
}

/// The records that follow `(seq, prev)` for `entries`: `seq + 1`, `seq + 2`, …, each hash
/// over its predecessor's.
fn link_run(entries: &[Prepared], seq: i64, prev: ChainHash) -> Vec<AuditRecord> {
    let mut prev_hash = prev;
    let mut records = Vec::with_capacity(entries.len());
    for (p, next) in entries.iter().zip(seq + 1..) {
        let hash = ChainHash(record_hash(&p.fields(next, &prev_hash)));
        records.push(p.record(next, prev_hash, hash));
        prev_hash = hash;
    }
    records
}

/// SQLite: pushes the multi-row insert of `records` onto `query`; their stored texts come from
/// `entries` (the same order).
fn push_insert<'a>(
    query: &mut QueryBuilder<Sqlite>,
    entries: &'a [Prepared],
    records: &'a [AuditRecord],
) {
    query.push(
        "INSERT INTO audit_log (seq, at, actor, actor_ip, action, subject, detail, \
         prev_hash, hash) ",
    );
    query.push_values(entries.iter().zip(records), |mut row, (p, r)| {
        row.push_bind(r.seq)
            .push_bind(p.at)
            .push_bind(p.actor.as_str())
            .push_bind(p.actor_ip.as_deref())
            .push_bind(p.action.as_str())
            .push_bind(p.subject.as_str())
            .push_bind(p.detail_text.as_str())
            .push_bind(&r.prev_hash.0[..])
            .push_bind(&r.hash.0[..]);
    });
}

impl ChainTx for Transaction<'_, Sqlite> {
    /// A run of one: on SQLite every append is the same three statements.
    async fn append_prepared(&mut self, p: &Prepared) -> Result<AuditRecord, StoreError> {
        let mut records = self.append_run(std::slice::from_ref(p)).await?;
        records.pop().ok_or(StoreError::CorruptRow {
            column: "audit_log.seq",
        })
    }

    async fn append_run(&mut self, entries: &[Prepared]) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(MAX_RECORDS_PER_INSERT) {
            let n = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            let (last, prev): (i64, Vec<u8>) = sqlx::query_as(ADVANCE_HEAD_BY)
                .bind(n)
                .fetch_one(&mut **self)
                .await?;
            let prev_hash = ChainHash::from_slice(&prev).ok_or(StoreError::CorruptRow {
                column: "audit_head.hash",
            })?;
            let linked = link_run(chunk, last - n, prev_hash);
            let Some(tail) = linked.last() else { break };
            sqlx::query(SET_HEAD_HASH)
                .bind(tail.hash.0.to_vec())
                .execute(&mut **self)
                .await?;
            let mut insert = QueryBuilder::new("");
            push_insert(&mut insert, chunk, &linked);
            insert.build().execute(&mut **self).await?;
            records.extend(linked);
        }
        Ok(records)
    }
}

impl ChainTx for Transaction<'_, Postgres> {
    async fn append_prepared(&mut self, p: &Prepared) -> Result<AuditRecord, StoreError> {
        let (before, after) = record_json_parts(&p.fields(0, &ChainHash(GENESIS_HASH)));
        let (seq, prev, stored): (i64, Vec<u8>, Vec<u8>) = sqlx::query_as(APPEND_RECORD)
            .bind(p.at)
            .bind(&p.actor)
            .bind(&p.actor_ip)
            .bind(p.action.as_str())
            .bind(&p.subject)
            .bind(&p.detail_text)
            .bind(before.into_bytes())
            .bind(after.into_bytes())
            .fetch_one(&mut **self)
            .await?;
        let prev_hash = ChainHash::from_slice(&prev).ok_or(StoreError::CorruptRow {
            column: "audit_head.hash",
        })?;
        let hash = ChainHash(record_hash(&p.fields(seq, &prev_hash)));
        if stored != hash.0 {
            // The server hashed other bytes than the canonical record (a changed
            // `record_json` or a server-side text conversion): dropping the transaction
            // rolls the record back rather than breaking the chain.
            return Err(StoreError::CorruptRow {
                column: "audit_log.hash",
            });
        }
        Ok(p.record(seq, prev_hash, hash))
    }

    /// The head is locked and read, the run linked here, and the head update and the insert
    /// sent as one statement: two round trips under the head lock for the whole run (against
    /// one per record for [`append`]). The records are bound as one array per column
    /// ([`APPEND_RUN`]), so the statement is the same text whatever the run's length.
    async fn append_run(&mut self, entries: &[Prepared]) -> Result<Vec<AuditRecord>, StoreError> {
        let (seq, prev): (i64, Vec<u8>) = sqlx::query_as(LOCK_HEAD).fetch_one(&mut **self).await?;
        let prev_hash = ChainHash::from_slice(&prev).ok_or(StoreError::CorruptRow {
            column: "audit_head.hash",
        })?;
        let records = link_run(entries, seq, prev_hash);
        let Some(tail) = records.last() else {
            return Ok(records);
        };
        sqlx::query(APPEND_RUN)
            .bind(tail.seq)
            .bind(&tail.hash.0[..])
            .bind(records.iter().map(|r| r.seq).bind_iter())
            .bind(entries.iter().map(|p| p.at.get()).bind_iter())
            .bind(entries.iter().map(|p| p.actor.as_str()).bind_iter())
            .bind(entries.iter().map(|p| p.actor_ip.as_deref()).bind_iter())
            .bind(entries.iter().map(|p| p.action.as_str()).bind_iter())
            .bind(entries.iter().map(|p| p.subject.as_str()).bind_iter())
            .bind(entries.iter().map(|p| p.detail_text.as_str()).bind_iter())
            .bind(records.iter().map(|r| &r.prev_hash.0[..]).bind_iter())
            .bind(records.iter().map(|r| &r.hash.0[..]).bind_iter())
            .execute(&mut **self)
            .await?;
        Ok(records)
    }
}

// === impl AuditStore ===

impl AuditStore<'_> {
    /// Appends one record in its own transaction — for callers outside kyc (policy reloads,
    /// gateway decisions) that have no transaction of their own. Inside kyc, append in the
    /// transaction of the change instead.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let record = in_transaction!(self.store, |tx| append(&mut tx, entry).await?);
        Ok(record)
    }

    /// The chain head: last `seq` and hash.
    pub async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let (seq, hash): (i64, Vec<u8>) = on_pool!(self.store, |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        let hash = ChainHash::from_slice(&hash).ok_or(StoreError::CorruptRow {
            column: "audit_head.hash",
        })?;
        Ok(ChainHead { seq, hash })
    }
}

// === impl Prepared ===

impl Prepared {
    fn new(entry: &AuditEntry) -> Prepared {
        debug_assert!(
            is_valid_action(entry.action),
            "audit action {:?} breaks the naming rule",
            entry.action
        );
        let mut detail = entry.detail.clone();
        let mut detail_text = to_canonical(&detail);
        if detail_text.len() > MAX_DETAIL_BYTES {
            detail = serde_json::json!({
                "truncated": true,
                "bytes": detail_text.len(),
                "sha256": hex::encode(Sha256::digest(detail_text.as_bytes())),
            });
            detail_text = to_canonical(&detail);
        }
        Prepared {
            at: DbTime::new(entry.at),
            actor: entry.actor.name.clone(),
            actor_ip: entry.actor.client_ip.map(|ip| ip.to_string()),
            action: entry.action,
            subject: entry.subject.clone(),
            detail_text,
            detail,
        }
    }

    fn fields<'a>(&'a self, seq: i64, prev_hash: &'a ChainHash) -> RecordFields<'a> {
        RecordFields {
            seq,
            at: self.at.get(),
            actor: &self.actor,
            actor_ip: self.actor_ip.as_deref(),
            action: self.action.as_str(),
            subject: &self.subject,
            detail: &self.detail_text,
            prev_hash: &prev_hash.0,
        }
    }

    fn record(&self, seq: i64, prev_hash: ChainHash, hash: ChainHash) -> AuditRecord {
        AuditRecord {
            seq,
            at: self.at.get(),
            actor: self.actor.clone(),
            actor_ip: self.actor_ip.as_deref().and_then(|ip| ip.parse().ok()),
            action: self.action.as_str().to_owned(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
            prev_hash,
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Actor;
    use time::macros::datetime;

    #[test]
    fn oversized_detail_becomes_a_digest() {
        let big = "x".repeat(MAX_DETAIL_BYTES + 1);
        let entry = AuditEntry::new(
            datetime!(2030-01-01 0:00 UTC),
            &Actor::system("test"),
            AuditAction::ReportsExported,
            "s",
        )
        .with_detail(serde_json::json!({ "blob": big }));
        let p = Prepared::new(&entry);
        assert!(p.detail_text.len() < 200);
        assert_eq!(p.detail["truncated"], true);
        assert!(p.detail_text.starts_with("{\"bytes\":"));
    }
}

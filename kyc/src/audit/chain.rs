//! Appending to the chain (inside a caller's transaction or in its own) and reading the head.

use std::future::Future;

use super::canonical::{RecordFields, record_hash, to_canonical};
use super::{AuditEntry, AuditRecord, ChainHash, ChainHead, MAX_DETAIL_BYTES, is_valid_action};
use crate::store::{DbTime, Store, StoreError, in_transaction, on_pool};
use sha2::{Digest as _, Sha256};
use sqlx::{Postgres, Sqlite, Transaction};

/// Advances the head and returns the new `seq` with the previous hash. On PostgreSQL this
/// takes the head row's lock until the caller's transaction ends.
const ADVANCE_HEAD: &str = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";

/// Stores the new record's hash in the head (SQLite: a statement of its own).
const SET_HEAD_HASH: &str = "UPDATE audit_head SET hash = $1 WHERE id = 1";

/// Inserts the record; its hash is `$9`.
macro_rules! insert_record_sql {
    () => {
        "INSERT INTO audit_log \
         (seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    };
}

const INSERT_RECORD: &str = insert_record_sql!();

/// PostgreSQL: the head hash and the record in one statement (a data-modifying CTE), saving a
/// round trip while the head lock is held — every one of those is paid by every queued writer.
const SET_HEAD_AND_INSERT_RECORD: &str = concat!(
    "WITH head AS (UPDATE audit_head SET hash = $9 WHERE id = 1) ",
    insert_record_sql!()
);

/// A write transaction of either backend that records can be appended in. Implemented for
/// `sqlx::Transaction<'_, Sqlite>` and `sqlx::Transaction<'_, Postgres>` only, so an append can
/// never run outside a transaction.
pub(crate) trait ChainTx: Send {
    /// Links `entry` after the current head and inserts it.
    fn append_prepared<'a>(
        &'a mut self,
        entry: &'a Prepared,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send + 'a;
}

/// An entry with its text columns ready to bind.
#[derive(Debug)]
pub(crate) struct Prepared {
    at: DbTime,
    actor: String,
    actor_ip: Option<String>,
    action: &'static str,
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

/// One body for both backends, like `in_transaction!`. `set_head`: the statement that stores
/// the new head hash before `insert` runs, when `insert` does not do it itself.
macro_rules! chain_tx_for {
    ($db:ty, set_head = $set_head:expr, insert = $insert:expr) => {
        impl ChainTx for Transaction<'_, $db> {
            fn append_prepared<'a>(
                &'a mut self,
                p: &'a Prepared,
            ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send + 'a {
                async move {
                    let (seq, prev): (i64, Vec<u8>) =
                        sqlx::query_as(ADVANCE_HEAD).fetch_one(&mut **self).await?;
                    let prev_hash = ChainHash::from_slice(&prev).ok_or(StoreError::CorruptRow {
                        column: "audit_head.hash",
                    })?;
                    let hash = ChainHash(record_hash(&p.fields(seq, &prev_hash)));
                    let set_head: Option<&str> = $set_head;
                    if let Some(sql) = set_head {
                        sqlx::query(sql)
                            .bind(hash.0.to_vec())
                            .execute(&mut **self)
                            .await?;
                    }
                    sqlx::query($insert)
                        .bind(seq)
                        .bind(p.at)
                        .bind(&p.actor)
                        .bind(&p.actor_ip)
                        .bind(p.action)
                        .bind(&p.subject)
                        .bind(&p.detail_text)
                        .bind(prev_hash.0.to_vec())
                        .bind(hash.0.to_vec())
                        .execute(&mut **self)
                        .await?;
                    Ok(p.record(seq, prev_hash, hash))
                }
            }
        }
    };
}

chain_tx_for!(
    Sqlite,
    set_head = Some(SET_HEAD_HASH),
    insert = INSERT_RECORD
);
chain_tx_for!(
    Postgres,
    set_head = None,
    insert = SET_HEAD_AND_INSERT_RECORD
);

// === impl Store ===

impl Store {
    /// Appends one record in its own transaction — for callers outside kyc (policy reloads,
    /// gateway decisions) that have no transaction of their own. Inside kyc, append in the
    /// transaction of the change instead.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        let record = in_transaction!(self, |tx| append(&mut tx, entry).await?);
        Ok(record)
    }

    /// The chain head: last `seq` and hash.
    pub async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let (seq, hash): (i64, Vec<u8>) = on_pool!(self, |pool| {
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
            action: self.action,
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
            action: self.action.to_owned(),
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
            "test.big",
            "s",
        )
        .with_detail(serde_json::json!({ "blob": big }));
        let p = Prepared::new(&entry);
        assert!(p.detail_text.len() < 200);
        assert_eq!(p.detail["truncated"], true);
        assert!(p.detail_text.starts_with("{\"bytes\":"));
    }
}

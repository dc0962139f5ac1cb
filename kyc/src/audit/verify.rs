//! Verifying the chain: a pure link checker over stored rows, and the store walk that feeds it
//! page by page in `seq` order.

use time::OffsetDateTime;

use super::canonical::{RecordFields, record_hash};
use super::{AuditError, ChainHead, GENESIS_HASH, HASH_LEN};
use crate::store::{AuditStore, on_pool};

/// Rows fetched per page while verifying or exporting.
pub(super) const PAGE: i64 = 1000;

/// How far from its position a record's hash is tried before a mismatch counts as an edit
/// rather than a move. Only tried once, at the first broken record.
const REORDER_WINDOW: i64 = 10_000;

/// The outcome of [`AuditStore::verify_audit_chain`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditVerification {
    /// Records checked (all of them when the chain is intact, those before the break otherwise).
    pub records: u64,
    /// The head read at the start; records appended during the walk are not checked.
    pub head: ChainHead,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Where the chain breaks first and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BrokenLink {
    /// The position at which the chain stops verifying.
    pub seq: i64,
    /// What was found there.
    pub reason: BrokenReason,
}

/// What kind of tampering a broken link shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BrokenReason {
    /// The record's content no longer matches its hash (or records were added past the
    /// head, or the head disagrees with the last record).
    Edited,
    /// A record is missing: a gap in `seq`, a truncated tail, or a `prev_hash` that is not the
    /// previous record's hash (a record in between was removed, or the previous one was
    /// rewritten together with its hash).
    Deleted,
    /// The record is authentic but sits at another position than the one it was hashed at.
    Reordered,
}

impl BrokenReason {
    /// The reason's name, as serialized (`edited`, `deleted`, `reordered`).
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenReason::Edited => "edited",
            BrokenReason::Deleted => "deleted",
            BrokenReason::Reordered => "reordered",
        }
    }
}

/// A stored row as read for verification, every column raw.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct RawRow {
    pub(super) seq: i64,
    pub(super) at: OffsetDateTime,
    pub(super) actor: String,
    pub(super) actor_ip: Option<String>,
    pub(super) action: String,
    pub(super) subject: String,
    pub(super) detail: String,
    pub(super) prev_hash: Vec<u8>,
    pub(super) hash: Vec<u8>,
}

/// Checks rows one at a time in `seq` order.
#[derive(Debug)]
pub(super) struct LinkChecker {
    last_seq: i64,
    last_hash: [u8; HASH_LEN],
    records: u64,
}

// === impl LinkChecker ===

impl LinkChecker {
    pub(super) fn new() -> LinkChecker {
        LinkChecker {
            last_seq: 0,
            last_hash: GENESIS_HASH,
            records: 0,
        }
    }

    pub(super) fn records(&self) -> u64 {
        self.records
    }

    /// Accepts the next row or reports the first broken link.
    pub(super) fn check(&mut self, row: &RawRow) -> Result<(), BrokenLink> {
        let expected = self.last_seq + 1;
        if row.seq != expected {
            return Err(broken(expected, BrokenReason::Deleted));
        }
        let stored: Option<[u8; HASH_LEN]> = row.hash.as_slice().try_into().ok();
        let computed = record_hash(&row.fields(row.seq));
        if stored != Some(computed) {
            let moved = stored.is_some_and(|stored| row.hashes_at_other_seq(stored));
            let reason = if moved {
                BrokenReason::Reordered
            } else {
                BrokenReason::Edited
            };
            return Err(broken(row.seq, reason));
        }
        if row.prev_hash != self.last_hash {
            return Err(broken(row.seq, BrokenReason::Deleted));
        }
        self.last_seq = row.seq;
        self.last_hash = computed;
        self.records += 1;
        Ok(())
    }

    /// Compares the end of the walk with the head read before it.
    pub(super) fn finish(&self, head: &ChainHead) -> Result<(), BrokenLink> {
        if self.last_seq < head.seq {
            return Err(broken(self.last_seq + 1, BrokenReason::Deleted));
        }
        if self.last_hash != head.hash.0 {
            return Err(broken(self.last_seq.max(1), BrokenReason::Edited));
        }
        Ok(())
    }
}

fn broken(seq: i64, reason: BrokenReason) -> BrokenLink {
    BrokenLink { seq, reason }
}

// === impl RawRow ===

impl RawRow {
    fn fields(&self, seq: i64) -> RecordFields<'_> {
        RecordFields {
            seq,
            at: self.at,
            actor: &self.actor,
            actor_ip: self.actor_ip.as_deref(),
            action: &self.action,
            subject: &self.subject,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
    }

    /// Whether the row's content is authentic for some other position near its own.
    fn hashes_at_other_seq(&self, stored: [u8; HASH_LEN]) -> bool {
        let low = (self.seq - REORDER_WINDOW).max(1);
        let high = self.seq.saturating_add(REORDER_WINDOW);
        (low..=high)
            .filter(|s| *s != self.seq)
            .any(|s| record_hash(&self.fields(s)) == stored)
    }
}

// === impl AuditStore ===

impl AuditStore<'_> {
    /// Walks the audit chain in `seq` order up to the head read at the start and reports the
    /// first broken link. Reads one page at a time, so memory stays flat however long the chain.
    pub async fn verify_audit_chain(&self) -> Result<AuditVerification, AuditError> {
        let head = self.audit_head().await?;
        let mut checker = LinkChecker::new();
        let mut after = 0i64;
        loop {
            let rows = self.raw_audit_page(after, head.seq).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for row in &rows {
                if let Err(link) = checker.check(row) {
                    return Ok(AuditVerification {
                        records: checker.records(),
                        head,
                        first_broken: Some(link),
                    });
                }
            }
        }
        Ok(AuditVerification {
            records: checker.records(),
            head,
            first_broken: checker.finish(&head).err(),
        })
    }

    /// Up to [`PAGE`] raw rows with `after < seq <= until`, in order.
    pub(super) async fn raw_audit_page(
        &self,
        after: i64,
        until: i64,
    ) -> Result<Vec<RawRow>, AuditError> {
        const SQL: &str = "SELECT seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash \
             FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
        let rows = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(after)
            .bind(until)
            .bind(PAGE)
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ChainHash;
    use time::macros::datetime;

    /// A valid chain of `n` rows built with the real hash function.
    fn chain(n: i64) -> Vec<RawRow> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let mut row = RawRow {
                    seq,
                    at: datetime!(2030-01-01 0:00 UTC),
                    actor: "system:test".into(),
                    actor_ip: Some("192.0.2.1".into()),
                    action: "test.event".into(),
                    subject: format!("thing:{seq}"),
                    detail: format!("{{\"n\":{seq}}}"),
                    prev_hash: prev.to_vec(),
                    hash: Vec::new(),
                };
                let h = record_hash(&row.fields(seq));
                row.hash = h.to_vec();
                prev = h;
                row
            })
            .collect()
    }

    fn check_all(rows: &[RawRow]) -> Option<BrokenLink> {
        let mut c = LinkChecker::new();
        for r in rows {
            if let Err(b) = c.check(r) {
                return Some(b);
            }
        }
        None
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(check_all(&chain(20)), None);
    }

    #[test]
    fn edit_delete_reorder_are_told_apart() {
        let mut rows = chain(10);
        rows[4].detail = "{\"n\":99}".into();
        assert_eq!(check_all(&rows), Some(broken(5, BrokenReason::Edited)));

        let mut rows = chain(10);
        rows.remove(3);
        assert_eq!(check_all(&rows), Some(broken(4, BrokenReason::Deleted)));

        // Delete and renumber, rehashing the renumbered row: its prev_hash still points at the
        // removed record.
        let mut rows = chain(10);
        rows.remove(3);
        rows[3].seq = 4;
        rows[3].hash = record_hash(&rows[3].fields(4)).to_vec();
        assert_eq!(check_all(&rows), Some(broken(4, BrokenReason::Deleted)));

        // Swap two records' positions (their seq values), adjacent or not.
        for (a, b) in [(2usize, 3usize), (1, 7)] {
            let mut rows = chain(10);
            let (sa, sb) = (rows[a].seq, rows[b].seq);
            rows[a].seq = sb;
            rows[b].seq = sa;
            rows.sort_by_key(|r| r.seq);
            assert_eq!(
                check_all(&rows),
                Some(broken(sa.min(sb), BrokenReason::Reordered))
            );
        }
    }

    #[test]
    fn truncated_tail_is_caught_by_the_head() {
        let rows = chain(5);
        let mut c = LinkChecker::new();
        for r in &rows[..3] {
            c.check(r).unwrap();
        }
        let head = ChainHead {
            seq: 5,
            hash: ChainHash::from_slice(&rows[4].hash).unwrap(),
        };
        assert_eq!(c.finish(&head), Err(broken(4, BrokenReason::Deleted)));
        for r in &rows[3..] {
            c.check(r).unwrap();
        }
        assert_eq!(c.finish(&head), Ok(()));
    }
}

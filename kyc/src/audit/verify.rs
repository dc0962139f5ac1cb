//! Verifying the chain: a pure link checker over stored rows, and the store walk that feeds it
//! page by page in `seq` order.

use time::OffsetDateTime;

use super::canonical::{RecordFields, record_hash};
use super::{
    AuditAction, AuditError, ChainHead, GENESIS_HASH, HASH_LEN, REDACTED_DETAIL,
    REDACTED_THROUGH_KEY,
};
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
    /// Records among `records` that retention redacted: their links were checked, their
    /// content could not be (see the module docs of `crate::retention`).
    pub redacted: u64,
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
    /// The record is marked redacted, but no retention run recorded later in the chain covers
    /// its position, or it still carries content (a redaction marker set by hand to dodge the
    /// hash check).
    UnrecordedRedaction,
}

impl BrokenReason {
    /// The reason's name, as serialized (`edited`, `deleted`, `reordered`).
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenReason::Edited => "edited",
            BrokenReason::Deleted => "deleted",
            BrokenReason::Reordered => "reordered",
            BrokenReason::UnrecordedRedaction => "unrecorded_redaction",
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
    /// Whether retention redacted the record (`redacted_at` set); read by verification only.
    #[sqlx(default)]
    pub(super) redacted: bool,
}

/// Checks rows one at a time in `seq` order.
#[derive(Debug)]
pub(super) struct LinkChecker {
    last_seq: i64,
    last_hash: [u8; HASH_LEN],
    records: u64,
    redacted: u64,
    /// The highest redacted `seq`, and the highest position a verified retention record says
    /// it redacted through; the first must not exceed the second when the walk ends.
    last_redacted: i64,
    redactions_recorded_through: i64,
}

// === impl LinkChecker ===

impl LinkChecker {
    pub(super) fn new() -> LinkChecker {
        LinkChecker {
            last_seq: 0,
            last_hash: GENESIS_HASH,
            records: 0,
            redacted: 0,
            last_redacted: 0,
            redactions_recorded_through: 0,
        }
    }

    pub(super) fn records(&self) -> u64 {
        self.records
    }

    pub(super) fn redacted(&self) -> u64 {
        self.redacted
    }

    /// Accepts the next row or reports the first broken link.
    pub(super) fn check(&mut self, row: &RawRow) -> Result<(), BrokenLink> {
        let expected = self.last_seq + 1;
        if row.seq != expected {
            return Err(broken(expected, BrokenReason::Deleted));
        }
        let stored: Option<[u8; HASH_LEN]> = row.hash.as_slice().try_into().ok();
        if row.redacted {
            return self.accept_redacted(row, stored);
        }
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
        if let Some(through) = redacted_through(row) {
            self.redactions_recorded_through = self.redactions_recorded_through.max(through);
        }
        self.last_seq = row.seq;
        self.last_hash = computed;
        self.records += 1;
        Ok(())
    }

    /// A redacted record cannot be rehashed (its content is gone): it must carry nothing but
    /// the marker and link to its predecessor; its own stored hash is then taken as the link
    /// its successor (or the head) must match.
    fn accept_redacted(
        &mut self,
        row: &RawRow,
        stored: Option<[u8; HASH_LEN]>,
    ) -> Result<(), BrokenLink> {
        if row.detail != REDACTED_DETAIL || row.actor_ip.is_some() {
            return Err(broken(row.seq, BrokenReason::UnrecordedRedaction));
        }
        let Some(stored) = stored else {
            return Err(broken(row.seq, BrokenReason::Edited));
        };
        if row.prev_hash != self.last_hash {
            return Err(broken(row.seq, BrokenReason::Deleted));
        }
        self.last_seq = row.seq;
        self.last_hash = stored;
        self.last_redacted = row.seq;
        self.records += 1;
        self.redacted += 1;
        Ok(())
    }

    /// Compares the end of the walk with the head read before it.
    pub(super) fn finish(&self, head: &ChainHead) -> Result<(), BrokenLink> {
        if self.last_redacted > self.redactions_recorded_through {
            return Err(broken(
                self.last_redacted,
                BrokenReason::UnrecordedRedaction,
            ));
        }
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

/// The position a verified retention record says the chain is redacted through, if `row` is one.
fn redacted_through(row: &RawRow) -> Option<i64> {
    if row.action != AuditAction::RetentionApplied.as_str() {
        return None;
    }
    let detail: serde_json::Value = serde_json::from_str(&row.detail).ok()?;
    detail.get(REDACTED_THROUGH_KEY)?.as_i64()
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
                        redacted: checker.redacted(),
                    });
                }
            }
        }
        Ok(AuditVerification {
            records: checker.records(),
            head,
            first_broken: checker.finish(&head).err(),
            redacted: checker.redacted(),
        })
    }

    /// Up to [`PAGE`] raw rows with `after < seq <= until`, in order.
    pub(super) async fn raw_audit_page(
        &self,
        after: i64,
        until: i64,
    ) -> Result<Vec<RawRow>, AuditError> {
        const SQL: &str = "SELECT seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash, \
             (redacted_at IS NOT NULL) AS redacted \
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
        let events: Vec<(&str, String)> = (1..=n)
            .map(|seq| ("test.event", format!("{{\"n\":{seq}}}")))
            .collect();
        chain_of(&events)
    }

    /// A valid chain of rows with these actions and details.
    fn chain_of(events: &[(&str, String)]) -> Vec<RawRow> {
        let mut prev = GENESIS_HASH;
        (1i64..)
            .zip(events)
            .map(|(seq, (action, detail))| {
                let mut row = RawRow {
                    seq,
                    at: datetime!(2030-01-01 0:00 UTC),
                    actor: "system:test".into(),
                    actor_ip: Some("192.0.2.1".into()),
                    action: (*action).into(),
                    subject: format!("thing:{seq}"),
                    detail: detail.clone(),
                    prev_hash: prev.to_vec(),
                    hash: Vec::new(),
                    redacted: false,
                };
                let h = record_hash(&row.fields(seq));
                row.hash = h.to_vec();
                prev = h;
                row
            })
            .collect()
    }

    /// Six records; the fifth is a retention run saying it redacted through seq 3.
    fn chain_with_retention_run() -> Vec<RawRow> {
        let mut events: Vec<(&str, String)> = (1..=4)
            .map(|n| ("test.event", format!("{{\"n\":{n}}}")))
            .collect();
        events.push((
            AuditAction::RetentionApplied.as_str(),
            format!("{{\"{REDACTED_THROUGH_KEY}\":3}}"),
        ));
        events.push(("test.event", "{}".into()));
        chain_of(&events)
    }

    /// What retention does to a row.
    fn redact(row: &mut RawRow) {
        row.redacted = true;
        row.actor_ip = None;
        row.detail = REDACTED_DETAIL.into();
    }

    fn walk(rows: &[RawRow]) -> (Option<BrokenLink>, u64) {
        let mut c = LinkChecker::new();
        for r in rows {
            if let Err(b) = c.check(r) {
                return (Some(b), c.redacted());
            }
        }
        let last = rows.last().expect("rows");
        let head = ChainHead {
            seq: last.seq,
            hash: ChainHash::from_slice(&last.hash).unwrap(),
        };
        (c.finish(&head).err(), c.redacted())
    }

    #[test]
    fn redacted_records_keep_the_chain_verifiable() {
        let mut rows = chain_with_retention_run();
        assert_eq!(walk(&rows), (None, 0));
        for r in &mut rows[..3] {
            redact(r);
        }
        assert_eq!(walk(&rows), (None, 3));
    }

    #[test]
    fn an_altered_hash_of_a_redacted_record_breaks_the_next_link() {
        for i in [1usize, 2] {
            let mut rows = chain_with_retention_run();
            for r in &mut rows[..3] {
                redact(r);
            }
            rows[i].hash[0] ^= 1;
            let seq = rows[i].seq + 1;
            assert_eq!(
                walk(&rows).0,
                Some(broken(seq, BrokenReason::Deleted)),
                "{i}"
            );
        }
    }

    #[test]
    fn a_redaction_no_retention_run_covers_or_with_content_left_is_caught() {
        let mut rows = chain_with_retention_run();
        for r in &mut rows[..4] {
            redact(r);
        }
        assert_eq!(
            walk(&rows).0,
            Some(broken(4, BrokenReason::UnrecordedRedaction))
        );
        let mut rows = chain_with_retention_run();
        rows[1].redacted = true;
        assert_eq!(
            walk(&rows).0,
            Some(broken(2, BrokenReason::UnrecordedRedaction))
        );
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

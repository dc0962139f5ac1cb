//! Reading the chain for people: filtered pages for the staff API and full exports (JSON lines
//! or CSV) for the CLI and auditors.

use time::OffsetDateTime;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use super::canonical::{RecordFields, format_time, record_json};
use super::verify::{PAGE, RawRow};
use super::{AuditError, AuditRecord, ChainHash};
use crate::accounts::parse_column;
use crate::store::{AuditStore, DbTime, StoreError, on_pool};

/// Largest page [`AuditStore::audit_page`] returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// Which records [`AuditStore::audit_page`] returns: those matching every filter that is set, with
/// `seq > after_seq`, oldest first, at most `limit` (capped at [`MAX_AUDIT_PAGE`]). Page on by
/// passing the last `seq` seen as `after_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only records about exactly this subject (`customer:<uuid>`, …).
    pub subject: Option<String>,
    /// Only records with exactly this action.
    pub action: Option<String>,
    /// Only records after this position (a cursor).
    pub after_seq: Option<i64>,
    /// Page size; 0 means 100.
    pub limit: u32,
}

/// Export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// One JSON object per line: the canonical record plus `"hash"` (re-verifiable as is).
    Jsonl,
    /// RFC 4180 CSV with a header row, for spreadsheets. Cells that a spreadsheet would run as a
    /// formula (leading `=`, `+`, `-`, `@`, tab or CR) are prefixed with `'`; use JSON lines
    /// to re-verify hashes.
    Csv,
}

/// CSV header, in column order.
const CSV_HEADER: &str = "seq,at,actor,actor_ip,action,subject,detail,prev_hash,hash\r\n";

// === impl ExportFormat ===

crate::names::stored_enum!(ExportFormat { Jsonl => "jsonl", Csv => "csv" });

// === impl AuditStore ===

impl AuditStore<'_> {
    /// One page of records for the staff API (see [`AuditFilter`]).
    pub async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        const SQL: &str = "SELECT seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash \
             FROM audit_log \
             WHERE seq > $1 \
               AND ($2 IS NULL OR at >= $2) \
               AND ($3 IS NULL OR subject = $3) \
               AND ($4 IS NULL OR action = $4) \
             ORDER BY seq LIMIT $5";
        let limit = match filter.limit {
            0 => 100,
            n => n.min(MAX_AUDIT_PAGE),
        };
        let rows: Vec<RawRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(filter.after_seq.unwrap_or(0))
            .bind(filter.since.map(DbTime::new))
            .bind(filter.subject.as_deref())
            .bind(filter.action.as_deref())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(RawRow::into_record)
            .collect::<Result<_, _>>()?)
    }

    /// Writes every record with `at >= since`, in `seq` order, to `out` and returns how many.
    /// Reads page by page; flushes `out` at the end.
    pub async fn audit_export<W>(
        &self,
        since: OffsetDateTime,
        format: ExportFormat,
        out: &mut W,
    ) -> Result<u64, AuditError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        const SQL: &str = "SELECT seq, at, actor, actor_ip, action, subject, detail, prev_hash, hash \
             FROM audit_log WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3";
        if format == ExportFormat::Csv {
            out.write_all(CSV_HEADER.as_bytes()).await?;
        }
        let since = DbTime::new(since);
        let mut after = 0i64;
        let mut written = 0u64;
        loop {
            let rows: Vec<RawRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
                .bind(after)
                .bind(since)
                .bind(PAGE)
                .fetch_all(pool)
                .await?);
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let mut chunk = String::new();
            for row in &rows {
                match format {
                    ExportFormat::Jsonl => row.write_jsonl(&mut chunk),
                    ExportFormat::Csv => row.write_csv(&mut chunk),
                }
            }
            out.write_all(chunk.as_bytes()).await?;
            written += rows.len() as u64;
        }
        out.flush().await?;
        Ok(written)
    }
}

// === impl RawRow ===

impl RawRow {
    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let actor_ip = match &self.actor_ip {
            Some(ip) => Some(parse_column(ip, "audit_log.actor_ip")?),
            None => None,
        };
        let hash_of = |bytes: &[u8], column| {
            ChainHash::from_slice(bytes).ok_or(StoreError::CorruptRow { column })
        };
        Ok(AuditRecord {
            seq: self.seq,
            at: self.at,
            actor: self.actor,
            actor_ip,
            action: self.action,
            subject: self.subject,
            detail: serde_json::from_str(&self.detail).map_err(|_| StoreError::CorruptRow {
                column: "audit_log.detail",
            })?,
            prev_hash: hash_of(&self.prev_hash, "audit_log.prev_hash")?,
            hash: hash_of(&self.hash, "audit_log.hash")?,
        })
    }

    /// The canonical record with `"hash"` added as the last key (it sorts after the others).
    fn write_jsonl(&self, out: &mut String) {
        let mut text = record_json(&RecordFields {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            actor_ip: self.actor_ip.as_deref(),
            action: &self.action,
            subject: &self.subject,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        });
        text.pop(); // the closing brace
        out.push_str(&text);
        out.push_str(",\"hash\":\"");
        out.push_str(&hex::encode(&self.hash));
        out.push_str("\"}\n");
    }

    fn write_csv(&self, out: &mut String) {
        let cells = [
            self.seq.to_string(),
            format_time(self.at),
            self.actor.clone(),
            self.actor_ip.clone().unwrap_or_default(),
            self.action.clone(),
            self.subject.clone(),
            self.detail.clone(),
            hex::encode(&self.prev_hash),
            hex::encode(&self.hash),
        ];
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_csv_cell(cell, out);
        }
        out.push_str("\r\n");
    }
}

/// One RFC 4180 cell, formula-neutralized.
fn write_csv_cell(cell: &str, out: &mut String) {
    let guarded;
    let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{cell}");
        guarded.as_str()
    } else {
        cell
    };
    if cell.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        let mut out = String::new();
        for cell in [
            "plain",
            "a,b",
            "say \"hi\"",
            "=HYPERLINK(\"x\")",
            "-1",
            "line\nbreak",
        ] {
            write_csv_cell(cell, &mut out);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"|'-1|\"line\nbreak\"|"
        );
    }

    #[test]
    fn format_names() {
        assert_eq!(
            "jsonl".parse::<ExportFormat>().unwrap(),
            ExportFormat::Jsonl
        );
        assert_eq!("csv".parse::<ExportFormat>().unwrap(), ExportFormat::Csv);
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}

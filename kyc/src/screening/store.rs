//! Store operations for screening: import a list version, find the latest, load its index,
//! record and read results. Tables `screening_lists`, `screening_entries`,
//! `screening_results` (migration 0004).
//!
//! An import parses on a blocking thread and streams chunks of serialized entries over a
//! bounded channel to multi-row INSERTs (one statement text for every full chunk, so it is
//! prepared once), so memory stays bounded. The rows are committed in batches of
//! [`BATCH_ROWS`], each its own short transaction, so on SQLite other writers (logins,
//! decisions) take their turn between batches instead of waiting behind a million-entry import
//! for its whole length.
//!
//! Readers still see an import as all or nothing: the version row is written first with an
//! empty `sha256`, which marks it as *being imported*, and every read of versions
//! ([`ScreeningStore::latest_screening_version`], [`ScreeningStore::screening_list_version`],
//! and so loading an index) skips such rows. The last transaction sets the digest, label and
//! count, and only then does the new version become current. An import that fails (a malformed
//! file, an empty list, a database error) deletes its version row, and with it its entries
//! (`ON DELETE CASCADE`), so the previous version stays current and no partial rows remain. A
//! process killed mid-import leaves an invisible incomplete version; the next import removes
//! such leftovers older than [`STALE_IMPORT`].
//!
//! `sha256` is the hex SHA-256 of the main file; for an SDN set with `alt.csv`/`add.csv` it
//! is the SHA-256 of the text `sdn.csv <hex>\nalt.csv <hex>\nadd.csv <hex>\n` (lines for the
//! files given), so any change to any file changes it.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::parse::{ListReaders, ParseError, parse_list};
use super::{
    Decision, ListEntry, ListFormat, MatchExplanation, ScoringConfig, ScoringConfigError,
    ScreeningIndex, ScreeningResult,
};
use crate::store::{DbTime, ScreeningStore, StoreError, from_sqlx, in_transaction, on_pool};

/// Entries per multi-row INSERT (four bind parameters each: well under SQLite's 32 766 and
/// PostgreSQL's 65 535 limits).
const CHUNK_ROWS: usize = 1_000;

/// Chunks per transaction: 5 000 rows, a small slice of a million-entry import, so a login
/// waiting for SQLite's write lock waits for one batch, not the import.
const BATCH_CHUNKS: usize = 5;

/// Rows per transaction of an import.
pub const BATCH_ROWS: usize = CHUNK_ROWS * BATCH_CHUNKS;

/// How old an incomplete version must be before an import removes it as the leftover of a
/// killed process (an import of a million entries takes well under this, so a concurrent
/// import's rows are never removed).
pub const STALE_IMPORT: time::Duration = time::Duration::hours(6);

/// Chunks buffered between the parser thread and the inserter.
const CHANNEL_CHUNKS: usize = 4;

/// Longest accepted subject reference and label.
const MAX_REF_LEN: usize = 200;

/// One input file of an import.
#[derive(Debug)]
pub struct ListInput<R> {
    /// The file name as given (recorded in `screening_lists.source_file`; no path needed).
    pub file_name: String,
    /// Its contents.
    pub reader: R,
}

/// What to import: the format, the main file and, for SDN, `alt.csv` and `add.csv`.
#[derive(Debug)]
pub struct ImportRequest<R> {
    /// The list format.
    pub format: ListFormat,
    /// The main file (`sdn.csv`, the CSL file, the OpenSanctions JSON lines).
    pub main: ListInput<R>,
    /// SDN `alt.csv`.
    pub aliases: Option<ListInput<R>>,
    /// SDN `add.csv`.
    pub addresses: Option<ListInput<R>>,
    /// A label for people (`SDN 2025-06-01`); defaults to format, date and digest prefix.
    pub label: Option<String>,
}

/// An imported list version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersion {
    /// Version id (UUID v7, so later imports sort later).
    pub id: Uuid,
    /// The format it was imported as.
    pub format: ListFormat,
    /// File name(s) as given, `+`-joined for an SDN set.
    pub source_file: String,
    /// The label.
    pub label: String,
    /// Hex SHA-256 of the input (see the module docs).
    pub sha256: String,
    /// Entries imported.
    pub entry_count: u64,
    /// When it was imported.
    pub imported_at: OffsetDateTime,
}

/// A recorded screening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredScreening {
    /// Result id.
    pub id: Uuid,
    /// Who was screened, as the caller names them (`customer:<id>`, `owner:<id>`…).
    pub subject_ref: String,
    /// The list version used.
    pub list_version: Uuid,
    /// The score.
    pub score: f64,
    /// The decision.
    pub decision: Decision,
    /// The best match and its features, when there was a candidate.
    pub best: Option<MatchExplanation>,
    /// When the screening ran.
    pub screened_at: OffsetDateTime,
}

/// Failures of screening store operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScreeningError {
    /// The list file is malformed; the error says where.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The list parsed but holds no entries; importing it would clear everyone.
    #[error("the screening list holds no entries")]
    EmptyList,
    /// No list version has this id.
    #[error("unknown screening list version {0}")]
    UnknownVersion(Uuid),
    /// The subject reference or label is empty or longer than 200 characters.
    #[error("{0} must be 1 to 200 characters")]
    InvalidText(&'static str),
    /// The scoring configuration is out of range.
    #[error(transparent)]
    Config(#[from] ScoringConfigError),
    /// The parser or index-building thread panicked or was cancelled.
    #[error("screening background task failed")]
    Task,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_sqlx!(ScreeningError);

#[derive(sqlx::FromRow)]
struct ListRow {
    id: Uuid,
    format: String,
    source_file: String,
    label: String,
    sha256: String,
    entry_count: i64,
    imported_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    id: Uuid,
    subject_ref: String,
    list_version_id: Uuid,
    score: f64,
    decision: String,
    explanation: Option<Json<MatchExplanation>>,
    screened_at: OffsetDateTime,
}

/// What the parser thread reports when it is done.
struct Parsed {
    entries: u64,
    sha256: String,
}

/// Feeds a SHA-256 with everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

/// One serialized entry on its way to the database.
type Row = (String, String);

macro_rules! list_columns {
    () => {
        "id, format, source_file, label, sha256, entry_count, imported_at"
    };
}

// === impl ImportRequest ===

impl<R> ImportRequest<R> {
    /// A single-file import with the default label.
    pub fn new(format: ListFormat, file_name: impl Into<String>, reader: R) -> ImportRequest<R> {
        ImportRequest {
            format,
            main: ListInput {
                file_name: file_name.into(),
                reader,
            },
            aliases: None,
            addresses: None,
            label: None,
        }
    }
}

// === impl ScreeningStore ===

impl ScreeningStore<'_> {
    /// Imports a list as a new version: parses it (see [`crate::screening::parse`]), stores
    /// every normalized entry in batches and then the finished version row, and returns the
    /// version (see the module docs for what readers see meanwhile). A malformed file is
    /// [`ScreeningError::Parse`] naming the line and record; an empty one is
    /// [`ScreeningError::EmptyList`]. Either way nothing is left stored.
    pub async fn import_screening_list<R: Read + Send + 'static>(
        &self,
        request: ImportRequest<R>,
        now: OffsetDateTime,
    ) -> Result<ListVersion, ScreeningError> {
        self.import_screening_list_reporting(request, now, |_| {})
            .await
    }

    /// [`ScreeningStore::import_screening_list`], calling `progress` with the number of entries
    /// stored after each committed batch.
    pub async fn import_screening_list_reporting<R: Read + Send + 'static>(
        &self,
        request: ImportRequest<R>,
        now: OffsetDateTime,
        progress: impl FnMut(u64),
    ) -> Result<ListVersion, ScreeningError> {
        if let Some(label) = &request.label {
            check_text(label, "label")?;
        }
        let id = Uuid::now_v7();
        let format = request.format;
        let mut files = vec![request.main.file_name.clone()];
        files.extend(request.aliases.iter().map(|a| a.file_name.clone()));
        files.extend(request.addresses.iter().map(|a| a.file_name.clone()));
        let source_file: String = files.join("+").chars().take(MAX_REF_LEN).collect();
        let label = request.label.clone();
        self.remove_stale_imports(now).await?;
        on_pool!(self.store, |pool| sqlx::query(concat!(
            "INSERT INTO screening_lists (",
            list_columns!(),
            ") VALUES ($1, $2, $3, '', '', 0, $4)"
        ))
        .bind(id)
        .bind(format.as_str())
        .bind(&source_file)
        .bind(DbTime::new(now))
        .execute(pool)
        .await
        .map(|_| ())?);
        let (tx, rx) = mpsc::channel::<Vec<Row>>(CHANNEL_CHUNKS);
        let parser = tokio::task::spawn_blocking(move || parse_for_import(request, tx));
        let stored = self.store_entries(id, rx, progress).await;
        // The parser's own error (a malformed line) explains a closed channel better than the
        // inserter's, so it comes first; it is awaited in any case so it never outlives us.
        let parsed = parser.await.map_err(|_| ScreeningError::Task);
        let finished = match (parsed, stored) {
            (Ok(Err(e)) | Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(Ok(parsed)), Ok(())) if parsed.entries == 0 => Err(ScreeningError::EmptyList),
            (Ok(Ok(parsed)), Ok(())) => {
                let label = label.unwrap_or_else(|| default_label(format, now, &parsed.sha256));
                self.finish_version(id, &label, &parsed)
                    .await
                    .map(|()| ListVersion {
                        id,
                        format,
                        source_file,
                        label,
                        sha256: parsed.sha256,
                        entry_count: parsed.entries,
                        imported_at: DbTime::new(now).get(),
                    })
            }
        };
        if finished.is_err() {
            // Best effort: if the database is what failed, the row stays invisible (empty
            // digest) and a later import removes it as stale.
            if let Err(e) = self.remove_version(id).await {
                tracing::warn!(error = %e, "cannot remove the rows of a failed screening import");
            }
        }
        finished
    }
    /// The most recently imported list version, if any.
    pub async fn latest_screening_version(&self) -> Result<Option<ListVersion>, ScreeningError> {
        const SQL: &str = concat!(
            "SELECT ",
            list_columns!(),
            " FROM screening_lists WHERE sha256 <> '' ORDER BY imported_at DESC, id DESC LIMIT 1"
        );
        let row: Option<ListRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .fetch_optional(pool)
            .await?);
        row.map(ListRow::into_version).transpose()
    }

    /// The list version with this id, if any.
    pub async fn screening_list_version(
        &self,
        id: Uuid,
    ) -> Result<Option<ListVersion>, ScreeningError> {
        const SQL: &str = concat!(
            "SELECT ",
            list_columns!(),
            " FROM screening_lists WHERE id = $1 AND sha256 <> ''"
        );
        let row: Option<ListRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(ListRow::into_version).transpose()
    }

    /// Loads a version's entries and builds its in-memory index (on a blocking thread: a
    /// million entries take seconds).
    pub async fn load_screening_index(
        &self,
        version: Uuid,
        config: ScoringConfig,
    ) -> Result<ScreeningIndex, ScreeningError> {
        config.validate()?;
        if self.screening_list_version(version).await?.is_none() {
            return Err(ScreeningError::UnknownVersion(version));
        }
        const SQL: &str =
            "SELECT entry FROM screening_entries WHERE list_version_id = $1 ORDER BY seq";
        let mut rows: Vec<String> = Vec::new();
        on_pool!(self.store, |pool| {
            let mut stream = sqlx::query_scalar::<_, String>(SQL)
                .bind(version)
                .fetch(pool);
            while let Some(json) = stream.try_next().await? {
                rows.push(json);
            }
        });
        let build = move || -> Result<ScreeningIndex, ScreeningError> {
            let entries = rows
                .iter()
                .map(|json| serde_json::from_str::<ListEntry>(json))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| StoreError::CorruptRow {
                    column: "screening_entries.entry",
                })?;
            drop(rows);
            Ok(ScreeningIndex::build(version, entries, config))
        };
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|_| ScreeningError::Task)?
    }

    /// Records one screening of `subject_ref` (for example `customer:<uuid>`) and returns the
    /// result id. The result's list version must exist.
    pub async fn record_screening(
        &self,
        subject_ref: &str,
        result: &ScreeningResult,
        now: OffsetDateTime,
    ) -> Result<Uuid, ScreeningError> {
        check_text(subject_ref, "subject reference")?;
        let id = Uuid::now_v7();
        let score = if result.score.is_finite() {
            result.score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let entry_key = result.best.as_ref().map(|b| b.entry_key.as_str());
        let inserted: Result<(), sqlx::Error> = on_pool!(self.store, |pool| sqlx::query(
            "INSERT INTO screening_results (id, subject_ref, list_version_id, score, decision, \
             entry_key, explanation, screened_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        .bind(id)
        .bind(subject_ref)
        .bind(result.list_version)
        .bind(score)
        .bind(result.decision.as_str())
        .bind(entry_key)
        .bind(result.best.as_ref().map(Json))
        .bind(DbTime::new(now))
        .execute(pool)
        .await
        .map(|_| ()));
        match inserted {
            Ok(_) => Ok(id),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(ScreeningError::UnknownVersion(result.list_version))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every recorded screening of `subject_ref`, newest first.
    pub async fn screening_results_for(
        &self,
        subject_ref: &str,
    ) -> Result<Vec<StoredScreening>, ScreeningError> {
        const SQL: &str = "SELECT id, subject_ref, list_version_id, score, decision, \
             explanation, screened_at FROM screening_results WHERE subject_ref = $1 \
             ORDER BY screened_at DESC, id DESC";
        let rows: Vec<ResultRow> = on_pool!(self.store, |pool| sqlx::query_as(SQL)
            .bind(subject_ref)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(ResultRow::into_stored).collect()
    }

    /// Stores the entries arriving on `rx` under version `id`, [`BATCH_ROWS`] per
    /// transaction. The chunks of a batch are received before its transaction begins, so the
    /// write lock is never held while the parser works.
    async fn store_entries(
        &self,
        id: Uuid,
        mut rx: mpsc::Receiver<Vec<Row>>,
        mut progress: impl FnMut(u64),
    ) -> Result<(), ScreeningError> {
        let full_sql: Arc<str> = insert_sql(CHUNK_ROWS).into();
        let mut seq: i64 = 0;
        loop {
            let mut batch: Vec<Vec<Row>> = Vec::with_capacity(BATCH_CHUNKS);
            while batch.len() < BATCH_CHUNKS {
                match rx.recv().await {
                    Some(chunk) => batch.push(chunk),
                    None => break,
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            let last = batch.len() < BATCH_CHUNKS;
            in_transaction!(self.store, |t| {
                for chunk in &batch {
                    let sql = if chunk.len() == CHUNK_ROWS {
                        AssertSqlSafe(Arc::clone(&full_sql))
                    } else {
                        AssertSqlSafe(insert_sql(chunk.len()).into())
                    };
                    let mut query = sqlx::query(sql);
                    for (offset, (key, json)) in chunk.iter().enumerate() {
                        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                        query = query.bind(id).bind(seq + offset).bind(key).bind(json);
                    }
                    query.execute(&mut *t).await?;
                    seq += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                }
            });
            progress(u64::try_from(seq).unwrap_or(0));
            if last {
                return Ok(());
            }
        }
    }

    /// Sets the digest, label and count of version `id`: from here on it is current.
    async fn finish_version(
        &self,
        id: Uuid,
        label: &str,
        parsed: &Parsed,
    ) -> Result<(), ScreeningError> {
        on_pool!(self.store, |pool| sqlx::query(
            "UPDATE screening_lists SET label = $1, sha256 = $2, entry_count = $3 WHERE id = $4"
        )
        .bind(label)
        .bind(&parsed.sha256)
        .bind(i64::try_from(parsed.entries).unwrap_or(i64::MAX))
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Deletes version `id` and its entries (an import that failed).
    async fn remove_version(&self, id: Uuid) -> Result<(), ScreeningError> {
        on_pool!(self.store, |pool| sqlx::query(
            "DELETE FROM screening_lists WHERE id = $1 AND sha256 = ''"
        )
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Deletes incomplete versions started more than [`STALE_IMPORT`] before `now`: the
    /// leftovers of an import whose process was killed.
    async fn remove_stale_imports(&self, now: OffsetDateTime) -> Result<(), ScreeningError> {
        let removed = on_pool!(self.store, |pool| sqlx::query(
            "DELETE FROM screening_lists WHERE sha256 = '' AND imported_at < $1"
        )
        .bind(DbTime::new(now - STALE_IMPORT))
        .execute(pool)
        .await?
        .rows_affected());
        if removed > 0 {
            tracing::info!(removed, "removed the rows of interrupted screening imports");
        }
        Ok(())
    }
}

// === impl ListRow / ResultRow ===

impl ListRow {
    fn into_version(self) -> Result<ListVersion, ScreeningError> {
        let format = ListFormat::from_name(&self.format).ok_or(StoreError::CorruptRow {
            column: "screening_lists.format",
        })?;
        Ok(ListVersion {
            id: self.id,
            format,
            source_file: self.source_file,
            label: self.label,
            sha256: self.sha256,
            entry_count: u64::try_from(self.entry_count).unwrap_or(0),
            imported_at: self.imported_at,
        })
    }
}

impl ResultRow {
    fn into_stored(self) -> Result<StoredScreening, ScreeningError> {
        let decision = Decision::from_name(&self.decision).ok_or(StoreError::CorruptRow {
            column: "screening_results.decision",
        })?;
        Ok(StoredScreening {
            id: self.id,
            subject_ref: self.subject_ref,
            list_version: self.list_version_id,
            score: self.score,
            decision,
            best: self.explanation.map(|j| j.0),
            screened_at: self.screened_at,
        })
    }
}

// === import helpers ===

/// `INSERT … VALUES ($1, $2, $3, $4), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO screening_entries (list_version_id, seq, entry_key, entry) VALUES ",
    );
    for r in 0..rows {
        let p = r * 4;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
    }
    sql
}

fn check_text(text: &str, what: &'static str) -> Result<(), ScreeningError> {
    let len = text.chars().count();
    if len == 0 || len > MAX_REF_LEN || text.trim().is_empty() {
        return Err(ScreeningError::InvalidText(what));
    }
    Ok(())
}

fn default_label(format: ListFormat, now: OffsetDateTime, sha256: &str) -> String {
    let date = DbTime::new(now).get().date();
    format!("{format} {date} {}", sha256.get(..12).unwrap_or(sha256))
}

/// Runs on the blocking pool: parses, serializes and sends chunks; hashes every input byte.
fn parse_for_import<R: Read>(
    request: ImportRequest<R>,
    tx: mpsc::Sender<Vec<Row>>,
) -> Result<Parsed, ScreeningError> {
    let mut main = Hashing::new(request.main.reader);
    let mut aliases = request.aliases.map(|a| Hashing::new(a.reader));
    let mut addresses = request.addresses.map(|a| Hashing::new(a.reader));
    let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK_ROWS);
    let mut closed = false;
    let readers = ListReaders {
        main: &mut main as &mut dyn Read,
        aliases: aliases.as_mut().map(|a| a as &mut dyn Read),
        addresses: addresses.as_mut().map(|a| a as &mut dyn Read),
    };
    let stats = parse_list(request.format, readers, |entry| {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_string(&entry).unwrap_or_default();
        chunk.push((entry.key, json));
        if chunk.len() == CHUNK_ROWS {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
            if tx.blocking_send(full).is_err() {
                closed = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if closed {
        // The inserter failed and reports its own error.
        return Err(ScreeningError::Task);
    }
    if !chunk.is_empty() && tx.blocking_send(chunk).is_err() {
        return Err(ScreeningError::Task);
    }
    let mut digests = vec![("sdn.csv", main.finish()?)];
    if let Some(a) = aliases {
        digests.push(("alt.csv", a.finish()?));
    }
    if let Some(a) = addresses {
        digests.push(("add.csv", a.finish()?));
    }
    let sha256 = if digests.len() == 1 {
        digests.remove(0).1
    } else {
        let text: String = digests.iter().map(|(n, h)| format!("{n} {h}\n")).collect();
        hex::encode(Sha256::digest(text.as_bytes()))
    };
    Ok(Parsed {
        entries: stats.entries,
        sha256,
    })
}

// === impl Hashing ===

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Hashes whatever the parser left unread and returns the hex digest.
    fn finish(mut self) -> Result<String, ScreeningError> {
        io::copy(&mut self, &mut io::sink()).map_err(|source| {
            ScreeningError::Parse(ParseError::Io {
                input: "list",
                source,
            })
        })?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

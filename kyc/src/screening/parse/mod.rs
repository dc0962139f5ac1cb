//! Parsers for the three list formats. Pure and streaming: each reads from any [`Read`], hands
//! every [`ListEntry`] to a sink as soon as it is complete and never holds the whole list.
//!
//! Input is untrusted: nothing here panics, lines are capped at [`MAX_LINE_BYTES`], fields at
//! [`MAX_FIELD_BYTES`], names at [`MAX_NAME_BYTES`], and every error names the input, the
//! line (when the format has lines) and the 1-based record number. Keys must be unique within
//! one list; a repeated key is an error. Text that is not UTF-8 is read as Latin-1 (older
//! OFAC files), never rejected.

mod csl;
mod entry;
mod opensanctions;
mod sdn;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::ops::ControlFlow;

pub use self::csl::{parse_csl, parse_csl_csv, parse_csl_json};
pub use self::opensanctions::parse_opensanctions;
pub use self::sdn::parse_sdn;

use super::{ListEntry, ListFormat};

/// Longest physical line accepted in CSV and JSON-lines input.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Longest single field (remarks, an alias list) accepted.
pub const MAX_FIELD_BYTES: usize = 64 << 10;

/// Longest single name or alias accepted.
pub const MAX_NAME_BYTES: usize = 1 << 10;

/// What a parser reports when it has read its input to the end (or the sink stopped it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Data records read (rows, JSON objects), including skipped ones.
    pub records: u64,
    /// Entries handed to the sink.
    pub entries: u64,
    /// Records that are not screening targets (OpenSanctions `Sanction`, `Address`…) or that
    /// refer to no entry (an `alt.csv` row for an unknown `ent_num`).
    pub skipped: u64,
    /// Whether the sink asked to stop before the end.
    pub stopped: bool,
}

/// A list file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Reading the input failed.
    #[error("{input}: read failed")]
    Io {
        /// Which input (`sdn.csv`, `csl`…).
        input: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A physical line is longer than [`MAX_LINE_BYTES`].
    #[error("{input}: line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong {
        /// Which input.
        input: &'static str,
        /// 1-based line number.
        line: u64,
    },
    /// The text is not well-formed CSV or JSON.
    #[error("{input}: line {line}, column {column}: {message}")]
    Syntax {
        /// Which input.
        input: &'static str,
        /// 1-based line number.
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What the underlying parser said.
        message: String,
    },
    /// A well-formed record does not make a valid entry.
    #[error("{input}: {location}: {error}")]
    Record {
        /// Which input.
        input: &'static str,
        /// Line and record number.
        location: Location,
        /// What is wrong with it.
        error: RecordError,
    },
}

/// Where a record starts: the 1-based line (for line-oriented input) and record number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line where the record starts, when the format has lines that can be counted.
    pub line: Option<u64>,
    /// 1-based record number (the header row of a CSV file is record 0).
    pub record: u64,
}

/// What is wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The header names no column for a required field.
    #[error("the header has no {0:?} column")]
    MissingColumn(&'static str),
    /// A fixed-layout row has the wrong number of fields.
    #[error("expected {expected} fields, found {found}")]
    FieldCount {
        /// Fields the format defines.
        expected: usize,
        /// Fields the row has.
        found: usize,
    },
    /// A required field is empty or null.
    #[error("field {0:?} is empty")]
    EmptyField(&'static str),
    /// A field has the wrong type or an unparseable value.
    #[error("field {field:?} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A field or name exceeds its size limit.
    #[error("field {0:?} exceeds its size limit")]
    TooLong(&'static str),
    /// The entry key was already used by an earlier record.
    #[error("entry key {0:?} repeats an earlier record")]
    DuplicateKey(String),
}

/// The files of one list: the main file, and for SDN the optional `alt.csv` and `add.csv`.
#[derive(Debug)]
pub struct ListReaders<R> {
    /// `sdn.csv`, the CSL file, or the OpenSanctions JSON lines.
    pub main: R,
    /// SDN `alt.csv` (aliases); ignored for other formats.
    pub aliases: Option<R>,
    /// SDN `add.csv` (addresses); ignored for other formats.
    pub addresses: Option<R>,
}

/// Parses any supported format, handing each entry to `sink`.
pub fn parse_list<R: Read, F>(
    format: ListFormat,
    readers: ListReaders<R>,
    sink: F,
) -> Result<ParseStats, ParseError>
where
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    match format {
        ListFormat::Csl => parse_csl(readers.main, sink),
        ListFormat::Sdn => parse_sdn(readers.main, readers.aliases, readers.addresses, sink),
        ListFormat::OpenSanctions => parse_opensanctions(readers.main, sink),
    }
}

/// Parses into a vector; for tests and small lists.
pub fn parse_list_to_vec<R: Read>(
    format: ListFormat,
    readers: ListReaders<R>,
) -> Result<Vec<ListEntry>, ParseError> {
    let mut out = Vec::new();
    parse_list(format, readers, |e| {
        out.push(e);
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

// === impl Location ===

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}, record {}", self.record),
            None => write!(f, "record {}", self.record),
        }
    }
}

// === impl ListReaders ===

impl<R> ListReaders<R> {
    /// A single-file list.
    pub fn single(main: R) -> ListReaders<R> {
        ListReaders {
            main,
            aliases: None,
            addresses: None,
        }
    }
}

// === shared helpers ===

/// Fails reads once a physical line exceeds [`MAX_LINE_BYTES`], so one endless line cannot
/// exhaust memory; remembers which line that was. It also numbers lines for the CSV parsers:
/// the `csv` crate's own line count is off after `\r\n` terminators (OFAC files use them) and
/// after skipped blank lines, so a record's line is taken from the first line start with
/// content at or after the position the crate reports.
pub(crate) struct LineLimit<R> {
    inner: R,
    current: usize,
    line: u64,
    exceeded: Option<u64>,
    /// Bytes read so far.
    offset: u64,
    /// Whether the previous byte ended a line (true at the start).
    at_line_start: bool,
    /// `(offset, line)` of line starts with content, read but not yet passed.
    starts: VecDeque<(u64, u64)>,
}

impl<R: Read> LineLimit<R> {
    pub(crate) fn new(inner: R) -> LineLimit<R> {
        LineLimit {
            inner,
            current: 0,
            line: 1,
            exceeded: None,
            offset: 0,
            at_line_start: true,
            starts: VecDeque::new(),
        }
    }
}

impl<R> LineLimit<R> {
    /// The 1-based line of a record the `csv` crate places at `byte`. Calls must come in
    /// increasing `byte` order.
    pub(crate) fn line_at(&mut self, byte: u64) -> u64 {
        while self.starts.front().is_some_and(|&(o, _)| o < byte) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(self.line, |&(_, line)| line)
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded.is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            let terminator = b == b'\n' || b == b'\r';
            if !terminator && self.at_line_start {
                self.starts.push_back((self.offset, self.line));
            }
            self.at_line_start = terminator;
            if b == b'\n' {
                self.current = 0;
                self.line += 1;
            } else {
                self.current += 1;
                if self.current > MAX_LINE_BYTES {
                    self.exceeded = Some(self.line);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
            }
            self.offset += 1;
        }
        Ok(n)
    }
}

/// The location of a CSV record read through a [`LineLimit`].
fn csv_location<R: Read>(
    reader: &mut csv::Reader<LineLimit<R>>,
    record: &csv::ByteRecord,
    number: u64,
) -> Location {
    let line = record
        .position()
        .map(|p| reader.get_mut().line_at(p.byte()));
    Location {
        line,
        record: number,
    }
}

/// Maps an I/O failure seen through a [`LineLimit`] to the precise error.
fn io_error<R>(input: &'static str, limit: &LineLimit<R>, source: io::Error) -> ParseError {
    match limit.exceeded {
        Some(line) => ParseError::LineTooLong { input, line },
        None => ParseError::Io { input, source },
    }
}

/// Maps a CSV reader error; the reader runs over a [`LineLimit`].
fn csv_error<R>(input: &'static str, limit: &LineLimit<R>, e: csv::Error) -> ParseError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => io_error(input, limit, source),
        other => ParseError::Syntax {
            input,
            line,
            column: 0,
            message: format!("{other:?}"),
        },
    }
}

/// UTF-8 text as is; anything else read as Latin-1.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// `;`-separated values, trimmed, empty ones dropped.
fn split_list(field: &str) -> impl Iterator<Item = &str> {
    field.split(';').map(str::trim).filter(|s| !s.is_empty())
}

/// The value part of an identifier (`IMO 9187629` → `9187629`): the last whitespace-separated
/// word that contains a digit, or the whole text.
fn id_value(text: &str) -> &str {
    let t = text.trim();
    t.split_whitespace()
        .rev()
        .find(|w| w.bytes().any(|b| b.is_ascii_digit()))
        .unwrap_or(t)
}

/// `SURNAME, Given Names` → `Given Names SURNAME`; other shapes unchanged.
fn person_display_name(name: &str) -> String {
    match name.split_once(',') {
        Some((surname, given)) if !given.contains(',') && !given.trim().is_empty() => {
            format!("{} {}", given.trim(), surname.trim())
        }
        _ => name.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_limit_reports_the_line() {
        let mut data = b"short\nshort\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        let mut limit = LineLimit::new(&data[..]);
        let mut sink = Vec::new();
        let err = limit.read_to_end(&mut sink).unwrap_err();
        assert!(matches!(
            io_error("t", &limit, err),
            ParseError::LineTooLong { line: 3, .. }
        ));
    }

    #[test]
    fn csv_lines_with_either_terminator() {
        for data in [
            "a,b\r\nc,d\r\n\r\n\"e\nx\",f\r\ng,h",
            "a,b\nc,d\n\n\"e\nx\",f\ng,h",
        ] {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(LineLimit::new(data.as_bytes()));
            let mut record = csv::ByteRecord::new();
            let mut lines = Vec::new();
            while reader.read_byte_record(&mut record).unwrap() {
                lines.push(csv_location(&mut reader, &record, 0).line.unwrap());
            }
            assert_eq!(lines, [1, 2, 4, 6], "{data:?}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(text(b"caf\xe9"), "café");
        assert_eq!(text("café".as_bytes()), "café");
        assert_eq!(split_list(" a ; ;b;").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(id_value("IMO 9187629"), "9187629");
        assert_eq!(id_value("A1234"), "A1234");
        assert_eq!(
            person_display_name("PETROV, Ivan Ilyich"),
            "Ivan Ilyich PETROV"
        );
        assert_eq!(person_display_name("A, B, C"), "A, B, C");
        assert_eq!(person_display_name("SOLO,"), "SOLO,");
    }
}

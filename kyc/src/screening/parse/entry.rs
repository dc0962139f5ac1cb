//! Building one [`ListEntry`] from whatever a format provides, and handing it to the sink
//! with the key check and the counters every parser shares.

use std::collections::HashSet;
use std::ops::ControlFlow;

use super::{
    Location, MAX_FIELD_BYTES, MAX_NAME_BYTES, ParseError, ParseStats, RecordError,
    person_display_name,
};
use crate::screening::normalize::normalize_id;
use crate::screening::{EntryKind, ListEntry, PartialDate, country_code};

/// Names (or weak aliases) kept per entry; real entries have at most a few hundred.
const MAX_NAMES_PER_ENTRY: usize = 512;

/// Values kept per entry for each of dates, countries, ids and programs.
const MAX_VALUES_PER_ENTRY: usize = 256;

/// The parts of an entry as a parser collects them.
#[derive(Debug, Default)]
pub(super) struct EntryBuilder {
    pub(super) key: String,
    pub(super) source: String,
    pub(super) kind: Option<EntryKind>,
    names: Vec<String>,
    weak_aliases: Vec<String>,
    dates_of_birth: Vec<PartialDate>,
    countries: Vec<&'static str>,
    id_numbers: Vec<String>,
    programs: Vec<String>,
}

/// Hands finished entries to the sink, rejecting repeated keys and counting.
pub(super) struct Emitter<F> {
    input: &'static str,
    sink: F,
    keys: HashSet<String>,
    pub(super) stats: ParseStats,
}

/// A field checked against [`MAX_FIELD_BYTES`].
pub(super) fn field<'a>(value: &'a str, name: &'static str) -> Result<&'a str, RecordError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(RecordError::TooLong(name));
    }
    Ok(value.trim())
}

// === impl EntryBuilder ===

impl EntryBuilder {
    pub(super) fn new(key: String, source: String, kind: EntryKind) -> EntryBuilder {
        EntryBuilder {
            key,
            source,
            kind: Some(kind),
            ..EntryBuilder::default()
        }
    }

    /// Adds a strong name (the primary name first).
    pub(super) fn name(&mut self, name: &str) -> Result<(), RecordError> {
        push_name(&mut self.names, name)
    }

    /// Adds a strong name written the way lists write people (`SURNAME, Given Names`), shown
    /// as `Given Names SURNAME` when the entry is a person.
    pub(super) fn listed_name(&mut self, name: &str) -> Result<(), RecordError> {
        if self.kind == Some(EntryKind::Person) {
            self.name(&person_display_name(name))
        } else {
            self.name(name)
        }
    }

    /// Adds a weak alias.
    pub(super) fn weak_alias(&mut self, name: &str) -> Result<(), RecordError> {
        push_name(&mut self.weak_aliases, name)
    }

    /// Adds every date a text gives (a date or a range of years); unparseable text is ignored.
    pub(super) fn dates_of_birth(&mut self, text: &str) {
        for d in PartialDate::parse_many(text) {
            if self.dates_of_birth.len() < MAX_VALUES_PER_ENTRY && !self.dates_of_birth.contains(&d)
            {
                self.dates_of_birth.push(d);
            }
        }
    }

    /// Adds a country given as a code or a name; unknown names are ignored.
    pub(super) fn country(&mut self, text: &str) {
        if let Some(code) = country_code(text)
            && self.countries.len() < MAX_VALUES_PER_ENTRY
            && !self.countries.contains(&code)
        {
            self.countries.push(code);
        }
    }

    /// Adds an identifier number; values without letters or digits are ignored.
    pub(super) fn id_number(&mut self, text: &str) {
        let t = text.trim();
        let norm = normalize_id(t);
        if norm.is_empty() || self.id_numbers.len() >= MAX_VALUES_PER_ENTRY {
            return;
        }
        if !self.id_numbers.iter().any(|i| normalize_id(i) == norm) {
            self.id_numbers.push(t.to_owned());
        }
    }

    /// Adds a programme or topic.
    pub(super) fn program(&mut self, text: &str) {
        let t = text.trim();
        if !t.is_empty()
            && self.programs.len() < MAX_VALUES_PER_ENTRY
            && !self.programs.iter().any(|p| p == t)
        {
            self.programs.push(t.to_owned());
        }
    }

    /// The entry, or why it cannot be one (no name).
    pub(super) fn finish(self) -> Result<ListEntry, RecordError> {
        if self.names.is_empty() {
            return Err(RecordError::EmptyField("name"));
        }
        let names = self.names;
        let weak_aliases = self
            .weak_aliases
            .into_iter()
            .filter(|w| !names.iter().any(|n| n.eq_ignore_ascii_case(w)))
            .collect();
        let mut dates_of_birth = self.dates_of_birth;
        dates_of_birth.sort_unstable();
        let mut countries: Vec<String> = self.countries.iter().map(|c| (*c).to_owned()).collect();
        countries.sort_unstable();
        Ok(ListEntry {
            key: self.key,
            source: self.source,
            kind: self.kind.unwrap_or(EntryKind::Other),
            names,
            weak_aliases,
            dates_of_birth,
            countries,
            id_numbers: self.id_numbers,
            programs: self.programs,
        })
    }
}

fn push_name(names: &mut Vec<String>, name: &str) -> Result<(), RecordError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(RecordError::TooLong("name"));
    }
    let clean = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.is_empty() || names.len() >= MAX_NAMES_PER_ENTRY {
        return Ok(());
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case(&clean)) {
        names.push(clean);
    }
    Ok(())
}

// === impl Emitter ===

impl<F: FnMut(ListEntry) -> ControlFlow<()>> Emitter<F> {
    pub(super) fn new(input: &'static str, sink: F) -> Emitter<F> {
        Emitter {
            input,
            sink,
            keys: HashSet::new(),
            stats: ParseStats::default(),
        }
    }

    /// The error for a record at `location`.
    pub(super) fn error(&self, location: Location, error: RecordError) -> ParseError {
        ParseError::Record {
            input: self.input,
            location,
            error,
        }
    }

    /// Finishes the builder and hands the entry over. `Break` when the sink wants no more.
    pub(super) fn emit(
        &mut self,
        location: Location,
        builder: EntryBuilder,
    ) -> Result<ControlFlow<()>, ParseError> {
        let entry = builder.finish().map_err(|e| self.error(location, e))?;
        if !self.keys.insert(entry.key.clone()) {
            return Err(self.error(location, RecordError::DuplicateKey(entry.key)));
        }
        self.stats.entries += 1;
        let flow = (self.sink)(entry);
        if flow.is_break() {
            self.stats.stopped = true;
        }
        Ok(flow)
    }
}

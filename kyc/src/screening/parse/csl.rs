//! The US Consolidated Screening List, as CSV (header row; `;`-separated multi-values) or as
//! JSON (`{"results":[…]}` with arrays). `entity_number` repeats across sources, so entries
//! are keyed `csl:<source>:<id>` (falling back to `entity_number` when `id` is empty).

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::entry::{Emitter, EntryBuilder, field};
use super::{
    LineLimit, Location, ParseError, ParseStats, RecordError, csv_error, csv_location, id_value,
    split_list, text,
};
use crate::screening::{EntryKind, ListEntry};

/// Input name in errors.
const INPUT: &str = "csl";

/// Column positions found in the CSV header.
struct Columns {
    id: Option<usize>,
    entity_number: Option<usize>,
    source: usize,
    name: usize,
    kind: Option<usize>,
    alt_names: Option<usize>,
    programs: Option<usize>,
    addresses: Option<usize>,
    dates_of_birth: Option<usize>,
    nationalities: Option<usize>,
    citizenships: Option<usize>,
    ids: Option<usize>,
    vessel_flag: Option<usize>,
}

/// Parses CSV or JSON, told apart by the first byte that is not whitespace or a BOM.
pub fn parse_csl<R: Read, F>(input: R, sink: F) -> Result<ParseStats, ParseError>
where
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    let mut reader = BufReader::new(input);
    let io = |source| ParseError::Io {
        input: INPUT,
        source,
    };
    let mut at_start = true;
    let first = loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() {
            break None;
        }
        if at_start && buf.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
            at_start = false;
            continue;
        }
        at_start = false;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        Some(b'{') | Some(b'[') => parse_csl_json(reader, sink),
        _ => parse_csl_csv(reader, sink),
    }
}

/// Parses the CSV form. The header must name `id` (or `_id`) or `entity_number`, `source` and
/// `name`; other known columns are optional and unknown ones are ignored.
pub fn parse_csl_csv<R: Read, F>(input: R, sink: F) -> Result<ParseStats, ParseError>
where
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    let mut emitter = Emitter::new(INPUT, sink);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineLimit::new(input));
    let mut record = csv::ByteRecord::new();
    let header_location = Location {
        line: Some(1),
        record: 0,
    };
    let read = |reader: &mut csv::Reader<LineLimit<R>>, record: &mut csv::ByteRecord| {
        reader
            .read_byte_record(record)
            .map_err(|e| csv_error(INPUT, reader.get_ref(), e))
    };
    if !read(&mut reader, &mut record)? {
        return Ok(emitter.stats);
    }
    let columns = Columns::from_header(&record).map_err(|e| emitter.error(header_location, e))?;
    let mut number = 0u64;
    while read(&mut reader, &mut record)? {
        number += 1;
        emitter.stats.records += 1;
        let location = csv_location(&mut reader, &record, number);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            emitter.stats.skipped += 1;
            continue;
        }
        let builder = columns
            .build(&record)
            .map_err(|e| emitter.error(location, e))?;
        if emitter.emit(location, builder)?.is_break() {
            break;
        }
    }
    Ok(emitter.stats)
}

/// Parses the JSON form, streaming the `results` array one object at a time. A bare
/// top-level array of records is accepted too.
pub fn parse_csl_json<R: Read, F>(input: R, sink: F) -> Result<ParseStats, ParseError>
where
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    let mut emitter = Emitter::new(INPUT, sink);
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(input));
    let parsed = Document {
        emitter: &mut emitter,
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = failure {
        return Err(e);
    }
    if emitter.stats.stopped {
        return Ok(emitter.stats);
    }
    parsed.map_err(json_error)?;
    Ok(emitter.stats)
}

fn json_error(e: serde_json::Error) -> ParseError {
    if e.is_io() {
        return ParseError::Io {
            input: INPUT,
            source: e.into(),
        };
    }
    ParseError::Syntax {
        input: INPUT,
        line: e.line() as u64,
        column: e.column() as u64,
        message: e.to_string(),
    }
}

// === impl Columns ===

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> Result<Columns, RecordError> {
        let names: Vec<String> = header
            .iter()
            .map(|h| {
                text(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        let id = find("id").or_else(|| find("_id"));
        let entity_number = find("entity_number");
        if id.is_none() && entity_number.is_none() {
            return Err(RecordError::MissingColumn("id"));
        }
        Ok(Columns {
            id,
            entity_number,
            source: find("source").ok_or(RecordError::MissingColumn("source"))?,
            name: find("name").ok_or(RecordError::MissingColumn("name"))?,
            kind: find("type"),
            alt_names: find("alt_names"),
            programs: find("programs"),
            addresses: find("addresses"),
            dates_of_birth: find("dates_of_birth"),
            nationalities: find("nationalities"),
            citizenships: find("citizenships"),
            ids: find("ids"),
            vessel_flag: find("vessel_flag"),
        })
    }

    fn build(&self, record: &csv::ByteRecord) -> Result<EntryBuilder, RecordError> {
        let get = |idx: Option<usize>, name: &'static str| -> Result<String, RecordError> {
            let raw = idx.and_then(|i| record.get(i)).unwrap_or_default();
            Ok(field(&text(raw), name)?.to_owned())
        };
        let mut id = get(self.id, "id")?;
        if id.is_empty() {
            id = get(self.entity_number, "entity_number")?;
        }
        let source = get(Some(self.source), "source")?;
        let mut b = new_builder(&source, &id, &get(self.kind, "type")?)?;
        b.listed_name(required(&get(Some(self.name), "name")?, "name")?)?;
        for alt in split_list(&get(self.alt_names, "alt_names")?) {
            b.listed_name(alt)?;
        }
        for p in split_list(&get(self.programs, "programs")?) {
            b.program(p);
        }
        for d in split_list(&get(self.dates_of_birth, "dates_of_birth")?) {
            b.dates_of_birth(d);
        }
        for c in split_list(&get(self.nationalities, "nationalities")?) {
            b.country(c);
        }
        for c in split_list(&get(self.citizenships, "citizenships")?) {
            b.country(c);
        }
        for a in split_list(&get(self.addresses, "addresses")?) {
            address_country(&mut b, a);
        }
        b.country(&get(self.vessel_flag, "vessel_flag")?);
        // `Type, Number, Country, …` per id; a bare number is accepted as well.
        for i in split_list(&get(self.ids, "ids")?) {
            let mut parts = i.split(',').map(str::trim);
            let first = parts.next().unwrap_or_default();
            b.id_number(id_value(parts.next().unwrap_or(first)));
        }
        Ok(b)
    }
}

fn new_builder(source: &str, id: &str, kind: &str) -> Result<EntryBuilder, RecordError> {
    if source.is_empty() {
        return Err(RecordError::EmptyField("source"));
    }
    if id.is_empty() {
        return Err(RecordError::EmptyField("id"));
    }
    let kind = match kind.to_ascii_lowercase().as_str() {
        "individual" | "person" => EntryKind::Person,
        "entity" | "organization" | "company" => EntryKind::Organization,
        "vessel" => EntryKind::Vessel,
        "aircraft" => EntryKind::Aircraft,
        _ => EntryKind::Other,
    };
    Ok(EntryBuilder::new(
        format!("csl:{source}:{id}"),
        source.to_owned(),
        kind,
    ))
}

fn required<'a>(value: &'a str, name: &'static str) -> Result<&'a str, RecordError> {
    if value.is_empty() {
        return Err(RecordError::EmptyField(name));
    }
    Ok(value)
}

/// The country of a CSV address (`street, city, state, postal code, country`): the last part.
fn address_country(b: &mut EntryBuilder, address: &str) {
    if let Some(last) = address.rsplit(',').map(str::trim).find(|p| !p.is_empty()) {
        b.country(last);
    }
}

// === JSON ===

/// The top-level document; drives [`Results`] over the `results` array.
struct Document<'a, F> {
    emitter: &'a mut Emitter<F>,
    failure: &'a mut Option<ParseError>,
}

/// The `results` array.
struct Results<'a, F> {
    emitter: &'a mut Emitter<F>,
    failure: &'a mut Option<ParseError>,
}

impl<'de, F: FnMut(ListEntry) -> ControlFlow<()>> DeserializeSeed<'de> for Document<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(ListEntry) -> ControlFlow<()>> Visitor<'de> for Document<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a \"results\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "results" && !seen {
                seen = true;
                map.next_value_seed(Results {
                    emitter: &mut *self.emitter,
                    failure: &mut *self.failure,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !seen {
            *self.failure = Some(self.emitter.error(
                Location {
                    line: None,
                    record: 0,
                },
                RecordError::InvalidField {
                    field: "results",
                    reason: "missing".into(),
                },
            ));
            return Err(de::Error::custom("missing results"));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Results {
            emitter: self.emitter,
            failure: self.failure,
        }
        .visit_seq(seq)
    }
}

impl<'de, F: FnMut(ListEntry) -> ControlFlow<()>> DeserializeSeed<'de> for Results<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(ListEntry) -> ControlFlow<()>> Visitor<'de> for Results<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of screening list records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut number = 0u64;
        while let Some(value) = seq.next_element::<Value>()? {
            number += 1;
            self.emitter.stats.records += 1;
            let location = Location {
                line: None,
                record: number,
            };
            let outcome = json_record(value)
                .map_err(|e| self.emitter.error(location, e))
                .and_then(|b| self.emitter.emit(location, b));
            match outcome {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => return Err(de::Error::custom("stopped by sink")),
                Err(e) => {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("invalid record"));
                }
            }
        }
        Ok(())
    }
}

fn json_record(value: Value) -> Result<EntryBuilder, RecordError> {
    let Value::Object(obj) = value else {
        return Err(RecordError::InvalidField {
            field: "results",
            reason: "element is not an object".into(),
        });
    };
    let mut id = json_str(&obj, "id")?;
    if id.is_empty() {
        id = json_str(&obj, "_id")?;
    }
    if id.is_empty() {
        id = json_str(&obj, "entity_number")?;
    }
    let mut b = new_builder(&json_str(&obj, "source")?, &id, &json_str(&obj, "type")?)?;
    b.listed_name(required(&json_str(&obj, "name")?, "name")?)?;
    for alt in json_strings(&obj, "alt_names")? {
        b.listed_name(&alt)?;
    }
    for p in json_strings(&obj, "programs")? {
        b.program(&p);
    }
    for d in json_strings(&obj, "dates_of_birth")? {
        b.dates_of_birth(&d);
    }
    for c in json_strings(&obj, "nationalities")? {
        b.country(&c);
    }
    for c in json_strings(&obj, "citizenships")? {
        b.country(&c);
    }
    b.country(&json_str(&obj, "vessel_flag")?);
    for a in json_list(&obj, "addresses")? {
        match a {
            Value::Object(addr) => b.country(&json_str(addr, "country")?),
            other => address_country(&mut b, &scalar(other, "addresses")?),
        }
    }
    for i in json_list(&obj, "ids")? {
        match i {
            Value::Object(id) => b.id_number(id_value(&json_str(id, "number")?)),
            other => b.id_number(id_value(&scalar(other, "ids")?)),
        }
    }
    Ok(b)
}

/// A string (or number) field; empty when missing or null.
fn json_str(obj: &Map<String, Value>, key: &'static str) -> Result<String, RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(v) => Ok(field(&scalar(v, key)?, key)?.to_owned()),
    }
}

fn scalar(v: &Value, key: &'static str) -> Result<String, RecordError> {
    match v {
        Value::String(s) => Ok(field(s, key)?.to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(RecordError::InvalidField {
            field: key,
            reason: "expected a string".into(),
        }),
    }
}

/// The elements of an array field; a single non-array value is a one-element list.
fn json_list<'a>(
    obj: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a [Value], RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(v) => Ok(std::slice::from_ref(v)),
    }
}

/// Strings of an array field, or of a `;`-separated string field.
fn json_strings(obj: &Map<String, Value>, key: &'static str) -> Result<Vec<String>, RecordError> {
    let mut out = Vec::new();
    for v in json_list(obj, key)? {
        let s = scalar(v, key)?;
        out.extend(split_list(&s).map(str::to_owned));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

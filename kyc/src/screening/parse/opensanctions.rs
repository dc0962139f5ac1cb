//! OpenSanctions FollowTheMoney entities, one JSON object per line:
//! `{"id","schema","caption","datasets",…,"properties":{"name":[…],"alias":[…],…}}`.
//!
//! Only parties are entries: `Person`; `Organization`, `Company`, `LegalEntity` and
//! `PublicBody` as organizations; `Vessel`; `Airplane`. Other schemas in an export
//! (`Sanction`, `Address`, `Ownership`…) are counted as skipped. Country properties hold
//! lower-case alpha-2 codes (`ru`), which are upper-cased.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use serde_json::{Map, Value};

use super::entry::{Emitter, EntryBuilder, field};
use super::{LineLimit, Location, ParseError, ParseStats, RecordError, io_error};
use crate::screening::{EntryKind, ListEntry};

/// Input name in errors.
const INPUT: &str = "opensanctions";

/// Properties that hold names, strong aliases and former names.
const NAME_PROPS: &[&str] = &["name", "alias", "previousName"];

/// Properties that hold countries.
const COUNTRY_PROPS: &[&str] = &[
    "nationality",
    "citizenship",
    "country",
    "jurisdiction",
    "mainCountry",
    "flag",
];

/// Properties that hold identifier numbers.
const ID_PROPS: &[&str] = &[
    "idNumber",
    "passportNumber",
    "registrationNumber",
    "taxNumber",
    "innCode",
    "ogrnCode",
    "leiCode",
    "swiftBic",
    "imoNumber",
    "mmsi",
    "vatCode",
    "okpoCode",
];

/// Parses FollowTheMoney JSON lines; blank lines are ignored.
pub fn parse_opensanctions<R: Read, F>(input: R, sink: F) -> Result<ParseStats, ParseError>
where
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    let mut emitter = Emitter::new(INPUT, sink);
    let mut reader = BufReader::new(LineLimit::new(input));
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error(INPUT, reader.get_ref(), e))?;
        if n == 0 {
            return Ok(emitter.stats);
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        number += 1;
        emitter.stats.records += 1;
        let location = Location {
            line: Some(line_no),
            record: number,
        };
        let value: Value = serde_json::from_slice(&line).map_err(|e| ParseError::Syntax {
            input: INPUT,
            line: line_no,
            column: e.column() as u64,
            message: e.to_string(),
        })?;
        let Some(builder) = entity(value).map_err(|e| emitter.error(location, e))? else {
            emitter.stats.skipped += 1;
            continue;
        };
        if emitter.emit(location, builder)?.is_break() {
            return Ok(emitter.stats);
        }
    }
}

/// The entry for one entity, `None` when its schema is not a party.
fn entity(value: Value) -> Result<Option<EntryBuilder>, RecordError> {
    let Value::Object(obj) = value else {
        return Err(RecordError::InvalidField {
            field: "entity",
            reason: "line is not a JSON object".into(),
        });
    };
    let id = string(&obj, "id")?;
    if id.is_empty() {
        return Err(RecordError::EmptyField("id"));
    }
    let kind = match string(&obj, "schema")?.as_str() {
        "" => return Err(RecordError::EmptyField("schema")),
        "Person" => EntryKind::Person,
        "Organization" | "Company" | "LegalEntity" | "PublicBody" => EntryKind::Organization,
        "Vessel" => EntryKind::Vessel,
        "Airplane" => EntryKind::Aircraft,
        _ => return Ok(None),
    };
    let datasets = strings(&obj, "datasets")?;
    let source = datasets
        .first()
        .map_or_else(|| "opensanctions".to_owned(), Clone::clone);
    let mut b = EntryBuilder::new(format!("os:{id}"), source, kind);
    let empty = Map::new();
    let props = match obj.get("properties") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err(RecordError::InvalidField {
                field: "properties",
                reason: "expected an object".into(),
            });
        }
    };
    for prop in NAME_PROPS {
        for name in strings(props, prop)? {
            b.name(&name)?;
        }
    }
    b.name(&string(&obj, "caption")?)?;
    for name in strings(props, "weakAlias")? {
        b.weak_alias(&name)?;
    }
    for d in strings(props, "birthDate")? {
        b.dates_of_birth(&d);
    }
    for prop in COUNTRY_PROPS {
        for c in strings(props, prop)? {
            b.country(&c);
        }
    }
    for prop in ID_PROPS {
        for i in strings(props, prop)? {
            b.id_number(&i);
        }
    }
    for prop in ["program", "topics"] {
        for p in strings(props, prop)? {
            b.program(&p);
        }
    }
    Ok(Some(b))
}

/// A string field; empty when missing or null.
fn string(obj: &Map<String, Value>, key: &'static str) -> Result<String, RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(field(s, key)?.to_owned()),
        Some(_) => Err(RecordError::InvalidField {
            field: key,
            reason: "expected a string".into(),
        }),
    }
}

/// An array of strings (FollowTheMoney properties are always arrays); a lone string is
/// accepted as a one-element array.
fn strings(obj: &Map<String, Value>, key: &'static str) -> Result<Vec<String>, RecordError> {
    let wrong = || RecordError::InvalidField {
        field: key,
        reason: "expected an array of strings".into(),
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![field(s, key)?.to_owned()]),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| match v {
                Value::String(s) => Ok(field(s, key)?.to_owned()),
                _ => Err(wrong()),
            })
            .collect(),
        Some(_) => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> Result<(Vec<ListEntry>, ParseStats), ParseError> {
        let mut out = Vec::new();
        let stats = parse_opensanctions(data.as_bytes(), |e| {
            out.push(e);
            ControlFlow::Continue(())
        })?;
        Ok((out, stats))
    }

    #[test]
    fn skips_non_parties_and_blank_lines() {
        let data = "{\"id\":\"a\",\"schema\":\"Person\",\"properties\":{\"name\":[\"A B\"]}}\n\n\
                    {\"id\":\"s\",\"schema\":\"Sanction\",\"properties\":{}}\n";
        let (entries, stats) = parse(data).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(stats.records, 2);
        assert_eq!(stats.skipped, 1);
    }

    #[test]
    fn errors_are_located() {
        let err = parse("{\"id\":\"a\",\"schema\":\"Person\",\"caption\":\"A\"}\n\n{oops}\n")
            .unwrap_err();
        assert!(matches!(err, ParseError::Syntax { line: 3, .. }), "{err:?}");
        let err = parse("{\"id\":\"a\",\"schema\":\"Person\",\"properties\":{\"name\":[1]}}\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "opensanctions: line 1, record 1: field \"name\" is invalid: expected an array of strings"
        );
        let err = parse("{\"id\":\"a\",\"schema\":\"Person\"}\n").unwrap_err();
        assert!(err.to_string().contains("\"name\" is empty"), "{err}");
    }
}

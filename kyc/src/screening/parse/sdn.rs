//! OFAC SDN in its CSV form: `sdn.csv` (12 columns, no header, `-0-` for null), `alt.csv`
//! (ent_num, alt_num, alt_type, alt_name, alt_remarks) and `add.csv` (ent_num, add_num,
//! address, city/state/postal code, country, add_remarks).
//!
//! Individuals are written `SURNAME, Given Names` and shown `Given Names SURNAME`. Dates of
//! birth, nationality, citizenship, place of birth and identifier numbers live in the remarks
//! (`DOB 12 Jan 1970; POB Tehran, Iran; nationality Iran; Passport A1234567 (Iran); …`). An
//! alias whose remarks call it weak or low quality only corroborates. `alt.csv` and `add.csv`
//! are read first (they are small) and joined on `ent_num`; `sdn.csv` is streamed.

use std::collections::HashMap;
use std::io::Read;
use std::ops::ControlFlow;

use super::entry::{Emitter, EntryBuilder, field};
use super::{
    LineLimit, Location, ParseError, ParseStats, RecordError, csv_error, csv_location, id_value,
    person_display_name, text,
};
use crate::screening::{EntryKind, ListEntry};

/// OFAC's null marker.
const NULL: &str = "-0-";

/// The source recorded on every SDN entry.
const SOURCE: &str = "OFAC SDN";

/// Remarks prefixes that introduce an identifier number.
const ID_LABELS: &[&str] = &[
    "passport",
    "national id no.",
    "national id",
    "tax id no.",
    "identification number",
    "registration id",
    "registration number",
    "company number",
    "business registration",
    "cedula no.",
    "c.u.i.t.",
    "rfc",
    "nit #",
    "ssn",
    "d-u-n-s number",
    "swift/bic",
    "imo",
    "vessel registration identification",
    "mmsi",
    "aircraft manufacturer's serial number",
    "aircraft tail number",
    "legal entity number",
    "unified social credit code",
    "personal id card",
    "residency number",
    "travel document number",
    "driver's license no.",
    "public security and immigration no.",
    "trade license no.",
    "commercial registry number",
    "chinese commercial code",
];

/// An `alt.csv` row, kept until its `sdn.csv` row is read.
struct Alias {
    name: String,
    weak: bool,
}

/// Parses `sdn.csv` with optional `alt.csv` and `add.csv`.
pub fn parse_sdn<R1, R2, R3, F>(
    sdn: R1,
    alt: Option<R2>,
    add: Option<R3>,
    sink: F,
) -> Result<ParseStats, ParseError>
where
    R1: Read,
    R2: Read,
    R3: Read,
    F: FnMut(ListEntry) -> ControlFlow<()>,
{
    let mut aliases: HashMap<u64, Vec<Alias>> = HashMap::new();
    if let Some(alt) = alt {
        for_each_row("alt.csv", alt, 5, |_, fields| {
            let ent = ent_num(fields[0])?;
            let name = field(fields[3], "alt_name")?;
            if name.is_empty() || name == NULL {
                return Ok(());
            }
            let kind = fields[2].to_ascii_lowercase();
            let remarks = fields[4].to_ascii_lowercase();
            let weak = kind.contains("weak")
                || remarks.contains("weak")
                || remarks.contains("low quality");
            aliases.entry(ent).or_default().push(Alias {
                name: name.to_owned(),
                weak,
            });
            Ok(())
        })?;
    }
    let mut countries: HashMap<u64, Vec<String>> = HashMap::new();
    if let Some(add) = add {
        for_each_row("add.csv", add, 6, |_, fields| {
            let ent = ent_num(fields[0])?;
            let country = field(fields[4], "country")?;
            if !country.is_empty() && country != NULL {
                countries.entry(ent).or_default().push(country.to_owned());
            }
            Ok(())
        })?;
    }

    let mut emitter = Emitter::new("sdn.csv", sink);
    let mut failure = None;
    let mut stop = false;
    for_each_row("sdn.csv", sdn, 12, |location, fields| {
        if stop {
            return Ok(());
        }
        emitter.stats.records += 1;
        let built =
            sdn_row(fields, &mut aliases, &countries).map_err(|e| emitter.error(location, e));
        match built.and_then(|b| emitter.emit(location, b)) {
            Ok(flow) => stop = flow.is_break(),
            Err(e) => {
                failure = Some(e);
                stop = true;
            }
        }
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    // Aliases whose entry never appeared are counted, not fatal: OFAC publishes the files
    // separately and a download can straddle an update.
    let orphans: usize = aliases.values().map(Vec::len).sum();
    emitter.stats.skipped += orphans as u64;
    Ok(emitter.stats)
}

/// Reads a headerless CSV file with exactly `width` columns, skipping OFAC's trailing
/// end-of-file marker (a lone `0x1A`) and blank rows. A callback error is reported at the
/// row's location.
fn for_each_row<R: Read>(
    input: &'static str,
    reader: R,
    width: usize,
    mut each: impl FnMut(Location, &[&str]) -> Result<(), RecordError>,
) -> Result<(), ParseError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineLimit::new(reader));
    let mut record = csv::ByteRecord::new();
    let mut number = 0u64;
    loop {
        let more = csv
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(input, csv.get_ref(), e))?;
        if !more {
            return Ok(());
        }
        let blank = record
            .iter()
            .all(|f| f.iter().all(|b| b.is_ascii_whitespace() || *b == 0x1A));
        if blank {
            continue;
        }
        number += 1;
        let location = csv_location(&mut csv, &record, number);
        let record_error = |error| ParseError::Record {
            input,
            location,
            error,
        };
        if record.len() != width {
            return Err(record_error(RecordError::FieldCount {
                expected: width,
                found: record.len(),
            }));
        }
        let owned: Vec<std::borrow::Cow<'_, str>> = record.iter().map(text).collect();
        let fields: Vec<&str> = owned.iter().map(|f| f.trim()).collect();
        each(location, &fields).map_err(record_error)?;
    }
}

fn ent_num(text: &str) -> Result<u64, RecordError> {
    text.trim().parse().map_err(|_| RecordError::InvalidField {
        field: "ent_num",
        reason: format!(
            "{:?} is not a number",
            text.chars().take(20).collect::<String>()
        ),
    })
}

/// One `sdn.csv` row joined with its aliases and address countries.
fn sdn_row(
    fields: &[&str],
    aliases: &mut HashMap<u64, Vec<Alias>>,
    countries: &HashMap<u64, Vec<String>>,
) -> Result<EntryBuilder, RecordError> {
    let value = |i: usize, name: &'static str| -> Result<&str, RecordError> {
        let v = field(fields.get(i).copied().unwrap_or_default(), name)?;
        Ok(if v == NULL { "" } else { v })
    };
    let ent = ent_num(fields[0])?;
    let kind = match value(2, "SDN_Type")?.to_ascii_lowercase().as_str() {
        "individual" => EntryKind::Person,
        "vessel" => EntryKind::Vessel,
        "aircraft" => EntryKind::Aircraft,
        "" | "entity" => EntryKind::Organization,
        _ => EntryKind::Other,
    };
    let mut b = EntryBuilder::new(format!("sdn:{ent}"), SOURCE.to_owned(), kind);
    let name = value(1, "SDN_Name")?;
    if name.is_empty() {
        return Err(RecordError::EmptyField("SDN_Name"));
    }
    b.listed_name(name)?;
    for alias in aliases.remove(&ent).unwrap_or_default() {
        if alias.weak {
            let name = match kind {
                EntryKind::Person => person_display_name(&alias.name),
                _ => alias.name,
            };
            b.weak_alias(&name)?;
        } else {
            b.listed_name(&alias.name)?;
        }
    }
    for p in value(3, "Program")?.split("] [") {
        b.program(p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()));
    }
    b.country(value(9, "Vess_flag")?);
    for c in countries.get(&ent).into_iter().flatten() {
        b.country(c);
    }
    remarks(&mut b, value(11, "Remarks")?);
    Ok(b)
}

/// Pulls dates of birth, countries and identifier numbers out of the remarks.
fn remarks(b: &mut EntryBuilder, text: &str) {
    for part in text.trim_end_matches('.').split(';').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        let lower = lower.strip_prefix("alt. ").unwrap_or(&lower);
        let offset = part.len() - lower.len();
        let rest = |prefix: &str| part.get(offset + prefix.len()..).map(str::trim);
        if lower.starts_with("dob ") {
            b.dates_of_birth(rest("dob ").unwrap_or_default());
        } else if let Some(p) = ["nationality ", "citizen ", "nationality of registration "]
            .into_iter()
            .find(|p| lower.starts_with(p))
        {
            b.country(rest(p).unwrap_or_default());
        } else if lower.starts_with("pob ") {
            if let Some(country) = rest("pob ").and_then(|r| r.rsplit(',').next()) {
                b.country(country);
            }
        } else if let Some(label) = ID_LABELS
            .iter()
            .find(|l| lower.starts_with(*l) && lower[l.len()..].starts_with([' ', ':', '#']))
        {
            let value = rest(label).unwrap_or_default();
            // `A1234567 (Iran) expires 2030`: the number is what precedes the bracket.
            let number = value.split(" (").next().unwrap_or(value);
            let number = number.split(" issued").next().unwrap_or(number);
            b.id_number(id_value(number.trim_start_matches([':', '#', ' '])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sdn: &str, alt: Option<&str>) -> Result<Vec<ListEntry>, ParseError> {
        let mut out = Vec::new();
        parse_sdn(sdn.as_bytes(), alt.map(str::as_bytes), None::<&[u8]>, |e| {
            out.push(e);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    const ROW: &str = "10,\"DOE, John\",\"individual\",\"SDGT] [IRGC\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 12 Jan 1970; alt. DOB 1971; POB Tehran, Iran; nationality Iran; Passport A1234567 (Iran); IMO 9187629.\"\n";

    #[test]
    fn row_with_remarks() {
        let e = &parse(ROW, None).unwrap()[0];
        assert_eq!(e.key, "sdn:10");
        assert_eq!(e.names, ["John DOE"]);
        assert_eq!(e.programs, ["SDGT", "IRGC"]);
        assert_eq!(e.countries, ["IR"]);
        assert_eq!(e.id_numbers, ["A1234567", "9187629"]);
        let dobs: Vec<String> = e.dates_of_birth.iter().map(ToString::to_string).collect();
        assert_eq!(dobs, ["1970-01-12", "1971"]);
    }

    #[test]
    fn weak_and_orphan_aliases() {
        let alt = "10,1,\"aka\",\"DOE, Johnny\",-0-\n10,2,\"aka\",\"JD\",\"Low quality a.k.a.\"\n99,3,\"aka\",\"X\",-0-\n";
        let e = &parse(ROW, Some(alt)).unwrap()[0];
        assert_eq!(e.names, ["John DOE", "Johnny DOE"]);
        assert_eq!(e.weak_aliases, ["JD"]);
    }

    #[test]
    fn errors_are_located() {
        let err = parse(&format!("{ROW}11,\"X\"\n"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sdn.csv: line 2, record 2: expected 12 fields, found 2"
        );
        let bad = ROW.replacen("10,", "ten,", 1);
        let err = parse(&bad, None).unwrap_err();
        assert!(err.to_string().contains("\"ent_num\" is invalid"), "{err}");
        let err = parse(ROW, Some("10,1,aka\n")).unwrap_err();
        assert!(
            err.to_string().starts_with("alt.csv: line 1, record 1"),
            "{err}"
        );
        let err = parse(&format!("{ROW}{ROW}"), None).unwrap_err();
        assert!(err.to_string().contains("repeats"), "{err}");
    }

    #[test]
    fn eof_marker_is_skipped() {
        assert_eq!(parse(&format!("{ROW}\u{1a}"), None).unwrap().len(), 1);
    }
}

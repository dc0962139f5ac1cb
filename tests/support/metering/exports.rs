//! Reading `computegate report export` output: RFC 4180 CSV.

use std::collections::BTreeMap;

/// Parses RFC 4180 CSV (quoted fields with `""` escapes and embedded commas or newlines).
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// CSV rows as maps from the header's column names.
pub(crate) fn csv_records(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rows = parse_csv(text).into_iter();
    let header = rows.next().unwrap_or_default();
    rows.map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

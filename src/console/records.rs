//! Records as the console shows them. The services answer typed records that the staff API
//! serializes; the console shows the same serialization, so a page never shows a field the API
//! would not and never drifts from it: [`fields`] flattens one record into labelled lines (a
//! case file's application, a report's basis), and [`Table`] picks columns out of a list of
//! records. Pure; the templates escape every value.

use serde::Serialize;
use serde_json::Value;

/// One labelled value of a flattened record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The path of the value: `organization.beneficial_owners[0].legal_name`.
    pub label: String,
    /// The value as text.
    pub value: String,
}

/// Columns picked out of a list of records, each row with an optional link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headings.
    pub headings: Vec<&'static str>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// One row of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The cells, in column order.
    pub cells: Vec<String>,
    /// Where the row's first cell links to.
    pub link: Option<String>,
    /// The record's id (forms next to the row act on it).
    pub id: String,
}

/// Every scalar of `record`'s serialization, with its path; nulls and empty lists left out.
pub fn fields(record: &impl Serialize) -> Vec<Field> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(record) {
        flatten("", &value, &mut out);
    }
    out
}

fn flatten(path: &str, value: &Value, out: &mut Vec<Field>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, v) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), v, out);
            }
        }
        scalar => out.push(Field {
            label: path.to_owned(),
            value: text(scalar),
        }),
    }
}

/// A value as one line of text: strings as they are, numbers as JSON writes them, lists joined
/// with `, `, objects as `key: value` pairs joined with `; ` (a crossing, a basis).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}: {}", text(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

// === impl Table ===

impl Table {
    /// The `columns` (`(JSON pointer, heading)`) of each of `records`; `link` makes the first
    /// cell of a row a link, `id` names the record (pointer of its id).
    pub fn of<T: Serialize>(
        records: &[T],
        columns: &[(&str, &'static str)],
        id: &str,
        link: impl Fn(&str) -> Option<String>,
    ) -> Table {
        let rows = records
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .map(|value| {
                let id = value.pointer(id).map(text).unwrap_or_default();
                Row {
                    cells: columns
                        .iter()
                        .map(|(pointer, _)| value.pointer(pointer).map(text).unwrap_or_default())
                        .collect(),
                    link: link(&id),
                    id,
                }
            })
            .collect();
        Table {
            headings: columns.iter().map(|(_, h)| *h).collect(),
            rows,
        }
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_flatten_to_paths_without_nulls() {
        let record = json!({
            "kind": "organization",
            "organization": {"legal_name": "Helios <AB>", "owners": [{"name": "A"}, {"name": "B"}]},
            "expires_at": null,
            "flop": 1.5e21,
            "tags": [],
        });
        let f = fields(&record);
        let pairs: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.label.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("flop", "1.5e+21"),
                ("kind", "organization"),
                ("organization.legal_name", "Helios <AB>"),
                ("organization.owners[0].name", "A"),
                ("organization.owners[1].name", "B"),
            ]
        );
    }

    #[test]
    fn tables_pick_columns_and_link_rows() {
        let records = vec![
            json!({"id": "r1", "status": "due", "basis": {"flop": 1e25}, "lists": ["a", "b"],
                   "crossings": [{"label": "eu", "scope": "customer", "x": null}]}),
            json!({"id": "r2", "status": "filed"}),
        ];
        let t = Table::of(
            &records,
            &[
                ("/status", "Status"),
                ("/basis/flop", "FLOP"),
                ("/lists", "Lists"),
                ("/crossings", "Crossings"),
            ],
            "/id",
            |id| (id == "r1").then(|| format!("/x/{id}")),
        );
        assert_eq!(t.headings, ["Status", "FLOP", "Lists", "Crossings"]);
        assert_eq!(
            t.rows[0].cells,
            ["due", "1e+25", "a, b", "label: eu; scope: customer"]
        );
        assert_eq!(t.rows[0].link.as_deref(), Some("/x/r1"));
        assert_eq!(t.rows[1].cells, ["filed", "", "", ""]);
        assert_eq!(t.rows[1].id, "r2");
        assert!(t.rows[1].link.is_none());
        assert!(Table::default().is_empty());
    }
}

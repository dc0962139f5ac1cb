//! The canonical form that the chain hashes: JSON with keys sorted by their UTF-8 bytes, no
//! whitespace, strings escaped as `serde_json` escapes them, times as RFC 3339 UTC with six
//! fraction digits. Written by hand rather than through `serde_json::Map` so that the order does
//! not depend on whether some crate in the build enables `serde_json/preserve_order`.

use sha2::{Digest as _, Sha256};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::HASH_LEN;

/// `2024-05-01T12:00:00.000000Z`: the only time format inside hashed records.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The fields of one record that the hash covers (everything but the hash itself).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFields<'a> {
    pub(crate) seq: i64,
    pub(crate) at: OffsetDateTime,
    pub(crate) actor: &'a str,
    pub(crate) actor_ip: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) subject: &'a str,
    /// Already canonical JSON text, embedded verbatim (it is what was stored).
    pub(crate) detail: &'a str,
    pub(crate) prev_hash: &'a [u8],
}

/// Appends the canonical JSON text of `value` to `out`.
pub(crate) fn write_value(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// The canonical text of `value`.
pub(crate) fn to_canonical(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// A time in the hashed form (UTC, microseconds).
pub(crate) fn format_time(at: OffsetDateTime) -> String {
    // Formatting a valid `OffsetDateTime` with a fixed description cannot fail: every
    // component exists; fall back to RFC 3339 only to avoid a panic path.
    at.to_offset(UtcOffset::UTC)
        .format(TIME_FORMAT)
        .unwrap_or_else(|_| at.unix_timestamp_nanos().to_string())
}

/// The canonical JSON of a record without its hash. Keys, sorted: `action`, `actor`,
/// `actor_ip`, `at`, `detail`, `prev_hash` (lowercase hex), `seq`, `subject`.
pub(crate) fn record_json(r: &RecordFields<'_>) -> String {
    let (before, after) = record_json_parts(r);
    let mut out = String::with_capacity(before.len() + after.len() + 2 * HASH_LEN + 32);
    out.push_str(&before);
    out.push_str(&hex::encode(r.prev_hash));
    out.push_str("\",\"seq\":");
    out.push_str(&r.seq.to_string());
    out.push_str(&after);
    out
}

/// [`record_json`] without the two values only the chain head knows: the text before the
/// `prev_hash` hex digits (ending in `"prev_hash":"`) and the text after the `seq` digits
/// (from `,"subject":`). The record is `before ‖ hex(prev_hash) ‖ "","seq":" ‖ seq ‖ after`;
/// `r.seq` and `r.prev_hash` are ignored. PostgreSQL appends fill the gap on the server.
pub(crate) fn record_json_parts(r: &RecordFields<'_>) -> (String, String) {
    let mut before = String::with_capacity(192 + r.detail.len());
    before.push_str("{\"action\":");
    write_str(r.action, &mut before);
    before.push_str(",\"actor\":");
    write_str(r.actor, &mut before);
    before.push_str(",\"actor_ip\":");
    match r.actor_ip {
        Some(ip) => write_str(ip, &mut before),
        None => before.push_str("null"),
    }
    before.push_str(",\"at\":");
    write_str(&format_time(r.at), &mut before);
    before.push_str(",\"detail\":");
    before.push_str(r.detail);
    before.push_str(",\"prev_hash\":\"");
    let mut after = String::from(",\"subject\":");
    write_str(r.subject, &mut after);
    after.push('}');
    (before, after)
}

/// SHA-256(prev_hash ‖ canonical record JSON).
pub(crate) fn record_hash(r: &RecordFields<'_>) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(r.prev_hash);
    h.update(record_json(r).as_bytes());
    h.finalize().into()
}

fn write_str(s: &str, out: &mut String) {
    // Serializing a `str` to JSON cannot fail (no I/O, no non-string keys).
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn keys_are_sorted_and_whitespace_free() {
        let v = json!({"b": 1, "a": {"z": [1, "x", null], "é": true, "A": false}, "": 2.5});
        assert_eq!(
            to_canonical(&v),
            r#"{"":2.5,"a":{"A":false,"z":[1,"x",null],"é":true},"b":1}"#
        );
        assert_eq!(to_canonical(&json!("quote\"\n")), r#""quote\"\n""#);
    }

    #[test]
    fn record_form_is_fixed() {
        let fields = RecordFields {
            seq: 1,
            at: datetime!(2030-01-01 01:00:00.5 +01:00),
            actor: "system:test",
            actor_ip: None,
            action: "test.event",
            subject: "customer:x",
            detail: "{}",
            prev_hash: &[0; HASH_LEN],
        };
        let text = record_json(&fields);
        assert_eq!(
            text,
            format!(
                "{{\"action\":\"test.event\",\"actor\":\"system:test\",\"actor_ip\":null,\
                 \"at\":\"2030-01-01T00:00:00.500000Z\",\"detail\":{{}},\"prev_hash\":\"{}\",\
                 \"seq\":1,\"subject\":\"customer:x\"}}",
                "0".repeat(64)
            )
        );
        // The record text is itself canonical JSON.
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(to_canonical(&parsed), text);
        // Literal vector: SHA-256(32 zero bytes ‖ text), computed once and pasted.
        assert_eq!(
            hex::encode(record_hash(&fields)),
            "b09845640f4ffda6c272282f226459aadf41daa7c11984f6370980c7998cb79f"
        );
    }
}

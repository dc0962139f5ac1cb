//! Reading untrusted JSON job bodies: a nesting-depth guard that runs before the parser, and
//! field readers that report errors with the field's path.

use serde_json::{Map, Value};

use super::SpecError;

/// Deepest nesting of arrays and objects accepted in a job body (the top-level object is 1).
pub const MAX_DEPTH: usize = 64;

/// Longest run identifier accepted, bytes.
pub const MAX_RUN_ID_LEN: usize = 128;

/// Largest declared parameter count or token count accepted (far beyond any real model or
/// dataset; keeps 6·N·D finite).
pub(super) const MAX_DECLARED: f64 = 1e18;

/// Parses `body` as JSON after checking its nesting depth with a linear scan, so a deeply
/// nested body is refused before any recursion (serde_json's own limit is 128). An object with
/// the same key twice is refused: parsers disagree on which one wins (serde_json keeps the
/// last, others the first), so the gateway and the upstream could read different jobs.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, SpecError> {
    check_depth(body)?;
    serde_json::from_slice::<UniqueKeys>(body)
        .map(|v| v.0)
        .map_err(|e| SpecError::NotJson(e.to_string()))
}

/// A JSON value read with every object's keys checked for duplicates.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{}`",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let UniqueKeys(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// Fails when arrays/objects nest deeper than [`MAX_DEPTH`] outside strings.
fn check_depth(body: &[u8]) -> Result<(), SpecError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SpecError::TooDeep { limit: MAX_DEPTH });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A field error at `path`.
pub(super) fn field_err(path: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Field {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Joins a parent path and a key (`job` + `nodes` → `job.nodes`).
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `value` as an object, or an error naming `path`.
pub(super) fn as_object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, SpecError> {
    value
        .as_object()
        .ok_or_else(|| field_err(path, "expected an object"))
}

/// The member `key` of `obj`, treating `null` as absent.
pub(super) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional object member.
pub(super) fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, SpecError> {
    get(obj, key).map(|v| as_object(v, path)).transpose()
}

/// An optional string member.
pub(super) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, SpecError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_err(path, "expected a string")),
    }
}

/// A JSON number that is a whole, non-negative count: an integer, or a float with no fraction
/// (up to 2^53, where floats stop being exact).
pub(super) fn whole(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_992.0)
        .then_some(f as u64)
}

/// A finite, non-negative JSON number.
pub(super) fn non_negative(value: &Value) -> Option<f64> {
    value.as_f64().filter(|f| f.is_finite() && *f >= 0.0)
}

/// An end-customer reference: 1 to 64 bytes of ASCII letters, digits and `-` (the ids the
/// gateway hands out are UUIDs; anything of this shape is looked up, anything else refused).
/// A UUID is kept in its one canonical spelling (hyphenated, lower case), whichever the client
/// used: the body and the header are compared as ids, and the upstream receives the id the
/// ledger admitted, not the client's spelling of it.
pub(super) fn end_customer(text: &str, path: &str) -> Result<String, SpecError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if text.is_empty() || text.len() > 64 || !text.chars().all(allowed) {
        return Err(field_err(
            path,
            "expected an end-customer id (1 to 64 letters, digits or '-')",
        ));
    }
    Ok(uuid::Uuid::parse_str(text).map_or_else(|_| text.to_string(), |id| id.to_string()))
}

/// A run identifier: 1 to 128 bytes of ASCII letters, digits, `.`, `_`, `:`, `-`.
pub(super) fn run_id(text: &str, path: &str) -> Result<String, SpecError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if text.is_empty() || text.len() > MAX_RUN_ID_LEN || !text.chars().all(allowed) {
        return Err(field_err(
            path,
            "expected 1 to 128 characters of letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(text.to_string())
}

/// A declared parameter or token count given as a string (`"7e9"`, `"70000000000"`), as
/// Slurm environment entries and Kubernetes annotations carry them.
pub(super) fn declared_number(text: &str, path: &str, min: f64) -> Result<f64, SpecError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= min && *v <= MAX_DECLARED)
        .ok_or_else(|| {
            field_err(
                path,
                format!("expected a number from {min} to {MAX_DECLARED:e}"),
            )
        })
}

/// A dataset kind: 1 to 64 characters of lower-case letters, digits and '_'.
pub(super) fn dataset_kind(text: &str, path: &str) -> Result<String, SpecError> {
    let kind = text.trim().to_ascii_lowercase();
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(field_err(
            path,
            "expected 1 to 64 characters of letters, digits and '_' (e.g. text, biological_sequence)",
        ));
    }
    Ok(kind)
}

/// Keys under which a profile carries Computegate declarations outside its own schema
/// (Slurm environment entries, Kubernetes labels/annotations).
pub(super) struct DeclarationKeys {
    pub(super) run_id: &'static str,
    pub(super) parent_run_id: &'static str,
    pub(super) end_customer: &'static str,
    pub(super) parameters: &'static str,
    pub(super) tokens: &'static str,
    pub(super) dataset_kind: &'static str,
    pub(super) precision: &'static str,
}

/// Declarations read from such keys.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Declarations {
    pub(super) run_id: Option<String>,
    pub(super) parent_run_id: Option<String>,
    pub(super) end_customer: Option<String>,
    pub(super) parameters: Option<f64>,
    pub(super) tokens: Option<f64>,
    pub(super) dataset_kind: Option<String>,
    pub(super) precision: Option<crate::policy::Precision>,
}

impl Declarations {
    /// Reads declarations through `lookup` (key → value); `path(key)` names a key in errors.
    pub(super) fn read(
        keys: &DeclarationKeys,
        lookup: impl Fn(&str) -> Option<String>,
        path: impl Fn(&str) -> String,
    ) -> Result<Self, SpecError> {
        let mut d = Declarations::default();
        if let Some(v) = lookup(keys.run_id) {
            d.run_id = Some(run_id(v.trim(), &path(keys.run_id))?);
        }
        if let Some(v) = lookup(keys.parent_run_id) {
            d.parent_run_id = Some(run_id(v.trim(), &path(keys.parent_run_id))?);
        }
        if let Some(v) = lookup(keys.end_customer) {
            d.end_customer = Some(end_customer(v.trim(), &path(keys.end_customer))?);
        }
        if let Some(v) = lookup(keys.parameters) {
            d.parameters = Some(declared_number(&v, &path(keys.parameters), 1.0)?);
        }
        if let Some(v) = lookup(keys.tokens) {
            d.tokens = Some(declared_number(&v, &path(keys.tokens), 0.0)?);
        }
        if let Some(v) = lookup(keys.dataset_kind) {
            d.dataset_kind = Some(dataset_kind(&v, &path(keys.dataset_kind))?);
        }
        if let Some(v) = lookup(keys.precision) {
            d.precision = Some(crate::policy::Precision::parse(&v).ok_or_else(|| {
                field_err(
                    path(keys.precision),
                    "expected bf16, fp16, fp8, tf32 or fp32",
                )
            })?);
        }
        Ok(d)
    }

    /// Merges `other` (a later component) into `self`; a value set differently in both fails.
    pub(super) fn merge(&mut self, other: Declarations, path: &str) -> Result<(), SpecError> {
        fn one<T: PartialEq>(
            a: &mut Option<T>,
            b: Option<T>,
            what: &str,
            path: &str,
        ) -> Result<(), SpecError> {
            match (a.as_ref(), b) {
                (Some(x), Some(y)) if *x != y => Err(field_err(
                    path,
                    format!("declares a different {what} than an earlier component"),
                )),
                (None, Some(y)) => {
                    *a = Some(y);
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        one(&mut self.run_id, other.run_id, "run id", path)?;
        one(
            &mut self.parent_run_id,
            other.parent_run_id,
            "parent run id",
            path,
        )?;
        one(
            &mut self.end_customer,
            other.end_customer,
            "end customer",
            path,
        )?;
        one(
            &mut self.parameters,
            other.parameters,
            "parameter count",
            path,
        )?;
        one(&mut self.tokens, other.tokens, "token count", path)?;
        one(
            &mut self.dataset_kind,
            other.dataset_kind,
            "dataset kind",
            path,
        )?;
        one(&mut self.precision, other.precision, "precision", path)
    }

    /// Writes the declarations into `spec`.
    pub(super) fn apply(
        self,
        spec: &mut super::JobSpec,
        parent_path: &str,
    ) -> Result<(), SpecError> {
        spec.run_id = self.run_id;
        if let Some(parent) = self.parent_run_id {
            spec.set_parent(parent, parent_path)?;
        }
        if self.parameters.is_some() || self.tokens.is_some() {
            spec.declared = Some(super::Declared {
                parameters: self.parameters,
                tokens: self.tokens,
            });
        }
        spec.dataset_kind = self.dataset_kind;
        spec.precision = self.precision;
        spec.end_customer = self.end_customer;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_guard_counts_only_structure_outside_strings() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check_depth(ok.as_bytes()).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            check_depth(deep.as_bytes()),
            Err(SpecError::TooDeep { limit: MAX_DEPTH })
        ));
        let in_string = format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(200), "{".repeat(200));
        assert!(check_depth(in_string.as_bytes()).is_ok());
        assert!(parse_body(in_string.as_bytes()).is_ok());
        // An unbalanced deep prefix is refused before parsing.
        assert!(matches!(
            parse_body("{\"a\":".repeat(100).as_bytes()),
            Err(SpecError::TooDeep { .. })
        ));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"gpu_count": 1, "gpu_count": 64}"#,
            r#"{"model": {"parameters": 1, "parameters": 7e9}}"#,
            r#"[{"a": 1}, {"b": 1, "b": 2}]"#,
        ] {
            let err = parse_body(body.as_bytes()).expect_err(body);
            assert!(err.to_string().contains("duplicate key"), "{err}");
        }
        let ok = parse_body(br#"{"a": {"x": 1}, "b": {"x": 2}, "c": [1, 2.5, "s", null, true]}"#)
            .expect("distinct keys");
        assert_eq!(ok["c"][1], 2.5);
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(whole(&serde_json::json!(8)), Some(8));
        assert_eq!(whole(&serde_json::json!(8.0)), Some(8));
        assert_eq!(whole(&serde_json::json!(8.5)), None);
        assert_eq!(whole(&serde_json::json!(-1)), None);
        assert_eq!(whole(&serde_json::json!(1e300)), None);
        assert_eq!(whole(&serde_json::json!("8")), None);
    }

    #[test]
    fn run_ids() {
        assert!(run_id("run-1.a_b:c", "run_id").is_ok());
        assert!(run_id("", "run_id").is_err());
        assert!(run_id("has space", "run_id").is_err());
        assert!(run_id(&"x".repeat(129), "run_id").is_err());
    }
}

//! Job submissions: the body of `POST /v1/jobs`, parsed and validated into a [`JobSpec`] with
//! errors that name the offending field.
//!
//! Parsing goes through `serde_json::Value` rather than a derived struct so that a wrong type is
//! reported with the field's name (`gpu_count: expected a positive integer`), not a byte column.
//! Unknown fields are ignored so clients can send more than the simulator understands.

use serde::Serialize;
use serde_json::{Map, Value};

use super::catalog::{self, GpuModel};

/// Longest simulated run accepted: 30 days.
pub(crate) const MAX_DURATION_HOURS: f64 = 720.0;
/// Largest model accepted, parameters (10 trillion).
const MAX_PARAMETERS: f64 = 1e13;
/// Longest run identifier accepted, bytes.
const MAX_RUN_ID_LEN: usize = 128;

/// A validated job submission.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub(crate) gpu: &'static GpuModel,
    pub(crate) gpu_count: u32,
    pub(crate) max_duration_hours: f64,
    pub(crate) run_id: String,
    pub(crate) parent_run_id: Option<String>,
    pub(crate) model: Option<ModelSpec>,
    pub(crate) dataset: Option<DatasetSpec>,
}

/// What is being trained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ModelSpec {
    /// Parameter count.
    pub(crate) parameters: f64,
}

/// What it is trained on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DatasetSpec {
    /// Training tokens, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tokens: Option<f64>,
    /// Kind of data, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<DatasetKind>,
}

/// Kinds of training data. Later screening rules key on these (e.g. biological sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DatasetKind {
    Text,
    Code,
    Image,
    Audio,
    Video,
    Multimodal,
    BiologicalSequence,
    ChemicalStructure,
    Other,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum InvalidJob {
    /// The body is not a JSON object.
    #[error("request body is not a JSON object: {0}")]
    Malformed(String),
    /// A field is missing or out of range.
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// `gpu_type` names no type of the fleet.
    #[error("gpu_type: unknown type {given:?}; known types: {known}")]
    UnknownGpuType { given: String, known: String },
}

const DATASET_KINDS: &[(&str, DatasetKind)] = &[
    ("text", DatasetKind::Text),
    ("code", DatasetKind::Code),
    ("image", DatasetKind::Image),
    ("audio", DatasetKind::Audio),
    ("video", DatasetKind::Video),
    ("multimodal", DatasetKind::Multimodal),
    ("biological_sequence", DatasetKind::BiologicalSequence),
    ("chemical_structure", DatasetKind::ChemicalStructure),
    ("other", DatasetKind::Other),
];

/// Parses and validates a `POST /v1/jobs` body.
pub(crate) fn parse(body: &[u8]) -> Result<JobSpec, InvalidJob> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| InvalidJob::Malformed(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(InvalidJob::Malformed("expected an object".into()));
    };
    let gpu_type = required_str(&obj, "gpu_type")?;
    let gpu = catalog::find(gpu_type).ok_or_else(|| InvalidJob::UnknownGpuType {
        given: gpu_type.to_owned(),
        known: catalog::known_types(),
    })?;
    let gpu_count = match obj.get("gpu_count") {
        None | Some(Value::Null) => return Err(missing("gpu_count")),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("gpu_count", "expected a positive integer"))?,
    };
    if gpu_count > gpu.total {
        return Err(invalid(
            "gpu_count",
            &format!("the fleet has only {} {}", gpu.total, gpu.id),
        ));
    }
    let max_duration_hours = required_number(&obj, "max_duration_hours")?;
    if !(max_duration_hours > 0.0 && max_duration_hours <= MAX_DURATION_HOURS) {
        return Err(invalid(
            "max_duration_hours",
            &format!("must be greater than 0 and at most {MAX_DURATION_HOURS}"),
        ));
    }
    let run_id = optional_run_id(&obj, "run_id")?.ok_or_else(|| missing("run_id"))?;
    let parent_run_id = parse_parent_run_id(&obj, "parent_run_id", &run_id)?;
    Ok(JobSpec {
        gpu,
        gpu_count,
        max_duration_hours,
        run_id,
        parent_run_id,
        model: model(&obj)?,
        dataset: dataset(&obj)?,
    })
}

fn parse_parent_run_id(
    obj: &Map<String, Value>,
    field: &'static str,
    run_id: &str,
) -> Result<Option<String>, InvalidJob> {
    let parent = optional_run_id(obj, field)?;
    if parent.as_deref() == Some(run_id) {
        return Err(invalid(field, "must differ from run_id"));
    }
    Ok(parent)
}

fn model(obj: &Map<String, Value>) -> Result<Option<ModelSpec>, InvalidJob> {
    let Some(model) = optional_object(obj, "model")? else {
        return Ok(None);
    };
    let parameters = match model.get("parameters") {
        None | Some(Value::Null) => return Err(missing("model.parameters")),
        Some(v) => v
            .as_f64()
            .filter(|p| *p >= 1.0 && *p <= MAX_PARAMETERS)
            .ok_or_else(|| {
                invalid(
                    "model.parameters",
                    &format!("expected a number from 1 to {MAX_PARAMETERS:e}"),
                )
            })?,
    };
    Ok(Some(ModelSpec { parameters }))
}

fn dataset(obj: &Map<String, Value>) -> Result<Option<DatasetSpec>, InvalidJob> {
    let Some(dataset) = optional_object(obj, "dataset")? else {
        return Ok(None);
    };
    let tokens = match dataset.get("tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|t| *t >= 0.0 && t.is_finite())
                .ok_or_else(|| invalid("dataset.tokens", "expected a non-negative number"))?,
        ),
    };
    let kind = match dataset.get("kind") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let given = v.as_str().unwrap_or_default();
            let kind = DATASET_KINDS.iter().find(|(name, _)| *name == given);
            let names: Vec<&str> = DATASET_KINDS.iter().map(|(n, _)| *n).collect();
            Some(kind.map(|(_, k)| *k).ok_or_else(|| {
                invalid(
                    "dataset.kind",
                    &format!("expected one of {}", names.join(", ")),
                )
            })?)
        }
    };
    Ok(Some(DatasetSpec { tokens, kind }))
}

fn optional_object<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, InvalidJob> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(invalid(field, "expected an object")),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, InvalidJob> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(field, "expected a string")),
    }
}

fn required_number(obj: &Map<String, Value>, field: &'static str) -> Result<f64, InvalidJob> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| invalid(field, "expected a number")),
    }
}

/// A run identifier: 1 to 128 bytes of ASCII letters, digits, `.`, `_`, `:`, `-`.
fn optional_run_id(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, InvalidJob> {
    let id = match obj.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid(field, "expected a string")),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if id.is_empty() || id.len() > MAX_RUN_ID_LEN || !id.chars().all(allowed) {
        return Err(invalid(
            field,
            "expected 1 to 128 characters of letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(Some(id.clone()))
}

fn missing(field: &'static str) -> InvalidJob {
    invalid(field, "is required")
}

fn invalid(field: &'static str, reason: &str) -> InvalidJob {
    InvalidJob::Field {
        field,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<JobSpec, InvalidJob> {
        parse(v.to_string().as_bytes())
    }

    fn valid() -> Value {
        json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 2.0, "run_id": "run-1"})
    }

    fn field_of(err: InvalidJob) -> &'static str {
        match err {
            InvalidJob::Field { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = valid();
        v[key] = value;
        v
    }

    #[test]
    fn minimal_submission_parses() {
        let spec = parse_json(valid()).expect("valid");
        assert_eq!(spec.gpu.id, "h100");
        assert_eq!(spec.gpu_count, 8);
        assert_eq!(spec.max_duration_hours, 2.0);
        assert_eq!(spec.run_id, "run-1");
        assert_eq!(
            (spec.parent_run_id, spec.model, spec.dataset),
            (None, None, None)
        );
    }

    #[test]
    fn full_submission_parses() {
        let mut v = with("parent_run_id", json!("run-0"));
        v["model"] = json!({"parameters": 7e9});
        v["dataset"] = json!({"tokens": 1e12, "kind": "biological_sequence"});
        v["unknown_extra"] = json!(true);
        let spec = parse_json(v).expect("valid");
        assert_eq!(spec.parent_run_id.as_deref(), Some("run-0"));
        assert_eq!(spec.model, Some(ModelSpec { parameters: 7e9 }));
        let dataset = spec.dataset.expect("dataset");
        assert_eq!(dataset.tokens, Some(1e12));
        assert_eq!(dataset.kind, Some(DatasetKind::BiologicalSequence));
    }

    #[test]
    fn malformed_bodies() {
        assert!(matches!(parse(b"{"), Err(InvalidJob::Malformed(_))));
        assert!(matches!(parse(b"[1]"), Err(InvalidJob::Malformed(_))));
        assert!(matches!(parse(b""), Err(InvalidJob::Malformed(_))));
    }

    #[test]
    fn unknown_gpu_type_lists_known_ones() {
        let err = parse_json(with("gpu_type", json!("v100"))).expect_err("unknown");
        assert!(matches!(&err, InvalidJob::UnknownGpuType { given, .. } if given == "v100"));
        assert!(err.to_string().contains("h100"));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("gpu_type", json!(7), "gpu_type"),
            ("gpu_type", Value::Null, "gpu_type"),
            ("gpu_count", json!(0), "gpu_count"),
            ("gpu_count", json!(-1), "gpu_count"),
            ("gpu_count", json!(1.5), "gpu_count"),
            ("gpu_count", json!("8"), "gpu_count"),
            ("gpu_count", json!(513), "gpu_count"),
            ("max_duration_hours", json!(0), "max_duration_hours"),
            ("max_duration_hours", json!(721), "max_duration_hours"),
            ("max_duration_hours", json!("2h"), "max_duration_hours"),
            ("run_id", json!(""), "run_id"),
            ("run_id", json!("has space"), "run_id"),
            ("run_id", json!("x".repeat(129)), "run_id"),
            ("parent_run_id", json!("run-1"), "parent_run_id"),
            ("parent_run_id", json!(3), "parent_run_id"),
            ("model", json!(3), "model"),
            ("model", json!({}), "model.parameters"),
            ("model", json!({"parameters": 0}), "model.parameters"),
            ("model", json!({"parameters": 1e14}), "model.parameters"),
            ("dataset", json!("text"), "dataset"),
            ("dataset", json!({"tokens": -1}), "dataset.tokens"),
            ("dataset", json!({"kind": "secret"}), "dataset.kind"),
            ("dataset", json!({"kind": 1}), "dataset.kind"),
        ];
        for (key, value, field) in cases {
            let err = parse_json(with(key, value.clone())).expect_err("invalid");
            assert_eq!(field_of(err), field, "{key} = {value}");
        }
        let mut v = valid();
        v.as_object_mut().expect("object").remove("run_id");
        assert_eq!(field_of(parse_json(v).expect_err("missing")), "run_id");
    }

    #[test]
    fn dataset_fields_are_optional() {
        let spec = parse_json(with("dataset", json!({}))).expect("valid");
        assert_eq!(
            spec.dataset,
            Some(DatasetSpec {
                tokens: None,
                kind: None
            })
        );
    }
}

//! The `generic` profile: the simulator's job API (`POST /v1/jobs`).
//!
//! ```json
//! {"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 2.0, "run_id": "run-1",
//!  "parent_run_id": "run-0", "model": {"parameters": 7e9},
//!  "dataset": {"tokens": 1e12, "kind": "text"}, "precision": "bf16"}
//! ```
//! `gpu_count` is required (≥ 1); `gpu_type` and `max_duration_hours` may be absent, in which
//! case the policy decides. `precision` is a Computegate extension (default: the policy's), and
//! so is `end_customer` (the end customer a reseller runs the job for).

use serde_json::Value;

use super::json::{self, field_err, get, opt_object, opt_str};
use super::{Declared, JobSpec, Profile, SpecError, SpecLimits};
use crate::policy::Precision;

/// Reads a generic job body.
pub(super) fn parse(value: &Value, limits: &SpecLimits) -> Result<JobSpec, SpecError> {
    let obj = value
        .as_object()
        .ok_or_else(|| SpecError::NotJson("expected a JSON object".into()))?;
    let mut spec = JobSpec::empty(Profile::Generic);
    if let Some(t) = opt_str(obj, "gpu_type", "gpu_type")? {
        if t.trim().is_empty() || t.len() > 128 {
            return Err(field_err("gpu_type", "expected 1 to 128 characters"));
        }
        spec.add_accelerator_type(t.trim());
    }
    let count = get(obj, "gpu_count").ok_or_else(|| field_err("gpu_count", "is required"))?;
    let count = json::whole(count)
        .filter(|n| *n >= 1)
        .ok_or_else(|| field_err("gpu_count", "expected a whole number of at least 1"))?;
    spec.accelerators = limits.accelerators(count, "gpu_count")?;
    if let Some(h) = get(obj, "max_duration_hours") {
        let hours = h
            .as_f64()
            .ok_or_else(|| field_err("max_duration_hours", "expected a number"))?;
        spec.duration = Some(limits.duration(hours * 3600.0, "max_duration_hours")?);
    }
    if let Some(id) = opt_str(obj, "run_id", "run_id")? {
        spec.run_id = Some(json::run_id(id, "run_id")?);
    }
    if let Some(id) = opt_str(obj, "parent_run_id", "parent_run_id")? {
        let parent = json::run_id(id, "parent_run_id")?;
        spec.set_parent(parent, "parent_run_id")?;
    }
    if let Some(id) = opt_str(obj, "end_customer", "end_customer")? {
        spec.end_customer = Some(json::end_customer(id.trim(), "end_customer")?);
    }
    if let Some(p) = opt_str(obj, "precision", "precision")? {
        spec.precision = Some(
            Precision::parse(p)
                .ok_or_else(|| field_err("precision", "expected bf16, fp16, fp8, tf32 or fp32"))?,
        );
    }
    let parameters = match opt_object(obj, "model", "model")? {
        Some(model) => Some(
            get(model, "parameters")
                .and_then(json::non_negative)
                .filter(|p| *p >= 1.0 && *p <= json::MAX_DECLARED)
                .ok_or_else(|| {
                    field_err(
                        "model.parameters",
                        format!("expected a number from 1 to {:e}", json::MAX_DECLARED),
                    )
                })?,
        ),
        None => None,
    };
    let mut tokens = None;
    if let Some(dataset) = opt_object(obj, "dataset", "dataset")? {
        if let Some(t) = get(dataset, "tokens") {
            tokens = Some(
                json::non_negative(t)
                    .filter(|t| *t <= json::MAX_DECLARED)
                    .ok_or_else(|| {
                        field_err(
                            "dataset.tokens",
                            format!("expected a number from 0 to {:e}", json::MAX_DECLARED),
                        )
                    })?,
            );
        }
        if let Some(kind) = opt_str(dataset, "kind", "dataset.kind")? {
            spec.dataset_kind = Some(json::dataset_kind(kind, "dataset.kind")?);
        }
    }
    if parameters.is_some() || tokens.is_some() {
        spec.declared = Some(Declared { parameters, tokens });
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_json(v: Value) -> Result<JobSpec, SpecError> {
        parse(&v, &SpecLimits::default())
    }

    fn path_of(e: SpecError) -> String {
        match e {
            SpecError::Field { path, .. } => path,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn simulator_job_reads_fully() {
        let spec = parse_json(json!({
            "gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 2.0,
            "run_id": "run-2", "parent_run_id": "run-1",
            "model": {"parameters": 7e9}, "dataset": {"tokens": 1e12, "kind": "Text"},
            "unknown": true
        }))
        .unwrap();
        assert_eq!(spec.accelerator_type.as_deref(), Some("h100"));
        assert_eq!(spec.accelerators, 8);
        assert_eq!(spec.duration.unwrap().as_secs(), 7200);
        assert_eq!(spec.run_id.as_deref(), Some("run-2"));
        assert_eq!(spec.parent_run_id.as_deref(), Some("run-1"));
        assert_eq!(spec.dataset_kind.as_deref(), Some("text"));
        assert_eq!(spec.declared.unwrap().flop(), Some(6.0 * 7e9 * 1e12));
    }

    #[test]
    fn optional_fields_stay_unset() {
        let spec = parse_json(json!({"gpu_count": 1})).unwrap();
        assert_eq!(spec.accelerator_type, None);
        assert_eq!(spec.duration, None);
        assert_eq!(spec.declared, None);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({"gpu_count": 0}), "gpu_count"),
            (json!({"gpu_count": -8}), "gpu_count"),
            (json!({"gpu_count": 1.5}), "gpu_count"),
            (json!({"gpu_count": "8"}), "gpu_count"),
            (json!({"gpu_count": 1e30}), "gpu_count"),
            (json!({"gpu_count": 2_000_000}), "gpu_count"),
            (json!({}), "gpu_count"),
            (json!({"gpu_count": 1, "gpu_type": 3}), "gpu_type"),
            (
                json!({"gpu_count": 1, "max_duration_hours": 0}),
                "max_duration_hours",
            ),
            (
                json!({"gpu_count": 1, "max_duration_hours": -2}),
                "max_duration_hours",
            ),
            (
                json!({"gpu_count": 1, "max_duration_hours": 1e12}),
                "max_duration_hours",
            ),
            (
                json!({"gpu_count": 1, "max_duration_hours": 5e-324}),
                "max_duration_hours",
            ),
            (
                json!({"gpu_count": 1, "max_duration_hours": 0.0001}),
                "max_duration_hours",
            ),
            (
                json!({"gpu_count": 1, "max_duration_hours": "2h"}),
                "max_duration_hours",
            ),
            (json!({"gpu_count": 1, "run_id": "a b"}), "run_id"),
            (
                json!({"gpu_count": 1, "run_id": "r", "parent_run_id": "r"}),
                "parent_run_id",
            ),
            (json!({"gpu_count": 1, "model": {}}), "model.parameters"),
            (
                json!({"gpu_count": 1, "model": {"parameters": 1e40}}),
                "model.parameters",
            ),
            (
                json!({"gpu_count": 1, "dataset": {"tokens": -1}}),
                "dataset.tokens",
            ),
            (
                json!({"gpu_count": 1, "dataset": {"kind": "x y"}}),
                "dataset.kind",
            ),
            (json!({"gpu_count": 1, "precision": "int4"}), "precision"),
        ];
        for (body, path) in cases {
            let err = parse_json(body.clone()).expect_err("invalid");
            assert_eq!(path_of(err), path, "{body}");
        }
        assert!(matches!(parse_json(json!([1])), Err(SpecError::NotJson(_))));
    }
}

//! The `kubernetes` profile: `batch/v1` Job bodies as JSON (what `kubectl` sends to
//! `POST /apis/batch/v1/namespaces/{ns}/jobs`).
//!
//! - Accelerators = `spec.parallelism` (default 1) × GPUs per pod. GPUs per pod follow the
//!   scheduler's effective-request rule: the larger of the sum over `containers` (plus sidecar
//!   init containers, `restartPolicy: Always`) and the largest regular init container. A
//!   container's GPUs are the larger of its `resources.limits` and `resources.requests` for
//!   `nvidia.com/gpu`, `amd.com/gpu` and `google.com/tpu`, read as Kubernetes quantities
//!   (`8`, `"8"`, `"1k"`); fractions (`"500m"`) are refused.
//! - Accelerator type from `spec.template.spec.nodeSelector` or a required node-affinity `In`
//!   expression on `nvidia.com/gpu.product` (GPU Feature Discovery names such as
//!   `NVIDIA-H100-80GB-HBM3`), `cloud.google.com/gke-accelerator`,
//!   `cloud.google.com/gke-tpu-accelerator` or `amd.com/gpu.product-name`. Several values →
//!   all are candidates and the estimate takes the largest.
//! - Time limit = `spec.activeDeadlineSeconds` (the whole Job's deadline; a pod-level deadline
//!   does not bound retries, so it is not used).
//! - Computegate declarations: `metadata.labels` or `metadata.annotations`
//!   `computegate.dev/run-id`, `computegate.dev/parent-run-id`, and annotations
//!   `computegate.dev/model-parameters`, `computegate.dev/dataset-tokens`,
//!   `computegate.dev/dataset-kind`, `computegate.dev/precision`.

use serde_json::{Map, Value};

use super::json::{self, DeclarationKeys, Declarations, field_err, get, opt_object, opt_str};
use super::{JobSpec, Profile, SpecError, SpecLimits};

/// Extended resources counted as accelerators.
const GPU_RESOURCES: [&str; 3] = ["nvidia.com/gpu", "amd.com/gpu", "google.com/tpu"];

/// Node labels naming the accelerator product.
const TYPE_LABELS: [&str; 4] = [
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "cloud.google.com/gke-tpu-accelerator",
    "amd.com/gpu.product-name",
];

/// Most containers (of each kind) read per pod.
const MAX_CONTAINERS: usize = 256;

const KEYS: DeclarationKeys = DeclarationKeys {
    run_id: "computegate.dev/run-id",
    parent_run_id: "computegate.dev/parent-run-id",
    end_customer: "computegate.dev/end-customer",
    parameters: "computegate.dev/model-parameters",
    tokens: "computegate.dev/dataset-tokens",
    dataset_kind: "computegate.dev/dataset-kind",
    precision: "computegate.dev/precision",
};

/// Reads a `batch/v1` Job.
pub(super) fn parse(value: &Value, limits: &SpecLimits) -> Result<JobSpec, SpecError> {
    let obj = value
        .as_object()
        .ok_or_else(|| SpecError::NotJson("expected a JSON object".into()))?;
    if let Some(kind) = opt_str(obj, "kind", "kind")?
        && kind != "Job"
    {
        return Err(field_err("kind", format!("expected Job, got {kind}")));
    }
    if let Some(api) = opt_str(obj, "apiVersion", "apiVersion")?
        && api != "batch/v1"
    {
        return Err(field_err(
            "apiVersion",
            format!("expected batch/v1, got {api}"),
        ));
    }
    let spec_obj =
        opt_object(obj, "spec", "spec")?.ok_or_else(|| field_err("spec", "is required"))?;
    let parallelism = match get(spec_obj, "parallelism") {
        None => 1,
        Some(v) => json::whole(v)
            .ok_or_else(|| field_err("spec.parallelism", "expected a whole number"))?,
    };
    let template = opt_object(spec_obj, "template", "spec.template")?
        .ok_or_else(|| field_err("spec.template", "is required"))?;
    let pod = opt_object(template, "spec", "spec.template.spec")?
        .ok_or_else(|| field_err("spec.template.spec", "is required"))?;

    let mut spec = JobSpec::empty(Profile::Kubernetes);
    let per_pod = pod_gpus(pod, limits)?;
    let total = per_pod
        .checked_mul(parallelism)
        .ok_or_else(|| field_err("spec.parallelism", "accelerator count overflows"))?;
    spec.accelerators = limits.accelerators(total, "spec.parallelism")?;
    for t in accelerator_types(pod)? {
        spec.add_accelerator_type(&t);
    }
    if let Some(v) = get(spec_obj, "activeDeadlineSeconds") {
        let secs = json::whole(v).filter(|s| *s >= 1).ok_or_else(|| {
            field_err(
                "spec.activeDeadlineSeconds",
                "expected a whole number of at least 1",
            )
        })?;
        spec.duration = Some(limits.duration(secs as f64, "spec.activeDeadlineSeconds")?);
    }
    declarations(obj)?.apply(&mut spec, "metadata.labels[computegate.dev/parent-run-id]")?;
    Ok(spec)
}

/// Accelerators one pod holds.
fn pod_gpus(pod: &Map<String, Value>, limits: &SpecLimits) -> Result<u64, SpecError> {
    let mut running = 0u64;
    for (i, c) in containers(pod, "containers", true)?.iter().enumerate() {
        let n = container_gpus(c, &format!("spec.template.spec.containers[{i}]"), limits)?;
        running = running
            .checked_add(n)
            .ok_or_else(|| field_err("spec.template.spec.containers", "GPU count overflows"))?;
    }
    let mut largest_init = 0u64;
    for (i, c) in containers(pod, "initContainers", false)?.iter().enumerate() {
        let path = format!("spec.template.spec.initContainers[{i}]");
        let n = container_gpus(c, &path, limits)?;
        let sidecar = get(c, "restartPolicy").and_then(Value::as_str) == Some("Always");
        if sidecar {
            running = running
                .checked_add(n)
                .ok_or_else(|| field_err(path.as_str(), "GPU count overflows"))?;
        } else {
            largest_init = largest_init.max(n);
        }
    }
    limits.accelerators(running.max(largest_init), "spec.template.spec.containers")
}

fn containers<'a>(
    pod: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Vec<&'a Map<String, Value>>, SpecError> {
    let path = format!("spec.template.spec.{key}");
    let items = match get(pod, key) {
        None if required => return Err(field_err(path, "is required")),
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_CONTAINERS => items,
        Some(_) => {
            return Err(field_err(
                path,
                format!("expected a list of at most {MAX_CONTAINERS} containers"),
            ));
        }
    };
    if required && items.is_empty() {
        return Err(field_err(path, "needs at least one container"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, c)| json::as_object(c, &format!("{path}[{i}]")))
        .collect()
}

fn container_gpus(
    c: &Map<String, Value>,
    path: &str,
    limits: &SpecLimits,
) -> Result<u64, SpecError> {
    let Some(resources) = opt_object(c, "resources", &format!("{path}.resources"))? else {
        return Ok(0);
    };
    let mut most = 0u64;
    for section in ["limits", "requests"] {
        let spath = format!("{path}.resources.{section}");
        let Some(map) = opt_object(resources, section, &spath)? else {
            continue;
        };
        let mut sum = 0u64;
        for name in GPU_RESOURCES {
            let Some(q) = get(map, name) else { continue };
            let qpath = format!("{spath}[{name}]");
            let n = match q {
                Value::String(s) => parse_quantity(s).map_err(|e| field_err(qpath.as_str(), e))?,
                other => json::whole(other).ok_or_else(|| {
                    field_err(qpath.as_str(), "expected a whole accelerator count")
                })?,
            };
            sum = sum
                .checked_add(limits.accelerators(n, &qpath)?)
                .ok_or_else(|| field_err(qpath.as_str(), "accelerator count overflows"))?;
        }
        most = most.max(sum);
    }
    Ok(most)
}

/// Candidate accelerator products from node selectors and required node affinity.
fn accelerator_types(pod: &Map<String, Value>) -> Result<Vec<String>, SpecError> {
    let mut types = Vec::new();
    let base = "spec.template.spec";
    if let Some(sel) = opt_object(pod, "nodeSelector", &format!("{base}.nodeSelector"))? {
        for label in TYPE_LABELS {
            if let Some(v) = opt_str(sel, label, &format!("{base}.nodeSelector[{label}]"))? {
                types.push(v.to_string());
            }
        }
    }
    let terms = get(pod, "affinity")
        .and_then(|a| a.get("nodeAffinity"))
        .and_then(|n| n.get("requiredDuringSchedulingIgnoredDuringExecution"))
        .and_then(|r| r.get("nodeSelectorTerms"))
        .and_then(Value::as_array);
    for term in terms.into_iter().flatten() {
        let exprs = term.get("matchExpressions").and_then(Value::as_array);
        for e in exprs.into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let op = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !TYPE_LABELS.contains(&key) || op != "In" {
                continue;
            }
            let values = e.get("values").and_then(Value::as_array);
            for v in values.into_iter().flatten().filter_map(Value::as_str) {
                types.push(v.to_string());
            }
        }
    }
    if let Some(bad) = types.iter().find(|t| t.is_empty() || t.len() > 128) {
        return Err(field_err(
            format!("{base}.nodeSelector"),
            format!("accelerator product `{bad}` must be 1 to 128 characters"),
        ));
    }
    Ok(types)
}

/// Declarations from `metadata.labels` and `metadata.annotations`.
fn declarations(obj: &Map<String, Value>) -> Result<Declarations, SpecError> {
    let Some(meta) = opt_object(obj, "metadata", "metadata")? else {
        return Ok(Declarations::default());
    };
    let mut merged = Declarations::default();
    for section in ["labels", "annotations"] {
        let path = format!("metadata.{section}");
        let Some(map) = opt_object(meta, section, &path)? else {
            continue;
        };
        let read = Declarations::read(
            &KEYS,
            |key| get(map, key).and_then(Value::as_str).map(str::to_string),
            |key| format!("{path}[{key}]"),
        )?;
        merged.merge(read, &path)?;
    }
    Ok(merged)
}

/// Reads a Kubernetes resource quantity as a whole count: `8`, `1k` (1000), `2Ki` (2048),
/// `1e3`, `8000m` (8). Fractions, negatives and values beyond `u64` are errors.
pub fn parse_quantity(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad = |why: &str| format!("`{text}` {why}");
    if s.is_empty() || s.len() > 64 {
        return Err(bad("is not a Kubernetes quantity"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(bad("is negative"));
    }
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(bad("is not a Kubernetes quantity"));
    }
    // value = mantissa / 10^frac_len × base^exp
    let mantissa: u128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| bad("is too large"))?;
    let mut num = mantissa;
    let mut den: u128 = 10u128
        .checked_pow(frac_part.len() as u32)
        .ok_or_else(|| bad("has too many digits"))?;
    let scale = |n: u128, base: u128, exp: u32| {
        base.checked_pow(exp)
            .and_then(|m| n.checked_mul(m))
            .ok_or_else(|| bad("is too large"))
    };
    match suffix {
        "" => {}
        "k" => num = scale(num, 10, 3)?,
        "M" => num = scale(num, 10, 6)?,
        "G" => num = scale(num, 10, 9)?,
        "T" => num = scale(num, 10, 12)?,
        "P" => num = scale(num, 10, 15)?,
        "E" => num = scale(num, 10, 18)?,
        "Ki" => num = scale(num, 2, 10)?,
        "Mi" => num = scale(num, 2, 20)?,
        "Gi" => num = scale(num, 2, 30)?,
        "Ti" => num = scale(num, 2, 40)?,
        "Pi" => num = scale(num, 2, 50)?,
        "Ei" => num = scale(num, 2, 60)?,
        "m" => den = scale(den, 10, 3)?,
        "u" => den = scale(den, 10, 6)?,
        "n" => den = scale(den, 10, 9)?,
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| bad("has a bad exponent"))?;
            if e.unsigned_abs() > 30 {
                return Err(bad("has an exponent out of range"));
            }
            if e >= 0 {
                num = scale(num, 10, e.unsigned_abs())?;
            } else {
                den = scale(den, 10, e.unsigned_abs())?;
            }
        }
        _ => return Err(bad("has an unknown unit suffix")),
    }
    if !num.is_multiple_of(den) {
        return Err(bad("is not a whole number of accelerators"));
    }
    u64::try_from(num / den).map_err(|_| bad("is too large"))
}

#[cfg(test)]
mod tests;

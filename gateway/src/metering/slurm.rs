//! The `slurm` profile: slurmrestd `POST /slurm/v0.0.40…42/job/submit` bodies
//! (<https://slurm.schedmd.com/rest_api.html>, schema `job_desc_msg`).
//!
//! - `{"job": {...}}`, or `{"jobs": [{...}, …]}` for a heterogeneous job (components summed;
//!   the time limit is the longest, and unknown if any component states none).
//! - GPUs per component: the largest of `tres_per_job`, `tres_per_node` × nodes,
//!   `tres_per_task` × tasks and `gres` × nodes (taking the largest never undercounts when a
//!   request repeats itself in several fields). TRES strings are comma lists such as
//!   `gres/gpu:h100:8`, `gres/gpu:h100=8`, `gres/gpu=8`, `gres/gpu:8`, `cpu=4,gres/gpu:2`; `gres`
//!   uses `gpu:h100:8`. Items other than `gpu` (cpu, mem, shard, mps, licenses) are ignored.
//!   GPUs per socket cannot be counted without the node layout and are refused.
//! - Nodes: the largest of `nodes` (`2`, `"2"`, `"2-4"` → 4, `"1,3,5"` → 5),
//!   `minimum_nodes` and `maximum_nodes`; default 1.
//! - Tasks: `tasks` (or the older `ntasks`), else `tasks_per_node` × nodes; default 1.
//! - `time_limit` in minutes, a number or `{"number": 120, "set": true, "infinite": false}`;
//!   0, unset or infinite means no limit (Slurm reads 0 as "no time limit").
//! - Computegate declarations travel in the job's `environment` (so the job script sees them
//!   too): `COMPUTEGATE_RUN_ID`, `COMPUTEGATE_PARENT_RUN_ID`, `COMPUTEGATE_MODEL_PARAMETERS`,
//!   `COMPUTEGATE_DATASET_TOKENS`, `COMPUTEGATE_DATASET_KIND`, `COMPUTEGATE_PRECISION`.
//!   `environment` may be a list of `NAME=value` strings (v0.0.40+) or an object.

use std::time::Duration;

use serde_json::{Map, Value};

use super::json::{self, DeclarationKeys, Declarations, field_err, get, join, opt_str};
use super::{JobSpec, Profile, SpecError, SpecLimits};

/// Most components of a heterogeneous job accepted.
const MAX_COMPONENTS: usize = 128;
/// Most nodes one component may ask for (a sanity bound).
const MAX_NODES: u64 = 1_000_000;

const ENV_KEYS: DeclarationKeys = DeclarationKeys {
    run_id: "COMPUTEGATE_RUN_ID",
    parent_run_id: "COMPUTEGATE_PARENT_RUN_ID",
    end_customer: "COMPUTEGATE_END_CUSTOMER",
    parameters: "COMPUTEGATE_MODEL_PARAMETERS",
    tokens: "COMPUTEGATE_DATASET_TOKENS",
    dataset_kind: "COMPUTEGATE_DATASET_KIND",
    precision: "COMPUTEGATE_PRECISION",
};

/// One component's requests.
struct Component {
    gpus: u64,
    types: Vec<String>,
    duration: Option<Duration>,
    declarations: Declarations,
}

/// A Slurm number: a plain value, or the `{"number", "set", "infinite"}` wrapper.
enum SlurmNumber {
    Value(u64),
    Unset,
    Infinite,
}

/// Reads a slurmrestd job submission.
pub(super) fn parse(value: &Value, limits: &SpecLimits) -> Result<JobSpec, SpecError> {
    let obj = value
        .as_object()
        .ok_or_else(|| SpecError::NotJson("expected a JSON object".into()))?;
    let components: Vec<(String, &Map<String, Value>)> = match (get(obj, "job"), get(obj, "jobs")) {
        (Some(_), Some(_)) => {
            return Err(field_err("jobs", "give either `job` or `jobs`, not both"));
        }
        (Some(job), None) => vec![("job".to_string(), json::as_object(job, "job")?)],
        (None, Some(Value::Array(items))) if !items.is_empty() && items.len() <= MAX_COMPONENTS => {
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let path = format!("jobs[{i}]");
                    json::as_object(v, &path).map(|o| (path, o))
                })
                .collect::<Result<_, _>>()?
        }
        (None, Some(_)) => {
            return Err(field_err(
                "jobs",
                format!("expected a list of 1 to {MAX_COMPONENTS} job descriptions"),
            ));
        }
        (None, None) => {
            return Err(field_err(
                "job",
                "is required (or `jobs` for a heterogeneous job)",
            ));
        }
    };

    let mut spec = JobSpec::empty(Profile::Slurm);
    let mut declarations = Declarations::default();
    let mut total: u64 = 0;
    let mut longest: Option<Duration> = Some(Duration::ZERO);
    for (path, c) in &components {
        let comp = component(c, path, limits)?;
        total = total
            .checked_add(comp.gpus)
            .ok_or_else(|| field_err(path.as_str(), "GPU count overflows"))?;
        for t in &comp.types {
            spec.add_accelerator_type(t);
        }
        longest = match (longest, comp.duration) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        declarations.merge(comp.declarations, &join(path, "environment"))?;
    }
    let first = components.first().map_or("job", |(p, _)| p.as_str());
    spec.accelerators = limits.accelerators(total, first)?;
    spec.duration = longest.filter(|d| !d.is_zero());
    declarations.apply(
        &mut spec,
        &join(first, &format!("environment[{}]", ENV_KEYS.parent_run_id)),
    )?;
    Ok(spec)
}

fn component(
    c: &Map<String, Value>,
    path: &str,
    limits: &SpecLimits,
) -> Result<Component, SpecError> {
    let nodes = node_count(c, path)?;
    let tasks = task_count(c, path, nodes)?;
    if let Some(text) = opt_str(c, "tres_per_socket", &join(path, "tres_per_socket"))?
        && gpu_request(text, &join(path, "tres_per_socket"))?.is_some()
    {
        return Err(field_err(
            join(path, "tres_per_socket"),
            "GPUs per socket cannot be counted before scheduling; use tres_per_node or tres_per_job",
        ));
    }
    let mut gpus = 0u64;
    let mut types = Vec::new();
    for (field, multiplier) in [
        ("tres_per_job", 1),
        ("tres_per_node", nodes),
        ("tres_per_task", tasks),
        ("gres", nodes),
    ] {
        let fpath = join(path, field);
        let Some(text) = opt_str(c, field, &fpath)? else {
            continue;
        };
        let Some((count, ts)) = gpu_request(text, &fpath)? else {
            continue;
        };
        let n = count
            .checked_mul(multiplier)
            .ok_or_else(|| field_err(fpath.as_str(), "GPU count overflows"))?;
        gpus = gpus.max(limits.accelerators(n, &fpath)?);
        types.extend(ts);
    }
    let duration = time_limit(c, path, limits)?;
    let declarations = environment(c, path)?;
    Ok(Component {
        gpus,
        types,
        duration,
        declarations,
    })
}

/// The GPUs a TRES/GRES list asks for: total count and the types named, or `None` when it
/// names no GPUs.
fn gpu_request(text: &str, path: &str) -> Result<Option<(u64, Vec<String>)>, SpecError> {
    if text.len() > 4096 {
        return Err(field_err(path, "is longer than 4096 characters"));
    }
    let mut total: Option<u64> = None;
    let mut types = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let item = item
            .strip_prefix("gres/")
            .or_else(|| item.strip_prefix("gres:"))
            .unwrap_or(item);
        let Some(rest) = item.strip_prefix("gpu") else {
            continue;
        };
        let (gpu_type, count) = match rest.as_bytes().first() {
            None => (None, 1),
            Some(b'=') => (None, gpu_count(&rest[1..], path)?),
            Some(b':') => typed_gpu(&rest[1..], path)?,
            // `gpuX=…` is another resource (e.g. a site-defined `gpumem`).
            Some(_) => continue,
        };
        total = Some(
            total
                .unwrap_or(0)
                .checked_add(count)
                .ok_or_else(|| field_err(path, "GPU count overflows"))?,
        );
        types.extend(gpu_type);
    }
    Ok(total.map(|t| (t, types)))
}

/// `h100:8`, `h100=8`, `8` or `h100` (count 1).
fn typed_gpu(rest: &str, path: &str) -> Result<(Option<String>, u64), SpecError> {
    let parts: Vec<&str> = rest.split(':').collect();
    let (gpu_type, count) = match parts.as_slice() {
        [one] => match one.split_once('=') {
            Some((t, n)) => (Some(t), gpu_count(n, path)?),
            None if one.bytes().all(|b| b.is_ascii_digit()) => (None, gpu_count(one, path)?),
            None => (Some(*one), 1),
        },
        [t, n] => (Some(*t), gpu_count(n, path)?),
        _ => {
            return Err(field_err(
                path,
                format!("cannot read GPU request `gpu:{rest}` (expected gpu[:type][:count])"),
            ));
        }
    };
    let gpu_type = match gpu_type {
        Some(t) if t.is_empty() || t.len() > 128 => {
            return Err(field_err(path, "GPU type must be 1 to 128 characters"));
        }
        other => other.map(str::to_string),
    };
    Ok((gpu_type, count))
}

fn gpu_count(text: &str, path: &str) -> Result<u64, SpecError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field_err(
            path,
            format!("`{text}` is not a whole GPU count"),
        ));
    }
    text.parse()
        .map_err(|_| field_err(path, format!("`{text}` is not a whole GPU count")))
}

fn node_count(c: &Map<String, Value>, path: &str) -> Result<u64, SpecError> {
    let mut nodes = 1u64;
    if let Some(v) = get(c, "nodes") {
        let npath = join(path, "nodes");
        let n = match v {
            Value::String(s) => node_range(s, &npath)?,
            other => match slurm_number(other, &npath)? {
                SlurmNumber::Value(n) => n,
                SlurmNumber::Unset => 1,
                SlurmNumber::Infinite => return Err(field_err(npath, "cannot be infinite")),
            },
        };
        nodes = nodes.max(n);
    }
    for key in ["minimum_nodes", "maximum_nodes"] {
        let kpath = join(path, key);
        if let Some(v) = get(c, key) {
            match slurm_number(v, &kpath)? {
                SlurmNumber::Value(n) => nodes = nodes.max(n),
                SlurmNumber::Unset => {}
                SlurmNumber::Infinite => return Err(field_err(kpath, "cannot be infinite")),
            }
        }
    }
    if nodes > MAX_NODES {
        return Err(field_err(
            join(path, "nodes"),
            format!("more than {MAX_NODES} nodes"),
        ));
    }
    Ok(nodes)
}

/// `"2"`, `"2-4"` (→ 4) or `"1,3,5"` (→ 5).
fn node_range(text: &str, path: &str) -> Result<u64, SpecError> {
    let bad = || {
        field_err(
            path,
            format!("`{text}` is not a node count like \"2\" or \"2-4\""),
        )
    };
    let mut max = None;
    for part in text.split([',', '-']).map(str::trim) {
        if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = part.parse().map_err(|_| bad())?;
        max = Some(max.map_or(n, |m: u64| m.max(n)));
    }
    max.ok_or_else(bad)
}

fn task_count(c: &Map<String, Value>, path: &str, nodes: u64) -> Result<u64, SpecError> {
    for key in ["tasks", "ntasks"] {
        if let Some(v) = get(c, key) {
            let kpath = join(path, key);
            return match slurm_number(v, &kpath)? {
                SlurmNumber::Value(n) => Ok(n.max(1)),
                SlurmNumber::Unset => Ok(1),
                SlurmNumber::Infinite => Err(field_err(kpath, "cannot be infinite")),
            };
        }
    }
    if let Some(v) = get(c, "tasks_per_node") {
        let kpath = join(path, "tasks_per_node");
        if let SlurmNumber::Value(n) = slurm_number(v, &kpath)? {
            return n
                .max(1)
                .checked_mul(nodes)
                .ok_or_else(|| field_err(kpath, "task count overflows"));
        }
    }
    Ok(1)
}

fn time_limit(
    c: &Map<String, Value>,
    path: &str,
    limits: &SpecLimits,
) -> Result<Option<Duration>, SpecError> {
    let tpath = join(path, "time_limit");
    let Some(v) = get(c, "time_limit") else {
        return Ok(None);
    };
    match slurm_number(v, &tpath)? {
        SlurmNumber::Value(0) | SlurmNumber::Unset | SlurmNumber::Infinite => Ok(None),
        SlurmNumber::Value(minutes) => limits.duration(minutes as f64 * 60.0, &tpath).map(Some),
    }
}

/// A whole number, a numeric string, or `{"number": n, "set": bool, "infinite": bool}`.
fn slurm_number(v: &Value, path: &str) -> Result<SlurmNumber, SpecError> {
    let bad = || {
        field_err(
            path,
            "expected a whole number or {\"number\": …, \"set\": true, \"infinite\": false}",
        )
    };
    match v {
        Value::Number(_) => json::whole(v).map(SlurmNumber::Value).ok_or_else(bad),
        Value::String(s) => s.trim().parse().map(SlurmNumber::Value).map_err(|_| bad()),
        Value::Object(o) => {
            let flag = |key: &str| -> Result<bool, SpecError> {
                match get(o, key) {
                    None => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(field_err(join(path, key), "expected true or false")),
                }
            };
            if flag("infinite")? {
                return Ok(SlurmNumber::Infinite);
            }
            let set = match get(o, "set") {
                None => true,
                Some(_) => flag("set")?,
            };
            if !set {
                return Ok(SlurmNumber::Unset);
            }
            let n =
                get(o, "number").ok_or_else(|| field_err(join(path, "number"), "is required"))?;
            json::whole(n)
                .map(SlurmNumber::Value)
                .ok_or_else(|| field_err(join(path, "number"), "expected a whole number"))
        }
        _ => Err(bad()),
    }
}

/// Computegate declarations from the job's `environment`.
fn environment(c: &Map<String, Value>, path: &str) -> Result<Declarations, SpecError> {
    let epath = join(path, "environment");
    let mut pairs: Vec<(String, String)> = Vec::new();
    match get(c, "environment") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let text = item
                    .as_str()
                    .ok_or_else(|| field_err(format!("{epath}[{i}]"), "expected \"NAME=value\""))?;
                if let Some((k, v)) = text.split_once('=')
                    && k.starts_with("COMPUTEGATE_")
                {
                    pairs.push((k.to_string(), v.to_string()));
                }
            }
        }
        Some(Value::Object(map)) => {
            for (k, v) in map.iter().filter(|(k, _)| k.starts_with("COMPUTEGATE_")) {
                let v = v
                    .as_str()
                    .ok_or_else(|| field_err(format!("{epath}[{k}]"), "expected a string"))?;
                pairs.push((k.clone(), v.to_string()));
            }
        }
        Some(_) => {
            return Err(field_err(
                epath,
                "expected a list of \"NAME=value\" strings or an object",
            ));
        }
    }
    // As in a process environment, the last assignment of a name wins.
    let lookup = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    Declarations::read(&ENV_KEYS, lookup, |key| format!("{epath}[{key}]"))
}

#[cfg(test)]
mod tests;

//! Test policies cut from the shipped default (its accelerator table, utilization and country
//! groups kept; tiers and thresholds replaced) and job bodies of the `generic` profile.

use std::path::Path;

use serde_json::{Value, json};

/// The shipped default policy's text.
pub(crate) fn default_policy() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy/default.toml");
    std::fs::read_to_string(path).expect("read deploy/policy/default.toml")
}

/// The shipped policy with `version`, and its tiers and thresholds replaced by `tiers` and
/// `thresholds` (TOML text); everything else (accelerator table, utilization, country groups)
/// is kept.
pub(crate) fn policy(version: &str, tiers: &str, thresholds: &str) -> String {
    let text = default_policy();
    let start = text.find("\n[[tiers]]").expect("default policy has tiers");
    let end = text
        .find("\n[country_groups.")
        .expect("default policy has country groups");
    let head: String = text[..start]
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = {version:?}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!("{head}\n\n{tiers}\n{thresholds}\n{}", &text[end..])
}

/// The four tiers of the shipped policy (same names, order and methods) with no caps and a
/// generous request rate, plus the extra `key = value` lines of `caps` (tier name → lines; a
/// `rate_limit` line there replaces the generous one).
pub(crate) fn tiers(caps: &[(&str, &str)]) -> String {
    let names = [
        "unverified",
        "identity_verified",
        "organization_verified",
        "validated_end_user",
    ];
    let mut out = String::new();
    for name in names {
        let methods = if name == "unverified" {
            "[\"GET\", \"HEAD\", \"OPTIONS\"]"
        } else {
            "[\"*\"]"
        };
        let extra: Vec<&str> = caps
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, lines)| *lines)
            .collect();
        let extra = extra.join("\n");
        let rate = if extra.contains("rate_limit") {
            ""
        } else {
            "rate_limit = { requests_per_second = 10000.0, burst = 10000 }\n"
        };
        out.push_str(&format!(
            "[[tiers]]\nname = \"{name}\"\nallowed_routes = [\"*\"]\nallowed_methods = {methods}\n\
             job_submit = true\nwindow = \"30d\"\n{rate}{extra}\n\n"
        ));
    }
    out
}

/// One `[[thresholds]]` entry, in force.
pub(crate) fn threshold(label: &str, flop: f64, scopes: &[&str], actions: &[&str]) -> String {
    format!(
        "[[thresholds]]\nlabel = \"{label}\"\nflop = {flop:e}\nscope = {scopes:?}\n\
         action = {actions:?}\nreport_due_days = 14\n\
         source = \"metering black-box tests\"\nstatus = \"in_force\"\n\n"
    )
}

// === job bodies ===

/// A `generic` job body (the simulator's `POST /v1/jobs`).
pub(crate) fn job(gpu: &str, count: u32, hours: f64, run: &str) -> Value {
    json!({"gpu_type": gpu, "gpu_count": count, "max_duration_hours": hours, "run_id": run})
}

/// A fine-tune of `parent`.
pub(crate) fn fine_tune(gpu: &str, count: u32, hours: f64, run: &str, parent: &str) -> Value {
    let mut body = job(gpu, count, hours, run);
    body["parent_run_id"] = json!(parent);
    body
}

//! Checks serde cannot express: names unique, numbers positive and finite, caps ordered across
//! tiers, thresholds sorted, references between sections resolved. Every error names its key.

use std::collections::{HashMap, HashSet};

use super::PolicyError;
use super::model::{Action, PolicyDoc, Precision, Tier};

/// Upper-cases methods and country codes and trims names, so later checks and lookups compare
/// like with like.
pub(super) fn normalize(doc: &mut PolicyDoc) {
    for tier in &mut doc.tiers {
        for m in &mut tier.allowed_methods {
            *m = m.trim().to_ascii_uppercase();
        }
    }
    for group in doc.country_groups.values_mut() {
        for c in &mut group.countries {
            *c = c.trim().to_ascii_uppercase();
        }
    }
}

/// Validates a parsed document.
pub(super) fn validate(doc: &PolicyDoc) -> Result<(), PolicyError> {
    non_empty("version", &doc.version)?;
    non_empty("table_version", &doc.table_version)?;
    fraction("utilization_default", doc.utilization_default)?;
    fraction(
        "utilization_language_models",
        doc.utilization_language_models,
    )?;
    if doc.max_job_duration.is_zero() {
        return Err(invalid("max_job_duration", "must be longer than 0"));
    }
    if !(doc.declared_gap_factor.is_finite() && doc.declared_gap_factor > 1.0) {
        return Err(invalid(
            "declared_gap_factor",
            "must be a finite number greater than 1",
        ));
    }
    if doc.declared_gap_action == Action::Block {
        return Err(invalid(
            "declared_gap_action",
            "must be notify, report or review (a declaration alone never blocks)",
        ));
    }
    resellers(&doc.resellers)?;
    tiers(&doc.tiers)?;
    accelerators(doc)?;
    thresholds(doc)?;
    country_groups(doc)?;
    jurisdiction(doc)?;
    doc.retention.validate()
}

/// Builds the case-insensitive type/alias index, refusing duplicates.
pub(super) fn accelerator_index(doc: &PolicyDoc) -> Result<HashMap<String, usize>, PolicyError> {
    let mut index = HashMap::new();
    for (i, a) in doc.accelerators.iter().enumerate() {
        let names = std::iter::once((format!("accelerators[{i}].type"), &a.type_key)).chain(
            a.aliases
                .iter()
                .enumerate()
                .map(move |(j, alias)| (format!("accelerators[{i}].aliases[{j}]"), alias)),
        );
        for (key, name) in names {
            let lower = name.trim().to_ascii_lowercase();
            if lower.is_empty() {
                return Err(PolicyError::Invalid {
                    key,
                    reason: "must not be empty".into(),
                });
            }
            if let Some(other) = index.insert(lower, i)
                && other != i
            {
                return Err(PolicyError::Invalid {
                    key,
                    reason: format!(
                        "`{name}` already names accelerator `{}`",
                        doc.accelerators[other].type_key
                    ),
                });
            }
        }
    }
    Ok(index)
}

fn tiers(tiers: &[Tier]) -> Result<(), PolicyError> {
    if tiers.is_empty() {
        return Err(invalid("tiers", "at least one tier is required"));
    }
    let mut names = HashSet::new();
    for (i, t) in tiers.iter().enumerate() {
        let key = |field: &str| format!("tiers[{i}].{field}");
        let name_ok = !t.name.is_empty()
            && t.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(invalid(
                &key("name"),
                "must be non-empty lower-case letters, digits and '_'",
            ));
        }
        if !names.insert(t.name.as_str()) {
            return Err(invalid(
                &key("name"),
                &format!("tier `{}` is defined twice", t.name),
            ));
        }
        if t.allowed_routes.iter().any(|r| r.trim().is_empty()) {
            return Err(invalid(&key("allowed_routes"), "contains an empty name"));
        }
        for m in &t.allowed_methods {
            if m != "*" && http::Method::from_bytes(m.as_bytes()).is_err() {
                return Err(invalid(
                    &key("allowed_methods"),
                    &format!("`{m}` is not an HTTP method"),
                ));
            }
        }
        if let Some(n) = t.max_accelerators_per_job
            && n == 0
        {
            return Err(invalid(
                &key("max_accelerators_per_job"),
                "must be at least 1 (omit it for no cap)",
            ));
        }
        if let Some(n) = t.max_concurrent_jobs
            && n == 0
        {
            return Err(invalid(
                &key("max_concurrent_jobs"),
                "must be at least 1 (omit it for no cap)",
            ));
        }
        if let Some(v) = t.max_flop_per_run {
            positive(&key("max_flop_per_run"), v)?;
        }
        if let Some(v) = t.max_flop_per_customer_window {
            positive(&key("max_flop_per_customer_window"), v)?;
        }
        if t.window.is_zero() {
            return Err(invalid(&key("window"), "must be longer than 0"));
        }
        if let Some(r) = &t.rate_limit {
            positive(
                &key("rate_limit.requests_per_second"),
                r.requests_per_second,
            )?;
            if r.requests_per_second > 1e9 {
                return Err(invalid(
                    &key("rate_limit.requests_per_second"),
                    "must be at most 1e9",
                ));
            }
            if r.burst == 0 {
                return Err(invalid(&key("rate_limit.burst"), "must be at least 1"));
            }
        }
        if i > 0 {
            caps_not_below(&tiers[i - 1], t, i)?;
        }
    }
    Ok(())
}

/// A higher tier may not cap lower than the tier below it (`None` = unlimited).
fn caps_not_below(lower: &Tier, higher: &Tier, i: usize) -> Result<(), PolicyError> {
    fn le<T: PartialOrd>(lo: Option<T>, hi: Option<T>) -> bool {
        match (lo, hi) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a <= b,
        }
    }
    let checks = [
        (
            "max_accelerators_per_job",
            le(
                lower.max_accelerators_per_job,
                higher.max_accelerators_per_job,
            ),
        ),
        (
            "max_flop_per_run",
            le(lower.max_flop_per_run, higher.max_flop_per_run),
        ),
        (
            "max_flop_per_customer_window",
            le(
                lower.max_flop_per_customer_window,
                higher.max_flop_per_customer_window,
            ),
        ),
        (
            "max_concurrent_jobs",
            le(lower.max_concurrent_jobs, higher.max_concurrent_jobs),
        ),
    ];
    for (field, ok) in checks {
        if !ok {
            return Err(invalid(
                &format!("tiers[{i}].{field}"),
                &format!(
                    "is lower than tier `{}`'s; tiers are listed lowest first and a higher tier \
                     may not be more restrictive",
                    lower.name
                ),
            ));
        }
    }
    Ok(())
}

fn accelerators(doc: &PolicyDoc) -> Result<(), PolicyError> {
    if doc.accelerators.is_empty() {
        return Err(invalid(
            "accelerators",
            "at least one accelerator is required",
        ));
    }
    for (i, a) in doc.accelerators.iter().enumerate() {
        let key = |field: &str| format!("accelerators[{i}].{field}");
        non_empty(&key("source"), &a.source)?;
        for p in Precision::ALL {
            if let Some(v) = a.peak_flops.get(p) {
                positive(&key(&format!("peak_flops.{p}")), v)?;
            }
        }
        if a.peak_flops.get(doc.default_precision).is_none() {
            return Err(invalid(
                &key(&format!("peak_flops.{}", doc.default_precision)),
                "is required: it is the policy's default precision and the floor of estimates",
            ));
        }
    }
    Ok(())
}

fn thresholds(doc: &PolicyDoc) -> Result<(), PolicyError> {
    let mut labels = HashSet::new();
    let mut previous = 0.0_f64;
    for (i, t) in doc.thresholds.iter().enumerate() {
        let key = |field: &str| format!("thresholds[{i}].{field}");
        let label_ok = !t.label.is_empty()
            && t.label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !label_ok {
            return Err(invalid(
                &key("label"),
                "must be non-empty letters, digits, '-', '_' or '.'",
            ));
        }
        if !labels.insert(t.label.as_str()) {
            return Err(invalid(
                &key("label"),
                &format!("`{}` is used twice", t.label),
            ));
        }
        positive(&key("flop"), t.flop)?;
        if t.flop < previous {
            return Err(invalid(
                &key("flop"),
                "thresholds must be listed in ascending order of flop",
            ));
        }
        previous = t.flop;
        if t.scopes.is_empty() {
            return Err(invalid(&key("scope"), "needs at least one scope"));
        }
        if t.actions.is_empty() {
            return Err(invalid(&key("action"), "needs at least one action"));
        }
        non_empty(&key("source"), &t.source)?;
        if t.actions.contains(&Action::Report) && !(1..=366).contains(&t.report_due_days) {
            return Err(invalid(
                &key("report_due_days"),
                "must be between 1 and 366",
            ));
        }
    }
    Ok(())
}

fn country_groups(doc: &PolicyDoc) -> Result<(), PolicyError> {
    for (name, group) in &doc.country_groups {
        if name.trim().is_empty() {
            return Err(invalid("country_groups", "a group has an empty name"));
        }
        for (j, code) in group.countries.iter().enumerate() {
            if !is_country_code(code) {
                return Err(invalid(
                    &format!("country_groups.{name}.countries[{j}]"),
                    &format!(
                        "`{code}` is not an ISO 3166-1 alpha-2 code (or a subdivision like UA-43)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn jurisdiction(doc: &PolicyDoc) -> Result<(), PolicyError> {
    let j = &doc.jurisdiction;
    let lists = [
        ("jurisdiction.deny_groups", &j.deny_groups),
        ("jurisdiction.review_groups", &j.review_groups),
    ];
    let frontier = j
        .frontier
        .as_ref()
        .map(|f| ("jurisdiction.frontier.groups", &f.groups));
    for (key, groups) in lists.into_iter().chain(frontier) {
        for (i, g) in groups.iter().enumerate() {
            if !doc.country_groups.contains_key(g) {
                return Err(invalid(
                    &format!("{key}[{i}]"),
                    &format!("no country group named `{g}` in [country_groups]"),
                ));
            }
        }
    }
    if let Some(f) = &j.frontier {
        positive("jurisdiction.frontier.flop", f.flop)?;
        non_empty("jurisdiction.frontier.source", &f.source)?;
    }
    Ok(())
}

/// `XX` or `XX-YYY` (ISO 3166-1 alpha-2, optionally an ISO 3166-2 subdivision).
fn is_country_code(code: &str) -> bool {
    let (country, sub) = match code.split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (code, None),
    };
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = sub.is_none_or(|s| {
        (1..=3).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    country_ok && sub_ok
}

fn non_empty(key: &str, value: &str) -> Result<(), PolicyError> {
    if value.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(())
}

fn positive(key: &str, value: f64) -> Result<(), PolicyError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(invalid(
            key,
            &format!("must be a positive finite number (got {value})"),
        ));
    }
    Ok(())
}

/// `[resellers]`: a share in `[0, 1)` (1 could never be exceeded) and a window.
fn resellers(rule: &crate::resellers::ResellerRule) -> Result<(), PolicyError> {
    let share = rule.max_refused_share;
    if !(share.is_finite() && (0.0..1.0).contains(&share)) {
        return Err(invalid(
            "resellers.max_refused_share",
            &format!("must be at least 0 and less than 1 (got {share})"),
        ));
    }
    if rule.window.is_zero() {
        return Err(invalid("resellers.window", "must be longer than 0"));
    }
    Ok(())
}

fn fraction(key: &str, value: f64) -> Result<(), PolicyError> {
    if !(value.is_finite() && value > 0.0 && value <= 1.0) {
        return Err(invalid(
            key,
            &format!("must be greater than 0 and at most 1 (got {value})"),
        ));
    }
    Ok(())
}

fn invalid(key: &str, reason: &str) -> PolicyError {
    PolicyError::Invalid {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

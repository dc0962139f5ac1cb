//! Computegate's policy: versioned policy data (tiers, route rules, country groups, the
//! accelerator table, FLOP thresholds) and the pure decisions taken over it. Both the data
//! plane (`computegate-gateway`) and the control plane (`computegate-kyc`) use these types, so
//! the policy vocabulary exists once; this crate does no I/O (no files, sockets, clock or
//! database).
//!
//! Every number that regulators or operators may change lives in a TOML policy file — the
//! shipped default is `deploy/policy/default.toml` — never in code. Each rule carries its
//! `source` and `status` so consoles and reports can show where it comes from.
//!
//! [`Policy::from_toml`] parses and validates a document (every error names its key path, such
//! as `tiers[2].max_flop_per_run`); reading the file and swapping the policy in force on reload
//! are the gateway's (`computegate_gateway::policy`).
//!
//! Decisions ([`authorize_route`], [`authorize_jurisdiction`], the `required_tier_for_*`
//! lookups) are functions of the policy and plain request facts. Job admission is decided here
//! too, over totals the caller reads ([`admission`]: the stateless checks, the ledger's rules
//! and the typed outcome both planes speak). The FLOP estimate lives in the gateway's
//! `metering` module.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub mod admission;
mod caps;
mod decide;
mod evidence;
mod model;
pub mod resellers;
mod retention;
mod route_class;
mod serde_util;
mod thresholds;
mod validate;

pub use caps::{CapExceeded, CapNeeds, TierCaps};
pub use decide::{
    Denial, DenialRule, JurisdictionStanding, authorize_jurisdiction, authorize_route,
};
pub use evidence::Evidence;
pub use model::{
    Accelerator, Action, Condition, CountryGroup, FrontierRule, JurisdictionRules,
    MissingTimeLimit, PeakFlops, PolicyDate, Precision, RateLimitSpec, RuleStatus, Scope,
    Threshold, Tier, UnknownAccelerator, UnknownName,
};
pub use retention::{RecordClass, Retention, RetentionRule};
pub use route_class::RouteClass;
pub use serde_util::{display_path, short_duration};
pub use thresholds::{
    FRONTIER_RESTRICTED_LABEL, LedgerLimits, ThresholdPolicy, ThresholdRule, notifies,
};

use model::PolicyDoc;

/// A validated policy. Construct it with [`Policy::from_toml`] or [`Policy::load`]; it cannot be
/// changed afterwards, so its invariants (unique names, ordered caps, sorted thresholds, a
/// default-precision peak for every accelerator) hold for its whole life.
#[derive(Debug, Clone)]
pub struct Policy {
    doc: PolicyDoc,
    /// Lower-cased accelerator type keys and aliases → index into `doc.accelerators`.
    accelerator_index: HashMap<String, usize>,
    /// SHA-256 (lowercase hex) of the text parsed: tells two documents of one version apart.
    digest: String,
}

/// A policy that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The document is not TOML; the message carries line and column.
    #[error("policy is not valid TOML: {0}")]
    Syntax(String),
    /// A key has a wrong type or value.
    #[error("policy key `{key}`: {reason}")]
    Invalid {
        /// Path of the key, e.g. `tiers[2].max_flop_per_run`.
        key: String,
        /// Why.
        reason: String,
    },
}

// === impl Policy ===

impl Policy {
    /// Parses and validates a policy document.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PolicyError::Syntax(e.to_string().trim().to_string()))?;
        let mut doc: PolicyDoc = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| PolicyError::Invalid {
                key: serde_util::display_path(e.path()),
                reason: e.inner().message().trim().to_string(),
            })?;
        validate::normalize(&mut doc);
        validate::validate(&doc)?;
        let accelerator_index = validate::accelerator_index(&doc)?;
        Ok(Self {
            doc,
            accelerator_index,
            digest: text_digest(text),
        })
    }

    /// SHA-256 (lowercase hex) of the text this policy was parsed from, so a record of which
    /// policy was in force can tell an edited file from the one before under the same version.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Policy version (`"2026.1"`).
    pub fn version(&self) -> &str {
        &self.doc.version
    }

    /// Date from which this policy applies.
    pub fn effective_from(&self) -> PolicyDate {
        self.doc.effective_from
    }

    /// Retention per record class (`[retention]`); a class without a rule is kept
    /// indefinitely.
    pub fn retention(&self) -> &Retention {
        &self.doc.retention
    }

    /// Free-text description.
    pub fn description(&self) -> &str {
        &self.doc.description
    }

    /// Utilization assumed for hardware estimates (0–1). Default 0.4.
    pub fn utilization_default(&self) -> f64 {
        self.doc.utilization_default
    }

    /// Utilization assumed for language-model training (0–1). Default 0.3.
    pub fn utilization_language_models(&self) -> f64 {
        self.doc.utilization_language_models
    }

    /// Whether a declared dataset kind counts as language-model training (default kinds:
    /// `text`, `code`).
    pub fn is_language_model_kind(&self, kind: &str) -> bool {
        self.doc
            .language_model_dataset_kinds
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind))
    }

    /// Precision used when a job declares none, and the floor of every estimate. Default bf16.
    pub fn default_precision(&self) -> Precision {
        self.doc.default_precision
    }

    /// What to do when a job's accelerator type is missing or unknown.
    pub fn unknown_accelerator(&self) -> UnknownAccelerator {
        self.doc.unknown_accelerator
    }

    /// What to do when a job states no time limit.
    pub fn missing_time_limit(&self) -> MissingTimeLimit {
        self.doc.missing_time_limit
    }

    /// Longest job accepted, and the duration assumed under `assume_max`. Default 14 days.
    pub fn max_job_duration(&self) -> Duration {
        self.doc.max_job_duration
    }

    /// How long after its time limit an admitted job's lease ends: a job that has sent no final
    /// usage event by its time limit plus this grace is closed, charged at its reservation.
    /// Covers queueing before the job starts and late delivery of the final event. Default 1 h.
    pub fn lease_grace(&self) -> Duration {
        self.doc.lease_grace
    }

    /// The reseller pass-through rule (`[resellers]`; defaults when the file has none).
    pub fn resellers(&self) -> &resellers::ResellerRule {
        &self.doc.resellers
    }

    /// Ratio between declared (6·N·D) and hardware estimates above which a job is flagged.
    /// Default 10.
    pub fn declared_gap_factor(&self) -> f64 {
        self.doc.declared_gap_factor
    }

    /// Action taken on a flagged declared/hardware gap. Default `review`.
    pub fn declared_gap_action(&self) -> Action {
        self.doc.declared_gap_action
    }

    /// Tiers, lowest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.doc.tiers
    }

    /// The tier named `name`.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.doc.tiers.iter().find(|t| t.name == name)
    }

    /// Position of tier `name`, 0 = lowest.
    pub fn tier_rank(&self, name: &str) -> Option<usize> {
        self.doc.tiers.iter().position(|t| t.name == name)
    }

    /// Named country groups.
    pub fn country_groups(&self) -> &BTreeMap<String, CountryGroup> {
        &self.doc.country_groups
    }

    /// The country group named `name`.
    pub fn country_group(&self, name: &str) -> Option<&CountryGroup> {
        self.doc.country_groups.get(name)
    }

    /// Jurisdiction rules.
    pub fn jurisdiction(&self) -> &JurisdictionRules {
        &self.doc.jurisdiction
    }

    /// Version of the accelerator table, recorded with every estimate.
    pub fn table_version(&self) -> &str {
        &self.doc.table_version
    }

    /// The accelerator table.
    pub fn accelerators(&self) -> &[Accelerator] {
        &self.doc.accelerators
    }

    /// The accelerator whose type key or alias is `name` (case-insensitive).
    pub fn accelerator(&self, name: &str) -> Option<&Accelerator> {
        let i = self
            .accelerator_index
            .get(&name.trim().to_ascii_lowercase())?;
        self.doc.accelerators.get(*i)
    }

    /// The accelerator with the largest dense peak at `precision`, and that peak.
    pub fn largest_accelerator(&self, precision: Precision) -> Option<(&Accelerator, f64)> {
        self.doc
            .accelerators
            .iter()
            .filter_map(|a| a.peak_flops.get(precision).map(|p| (a, p)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Thresholds, sorted by FLOP ascending (including revoked ones, which never fire).
    pub fn thresholds(&self) -> &[Threshold] {
        &self.doc.thresholds
    }

    /// The lowest tier that may call `route` (of `class`) with `method`.
    pub fn required_tier_for_route(
        &self,
        route: &str,
        class: RouteClass,
        method: &http::Method,
    ) -> Option<&Tier> {
        self.doc
            .tiers
            .iter()
            .find(|t| decide::tier_allows_route(t, route, class, method).is_ok())
    }

    /// The lowest tier whose caps allow a job of `accelerators` bringing its run lineage to
    /// `run_flop` in total.
    pub fn required_tier_for_job(&self, accelerators: u64, run_flop: f64) -> Option<&Tier> {
        self.required_tier_for(&CapNeeds {
            accelerators,
            run_flop,
            customer_window_flop: 0.0,
            concurrent_jobs: 1,
        })
    }

    /// The lowest tier whose caps all allow `needs`.
    pub fn required_tier_for(&self, needs: &CapNeeds) -> Option<&Tier> {
        self.doc
            .tiers
            .iter()
            .find(|t| t.caps().first_exceeded(needs).is_none())
    }
}

impl fmt::Display for Policy {
    /// A short human summary, as printed by `computegate policy check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.doc;
        writeln!(
            f,
            "policy {} (effective {}), accelerator table {}",
            d.version, d.effective_from, d.table_version
        )?;
        writeln!(f, "tiers (lowest first):")?;
        for t in &d.tiers {
            writeln!(
                f,
                "  {:<24} accelerators/job {:>8}  FLOP/run {:>9}  FLOP/{} {:>9}  jobs {:>5}",
                t.name,
                cap_u64(t.max_accelerators_per_job),
                cap_f64(t.max_flop_per_run),
                short_duration(t.window),
                cap_f64(t.max_flop_per_customer_window),
                cap_u64(t.max_concurrent_jobs),
            )?;
        }
        writeln!(f, "thresholds:")?;
        for th in &d.thresholds {
            let scopes: Vec<&str> = th.scopes.iter().map(|s| s.as_str()).collect();
            let actions: Vec<&str> = th.actions.iter().map(|a| a.as_str()).collect();
            writeln!(
                f,
                "  {:>9.0e} {:<32} {} → {} [{}]{}",
                th.flop,
                th.label,
                scopes.join("+"),
                actions.join("+"),
                th.status.as_str(),
                if th.is_active() { "" } else { " (not applied)" },
            )?;
        }
        let accels: Vec<&str> = d.accelerators.iter().map(|a| a.type_key.as_str()).collect();
        writeln!(f, "accelerators: {}", accels.join(", "))?;
        let kept: Vec<String> = RecordClass::ALL
            .iter()
            .map(|c| match d.retention.rule(*c) {
                Some(r) => format!("{c} {} [{}]", short_duration(r.period), r.status.as_str()),
                None => format!("{c} indefinitely"),
            })
            .collect();
        writeln!(f, "retention: {}", kept.join(", "))?;
        let groups: Vec<String> = d
            .country_groups
            .iter()
            .map(|(name, g)| format!("{name} ({})", g.countries.len()))
            .collect();
        write!(f, "country groups: {}", groups.join(", "))
    }
}

fn text_digest(text: &str) -> String {
    use fmt::Write as _;
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn cap_u64(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |n| n.to_string())
}

fn cap_f64(v: Option<f64>) -> String {
    v.map_or_else(|| "none".into(), |n| format!("{n:.0e}"))
}

#[cfg(test)]
mod tests;

//! The policy document's types, as read from TOML. Field docs give units and defaults; the
//! checks serde cannot express live in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_util::{human_duration, one_or_many, optional_human_duration};

/// One verification tier. Tiers are listed lowest first; a later tier is never more
/// restrictive than an earlier one on any cap (checked at load), so "the lowest tier that would
/// allow this" is well defined.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Tier {
    /// Stable name, as carried in the principal (`identity_verified`).
    pub name: String,
    /// Who holds this tier, for people reading the policy.
    #[serde(default)]
    pub description: String,
    /// Route names (from the gateway configuration) this tier may call, or `"*"` for all.
    pub allowed_routes: Vec<String>,
    /// HTTP methods allowed on those routes (`"GET"`, …), or `"*"` for all. Upper-cased at load.
    pub allowed_methods: Vec<String>,
    /// Whether `job_submit` routes accept job submissions from this tier (within the caps
    /// below) even when their method is not in `allowed_methods`. Default false.
    #[serde(default)]
    pub job_submit: bool,
    /// Most accelerators one job may request; absent = unlimited.
    #[serde(default)]
    pub max_accelerators_per_job: Option<u64>,
    /// Most FLOP a training-run lineage may accumulate (reservations plus measured use);
    /// absent = unlimited.
    #[serde(default)]
    pub max_flop_per_run: Option<f64>,
    /// Most FLOP one customer may accumulate over the rolling [`Tier::window`]; absent = unlimited.
    #[serde(default)]
    pub max_flop_per_customer_window: Option<f64>,
    /// Rolling window of `max_flop_per_customer_window` ("30d"). Default 30 days.
    #[serde(default = "default_window", with = "human_duration")]
    pub window: Duration,
    /// Most jobs admitted and not yet finished at once; absent = unlimited.
    #[serde(default)]
    pub max_concurrent_jobs: Option<u64>,
    /// Request rate limit per customer; absent = not rate limited.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// How often holders must re-verify ("182d"), for the verification workflow; absent = never.
    #[serde(default, with = "optional_human_duration")]
    pub reverify_every: Option<Duration>,
    /// Evidence a reviewer's approval to this tier needs on file (`["idv_verified"]`); a kind
    /// that allows it may instead be covered by the reviewer's documented manual check. Default:
    /// none.
    #[serde(default)]
    pub requires: Vec<crate::Evidence>,
}

/// A GCRA / token-bucket request rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Sustained requests per second (> 0; fractions allowed, e.g. 0.5).
    pub requests_per_second: f64,
    /// Requests that may arrive at once after a quiet period (≥ 1).
    pub burst: u32,
}

/// Numeric precisions with a peak in the accelerator table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bfloat16 tensor math; the default basis.
    #[default]
    Bf16,
    /// IEEE half precision tensor math.
    Fp16,
    /// 8-bit floating point tensor math.
    Fp8,
    /// TensorFloat-32 tensor math.
    Tf32,
    /// IEEE single precision (non-tensor).
    Fp32,
}

/// Dense peak FLOP/s by precision (never the sparse headline figure); absent = not supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PeakFlops {
    /// bf16, FLOP/s.
    pub bf16: Option<f64>,
    /// fp16, FLOP/s.
    pub fp16: Option<f64>,
    /// fp8, FLOP/s.
    pub fp8: Option<f64>,
    /// tf32, FLOP/s.
    pub tf32: Option<f64>,
    /// fp32, FLOP/s.
    pub fp32: Option<f64>,
}

/// One accelerator type of the versioned table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Accelerator {
    /// Canonical type key (`h100`), used in estimates and reports.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Marketing name, for people.
    #[serde(default)]
    pub name: String,
    /// Other names job specs use: GPU Feature Discovery products (`NVIDIA-H100-80GB-HBM3`),
    /// Slurm GRES types (`nvidia_h100_80gb_hbm3`), cloud node labels. Matched case-insensitively.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Dense peak FLOP/s per precision.
    pub peak_flops: PeakFlops,
    /// Where the numbers come from (datasheet and date).
    pub source: String,
}

/// What a cumulative total is counted over. The ledger stores its name (`as_str`) and checks
/// it against the SQL `CHECK` of `ledger_crossings.scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A training-run lineage: a run and the fine-tunes declaring it as parent.
    Run,
    /// One customer account.
    Customer,
    /// The customer's organization.
    Organization,
    /// The linked group (accounts sharing an owner, payment, document or organization).
    Group,
}

/// Graded threshold actions, weakest first; the strongest action of a decision wins. Each
/// includes the ones before it (`review` and `report` both produce a report record once the job
/// runs). The ledger stores its name (`as_str`), checked by the SQL `CHECK` of
/// `ledger_crossings.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A metric and an event.
    Notify,
    /// A report record with a due date.
    Report,
    /// The job is held until a compliance officer approves.
    Review,
    /// The job is refused.
    Block,
}

/// Legal standing of a rule's source, shown beside it in the console and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Binding law or regulation now.
    InForce,
    /// Published as a proposal, not final.
    Proposed,
    /// Withdrawn. A revoked threshold is kept for reference and **does not fire**; mark it
    /// `recommended` to keep applying it as practice.
    Revoked,
    /// Not binding; applied as recommended practice.
    Recommended,
}

/// Extra conditions on a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Only runs whose job spec declares biological-sequence training data.
    BiologicalSequenceData,
}

/// A cumulative-FLOP threshold with its actions and provenance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Threshold {
    /// Unique short label (`eu-gpai-systemic-1e25`), used in metrics and reports.
    pub label: String,
    /// Cumulative FLOP at which it fires (`1e25`).
    pub flop: f64,
    /// Scopes whose totals it applies to: one name or a list.
    #[serde(rename = "scope", deserialize_with = "one_or_many")]
    pub scopes: Vec<Scope>,
    /// Actions taken when crossed: one name or a list (`["report", "review"]`).
    #[serde(rename = "action", deserialize_with = "one_or_many")]
    pub actions: Vec<Action>,
    /// Legal or policy source.
    pub source: String,
    /// Standing of that source.
    pub status: RuleStatus,
    /// Fires only when this holds; absent = always.
    #[serde(default)]
    pub applies_when: Option<Condition>,
    /// Days until a `report` is due. Default 15.
    #[serde(default = "default_report_due_days")]
    pub report_due_days: u32,
    /// Free-text notes.
    #[serde(default)]
    pub notes: String,
}

/// Named list of ISO 3166-1 alpha-2 codes (or ISO 3166-2 subdivisions such as `UA-43`).
///
/// Written either as a plain list (`embargoed = ["CU", "IR"]`) or as a table with
/// `countries`, `description` and `source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountryGroup {
    /// Member codes, upper case.
    pub countries: Vec<String>,
    /// What the group is for.
    pub description: String,
    /// Where the list comes from.
    pub source: String,
}

/// Jurisdiction rules over country groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JurisdictionRules {
    /// Parties located in any of these groups are refused on every route.
    #[serde(default)]
    pub deny_groups: Vec<String>,
    /// Parties located in any of these groups are routed to manual review by verification.
    #[serde(default)]
    pub review_groups: Vec<String>,
    /// Frontier-scale training restriction; absent = none.
    #[serde(default)]
    pub frontier: Option<FrontierRule>,
}

/// No frontier-scale training for parties headquartered in certain groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FrontierRule {
    /// Groups whose parties are restricted.
    pub groups: Vec<String>,
    /// Projected run-lineage or group total (FLOP) at which their jobs are blocked.
    pub flop: f64,
    /// Legal or policy source.
    pub source: String,
    /// Standing of that source.
    pub status: RuleStatus,
}

/// What to do with a job whose accelerator type is missing or not in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownAccelerator {
    /// Refuse the job with a clear message. The default.
    #[default]
    Reject,
    /// Estimate with the largest peak in the table for the precision, and flag it.
    AssumeLargest,
}

/// What to do with a job that states no time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingTimeLimit {
    /// Refuse the job with a clear message. The default.
    #[default]
    Reject,
    /// Estimate with `max_job_duration`, and flag it.
    AssumeMax,
}

/// A stored or written name that matches no variant of a policy enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

/// A calendar date (`effective_from`), written as a TOML date or a `"YYYY-MM-DD"` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyDate {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of month, 1–31.
    pub day: u8,
}

// === impl Precision ===

impl Precision {
    /// Every precision, in table order.
    pub const ALL: [Precision; 5] = [
        Precision::Bf16,
        Precision::Fp16,
        Precision::Fp8,
        Precision::Tf32,
        Precision::Fp32,
    ];

    /// The lower-case name used in policy files and job specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Tf32 => "tf32",
            Precision::Fp32 => "fp32",
        }
    }

    /// Parses a name case-insensitively (`"BF16"`, `"bf16"`).
    pub fn parse(name: &str) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl PeakFlops ===

impl PeakFlops {
    /// Dense peak FLOP/s at `precision`, if the table has one.
    pub fn get(&self, precision: Precision) -> Option<f64> {
        match precision {
            Precision::Bf16 => self.bf16,
            Precision::Fp16 => self.fp16,
            Precision::Fp8 => self.fp8,
            Precision::Tf32 => self.tf32,
            Precision::Fp32 => self.fp32,
        }
    }
}

// === impl Scope / Action / RuleStatus ===

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 4] = [
        Scope::Run,
        Scope::Customer,
        Scope::Organization,
        Scope::Group,
    ];

    /// The variant whose name ([`Scope::as_str`]) is `name`, exactly.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The lower-case name used in policy files, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Run => "run",
            Scope::Customer => "customer",
            Scope::Organization => "organization",
            Scope::Group => "group",
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Scope::from_name(s).ok_or(UnknownName)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// Every action, weakest first.
    pub const ALL: [Action; 4] = [
        Action::Notify,
        Action::Report,
        Action::Review,
        Action::Block,
    ];

    /// The variant whose name ([`Action::as_str`]) is `name`, exactly.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The lower-case name used in policy files, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Notify => "notify",
            Action::Report => "report",
            Action::Review => "review",
            Action::Block => "block",
        }
    }

    // What each action does is said here, by exhaustive matches, and nowhere else: a new action
    // is a compile error in these functions, and the ledger asks them instead of comparing.

    /// A crossing job is held until a compliance officer approves it.
    pub fn holds_for_review(self) -> bool {
        match self {
            Action::Review => true,
            Action::Notify | Action::Report | Action::Block => false,
        }
    }

    /// A crossing job is refused.
    pub fn refuses(self) -> bool {
        match self {
            Action::Block => true,
            Action::Notify | Action::Report | Action::Review => false,
        }
    }

    /// An admitted job that crosses it gets a report record with a due date.
    pub fn files_report(self) -> bool {
        match self {
            Action::Report | Action::Review | Action::Block => true,
            Action::Notify => false,
        }
    }

    /// The action acts on the job that crosses it (hold or refuse), so a crossing found without
    /// a job (two accounts linked by staff) stays unfired for the next job to meet it.
    pub fn acts_on_the_job(self) -> bool {
        self.holds_for_review() || self.refuses()
    }
}

impl FromStr for Action {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Action::from_name(s).ok_or(UnknownName)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RuleStatus {
    /// The snake-case name used in policy files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::InForce => "in_force",
            RuleStatus::Proposed => "proposed",
            RuleStatus::Revoked => "revoked",
            RuleStatus::Recommended => "recommended",
        }
    }
}

// === impl Threshold ===

impl Threshold {
    /// Whether the threshold is applied at all (every status but `revoked`).
    pub fn is_active(&self) -> bool {
        self.status != RuleStatus::Revoked
    }

    /// The strongest of its actions.
    pub fn strongest_action(&self) -> Action {
        self.actions.iter().copied().max().unwrap_or(Action::Notify)
    }
}

// === impl Tier ===

impl Tier {
    /// The tier's caps as plain data.
    pub fn caps(&self) -> super::TierCaps {
        super::TierCaps {
            max_accelerators_per_job: self.max_accelerators_per_job,
            max_flop_per_run: self.max_flop_per_run,
            max_flop_per_customer_window: self.max_flop_per_customer_window,
            max_concurrent_jobs: self.max_concurrent_jobs,
        }
    }
}

// === impl CountryGroup ===

impl CountryGroup {
    /// Whether `code` (`IR`, or a subdivision such as `UA-43`) falls in this group: an exact
    /// member, or a subdivision of a member country.
    pub fn contains(&self, code: &str) -> bool {
        let code = code.trim();
        let country = code.split('-').next().unwrap_or(code);
        self.countries
            .iter()
            .any(|m| m.eq_ignore_ascii_case(code) || m.eq_ignore_ascii_case(country))
    }
}

impl<'de> Deserialize<'de> for CountryGroup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            countries: Vec<String>,
            #[serde(default)]
            description: String,
            #[serde(default)]
            source: String,
        }
        struct GroupVisitor;
        impl<'de> serde::de::Visitor<'de> for GroupVisitor {
            type Value = CountryGroup;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of country codes or a table with `countries`")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<CountryGroup, A::Error> {
                let countries =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(CountryGroup {
                    countries,
                    ..CountryGroup::default()
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<CountryGroup, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(CountryGroup {
                    countries: t.countries,
                    description: t.description,
                    source: t.source,
                })
            }
        }
        d.deserialize_any(GroupVisitor)
    }
}

// === impl PolicyDate ===

impl PolicyDate {
    /// Parses `YYYY-MM-DD` and checks the day exists.
    pub fn parse(text: &str) -> Option<PolicyDate> {
        let mut parts = text.trim().splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let year: u16 = y.parse().ok()?;
        let month: u8 = m.parse().ok()?;
        let day: u8 = d.parse().ok()?;
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(PolicyDate { year, month, day })
    }
}

impl fmt::Display for PolicyDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl<'de> Deserialize<'de> for PolicyDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A TOML date arrives as its string form.
        let text = String::deserialize(d)?;
        PolicyDate::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a date like 2026-01-31"))
        })
    }
}

/// The raw document, before validation builds lookup indexes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyDoc {
    pub(super) version: String,
    pub(super) effective_from: PolicyDate,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default = "default_utilization")]
    pub(super) utilization_default: f64,
    #[serde(default = "default_utilization_lm")]
    pub(super) utilization_language_models: f64,
    #[serde(default = "default_lm_kinds")]
    pub(super) language_model_dataset_kinds: Vec<String>,
    #[serde(default)]
    pub(super) default_precision: Precision,
    #[serde(default)]
    pub(super) unknown_accelerator: UnknownAccelerator,
    #[serde(default)]
    pub(super) missing_time_limit: MissingTimeLimit,
    #[serde(default = "default_max_job_duration", with = "human_duration")]
    pub(super) max_job_duration: Duration,
    #[serde(default = "default_lease_grace", with = "human_duration")]
    pub(super) lease_grace: Duration,
    #[serde(default = "default_gap_factor")]
    pub(super) declared_gap_factor: f64,
    #[serde(default = "default_gap_action")]
    pub(super) declared_gap_action: Action,
    pub(super) tiers: Vec<Tier>,
    #[serde(default)]
    pub(super) country_groups: BTreeMap<String, CountryGroup>,
    #[serde(default)]
    pub(super) jurisdiction: JurisdictionRules,
    pub(super) table_version: String,
    pub(super) accelerators: Vec<Accelerator>,
    #[serde(default)]
    pub(super) thresholds: Vec<Threshold>,
    #[serde(default)]
    pub(super) retention: crate::retention::Retention,
    pub(super) resellers: crate::resellers::ResellerRule,
}

fn default_window() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_report_due_days() -> u32 {
    15
}
fn default_utilization() -> f64 {
    0.4
}
fn default_utilization_lm() -> f64 {
    0.3
}
fn default_lm_kinds() -> Vec<String> {
    vec!["text".into(), "code".into()]
}
fn default_max_job_duration() -> Duration {
    Duration::from_secs(14 * 86_400)
}
fn default_lease_grace() -> Duration {
    Duration::from_secs(3600)
}
fn default_gap_factor() -> f64 {
    10.0
}
fn default_gap_action() -> Action {
    Action::Review
}

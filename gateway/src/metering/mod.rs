//! Compute metering on the data plane: job-spec extraction from request bodies and FLOP
//! estimates. Nothing here does I/O and nothing here decides admission.
//!
//! ```text
//! body (capped by the caller) ─▶ depth guard (64) ─▶ JSON ─▶ profile: generic | slurm | kubernetes
//!   ─▶ JobSpec { accelerators, type, duration, run, parent, declared N and D, dataset kind }
//!   ─▶ estimate(spec, policy): accelerators × dense peak (type, precision) × seconds × utilization
//!        (+ declared 6·N·D beside it; gap > 10× flagged)
//!   ─▶ ComputeLedger port (crate::admission) ─▶ the root's adapter runs the stateless checks
//!      (computegate_policy::admission::precheck: tier known, accelerators per job), then the
//!      store's ledger locks the totals (run lineage, customer, organization, group) and applies
//!      computegate_policy::admission::evaluate in one transaction; the typed Outcome comes back
//!      and GatewayError::to_problem answers it
//! ```
//!
//! **Which estimate is admitted.** The reservation and every cap use the *hardware* estimate:
//! it is the most compute the rented accelerators can deliver in the requested time, so it
//! bounds what the job can do whatever the customer declares, and measured usage events later
//! replace it. The declared 6·N·D estimate is recorded beside it and never lowers anything:
//! thresholds are projected with the larger of the two ([`Estimate::projected_flop`]), so a run
//! that declares it will cross a threshold fires it at submission, and a gap beyond the policy's
//! factor (10×) holds the job for a compliance review.

use std::fmt;
use std::time::Duration;

mod estimate;
mod generic;
mod json;
mod kubernetes;
mod slurm;

pub use estimate::{Estimate, EstimateError, EstimateFlag, estimate};
pub use json::{MAX_DEPTH, MAX_RUN_ID_LEN};
pub use kubernetes::parse_quantity;

use crate::policy::{Policy, Precision};

/// Shortest job time limit accepted.
pub const MIN_JOB_DURATION: Duration = Duration::from_secs(1);

/// Request header carrying the run id: used when the body names none; must agree when it does.
pub const RUN_HEADER: &str = "x-computegate-run";

/// How a route's job bodies are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// The simulator's job API (`POST /v1/jobs`).
    Generic,
    /// slurmrestd `POST /slurm/v0.0.4x/job/submit`.
    Slurm,
    /// Kubernetes `batch/v1` Job.
    Kubernetes,
}

/// What a job asks for, extracted from its body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSpec {
    /// Profile that read it.
    pub profile: Profile,
    /// Accelerator type as the spec names it (`h100`, `NVIDIA-H100-80GB-HBM3`,
    /// `nvidia_h100_80gb_hbm3`); resolved against the policy's table by [`estimate`].
    pub accelerator_type: Option<String>,
    /// Other types the job may land on (a Kubernetes `In` affinity with several products, a
    /// Slurm request naming several types); the estimate takes the largest peak of all.
    pub accelerator_alternatives: Vec<String>,
    /// Accelerators held at once (0 for a CPU-only Slurm or Kubernetes job).
    pub accelerators: u64,
    /// Requested wall-time limit; `None` = none stated (the policy decides).
    pub duration: Option<Duration>,
    /// Training-run id.
    pub run_id: Option<String>,
    /// Run this one fine-tunes or continues (lineage).
    pub parent_run_id: Option<String>,
    /// Declared model size and token count.
    pub declared: Option<Declared>,
    /// Declared kind of training data (`text`, `biological_sequence`, …).
    pub dataset_kind: Option<String>,
    /// Declared numeric precision; `None` = the policy's default.
    pub precision: Option<Precision>,
    /// The end customer a reseller runs the job for (`end_customer` in the body, or
    /// `X-Computegate-End-Customer`); checked by the ledger, never trusted as an identity.
    pub end_customer: Option<String>,
}

/// Declared model size and training tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Declared {
    /// Parameter count N.
    pub parameters: Option<f64>,
    /// Training tokens D.
    pub tokens: Option<f64>,
}

/// Bounds applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecLimits {
    /// Longest time limit accepted.
    pub max_duration: Duration,
    /// Most accelerators one job may hold (a sanity bound; tier caps are far lower).
    pub max_accelerators: u64,
}

/// A job body that cannot be read. Always the client's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Not JSON, or not the expected top-level shape.
    #[error("job body is not valid JSON: {0}")]
    NotJson(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("job body nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A field is missing, has the wrong type or is out of range.
    #[error("{path}: {reason}")]
    Field {
        /// Path of the field, e.g. `job.tres_per_node` or `spec.template.spec.containers[0]`.
        path: String,
        /// Why.
        reason: String,
    },
    /// `X-Computegate-End-Customer` and the body name different end customers.
    #[error("header X-Computegate-End-Customer differs from the end customer in the body")]
    EndCustomerConflict,
    /// `X-Computegate-Run` and the body name different runs.
    #[error("header X-Computegate-Run `{header}` differs from the run id `{body}` in the body")]
    RunIdConflict {
        /// Header value.
        header: String,
        /// Body value.
        body: String,
    },
}

/// A failure of [`estimate_file`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstimateFileError {
    /// The spec could not be read.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The spec could not be estimated under the policy.
    #[error(transparent)]
    Estimate(#[from] EstimateError),
}

/// Parses a job body with `profile`, then applies the `X-Computegate-Run` header value (the
/// gateway applies `X-Computegate-End-Customer` after it, [`JobSpec::with_end_customer_header`]).
pub fn parse_job_spec(
    profile: Profile,
    body: &[u8],
    run_header: Option<&str>,
    limits: &SpecLimits,
) -> Result<JobSpec, SpecError> {
    let value = json::parse_body(body)?;
    let spec = match profile {
        Profile::Generic => generic::parse(&value, limits)?,
        Profile::Slurm => slurm::parse(&value, limits)?,
        Profile::Kubernetes => kubernetes::parse(&value, limits)?,
    };
    spec.with_run_header(run_header)
}

/// Parses and estimates a job spec: what `computegate estimate --profile P FILE` runs.
pub fn estimate_file(
    profile: Profile,
    bytes: &[u8],
    policy: &Policy,
) -> Result<(JobSpec, Estimate), EstimateFileError> {
    let spec = parse_job_spec(profile, bytes, None, &SpecLimits::from_policy(policy))?;
    let est = estimate(&spec, policy)?;
    Ok((spec, est))
}

/// A printable estimate with the spec it came from (the `computegate estimate` output).
#[derive(Debug, Clone, Copy)]
pub struct EstimateReport<'a> {
    /// The spec.
    pub spec: &'a JobSpec,
    /// Its estimate.
    pub estimate: &'a Estimate,
}

// === impl Profile ===

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Generic, Profile::Slurm, Profile::Kubernetes];

    /// The name used in configuration (`generic`, `slurm`, `kubernetes`).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Slurm => "slurm",
            Profile::Kubernetes => "kubernetes",
        }
    }

    /// The profile named `name`.
    pub fn parse(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::parse(s)
            .ok_or_else(|| format!("unknown profile `{s}` (use generic, slurm or kubernetes)"))
    }
}

// === impl JobSpec ===

impl JobSpec {
    /// Applies the `X-Computegate-Run` header: sets the run id when the body has none; when
    /// both are present they must agree.
    pub fn with_run_header(mut self, header: Option<&str>) -> Result<JobSpec, SpecError> {
        let Some(h) = header.map(str::trim) else {
            return Ok(self);
        };
        let h = json::run_id(h, "X-Computegate-Run")?;
        match &self.run_id {
            Some(body) if *body != h => Err(SpecError::RunIdConflict {
                header: h,
                body: body.clone(),
            }),
            _ => {
                if self.parent_run_id.as_deref() == Some(h.as_str()) {
                    return Err(json::field_err(
                        "X-Computegate-Run",
                        "must differ from the parent run id",
                    ));
                }
                self.run_id = Some(h);
                Ok(self)
            }
        }
    }

    /// Applies the `X-Computegate-End-Customer` header: sets the end customer when the body
    /// names none; when both name one they must agree.
    pub fn with_end_customer_header(mut self, header: Option<&str>) -> Result<JobSpec, SpecError> {
        let Some(h) = header.map(str::trim) else {
            return Ok(self);
        };
        let h = json::end_customer(h, "X-Computegate-End-Customer")?;
        match &self.end_customer {
            Some(body) if *body != h => Err(SpecError::EndCustomerConflict),
            _ => {
                self.end_customer = Some(h);
                Ok(self)
            }
        }
    }

    /// Whether the spec declares biological-sequence training data.
    pub fn is_biological_sequence(&self) -> bool {
        self.dataset_kind.as_deref() == Some("biological_sequence")
    }

    /// All accelerator types the job may land on (pinned type first).
    pub fn accelerator_candidates(&self) -> impl Iterator<Item = &str> {
        self.accelerator_type
            .iter()
            .chain(&self.accelerator_alternatives)
            .map(String::as_str)
    }

    /// An empty spec of `profile`, filled in by the parsers.
    pub(crate) fn empty(profile: Profile) -> Self {
        Self {
            profile,
            accelerator_type: None,
            accelerator_alternatives: Vec::new(),
            accelerators: 0,
            duration: None,
            run_id: None,
            parent_run_id: None,
            declared: None,
            dataset_kind: None,
            precision: None,
            end_customer: None,
        }
    }

    /// Sets the parent run, refusing a run that is its own parent.
    pub(crate) fn set_parent(&mut self, parent: String, path: &str) -> Result<(), SpecError> {
        if self.run_id.as_deref() == Some(parent.as_str()) {
            return Err(json::field_err(path, "must differ from the run id"));
        }
        self.parent_run_id = Some(parent);
        Ok(())
    }

    /// Adds a candidate accelerator type, keeping the first as the pinned type.
    pub(crate) fn add_accelerator_type(&mut self, name: &str) {
        let known = self
            .accelerator_candidates()
            .any(|c| c.eq_ignore_ascii_case(name));
        if known {
            return;
        }
        if self.accelerator_type.is_none() {
            self.accelerator_type = Some(name.to_string());
        } else {
            self.accelerator_alternatives.push(name.to_string());
        }
    }
}

// === impl Declared ===

impl Declared {
    /// 6 × N × D when both are declared (the standard dense-transformer training estimate).
    pub fn flop(&self) -> Option<f64> {
        let v = 6.0 * self.parameters? * self.tokens?;
        v.is_finite().then_some(v)
    }
}

// === impl SpecLimits ===

impl SpecLimits {
    /// Limits from the policy: durations up to its `max_job_duration`.
    pub fn from_policy(policy: &Policy) -> Self {
        Self {
            max_duration: policy.max_job_duration(),
            ..Self::default()
        }
    }

    /// Converts a duration in seconds, refusing negatives, NaN, anything shorter than
    /// [`MIN_JOB_DURATION`] and anything over the limit.
    pub(crate) fn duration(&self, secs: f64, path: &str) -> Result<Duration, SpecError> {
        let max = self.max_duration.as_secs_f64();
        if !(secs.is_finite() && secs > 0.0) {
            return Err(json::field_err(path, "must be a positive duration"));
        }
        if secs < MIN_JOB_DURATION.as_secs_f64() {
            // A subnormal time limit (5e-324 h) would otherwise reserve 0 FLOP for a job that
            // runs; no real job is shorter than a second.
            return Err(json::field_err(path, "must be at least one second"));
        }
        if secs > max {
            return Err(json::field_err(
                path,
                format!(
                    "{secs} s exceeds the longest job accepted ({})",
                    crate::policy::short_duration(self.max_duration)
                ),
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// Checks an accelerator count against the sanity bound.
    pub(crate) fn accelerators(&self, n: u64, path: &str) -> Result<u64, SpecError> {
        if n > self.max_accelerators {
            return Err(json::field_err(
                path,
                format!(
                    "{n} accelerators exceeds the most one job may hold ({})",
                    self.max_accelerators
                ),
            ));
        }
        Ok(n)
    }
}

impl Default for SpecLimits {
    /// One year and a million accelerators: bounds for parsing without a policy (fuzzing).
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(366 * 86_400),
            max_accelerators: 1_000_000,
        }
    }
}

// === impl EstimateReport ===

impl fmt::Display for EstimateReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.spec, self.estimate);
        writeln!(f, "profile:        {}", s.profile)?;
        let requested: Vec<&str> = s.accelerator_candidates().collect();
        writeln!(
            f,
            "accelerators:   {} × {} (requested: {})",
            s.accelerators,
            e.accelerator_type_resolved.as_deref().unwrap_or("-"),
            if requested.is_empty() {
                "no type".to_string()
            } else {
                requested.join(" | ")
            }
        )?;
        match s.duration {
            Some(d) => writeln!(f, "time limit:     {} s", d.as_secs_f64())?,
            None => writeln!(f, "time limit:     none stated")?,
        }
        writeln!(
            f,
            "run:            {}{}",
            s.run_id.as_deref().unwrap_or("-"),
            s.parent_run_id
                .as_deref()
                .map(|p| format!(" (parent {p})"))
                .unwrap_or_default()
        )?;
        if let Some(kind) = &s.dataset_kind {
            writeln!(f, "dataset kind:   {kind}")?;
        }
        writeln!(f, "hardware FLOP:  {:.4e}", e.hardware_flop)?;
        writeln!(f, "  basis:        {}", e.basis)?;
        match (e.declared_flop, &e.declared_basis) {
            (Some(d), Some(b)) => {
                writeln!(f, "declared FLOP:  {d:.4e}")?;
                writeln!(f, "  basis:        {b}")?;
            }
            _ => writeln!(f, "declared FLOP:  not declared")?,
        }
        writeln!(f, "admitted FLOP:  {:.4e} (hardware)", e.admitted_flop())?;
        writeln!(f, "table version:  {}", e.table_version)?;
        let flags: Vec<String> = e.flags.iter().map(ToString::to_string).collect();
        write!(
            f,
            "flags:          {}",
            if flags.is_empty() {
                "none".to_string()
            } else {
                flags.join("; ")
            }
        )
    }
}

#[cfg(test)]
mod tests;

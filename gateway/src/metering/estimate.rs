//! FLOP estimates: accelerators × dense peak FLOP/s (type, precision) × seconds × utilization,
//! with the declared 6·N·D estimate beside it.
//!
//! Rules, all from the policy:
//! - Type: every candidate type of the spec is resolved through the accelerator table (keys and
//!   aliases, case-insensitive); the largest peak wins. A missing or unknown type is refused or
//!   replaced by the largest peak in the table (`unknown_accelerator`), and flagged.
//! - Precision: the declared one, but never below the policy's `default_precision` (bf16): a
//!   job may raise its basis (fp8) but cannot lower its estimate by declaring fp32, since the
//!   gateway cannot see what precision the job really runs. A precision the accelerator lacks
//!   (fp8 on A100) is refused.
//! - Time: the spec's limit, at most `max_job_duration`; none stated → refused or assumed to be
//!   `max_job_duration` (`missing_time_limit`), and flagged.
//! - Utilization: `utilization_language_models` when the declared dataset kind is a language
//!   kind (`text`, `code` by default), else `utilization_default`.

use std::fmt;
use std::time::Duration;

use super::JobSpec;
use crate::policy::{
    Accelerator, MissingTimeLimit, Policy, Precision, UnknownAccelerator, short_duration,
};

/// A job's estimate and how it was reached.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Estimate {
    /// Hardware estimate, FLOP. This is what admission reserves and checks.
    pub hardware_flop: f64,
    /// Declared 6 × parameters × tokens, FLOP, when both are declared.
    pub declared_flop: Option<f64>,
    /// Human basis of the hardware estimate
    /// (`8 × h100 989.4 TFLOP/s bf16 dense × 7200 s × 0.4 utilization`).
    pub basis: String,
    /// Human basis of the declared estimate (`6 × 7e9 parameters × 1e12 tokens`).
    pub declared_basis: Option<String>,
    /// Accelerator-table version used.
    pub table_version: String,
    /// Policy version used.
    pub policy_version: String,
    /// What the estimate had to assume or noticed.
    pub flags: Vec<EstimateFlag>,
    /// Table type key used (`h100`); `None` when no accelerators were requested.
    pub accelerator_type_resolved: Option<String>,
    /// Precision whose peak was used.
    pub precision: Precision,
    /// Dense peak per accelerator used, FLOP/s.
    pub peak_flops: f64,
    /// Time used.
    pub duration: Duration,
    /// Utilization used.
    pub utilization: f64,
}

/// Something an estimate assumed or noticed; shown with it and recorded with the decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EstimateFlag {
    /// Declared and hardware estimates differ by more than the policy's factor.
    DeclaredGap {
        /// max / min of the two (infinite when one is 0).
        ratio: f64,
        /// The policy's factor (10).
        factor: f64,
    },
    /// The type was missing or unknown; the largest peak in the table was assumed.
    AssumedLargestAccelerator {
        /// The unknown name, or `None` when none was given.
        given: Option<String>,
    },
    /// No time limit was stated; the policy's maximum job duration was assumed.
    AssumedMaxDuration,
    /// The declared precision has a lower peak than the policy's default; the default was used.
    PrecisionFloor {
        /// What the spec declared.
        declared: Precision,
    },
}

/// Why a spec could not be estimated. All are the client's to fix (4xx).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EstimateError {
    /// No accelerator type and the policy rejects that.
    #[error("the job names no accelerator type; name one of: {known}")]
    MissingAcceleratorType {
        /// Known type keys.
        known: String,
    },
    /// A type the table does not know and the policy rejects that.
    #[error("unknown accelerator type `{given}`; known types: {known}")]
    UnknownAccelerator {
        /// The name given.
        given: String,
        /// Known type keys.
        known: String,
    },
    /// The accelerator has no peak for the declared precision.
    #[error(
        "accelerator `{accelerator}` has no {precision} peak in table {table_version}; declare one of: {available}"
    )]
    UnsupportedPrecision {
        /// Type key.
        accelerator: String,
        /// The precision declared.
        precision: Precision,
        /// Precisions it has.
        available: String,
        /// Table version.
        table_version: String,
    },
    /// No time limit and the policy rejects that.
    #[error("the job states no time limit; set one of at most {max}")]
    MissingTimeLimit {
        /// The policy maximum, human form.
        max: String,
    },
    /// Longer than the policy allows.
    #[error("time limit of {requested_secs} s exceeds the longest job accepted ({max})")]
    DurationTooLong {
        /// Requested seconds.
        requested_secs: f64,
        /// The policy maximum, human form.
        max: String,
    },
    /// The numbers do not fit a finite FLOP count.
    #[error("the estimate overflows; check accelerator counts and durations")]
    Overflow,
}

/// Estimates `spec` under `policy`.
pub fn estimate(spec: &JobSpec, policy: &Policy) -> Result<Estimate, EstimateError> {
    let mut flags = Vec::new();
    // A job holding no accelerators computes nothing that counts, whatever its time limit.
    let duration = if spec.accelerators == 0 {
        spec.duration.unwrap_or(Duration::ZERO)
    } else {
        time_used(spec, policy, &mut flags)?
    };
    let utilization = match &spec.dataset_kind {
        Some(kind) if policy.is_language_model_kind(kind) => policy.utilization_language_models(),
        _ => policy.utilization_default(),
    };
    let secs = duration.as_secs_f64();

    let (accelerator, peak, precision) = if spec.accelerators == 0 {
        (
            None,
            0.0,
            spec.precision.unwrap_or(policy.default_precision()),
        )
    } else {
        let (a, peak, p) = resolve(spec, policy, &mut flags)?;
        (Some(a), peak, p)
    };
    let n = spec.accelerators as f64;
    let hardware = n * peak * secs * utilization;
    if !hardware.is_finite() {
        return Err(EstimateError::Overflow);
    }
    let basis = match accelerator {
        None => "no accelerators requested".to_string(),
        Some(a) => {
            let mut b = format!(
                "{} × {} {} TFLOP/s {} dense × {} s × {} utilization",
                spec.accelerators,
                a.type_key,
                num(peak / 1e12),
                precision,
                num(secs),
                num(utilization)
            );
            let candidates: Vec<&str> = spec.accelerator_candidates().collect();
            if candidates.len() > 1 {
                b.push_str(&format!(" (largest peak of {})", candidates.join(" | ")));
            }
            b
        }
    };

    let declared = spec.declared.and_then(|d| Some((d.flop()?, d)));
    if let Some((d, _)) = declared {
        let (hi, lo) = (d.max(hardware), d.min(hardware));
        let ratio = if lo > 0.0 {
            hi / lo
        } else if hi > 0.0 {
            f64::INFINITY
        } else {
            1.0
        };
        if ratio > policy.declared_gap_factor() {
            flags.push(EstimateFlag::DeclaredGap {
                ratio,
                factor: policy.declared_gap_factor(),
            });
        }
    }
    flags.dedup();
    Ok(Estimate {
        hardware_flop: hardware,
        declared_flop: declared.map(|(f, _)| f),
        basis,
        declared_basis: declared.map(|(_, d)| {
            format!(
                "6 × {:e} parameters × {:e} tokens",
                d.parameters.unwrap_or_default(),
                d.tokens.unwrap_or_default()
            )
        }),
        table_version: policy.table_version().to_string(),
        policy_version: policy.version().to_string(),
        flags,
        accelerator_type_resolved: accelerator.map(|a| a.type_key.clone()),
        precision,
        peak_flops: peak,
        duration,
        utilization,
    })
}

/// The time limit to estimate with.
fn time_used(
    spec: &JobSpec,
    policy: &Policy,
    flags: &mut Vec<EstimateFlag>,
) -> Result<Duration, EstimateError> {
    let max = policy.max_job_duration();
    match spec.duration {
        Some(d) if d > max => Err(EstimateError::DurationTooLong {
            requested_secs: d.as_secs_f64(),
            max: short_duration(max),
        }),
        Some(d) => Ok(d),
        None => match policy.missing_time_limit() {
            MissingTimeLimit::AssumeMax => {
                flags.push(EstimateFlag::AssumedMaxDuration);
                Ok(max)
            }
            MissingTimeLimit::Reject => Err(EstimateError::MissingTimeLimit {
                max: short_duration(max),
            }),
        },
    }
}

/// The accelerator, peak and precision to estimate with: the largest over all candidates.
fn resolve<'p>(
    spec: &JobSpec,
    policy: &'p Policy,
    flags: &mut Vec<EstimateFlag>,
) -> Result<(&'p Accelerator, f64, Precision), EstimateError> {
    let assume = policy.unknown_accelerator() == UnknownAccelerator::AssumeLargest;
    let known = || {
        policy
            .accelerators()
            .iter()
            .map(|a| a.type_key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut best: Option<(&Accelerator, f64, Precision)> = None;
    let mut consider = |a: &'p Accelerator, flags: &mut Vec<EstimateFlag>| {
        let (peak, precision) = peak_for(a, spec.precision, policy, flags)?;
        if best.is_none_or(|b| peak > b.1) {
            best = Some((a, peak, precision));
        }
        Ok::<(), EstimateError>(())
    };
    let mut unknown: Vec<Option<String>> = Vec::new();
    let candidates: Vec<&str> = spec.accelerator_candidates().collect();
    if candidates.is_empty() {
        if !assume {
            return Err(EstimateError::MissingAcceleratorType { known: known() });
        }
        unknown.push(None);
    }
    for c in candidates {
        match policy.accelerator(c) {
            Some(a) => consider(a, flags)?,
            None if assume => unknown.push(Some(c.to_string())),
            None => {
                return Err(EstimateError::UnknownAccelerator {
                    given: c.to_string(),
                    known: known(),
                });
            }
        }
    }
    for given in unknown {
        flags.push(EstimateFlag::AssumedLargestAccelerator { given });
        let mut scratch = Vec::new();
        for a in policy.accelerators() {
            // An accelerator lacking the declared precision cannot be the one assumed.
            let _ = consider(a, &mut scratch);
        }
    }
    best.ok_or(EstimateError::MissingAcceleratorType { known: known() })
}

/// Peak of `a` at the declared precision, floored at the policy default, and the precision
/// whose peak that is.
fn peak_for(
    a: &Accelerator,
    declared: Option<Precision>,
    policy: &Policy,
    flags: &mut Vec<EstimateFlag>,
) -> Result<(f64, Precision), EstimateError> {
    let default = policy.default_precision();
    // Validation guarantees every accelerator has the default precision.
    let floor = a.peak_flops.get(default).unwrap_or(0.0);
    let Some(p) = declared.filter(|p| *p != default) else {
        return Ok((floor, default));
    };
    match a.peak_flops.get(p) {
        None => Err(EstimateError::UnsupportedPrecision {
            accelerator: a.type_key.clone(),
            precision: p,
            available: Precision::ALL
                .into_iter()
                .filter(|q| a.peak_flops.get(*q).is_some())
                .map(Precision::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            table_version: policy.table_version().to_string(),
        }),
        Some(v) if v >= floor => Ok((v, p)),
        Some(_) => {
            flags.push(EstimateFlag::PrecisionFloor { declared: p });
            Ok((floor, default))
        }
    }
}

/// A number for people: up to 3 decimals, trailing zeros dropped (989.4, 7200, 0.4).
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

// === impl Estimate ===

impl Estimate {
    /// FLOP reserved and checked at admission: the hardware estimate.
    pub fn admitted_flop(&self) -> f64 {
        self.hardware_flop
    }

    /// FLOP used to project threshold crossings: the larger of hardware and declared.
    pub fn projected_flop(&self) -> f64 {
        self.declared_flop
            .map_or(self.hardware_flop, |d| d.max(self.hardware_flop))
    }

    /// Whether the declared/hardware gap flag is set.
    pub fn has_declared_gap(&self) -> bool {
        self.flags
            .iter()
            .any(|f| matches!(f, EstimateFlag::DeclaredGap { .. }))
    }
}

impl fmt::Display for EstimateFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EstimateFlag::DeclaredGap { ratio, factor } => write!(
                f,
                "declared and hardware estimates differ {ratio:.1}× (more than {factor}×)"
            ),
            EstimateFlag::AssumedLargestAccelerator { given: Some(g) } => {
                write!(
                    f,
                    "unknown accelerator `{g}`: assumed the largest in the table"
                )
            }
            EstimateFlag::AssumedLargestAccelerator { given: None } => {
                write!(f, "no accelerator type: assumed the largest in the table")
            }
            EstimateFlag::AssumedMaxDuration => {
                write!(
                    f,
                    "no time limit: assumed the policy's maximum job duration"
                )
            }
            EstimateFlag::PrecisionFloor { declared } => write!(
                f,
                "declared {declared} has a lower peak than the policy default; default used"
            ),
        }
    }
}

impl EstimateFlag {
    /// Stable name for metrics and records.
    pub fn as_str(&self) -> &'static str {
        match self {
            EstimateFlag::DeclaredGap { .. } => "declared_gap",
            EstimateFlag::AssumedLargestAccelerator { .. } => "assumed_largest_accelerator",
            EstimateFlag::AssumedMaxDuration => "assumed_max_duration",
            EstimateFlag::PrecisionFloor { .. } => "precision_floor",
        }
    }
}

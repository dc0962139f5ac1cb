use std::time::Duration;

use serde_json::json;

use super::*;
use crate::policy::Policy;

const DEFAULT: &str = include_str!("../../../deploy/policy/default.toml");

pub(super) fn policy() -> Policy {
    Policy::from_toml(DEFAULT).expect("shipped policy")
}

fn policy_with(from: &str, to: &str) -> Policy {
    assert!(DEFAULT.contains(from), "{from}");
    Policy::from_toml(&DEFAULT.replacen(from, to, 1)).expect("variant policy")
}

fn generic(v: serde_json::Value) -> JobSpec {
    parse_job_spec(
        Profile::Generic,
        v.to_string().as_bytes(),
        None,
        &SpecLimits::default(),
    )
    .expect("valid spec")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn hardware_estimate_follows_the_formula() {
    let spec = generic(json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 2}));
    let e = estimate(&spec, &policy()).unwrap();
    assert!(
        close(e.hardware_flop, 8.0 * 989.4e12 * 7200.0 * 0.4),
        "{}",
        e.hardware_flop
    );
    assert_eq!(
        e.basis,
        "8 × h100 989.4 TFLOP/s bf16 dense × 7200 s × 0.4 utilization"
    );
    assert_eq!(e.table_version, "2026-01");
    assert_eq!(e.accelerator_type_resolved.as_deref(), Some("h100"));
    assert_eq!(e.declared_flop, None);
    assert!(e.flags.is_empty());
    assert_eq!(e.admitted_flop(), e.hardware_flop);
}

#[test]
fn language_models_use_their_utilization() {
    let spec = generic(
        json!({"gpu_type": "a100", "gpu_count": 1, "max_duration_hours": 1,
        "dataset": {"kind": "text"}}),
    );
    let e = estimate(&spec, &policy()).unwrap();
    assert!(close(e.hardware_flop, 312e12 * 3600.0 * 0.3));
    assert_eq!(e.utilization, 0.3);
}

#[test]
fn precision_can_raise_but_not_lower_the_basis() {
    let p = policy();
    let fp8 = generic(
        json!({"gpu_type": "h100", "gpu_count": 1, "max_duration_hours": 1, "precision": "fp8"}),
    );
    let e = estimate(&fp8, &p).unwrap();
    assert!(close(e.peak_flops, 1978.9e12));
    assert_eq!(e.precision, Precision::Fp8);
    let fp32 = generic(
        json!({"gpu_type": "h100", "gpu_count": 1, "max_duration_hours": 1, "precision": "fp32"}),
    );
    let e = estimate(&fp32, &p).unwrap();
    assert!(close(e.peak_flops, 989.4e12));
    assert_eq!(
        e.flags,
        vec![EstimateFlag::PrecisionFloor {
            declared: Precision::Fp32
        }]
    );
    let a100_fp8 = generic(
        json!({"gpu_type": "a100", "gpu_count": 1, "max_duration_hours": 1, "precision": "fp8"}),
    );
    let err = estimate(&a100_fp8, &p).unwrap_err();
    assert!(matches!(err, EstimateError::UnsupportedPrecision { .. }));
    assert!(err.to_string().contains("bf16, fp16, tf32, fp32"), "{err}");
}

#[test]
fn unknown_and_missing_types_follow_policy() {
    let reject = policy();
    let v100 = generic(json!({"gpu_type": "v100", "gpu_count": 2, "max_duration_hours": 1}));
    let err = estimate(&v100, &reject).unwrap_err();
    assert!(matches!(&err, EstimateError::UnknownAccelerator { given, .. } if given == "v100"));
    assert!(err.to_string().contains("h100"), "{err}");
    let untyped = generic(json!({"gpu_count": 2, "max_duration_hours": 1}));
    assert!(matches!(
        estimate(&untyped, &reject),
        Err(EstimateError::MissingAcceleratorType { .. })
    ));

    let assume = policy_with(
        "unknown_accelerator = \"reject\"",
        "unknown_accelerator = \"assume_largest\"",
    );
    let e = estimate(&v100, &assume).unwrap();
    assert_eq!(e.accelerator_type_resolved.as_deref(), Some("b200"));
    assert!(close(e.hardware_flop, 2.0 * 2250e12 * 3600.0 * 0.4));
    assert_eq!(
        e.flags,
        vec![EstimateFlag::AssumedLargestAccelerator {
            given: Some("v100".into())
        }]
    );
    let e = estimate(&untyped, &assume).unwrap();
    assert_eq!(
        e.flags,
        vec![EstimateFlag::AssumedLargestAccelerator { given: None }]
    );
}

#[test]
fn time_limits_follow_policy() {
    let untimed = generic(json!({"gpu_type": "h100", "gpu_count": 1}));
    let err = estimate(&untimed, &policy()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the job states no time limit; set one of at most 14d"
    );
    let assume = policy_with(
        "missing_time_limit = \"reject\"",
        "missing_time_limit = \"assume_max\"",
    );
    let e = estimate(&untimed, &assume).unwrap();
    assert_eq!(e.duration, Duration::from_secs(14 * 86_400));
    assert_eq!(e.flags, vec![EstimateFlag::AssumedMaxDuration]);
    let long = generic(json!({"gpu_type": "h100", "gpu_count": 1, "max_duration_hours": 400}));
    assert!(matches!(
        estimate(&long, &policy()),
        Err(EstimateError::DurationTooLong { .. })
    ));
    // The parser already refuses it when given the policy's limits.
    let err = parse_job_spec(
        Profile::Generic,
        br#"{"gpu_count": 1, "max_duration_hours": 400}"#,
        None,
        &SpecLimits::from_policy(&policy()),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("max_duration_hours: "), "{err}");
}

#[test]
fn alternatives_take_the_largest_peak() {
    let mut spec = generic(json!({"gpu_type": "a100", "gpu_count": 4, "max_duration_hours": 1}));
    spec.add_accelerator_type("NVIDIA-H100-80GB-HBM3");
    spec.add_accelerator_type("a100");
    assert_eq!(
        spec.accelerator_alternatives,
        vec!["NVIDIA-H100-80GB-HBM3".to_string()]
    );
    let e = estimate(&spec, &policy()).unwrap();
    assert_eq!(e.accelerator_type_resolved.as_deref(), Some("h100"));
    assert!(
        e.basis
            .ends_with("(largest peak of a100 | NVIDIA-H100-80GB-HBM3)"),
        "{}",
        e.basis
    );
}

#[test]
fn declared_estimates_and_gaps() {
    let p = policy();
    // 8 × H100 for 24 h ≈ 2.7e20; 6 × 7e9 × 1e12 = 4.2e22, a 150× gap.
    let spec = generic(
        json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 24,
        "model": {"parameters": 7e9}, "dataset": {"tokens": 1e12}}),
    );
    let e = estimate(&spec, &p).unwrap();
    assert_eq!(e.declared_flop, Some(4.2e22));
    assert_eq!(
        e.declared_basis.as_deref(),
        Some("6 × 7e9 parameters × 1e12 tokens")
    );
    assert!(e.has_declared_gap());
    assert_eq!(e.projected_flop(), 4.2e22);
    assert_eq!(e.admitted_flop(), e.hardware_flop);
    // 1e9 × 2e9 × 6 = 1.2e19 vs 8 × 989.4e12 × 3600 × 0.4 ≈ 1.14e19: consistent.
    let ok = generic(
        json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 1,
        "model": {"parameters": 1e9}, "dataset": {"tokens": 2e9}}),
    );
    assert!(!estimate(&ok, &p).unwrap().has_declared_gap());
    // Only one of N and D: nothing to compare.
    let half = generic(
        json!({"gpu_type": "h100", "gpu_count": 8, "max_duration_hours": 1,
        "model": {"parameters": 1e9}}),
    );
    assert_eq!(estimate(&half, &p).unwrap().declared_flop, None);
}

#[test]
fn zero_accelerators_estimate_zero() {
    let mut spec = JobSpec::empty(Profile::Slurm);
    let e = estimate(&spec, &policy()).unwrap();
    assert_eq!(e.hardware_flop, 0.0);
    assert_eq!(e.basis, "no accelerators requested");
    spec.duration = Some(Duration::from_secs(60));
    spec.accelerator_type = Some("v100".into());
    assert_eq!(estimate(&spec, &policy()).unwrap().hardware_flop, 0.0);
}

#[test]
fn run_header_fills_or_must_agree() {
    let body = br#"{"gpu_count": 1, "run_id": "r1", "parent_run_id": "r0"}"#;
    let lim = SpecLimits::default();
    let spec = parse_job_spec(Profile::Generic, body, Some("r1"), &lim).unwrap();
    assert_eq!(spec.run_id.as_deref(), Some("r1"));
    let err = parse_job_spec(Profile::Generic, body, Some("r2"), &lim).unwrap_err();
    assert_eq!(
        err,
        SpecError::RunIdConflict {
            header: "r2".into(),
            body: "r1".into()
        }
    );
    let anon = br#"{"gpu_count": 1, "parent_run_id": "r0"}"#;
    let spec = parse_job_spec(Profile::Generic, anon, Some(" r9 "), &lim).unwrap();
    assert_eq!(spec.run_id.as_deref(), Some("r9"));
    assert!(parse_job_spec(Profile::Generic, anon, Some("r0"), &lim).is_err());
    assert!(parse_job_spec(Profile::Generic, anon, Some("bad id"), &lim).is_err());
}

/// A generic job whose body names end customer `id`.
fn spec_with(id: &str) -> JobSpec {
    generic(json!({"gpu_count": 1, "end_customer": id}))
}

#[test]
fn end_customer_comes_from_the_body_or_the_header_and_both_must_agree() {
    let lim = SpecLimits::default();
    let id = "0193b6e0-7f3a-7c1e-9d2b-5a4f3e2d1c0b";
    let body = json!({"gpu_count": 1, "end_customer": id}).to_string();
    let spec = parse_job_spec(Profile::Generic, body.as_bytes(), None, &lim).unwrap();
    assert_eq!(spec.end_customer.as_deref(), Some(id));
    let same = spec
        .clone()
        .with_end_customer_header(Some(&format!(" {id} ")));
    assert_eq!(same.unwrap().end_customer.as_deref(), Some(id));
    assert_eq!(
        spec.with_end_customer_header(Some("another")).unwrap_err(),
        SpecError::EndCustomerConflict
    );
    let anon = generic(json!({"gpu_count": 1}));
    assert_eq!(anon.end_customer, None);
    let named = anon.clone().with_end_customer_header(Some(id)).unwrap();
    assert_eq!(named.end_customer.as_deref(), Some(id));
    // Any spelling of the UUID is the one id, kept canonical, and agrees with the body's.
    for spelling in [id.to_uppercase(), id.replace('-', "")] {
        let named = anon.clone().with_end_customer_header(Some(&spelling));
        assert_eq!(
            named.unwrap().end_customer.as_deref(),
            Some(id),
            "{spelling}"
        );
        let agrees = (spec_with(id).with_end_customer_header(Some(&spelling))).unwrap();
        assert_eq!(agrees.end_customer.as_deref(), Some(id), "{spelling}");
    }
    for bad in ["", "not an id", "ünicode", &"a".repeat(65)] {
        assert!(
            anon.clone().with_end_customer_header(Some(bad)).is_err(),
            "{bad:?}"
        );
        let body = json!({"gpu_count": 1, "end_customer": bad}).to_string();
        assert!(
            parse_job_spec(Profile::Generic, body.as_bytes(), None, &lim).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn bodies_that_are_not_json_or_too_deep() {
    let lim = SpecLimits::default();
    for profile in Profile::ALL {
        assert!(matches!(
            parse_job_spec(profile, b"{", None, &lim),
            Err(SpecError::NotJson(_))
        ));
        assert!(matches!(
            parse_job_spec(profile, b"", None, &lim),
            Err(SpecError::NotJson(_))
        ));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(
            parse_job_spec(profile, deep.as_bytes(), None, &lim),
            Err(SpecError::TooDeep { limit: 64 })
        );
    }
}

#[test]
fn estimate_file_and_report() {
    let body = br#"{"gpu_type": "NVIDIA-H100-80GB-HBM3", "gpu_count": 16, "max_duration_hours": 1.5,
        "run_id": "llm-7b", "model": {"parameters": 7e9}, "dataset": {"tokens": 6e8, "kind": "text"}}"#;
    let (spec, e) = estimate_file(Profile::Generic, body, &policy()).unwrap();
    let text = EstimateReport {
        spec: &spec,
        estimate: &e,
    }
    .to_string();
    for needle in [
        "profile:        generic",
        "16 × h100 (requested: NVIDIA-H100-80GB-HBM3)",
        "time limit:     5400 s",
        "run:            llm-7b",
        "16 × h100 989.4 TFLOP/s bf16 dense × 5400 s × 0.3 utilization",
        "6 × 7e9 parameters × 6e8 tokens",
        "table version:  2026-01",
        "flags:          none",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(matches!(
        estimate_file(
            Profile::Generic,
            br#"{"gpu_type": "v100", "gpu_count": 1, "max_duration_hours": 1}"#,
            &policy()
        ),
        Err(EstimateFileError::Estimate(
            EstimateError::UnknownAccelerator { .. }
        ))
    ));
    assert_eq!(Profile::parse("slurm"), Some(Profile::Slurm));
    assert!("pbs".parse::<Profile>().is_err());
}

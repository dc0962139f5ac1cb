//! Property tests of job-spec parsing and estimation: parsers never panic on arbitrary bytes or
//! arbitrary JSON, and estimates grow with accelerators and time.

use std::time::Duration;

use computegate_gateway::metering::{Profile, SpecLimits, estimate, parse_job_spec};
use computegate_gateway::policy::Policy;
use proptest::prelude::*;
use serde_json::{Value, json};

const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");

/// Arbitrary JSON biased towards the keys the profiles read.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("job"),
        Just("jobs"),
        Just("spec"),
        Just("template"),
        Just("containers"),
        Just("resources"),
        Just("limits"),
        Just("nvidia.com/gpu"),
        Just("tres_per_node"),
        Just("tres_per_job"),
        Just("gres"),
        Just("nodes"),
        Just("time_limit"),
        Just("number"),
        Just("set"),
        Just("infinite"),
        Just("gpu_count"),
        Just("gpu_type"),
        Just("max_duration_hours"),
        Just("parallelism"),
        Just("activeDeadlineSeconds"),
        Just("environment"),
        Just("metadata"),
        Just("annotations"),
        Just("model"),
        Just("parameters"),
        Just("dataset"),
        Just("tokens"),
        Just("initContainers"),
        Just("nodeSelector"),
        Just("tasks"),
        Just("run_id"),
        Just("x"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("gres/gpu:h100:8"),
            Just("gres/gpu=99999999999"),
            Just("2-4"),
            Just("8"),
            Just("1k"),
            Just("500m"),
            Just("COMPUTEGATE_RUN_ID=r"),
            Just("h100"),
            Just(""),
            Just("gpu:a:b"),
            Just("-1"),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let p = Policy::from_toml(DEFAULT).unwrap();
        for profile in Profile::ALL {
            if let Ok(spec) = parse_job_spec(profile, &bytes, None, &SpecLimits::default()) {
                let _ = estimate(&spec, &p);
            }
        }
    }

    #[test]
    fn parsers_never_panic_on_json(v in json_value(), header in proptest::option::of("[a-z0-9 -]{0,8}")) {
        let p = Policy::from_toml(DEFAULT).unwrap();
        let body = v.to_string();
        for profile in Profile::ALL {
            for wrapped in [body.clone(), format!("{{\"job\": {body}}}"), format!("{{\"spec\": {body}}}")] {
                let limits = SpecLimits::from_policy(&p);
                if let Ok(spec) = parse_job_spec(profile, wrapped.as_bytes(), header.as_deref(), &limits)
                    && let Ok(e) = estimate(&spec, &p)
                {
                    prop_assert!(e.hardware_flop.is_finite() && e.hardware_flop >= 0.0);
                }
            }
        }
    }

    /// More accelerators or more time never lowers the estimate.
    #[test]
    fn estimate_is_monotonic(
        gpus in 1u64..5000,
        extra_gpus in 0u64..5000,
        minutes in 1u64..20_000,
        extra_minutes in 0u64..20_000,
        ty in prop_oneof![Just("a100"), Just("h100"), Just("b200"), Just("tpu-v5p"), Just("mi300x")],
        kind in prop_oneof![Just("text"), Just("image"), Just("biological_sequence")],
    ) {
        let p = Policy::from_toml(DEFAULT).unwrap();
        let max_minutes = p.max_job_duration().as_secs() / 60;
        let est = |n: u64, m: u64| {
            let body = json!({"gpu_type": ty, "gpu_count": n, "max_duration_hours": m.min(max_minutes) as f64 / 60.0,
                              "dataset": {"kind": kind}});
            let spec = parse_job_spec(Profile::Generic, body.to_string().as_bytes(), None, &SpecLimits::default()).unwrap();
            estimate(&spec, &p).unwrap().hardware_flop
        };
        let base = est(gpus, minutes);
        prop_assert!(base > 0.0);
        prop_assert!(est(gpus + extra_gpus, minutes) >= base);
        prop_assert!(est(gpus, minutes + extra_minutes) >= base);
        prop_assert!(est(gpus + extra_gpus, minutes + extra_minutes) >= base);
    }

    /// Slurm node ranges and per-node GPUs multiply, and the time limit is read in minutes.
    #[test]
    fn slurm_counts_multiply(per_node in 0u64..64, lo in 1u64..64, span in 0u64..64, minutes in 1u64..10_000) {
        let body = json!({"job": {"tres_per_node": format!("gres/gpu:h100:{per_node}"),
                                  "nodes": format!("{lo}-{}", lo + span), "time_limit": minutes}});
        let spec = parse_job_spec(Profile::Slurm, body.to_string().as_bytes(), None, &SpecLimits::default()).unwrap();
        prop_assert_eq!(spec.accelerators, per_node * (lo + span));
        prop_assert_eq!(spec.duration, Some(Duration::from_secs(minutes * 60)));
    }
}

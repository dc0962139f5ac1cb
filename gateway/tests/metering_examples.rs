//! Estimates of job specs taken from the Slurm and Kubernetes public documentation (see
//! `tests/data/README.md` for each file's source URL) under the shipped policy, and the
//! tier caps they meet.

use std::path::PathBuf;

use computegate_gateway::metering::{
    EstimateError, EstimateFileError, EstimateFlag, EstimateReport, Profile, estimate_file,
};
use computegate_gateway::policy::{CapExceeded, CapNeeds, Policy};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policy() -> Policy {
    computegate_gateway::policy::load(&root().join("../deploy/policy/default.toml"))
        .expect("shipped policy")
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/data").join(name)).expect(name)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// A documented job spec and what its estimate must be.
struct Example {
    file: &'static str,
    profile: Profile,
    accelerators: u64,
    secs: u64,
    resolved: Option<&'static str>,
    flop: f64,
}

const EXAMPLES: &[Example] = &[
    // https://slurm.schedmd.com/rest_api.html (job_desc_msg), https://slurm.schedmd.com/gres.html
    // 2 nodes × 8 H100 × 120 min: 16 × 989.4e12 × 7200 × 0.4
    Example {
        file: "slurm/v0040_job_submit_gpu.json",
        profile: Profile::Slurm,
        accelerators: 16,
        secs: 7200,
        resolved: Some("h100"),
        flop: 16.0 * 989.4e12 * 7200.0 * 0.4,
    },
    // 4 A100 for 60 min, declared text data → language-model utilization 0.3
    Example {
        file: "slurm/v0041_job_submit_tres_per_job.json",
        profile: Profile::Slurm,
        accelerators: 4,
        secs: 3600,
        resolved: Some("a100"),
        flop: 4.0 * 312e12 * 3600.0 * 0.3,
    },
    // https://slurm.schedmd.com/heterogeneous_jobs.html: 4 nodes × 8 B200 + a CPU component
    Example {
        file: "slurm/v0042_hetjob_submit.json",
        profile: Profile::Slurm,
        accelerators: 32,
        secs: 14_400,
        resolved: Some("b200"),
        flop: 32.0 * 2250e12 * 14_400.0 * 0.4,
    },
    // A CPU-only batch job: nothing counts.
    Example {
        file: "slurm/v0040_cpu_only.json",
        profile: Profile::Slurm,
        accelerators: 0,
        secs: 300,
        resolved: None,
        flop: 0.0,
    },
    // https://kubernetes.io/docs/concepts/workloads/controllers/job/ — `pi`, unchanged: no GPUs
    Example {
        file: "kubernetes/job_pi.json",
        profile: Profile::Kubernetes,
        accelerators: 0,
        secs: 0,
        resolved: None,
        flop: 0.0,
    },
    // `pi-with-timeout` with one A100: activeDeadlineSeconds 100
    Example {
        file: "kubernetes/job_pi_with_timeout_gpu.json",
        profile: Profile::Kubernetes,
        accelerators: 1,
        secs: 100,
        resolved: Some("a100"),
        flop: 312e12 * 100.0 * 0.4,
    },
    // parallelism 4 × 8 H100 × 24 h, text → 0.3
    Example {
        file: "kubernetes/job_parallel_gpu_training.json",
        profile: Profile::Kubernetes,
        accelerators: 32,
        secs: 86_400,
        resolved: Some("h100"),
        flop: 32.0 * 989.4e12 * 86_400.0 * 0.3,
    },
];

#[test]
fn documented_examples_estimate_as_expected() {
    let p = policy();
    assert_eq!(EXAMPLES.len(), 7);
    for ex in EXAMPLES {
        let (file, profile, n, secs, ty, flop) = (
            ex.file,
            ex.profile,
            ex.accelerators,
            ex.secs,
            ex.resolved,
            ex.flop,
        );
        let (spec, e) =
            estimate_file(profile, &data(file), &p).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(spec.accelerators, n, "{file}");
        assert_eq!(e.duration.as_secs(), secs, "{file}");
        assert_eq!(e.accelerator_type_resolved.as_deref(), ty, "{file}");
        assert!(
            close(e.hardware_flop, flop),
            "{file}: {} vs {flop}",
            e.hardware_flop
        );
        assert_eq!(e.table_version, "2026-01");
        // The CLI report renders for every example.
        let report = EstimateReport {
            spec: &spec,
            estimate: &e,
        }
        .to_string();
        assert!(
            report.contains(&format!("profile:        {profile}")),
            "{report}"
        );
    }
}

#[test]
fn declarations_from_documented_examples() {
    let p = policy();
    let (spec, e) = estimate_file(
        Profile::Slurm,
        &data("slurm/v0041_job_submit_tres_per_job.json"),
        &p,
    )
    .unwrap();
    assert_eq!(spec.run_id.as_deref(), Some("llm-pretrain-1-ft"));
    assert_eq!(spec.parent_run_id.as_deref(), Some("llm-pretrain-1"));
    assert_eq!(e.declared_flop, Some(6.0 * 7e9 * 2e8));
    assert!(
        !e.has_declared_gap(),
        "8.4e18 declared vs 1.3e18 hardware is within 10×"
    );

    let (spec, e) = estimate_file(
        Profile::Kubernetes,
        &data("kubernetes/job_parallel_gpu_training.json"),
        &p,
    )
    .unwrap();
    assert_eq!(spec.run_id.as_deref(), Some("llm-13b"));
    assert_eq!(e.declared_flop, Some(6.0 * 13e9 * 3e11));
    assert!(
        matches!(e.flags.as_slice(), [EstimateFlag::DeclaredGap { .. }]),
        "{:?}",
        e.flags
    );
}

#[test]
fn examples_against_the_tier_caps() {
    // What the gateway crate decides alone: which tier's caps a documented job fits, and what
    // it hands the ledger (the cumulative decision is the ledger's, tested in the kyc crate and
    // through the binary).
    let p = policy();
    // 16 H100 for 2 h is beyond the trial (8 accelerators) but fine for a verified individual.
    let (spec, e) =
        estimate_file(Profile::Slurm, &data("slurm/v0040_job_submit_gpu.json"), &p).unwrap();
    let needs = CapNeeds {
        accelerators: spec.accelerators,
        run_flop: e.admitted_flop(),
        customer_window_flop: e.admitted_flop(),
        concurrent_jobs: 1,
    };
    let trial = p.tier("unverified").unwrap().caps();
    assert_eq!(
        trial.first_exceeded(&needs),
        Some(CapExceeded::AcceleratorsPerJob)
    );
    assert_eq!(
        p.required_tier_for(&needs).map(|t| t.name.as_str()),
        Some("identity_verified")
    );

    // The Kubernetes training job declares 28× more than its hardware can do: flagged, and the
    // declared figure is what thresholds are projected with.
    let (_, e) = estimate_file(
        Profile::Kubernetes,
        &data("kubernetes/job_parallel_gpu_training.json"),
        &p,
    )
    .unwrap();
    assert!(e.has_declared_gap(), "{:?}", e.flags);
    let declared = e.declared_flop.unwrap();
    assert!(declared > 10.0 * e.admitted_flop());
    assert_eq!(e.projected_flop(), declared);
}

#[test]
fn unknown_types_and_missing_limits_are_clear_errors() {
    let p = policy();
    let untyped = br#"{"job": {"tres_per_node": "gres/gpu:8", "time_limit": 60}}"#;
    let err = estimate_file(Profile::Slurm, untyped, &p).unwrap_err();
    assert!(matches!(
        err,
        EstimateFileError::Estimate(EstimateError::MissingAcceleratorType { .. })
    ));
    assert!(err.to_string().contains("h100"), "{err}");
    let untimed = br#"{"job": {"tres_per_node": "gres/gpu:h100:8"}}"#;
    let err = estimate_file(Profile::Slurm, untimed, &p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the job states no time limit; set one of at most 14d"
    );
    let v100 = br#"{"apiVersion": "batch/v1", "kind": "Job", "spec": {"activeDeadlineSeconds": 60,
        "template": {"spec": {"nodeSelector": {"nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB"},
        "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}}"#;
    let err = estimate_file(Profile::Kubernetes, v100, &p).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown accelerator type `Tesla-V100-SXM2-16GB`"),
        "{err}"
    );
}

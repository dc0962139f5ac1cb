//! The metering commands through the real binary: `computegate estimate` on Slurm and
//! Kubernetes job specs adapted from their public documentation (`gateway/tests/data/`, see its
//! README for each file's source), `computegate policy check` on the shipped policy and on
//! broken copies, and `computegate report export`'s argument errors.
//!
//! Expected estimates are computed here from the datasheet peaks and the utilization of the
//! shipped policy, not read back from the product.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use support::metering::{
    A100_BF16, B200_BF16, H100_BF16, UTILIZATION, UTILIZATION_LM, default_policy, policy, tiers,
};
use support::{TempDir, run_cli};

/// Exit code for invalid configuration or arguments.
const EXIT_CONFIG: i32 = 2;

/// A documented job spec and what `computegate estimate` must print for it.
struct Example {
    file: &'static str,
    profile: &'static str,
    /// `accelerators:` line, e.g. `16 × h100`.
    accelerators: &'static str,
    /// `time limit:` line.
    time_limit: &'static str,
    /// Expected hardware FLOP.
    flop: f64,
    /// Expected basis line (after `basis:`).
    basis: &'static str,
    /// `run:` line.
    run: &'static str,
}

const EXAMPLES: &[Example] = &[
    // slurmrestd `POST /slurm/v0.0.40/job/submit`, `tres_per_node: gres/gpu:h100:8`, 2 nodes,
    // `time_limit: {"number": 120, "set": true}` minutes.
    Example {
        file: "slurm/v0040_job_submit_gpu.json",
        profile: "slurm",
        accelerators: "16 × h100",
        time_limit: "7200 s",
        flop: 16.0 * H100_BF16 * 7200.0 * UTILIZATION,
        basis: "16 × h100 989.4 TFLOP/s bf16 dense × 7200 s × 0.4 utilization",
        run: "llm-pretrain-1",
    },
    // v0.0.41, `tres_per_job: gres/gpu:a100:4`, plain `time_limit: 60`, text data → 0.3.
    Example {
        file: "slurm/v0041_job_submit_tres_per_job.json",
        profile: "slurm",
        accelerators: "4 × a100",
        time_limit: "3600 s",
        flop: 4.0 * A100_BF16 * 3600.0 * UTILIZATION_LM,
        basis: "4 × a100 312 TFLOP/s bf16 dense × 3600 s × 0.3 utilization",
        run: "llm-pretrain-1-ft (parent llm-pretrain-1)",
    },
    // v0.0.42 heterogeneous job (`jobs[]`): 4 nodes × 8 B200 and a CPU-only component.
    Example {
        file: "slurm/v0042_hetjob_submit.json",
        profile: "slurm",
        accelerators: "32 × b200",
        time_limit: "14400 s",
        flop: 32.0 * B200_BF16 * 14_400.0 * UTILIZATION,
        basis: "32 × b200 2250 TFLOP/s bf16 dense × 14400 s × 0.4 utilization",
        run: "het-1",
    },
    // Kubernetes `pi-with-timeout` with `nvidia.com/gpu: 1` and a GPU Feature Discovery
    // product label, `activeDeadlineSeconds: 100`.
    Example {
        file: "kubernetes/job_pi_with_timeout_gpu.json",
        profile: "kubernetes",
        accelerators: "1 × a100",
        time_limit: "100 s",
        flop: A100_BF16 * 100.0 * UTILIZATION,
        basis: "1 × a100 312 TFLOP/s bf16 dense × 100 s × 0.4 utilization",
        run: "-",
    },
    // Parallel Job: `parallelism: 4` × 8 `nvidia.com/gpu`, `NVIDIA-H100-80GB-HBM3`, 24 h, text.
    Example {
        file: "kubernetes/job_parallel_gpu_training.json",
        profile: "kubernetes",
        accelerators: "32 × h100",
        time_limit: "86400 s",
        flop: 32.0 * H100_BF16 * 86_400.0 * UTILIZATION_LM,
        basis: "32 × h100 989.4 TFLOP/s bf16 dense × 86400 s × 0.3 utilization",
        run: "llm-13b",
    },
];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("gateway/tests/data")
        .join(name)
}

fn cli(args: &[&OsStr]) -> (i32, String, String) {
    let out = run_cli(args, &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn estimate(profile: &str, file: &Path, policy: Option<&Path>) -> (i32, String, String) {
    let mut args = vec![
        OsStr::new("estimate"),
        OsStr::new("--profile"),
        OsStr::new(profile),
    ];
    if let Some(p) = policy {
        args.extend([OsStr::new("--policy"), p.as_os_str()]);
    }
    args.push(file.as_os_str());
    cli(&args)
}

/// The value after `label:` on its line of the estimate report.
fn field<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{label}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{label}:` line in\n{report}"))
}

/// The number at the start of a `… FLOP:` line.
fn flop_field(report: &str, label: &str) -> f64 {
    let value = field(report, label);
    let number = value.split_whitespace().next().unwrap_or_default();
    number
        .parse()
        .unwrap_or_else(|_| panic!("`{label}` is not a number: {value:?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs())
}

#[test]
fn documented_slurm_and_kubernetes_specs_estimate_as_expected() {
    for ex in EXAMPLES {
        let (code, out, err) = estimate(ex.profile, &data(ex.file), None);
        assert_eq!(code, 0, "{}: {err}", ex.file);
        assert_eq!(field(&out, "profile"), ex.profile, "{}", ex.file);
        assert!(
            field(&out, "accelerators").starts_with(ex.accelerators),
            "{}: {out}",
            ex.file
        );
        assert_eq!(field(&out, "time limit"), ex.time_limit, "{}", ex.file);
        assert_eq!(field(&out, "run"), ex.run, "{}", ex.file);
        let hardware = flop_field(&out, "hardware FLOP");
        assert!(
            close(hardware, ex.flop),
            "{}: hardware {hardware:e} vs {:e}\n{out}",
            ex.file,
            ex.flop
        );
        // The basis line follows the hardware line.
        let basis = out
            .lines()
            .skip_while(|l| !l.starts_with("hardware FLOP:"))
            .nth(1)
            .and_then(|l| l.trim().strip_prefix("basis:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{}: no basis under the hardware line\n{out}", ex.file));
        assert_eq!(basis, ex.basis, "{}", ex.file);
        assert!(
            close(flop_field(&out, "admitted FLOP"), ex.flop),
            "{}: {out}",
            ex.file
        );
        assert_eq!(field(&out, "table version"), "2026-01", "{}", ex.file);
    }
}

#[test]
fn declared_compute_is_printed_beside_the_hardware_basis_and_a_gap_is_flagged() {
    // 6 × 7e9 parameters × 2e8 tokens, within 10× of the hardware estimate.
    let (code, out, err) = estimate(
        "slurm",
        &data("slurm/v0041_job_submit_tres_per_job.json"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        close(flop_field(&out, "declared FLOP"), 6.0 * 7e9 * 2e8),
        "{out}"
    );
    assert!(out.contains("6 × 7e9 parameters × 2e8 tokens"), "{out}");
    assert_eq!(field(&out, "flags"), "none", "{out}");

    // 6 × 1.3e10 × 3e11 = 2.34e22 declared against 8.2e20 of hardware: more than 10× apart.
    let (code, out, err) = estimate(
        "kubernetes",
        &data("kubernetes/job_parallel_gpu_training.json"),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        close(flop_field(&out, "declared FLOP"), 6.0 * 1.3e10 * 3e11),
        "{out}"
    );
    let flags = field(&out, "flags");
    assert!(flags.contains("differ") && flags.contains("10×"), "{out}");
}

#[test]
fn jobs_without_accelerators_estimate_to_zero() {
    for (profile, file) in [
        ("kubernetes", "kubernetes/job_pi.json"),
        ("slurm", "slurm/v0040_cpu_only.json"),
    ] {
        let (code, out, err) = estimate(profile, &data(file), None);
        assert_eq!(code, 0, "{file}: {err}");
        assert_eq!(flop_field(&out, "hardware FLOP"), 0.0, "{file}: {out}");
        assert!(
            field(&out, "accelerators").starts_with("0 "),
            "{file}: {out}"
        );
    }
}

#[test]
fn estimate_follows_the_policy_file_given() {
    // The same Slurm job under a copy of the policy with utilization 0.5.
    let dir = TempDir::new("estimate-policy");
    let text = default_policy().replace("utilization_default = 0.4", "utilization_default = 0.5");
    let file = dir.write("policy.toml", text);
    let (code, out, err) = estimate(
        "slurm",
        &data("slurm/v0040_job_submit_gpu.json"),
        Some(&file),
    );
    assert_eq!(code, 0, "{err}");
    let want = 16.0 * H100_BF16 * 7200.0 * 0.5;
    assert!(close(flop_field(&out, "hardware FLOP"), want), "{out}");
    assert!(out.contains("× 0.5 utilization"), "{out}");
}

#[test]
fn estimate_refuses_bad_input_with_exit_code_2() {
    let file = data("slurm/v0040_job_submit_gpu.json");
    // Unknown profile.
    let (code, _, err) = estimate("pbs", &file, None);
    assert_eq!(code, EXIT_CONFIG, "{err}");
    assert!(err.contains("pbs"), "{err}");
    // A Slurm body read as the generic profile names the missing field.
    let (code, _, err) = estimate("generic", &file, None);
    assert_eq!(code, EXIT_CONFIG, "{err}");
    assert!(err.contains("gpu_count"), "{err}");
    // Not JSON, and a file that does not exist.
    let dir = TempDir::new("estimate-bad");
    let junk = dir.write("junk.json", "this is not JSON");
    let (code, _, err) = estimate("slurm", &junk, None);
    assert_eq!(code, EXIT_CONFIG, "{err}");
    let (code, _, err) = estimate("slurm", &dir.path().join("missing.json"), None);
    assert_eq!(code, EXIT_CONFIG, "{err}");
    // A broken policy file.
    let bad = dir.write("policy.toml", "version = ");
    let (code, _, err) = estimate("slurm", &file, Some(&bad));
    assert_eq!(code, EXIT_CONFIG, "{err}");
}

#[test]
fn policy_check_accepts_the_shipped_policy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy/default.toml");
    let (code, out, err) = cli(&[OsStr::new("policy"), OsStr::new("check"), path.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
    for tier in [
        "unverified",
        "identity_verified",
        "organization_verified",
        "validated_end_user",
    ] {
        assert!(out.contains(tier), "summary lacks {tier}:\n{out}");
    }
    // A test policy cut from it passes too.
    let dir = TempDir::new("policy-ok");
    let file = dir.write("policy.toml", policy("test.1", &tiers(&[]), ""));
    let (code, _, err) = cli(&[OsStr::new("policy"), OsStr::new("check"), file.as_os_str()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn policy_check_names_the_broken_key_and_exits_2() {
    let text = default_policy();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "negative threshold",
            text.replacen("flop = 1e25", "flop = -1e25", 1),
            "thresholds[2].flop",
        ),
        (
            "higher tier more restrictive",
            text.replacen("max_flop_per_run = 1e22", "max_flop_per_run = 1e18", 1),
            "tiers[1].max_flop_per_run",
        ),
        (
            "wrong type",
            text.replacen(
                "utilization_default = 0.4",
                "utilization_default = \"high\"",
                1,
            ),
            "utilization_default",
        ),
        (
            "misspelt key",
            text.replacen("max_concurrent_jobs = 2 ", "max_concurent_jobs = 2 ", 1),
            "max_concurent_jobs",
        ),
        (
            "utilization above 1",
            text.replacen("utilization_default = 0.4", "utilization_default = 4.0", 1),
            "utilization_default",
        ),
        (
            "thresholds out of order",
            text.replacen("flop = 1e26", "flop = 1e24", 1),
            "thresholds[3].flop",
        ),
    ];
    let dir = TempDir::new("policy-bad");
    for (what, broken, key) in cases {
        assert_ne!(broken, text, "{what}: the edit did not apply");
        let file = dir.write("broken.toml", broken);
        let (code, out, err) = cli(&[OsStr::new("policy"), OsStr::new("check"), file.as_os_str()]);
        assert_eq!(
            code, EXIT_CONFIG,
            "{what}: exit code; stdout {out} stderr {err}"
        );
        assert!(
            err.contains(key),
            "{what}: stderr does not name `{key}`: {err}"
        );
    }
}

#[test]
fn report_export_refuses_bad_arguments_with_exit_code_2() {
    let dir = TempDir::new("export-args");
    let data_dir = dir.path().join("data");
    let base = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["report".into(), "export".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--data-dir".into(), data_dir.display().to_string()]);
        args
    };
    let cases: [(&str, Vec<String>); 4] = [
        (
            "unknown kind",
            base(&["--kind", "monthly", "--since", "2026-01-01"]),
        ),
        (
            "eu-art52 without customer",
            base(&["--kind", "eu-art52", "--since", "2026-01-01"]),
        ),
        (
            "bad format",
            base(&[
                "--kind",
                "training-runs",
                "--since",
                "2026-01-01",
                "--format",
                "xml",
            ]),
        ),
        (
            "bad date",
            base(&["--kind", "training-runs", "--since", "last tuesday"]),
        ),
    ];
    for (what, args) in cases {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let (code, _, err) = cli(&args);
        assert_eq!(code, EXIT_CONFIG, "{what}: {err}");
        assert!(err.starts_with("error:"), "{what}: {err}");
    }
}

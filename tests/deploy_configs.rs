//! The shipped deployment files (`deploy/computegate.example.toml`, the compose file and the
//! Kubernetes ConfigMap) pass `computegate config check` as shipped, and each meters at least
//! one job-submission route and guards job objects with an owner rule: a deployment copied from
//! them must not admit jobs unmetered nor let one customer reach another's job.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use support::{TempDir, run_cli};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// Runs `config check FILE` with `env` and returns the number of metered routes it reports,
/// after checking that it reports at least one owner-checked route.
fn metered_routes(file: &Path, env: &[(&str, &str)]) -> usize {
    let out = run_cli(
        &[OsStr::new("config"), OsStr::new("check"), file.as_os_str()],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}: {stderr}", file.display());
    let owned = count_before(&stdout, " owner-checked routes");
    assert!(owned >= 1, "{}: no route has an owner_path", file.display());
    count_before(&stdout, " metered job_submit routes")
}

/// The number just before `label` in `config check`'s report.
fn count_before(stdout: &str, label: &str) -> usize {
    let (before, _) = stdout
        .split_once(label)
        .unwrap_or_else(|| panic!("no{label} count in {stdout:?}"));
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad{label} count in {stdout:?}"))
}

#[test]
fn the_example_configuration_meters_jobs() {
    let n = metered_routes(&deploy("computegate.example.toml"), &[]);
    assert!(n >= 1, "the example file has no job_submit route");
}

#[test]
fn the_compose_deployment_meters_jobs() {
    let compose = std::fs::read_to_string(deploy("docker-compose.yml")).expect("compose file");
    // The config file the gateway containers mount, and the COMPUTEGATE_* overrides they get.
    let mounted = compose
        .lines()
        .find_map(|l| {
            let l = l.trim().strip_prefix("- ./")?;
            let (host, rest) = l.split_once(':')?;
            rest.starts_with("/etc/computegate/computegate.toml")
                .then(|| host.to_owned())
        })
        .expect("compose mounts a computegate.toml");
    let env: Vec<(String, String)> = compose
        .lines()
        .filter_map(|l| {
            let (key, value) = l.trim().split_once(": ")?;
            let value = value.trim().trim_matches('\'').trim_matches('"');
            // Secrets come from the caller's environment (`${…}`); config check needs none.
            (key.starts_with("COMPUTEGATE_") && !value.contains("${"))
                .then(|| (key.to_owned(), value.to_owned()))
        })
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "COMPUTEGATE_DATABASE__URL"),
        "compose environment not found: {env:?}"
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let n = metered_routes(&deploy(&mounted), &env);
    assert!(n >= 1, "the compose deployment has no job_submit route");
}

#[test]
fn the_kubernetes_configmap_meters_jobs() {
    let yaml = std::fs::read_to_string(deploy("kubernetes/configmap.yaml")).expect("configmap");
    // The literal block `computegate.toml: |`, indented by four spaces.
    let (_, block) = yaml
        .split_once("computegate.toml: |\n")
        .expect("ConfigMap key computegate.toml");
    let toml: String = block
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = TempDir::new("configmap");
    let file = dir.write("computegate.toml", toml);
    // The Secret supplies the database URL as an environment override.
    let n = metered_routes(
        &file,
        &[(
            "COMPUTEGATE_DATABASE__URL",
            "postgres://computegate@db:5432/computegate",
        )],
    );
    assert!(n >= 1, "the ConfigMap has no job_submit route");
}

#[test]
fn config_check_names_the_authorization_listener() {
    let file = deploy("computegate.example.toml");
    let out = run_cli(
        &[OsStr::new("config"), OsStr::new("check"), file.as_os_str()],
        &[
            ("COMPUTEGATE_AUTHZ__ADDR", "127.0.0.1:18089"),
            (
                "COMPUTEGATE_AUTHZ__TRUSTED_PROXIES",
                "[\"10.0.0.0/24\", \"10.0.1.7\"]",
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.contains(
            "authorization service on 127.0.0.1:18089 for 2 trusted proxies (Envoy prefix /envoy"
        ),
        "{stdout}"
    );
}

//! `scripts/cluster.sh` end to end: the production topology on this machine (private PostgreSQL
//! and Redis, two replicas of this binary, the simulator reporting usage, Prometheus with the
//! shipped rules, the traffic generator). Checks through Prometheus's HTTP API that both
//! replicas are scraped and that the admission, FLOP, crossing and report series move, that
//! `status` says so, that every metric the shipped rules and dashboard name is exported by a
//! running replica, and that `stop` stops everything.
//!
//! Needs Debian's `prometheus`, `postgresql` and `redis-server` (scripts/test.sh installs them).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TempDir;

/// How long the traffic generator runs; the checks end well before.
const TRAFFIC_SECONDS: &str = "150";
/// How long the series may take to show what the traffic does.
const SERIES_DEADLINE: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/cluster.sh COMMAND` on the cluster in `dir`.
fn cluster(dir: &Path, command: &str) -> Output {
    Command::new(repo().join("scripts/cluster.sh"))
        .arg(command)
        .env("CLUSTER_DIR", dir)
        .env("CLUSTER_BIN", support::BIN)
        .env("CLUSTER_TRAFFIC_SECONDS", TRAFFIC_SECONDS)
        .env("CLUSTER_SCRAPE_INTERVAL", "2s")
        .output()
        .expect("run scripts/cluster.sh")
}

/// Stops the cluster when the test ends, passing or failing.
struct Running(PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = cluster(&self.0, "stop");
    }
}

fn port(dir: &Path, name: &str) -> u16 {
    let text = std::fs::read_to_string(dir.join("run").join(format!("{name}.port")))
        .unwrap_or_else(|e| panic!("{name}.port: {e}"));
    text.trim().parse().expect("port number")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of instant query `query` (the sum over its result), `None` while it has no result.
async fn promql(http: &reqwest::Client, prometheus: u16, query: &str) -> Option<f64> {
    let doc: Value = http
        .get(format!("http://127.0.0.1:{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let result = doc["data"]["result"].as_array()?;
    if result.is_empty() {
        return None;
    }
    Some(
        result
            .iter()
            .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Metric names (`computegate_…`) in `text`, as written (a recording rule's name embeds the
/// metric between colons; the metric is what is collected).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("computegate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Whether sample name `name` belongs to one of the exported `families` (`# TYPE` names): as
/// is (a gauge), or without the `_total`, `_bucket`, `_count`, `_sum` or `_info` suffix the
/// exposition adds to a counter's, histogram's or info's samples.
fn exported(name: &str, families: &BTreeSet<String>) -> bool {
    families.contains(name)
        || ["_total", "_bucket", "_count", "_sum", "_info"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .any(|family| families.contains(family))
}

#[tokio::test]
#[ignore = "needs prometheus, postgresql and redis-server (scripts/test.sh installs them)"]
async fn the_cluster_script_runs_two_replicas_that_prometheus_scrapes_and_the_series_move() {
    let dir = TempDir::new("cluster");
    let out = cluster(dir.path(), "start");
    let _running = Running(dir.path().to_owned());
    assert!(
        out.status.success(),
        "cluster.sh start failed:\n{}",
        text(&out)
    );
    let started = text(&out);
    assert!(started.contains("Cluster running"), "{started}");

    let http = support::client();
    let prometheus = port(dir.path(), "prometheus");

    // Every target up, and the compliance series moving with the traffic.
    let deadline = Instant::now() + SERIES_DEADLINE;
    let mut first_admissions = None;
    let mut first_flop = None;
    let mut seen = BTreeSet::new();
    loop {
        let up = promql(&http, prometheus, "sum(up{job=\"computegate\"})").await;
        let admissions = promql(&http, prometheus, "sum(computegate_admissions_total)").await;
        let admitted_flop = promql(&http, prometheus, "sum(computegate_flop_admitted_total)").await;
        let measured_flop = promql(&http, prometheus, "sum(computegate_flop_measured_total)").await;
        let crossings = promql(
            &http,
            prometheus,
            "sum(computegate_threshold_crossings_total)",
        )
        .await;
        let reports = promql(&http, prometheus, "max(computegate_reports_due)").await;
        if up == Some(2.0) {
            seen.insert("both targets up");
        }
        if let Some(a) = admissions {
            let first = *first_admissions.get_or_insert(a);
            if a > first {
                seen.insert("admissions grow");
            }
        }
        if let Some(f) = admitted_flop {
            let first = *first_flop.get_or_insert(f);
            if f > first {
                seen.insert("admitted FLOP grows");
            }
        }
        if measured_flop.is_some_and(|m| m > 0.0) {
            seen.insert("usage measured");
        }
        if crossings.is_some_and(|c| c > 0.0) {
            seen.insert("a threshold crossed");
        }
        if reports.is_some_and(|r| r > 0.0) {
            seen.insert("a report due");
        }
        if seen.len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {SERIES_DEADLINE:?} only {seen:?} (up {up:?}, admissions {admissions:?}, \
             admitted FLOP {admitted_flop:?}, measured {measured_flop:?}, crossings {crossings:?}, \
             reports {reports:?}); traffic log:\n{}",
            std::fs::read_to_string(dir.path().join("logs/traffic.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // `status` tells the same story, and the shipped rule on crossings fires (Prometheus saw
    // the counters at 0 before the traffic began).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster(dir.path(), "status");
        let report = text(&status);
        assert!(status.status.success(), "status failed:\n{report}");
        for line in [
            "replicas ready: 2/2",
            "prometheus targets up: 2/2",
            "firing alerts:",
        ] {
            assert!(report.contains(line), "status lacks {line:?}:\n{report}");
        }
        if report.contains("ComputegateThresholdCrossed (label=eu-gpai-indicative-1e23") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ComputegateThresholdCrossed never fired:\n{report}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Every metric a shipped rule or dashboard panel names is exported by a running replica.
    // Families exported by the running replicas: a family whose series appear with their first
    // event (a kind of failed authentication, say) shows on the replica that saw one.
    let mut families = BTreeSet::new();
    for replica in ["gateway-1-admin", "gateway-2-admin"] {
        let exposition = http
            .get(format!(
                "http://127.0.0.1:{}/metrics",
                port(dir.path(), replica)
            ))
            .send()
            .await
            .expect("scrape a replica")
            .text()
            .await
            .expect("metrics text");
        families.extend(
            exposition
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_owned),
        );
    }
    for file in [
        "deploy/prometheus/rules.yml",
        "deploy/grafana/computegate.json",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).expect(file);
        let named = metric_names(&text);
        assert!(named.len() > 10, "{file}: only {named:?}");
        let missing: Vec<&String> = named.iter().filter(|n| !exported(n, &families)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics no replica exports: {missing:?}"
        );
    }

    // `stop` stops everything it started.
    let stop = cluster(dir.path(), "stop");
    assert!(stop.status.success(), "stop failed:\n{}", text(&stop));
    for name in [
        "prometheus",
        "gateway-1-public",
        "gateway-2-admin",
        "redis",
        "postgres",
    ] {
        let p = port(dir.path(), name);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "{name} still listens on {p} after stop"
        );
    }
}

#[test]
fn names_are_read_from_expressions_and_matched_to_exported_families() {
    let names = metric_names(
        "sum(rate(computegate_admissions_total[5m])) route:computegate_http_requests:rate5m \
         computegate_http_request_duration_seconds_bucket computegate_build_info",
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "computegate_admissions_total",
            "computegate_build_info",
            "computegate_http_request_duration_seconds_bucket",
            "computegate_http_requests",
        ]
    );
    let families: BTreeSet<String> = ["computegate_admissions", "computegate_policy_info"]
        .map(str::to_owned)
        .into();
    assert!(exported("computegate_admissions_total", &families));
    assert!(exported("computegate_policy_info", &families));
    assert!(!exported("computegate_admission_total", &families));
    assert!(!exported("computegate_policy", &families));
}

//! Retention in the binary: the daily task every `serve` (and `demo`) replica runs, its metrics,
//! and `computegate retention run [--dry-run]`. Both read the retention periods from the policy
//! in force and hand the work to `computegate_kyc::retention`, which claims the day (so the task
//! acts once per day across the cluster), purges or redacts, and writes the one audit record.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use computegate_gateway::policy::PolicyHandle;
use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::retention::{RetentionCounts, RetentionPlan, RunKind};
use computegate_policy::RecordClass;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::operator::StoreTarget;
use crate::periodic::every;

/// How often a replica checks whether today's run is done. The first check is at start-up;
/// the day's claim in the store keeps the hourly checks from acting twice.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// `computegate retention …`.
#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Purge or redact every record whose retention period has run out, now, and print the
    /// counts per class.
    Run {
        /// Count what would be purged or redacted, change nothing and write no audit record.
        #[arg(long)]
        dry_run: bool,
        /// Where the store is.
        #[command(flatten)]
        target: StoreTarget,
    },
}

/// The daily task's metrics (label: the record class, bounded by [`RecordClass::ALL`]).
#[derive(Clone)]
pub struct RetentionMetrics {
    records: Family<ClassLabel, Counter>,
    last_run: Gauge,
    failures: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

/// What the daily task needs.
struct Daily {
    store: Store,
    policy: Arc<PolicyHandle>,
    metrics: RetentionMetrics,
}

/// Starts the daily task; it ends when `stop` turns true.
pub fn spawn_daily(
    store: Store,
    policy: Arc<PolicyHandle>,
    metrics: RetentionMetrics,
    stop: watch::Receiver<bool>,
) {
    let daily = Arc::new(Daily {
        store,
        policy,
        metrics,
    });
    // `every` holds the service weakly; the step closure holds it strongly, so the task (and
    // nothing else) keeps it alive until `stop`.
    let owner = daily.clone();
    every(&daily, stop, CHECK_EVERY, move |d| {
        let _owner = &owner;
        async move { d.run().await }
    });
}

// === impl Daily ===

impl Daily {
    async fn run(&self) {
        let now = OffsetDateTime::now_utc();
        let plan = RetentionPlan::new(&self.policy.current(), now);
        let outcome = self
            .store
            .retention()
            .run_retention(
                &plan,
                RunKind::Daily(now.date()),
                &Actor::system("retention"),
                now,
            )
            .await;
        match outcome {
            Ok(Some(counts)) => {
                self.metrics.record(&counts, now);
                tracing::info!(counts = ?counts.counts, "retention run done");
            }
            Ok(None) => tracing::debug!("retention already ran today"),
            Err(e) => {
                self.metrics.failures.inc();
                tracing::warn!(error = %e, "retention run failed; retrying within the hour");
            }
        }
    }
}

// === impl RetentionMetrics ===

impl RetentionMetrics {
    /// Registers the metrics, every class's series at zero.
    pub fn register(registry: &mut Registry) -> RetentionMetrics {
        let m = RetentionMetrics {
            records: Family::default(),
            last_run: Gauge::default(),
            failures: Counter::default(),
        };
        registry.register(
            "computegate_retention_records",
            "Records purged or redacted by this replica's daily retention runs, by record class",
            m.records.clone(),
        );
        registry.register(
            "computegate_retention_last_run_timestamp_seconds",
            "When this replica last did the cluster's daily retention run (Unix seconds; 0 = not yet)",
            m.last_run.clone(),
        );
        registry.register(
            "computegate_retention_failures",
            "Daily retention runs that failed (retried within the hour)",
            m.failures.clone(),
        );
        for class in RecordClass::ALL {
            let label = ClassLabel {
                class: class.as_str(),
            };
            m.records.get_or_create(&label).inc_by(0);
        }
        m
    }

    /// Counts a finished run.
    fn record(&self, counts: &RetentionCounts, now: OffsetDateTime) {
        for (class, n) in &counts.counts {
            self.records.get_or_create(&ClassLabel { class }).inc_by(*n);
        }
        self.last_run.set(now.unix_timestamp());
    }
}

/// `computegate retention run [--dry-run]`.
pub async fn retention(command: RetentionCommand) -> anyhow::Result<()> {
    let RetentionCommand::Run { dry_run, target } = command;
    let (config, store) = if dry_run {
        target.open_existing().await?
    } else {
        let (config, _, store) = target.open_for_writing().await?;
        (config, store)
    };
    let policy = crate::policy_file::read(config.policy.file.as_deref())?;
    let now = OffsetDateTime::now_utc();
    let plan = RetentionPlan::new(&policy, now);
    let kind = if dry_run {
        RunKind::DryRun
    } else {
        RunKind::Manual
    };
    let counts = store
        .retention()
        .run_retention(&plan, kind, &Actor::system("cli"), now)
        .await
        .context("retention run failed")?
        .context("a manual run always acts")?;
    print!("{}", summary(&counts, dry_run));
    Ok(())
}

/// One line per class, then what happened.
fn summary(counts: &RetentionCounts, dry_run: bool) -> String {
    let mut text = String::new();
    for (class, n) in &counts.counts {
        text.push_str(&format!("{class}: {n}\n"));
    }
    text.push_str(if dry_run {
        "dry run: nothing was changed\n"
    } else {
        "done: one audit record written\n"
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use time::macros::datetime;

    #[test]
    fn a_run_adds_its_counts_per_class_and_stamps_the_time() {
        let mut registry = Registry::default();
        let metrics = RetentionMetrics::register(&mut registry);
        let encoded = |registry: &Registry| {
            let mut out = String::new();
            encode(&mut out, registry).unwrap();
            out
        };
        let before = encoded(&registry);
        for class in RecordClass::ALL {
            let series = format!("computegate_retention_records_total{{class=\"{class}\"}} 0");
            assert!(before.contains(&series), "{series} missing from {before}");
        }
        let counts = RetentionCounts {
            counts: [("audit_chain", 3), ("access_log", 0)]
                .into_iter()
                .collect(),
            redacted_through_seq: 3,
        };
        metrics.record(&counts, datetime!(2030-01-01 0:00 UTC));
        let after = encoded(&registry);
        assert!(
            after.contains("computegate_retention_records_total{class=\"audit_chain\"} 3"),
            "{after}"
        );
        assert!(
            after.contains("computegate_retention_last_run_timestamp_seconds 1893456000"),
            "{after}"
        );
    }

    #[test]
    fn the_summary_lists_each_class_then_what_happened() {
        let counts = RetentionCounts {
            counts: [("accounts", 1), ("screening", 0)].into_iter().collect(),
            redacted_through_seq: 0,
        };
        assert_eq!(
            summary(&counts, true),
            "accounts: 1\nscreening: 0\ndry run: nothing was changed\n"
        );
        assert!(summary(&counts, false).ends_with("done: one audit record written\n"));
    }
}

//! Metering metrics (bounded labels: decision, reason, tier, threshold label): admissions,
//! FLOP admitted and measured by tier, threshold crossings, and gauges of open reservations and
//! of reports due, overdue and due soon, refreshed from the store every 15 s, and how this replica
//! group-committed its admissions (batches by path, admissions decided in them).

use std::sync::Arc;
use std::time::Duration;

use computegate_gateway::admission::LedgerUnavailable;
use computegate_kyc::Store;
use computegate_kyc::ledger::{AdmissionBatchStats, Crossing};
use computegate_policy::Policy;
use computegate_policy::admission::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often the gauges are re-read from the store.
const REFRESH: Duration = Duration::from_secs(15);

/// Reports falling due within this window count as "due soon" (the alert's three days).
const DUE_SOON: time::Duration = time::Duration::days(3);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrossingLabel {
    label: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchPath {
    /// `bulk` (the batch statements) or `one_by_one`.
    path: &'static str,
}

/// The metering metrics.
#[derive(Clone)]
pub struct LedgerMetrics {
    admissions: Family<AdmissionLabels, Counter>,
    flop_admitted: Family<TierLabel, Counter<f64>>,
    flop_measured: Family<TierLabel, Counter<f64>>,
    crossings: Family<CrossingLabel, Counter>,
    leases_expired: Counter,
    open_reservations: Gauge,
    reports_due: Gauge,
    reports_overdue: Gauge,
    reports_due_soon: Gauge,
    admission_batches: Family<BatchPath, Counter>,
    admissions_batched: Counter,
}

// === impl LedgerMetrics ===

impl LedgerMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            admissions: Family::default(),
            flop_admitted: Family::default(),
            flop_measured: Family::default(),
            crossings: Family::default(),
            leases_expired: Counter::default(),
            open_reservations: Gauge::default(),
            reports_due: Gauge::default(),
            reports_overdue: Gauge::default(),
            reports_due_soon: Gauge::default(),
            admission_batches: Family::default(),
            admissions_batched: Counter::default(),
        };
        registry.register(
            "computegate_admissions",
            "Job admission decisions by decision (admitted, held, denied, invalid, unavailable) and reason",
            m.admissions.clone(),
        );
        registry.register(
            "computegate_flop_admitted",
            "Estimated FLOP of admitted jobs, by tier",
            m.flop_admitted.clone(),
        );
        registry.register(
            "computegate_flop_measured",
            "FLOP measured from usage reports of admitted jobs, by the customer's tier when reported",
            m.flop_measured.clone(),
        );
        registry.register(
            "computegate_threshold_crossings",
            "Threshold crossings (projected at admission or measured), by threshold label",
            m.crossings.clone(),
        );
        registry.register(
            "computegate_job_leases_expired",
            "Jobs closed by this replica because their lease ended without a final usage event",
            m.leases_expired.clone(),
        );
        registry.register(
            "computegate_open_reservations",
            "Jobs holding a compute reservation",
            m.open_reservations.clone(),
        );
        registry.register(
            "computegate_reports_due",
            "Threshold reports not yet filed",
            m.reports_due.clone(),
        );
        registry.register(
            "computegate_reports_overdue",
            "Threshold reports past their due date and not filed",
            m.reports_overdue.clone(),
        );
        registry.register(
            "computegate_reports_due_soon",
            "Threshold reports not filed and due within three days (not yet overdue)",
            m.reports_due_soon.clone(),
        );
        registry.register(
            "computegate_admission_batches",
            "Transactions of this replica that decided two or more job admissions together (group commit), by path",
            m.admission_batches.clone(),
        );
        registry.register(
            "computegate_admissions_batched",
            "Job admissions this replica decided in those transactions",
            m.admissions_batched.clone(),
        );
        for path in ["bulk", "one_by_one"] {
            let _ = m.admission_batches.get_or_create(&BatchPath { path });
        }
        Arc::new(m)
    }

    /// Adds what the store's group commit did since `last` (its counters only grow) and
    /// remembers `now`.
    fn batched(&self, last: &mut AdmissionBatchStats, now: AdmissionBatchStats) {
        let batches = now.batches.saturating_sub(last.batches);
        let bulk = now
            .bulk_batches
            .saturating_sub(last.bulk_batches)
            .min(batches);
        self.admission_batches
            .get_or_create(&BatchPath { path: "bulk" })
            .inc_by(bulk);
        self.admission_batches
            .get_or_create(&BatchPath { path: "one_by_one" })
            .inc_by(batches - bulk);
        self.admissions_batched.inc_by(
            now.batched_admissions
                .saturating_sub(last.batched_admissions),
        );
        *last = now;
    }

    /// Creates, at 0, the series a dashboard or an alert reads before their first event: the
    /// admitted and store-unavailable decisions, FLOP admitted for every tier and crossings of
    /// every threshold of `policy`. A series that does not exist yet reads as "no data", which
    /// `rate()` and `increase()` cannot tell from a scrape failure.
    pub fn start_at_zero(&self, policy: &Policy) {
        for (decision, reason) in [("admitted", "within_limits"), ("unavailable", "store")] {
            let _ = self
                .admissions
                .get_or_create(&AdmissionLabels { decision, reason });
        }
        for tier in policy.tiers() {
            let label = TierLabel {
                tier: tier.name.clone(),
            };
            let _ = self.flop_admitted.get_or_create(&label);
            let _ = self.flop_measured.get_or_create(&label);
        }
        for threshold in policy.thresholds() {
            let _ = self.crossings.get_or_create(&CrossingLabel {
                label: threshold.label.clone(),
            });
        }
    }

    /// Counts jobs this replica closed by lease expiry.
    pub fn leases_expired(&self, n: usize) {
        self.leases_expired
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts an admission outcome (labels from its typed decision and reason) and, when
    /// admitted, its FLOP under `tier`.
    pub fn admission(&self, outcome: Result<&Outcome, &LedgerUnavailable>, tier: &str) {
        let (decision, reason) = match outcome {
            Ok(o) => {
                let (decision, reason) = o.metric_labels();
                (decision.as_str(), reason)
            }
            Err(LedgerUnavailable) => ("unavailable", "store"),
        };
        self.admissions
            .get_or_create(&AdmissionLabels { decision, reason })
            .inc();
        if let Ok(Outcome::Admitted(admitted)) = outcome {
            self.admitted(tier, admitted.estimate_flop);
        }
    }

    /// Adds admitted FLOP for `tier`.
    fn admitted(&self, tier: &str, flop: f64) {
        if flop.is_finite() && flop > 0.0 {
            self.flop_admitted
                .get_or_create(&TierLabel {
                    tier: tier.to_string(),
                })
                .inc_by(flop);
        }
    }

    /// Adds measured FLOP for `tier`.
    pub fn measured(&self, tier: &str, flop: f64) {
        if flop.is_finite() && flop > 0.0 {
            self.flop_measured
                .get_or_create(&TierLabel {
                    tier: tier.to_string(),
                })
                .inc_by(flop);
        }
    }

    /// Counts threshold crossings.
    pub fn crossed(&self, crossings: &[Crossing]) {
        for c in crossings {
            self.crossings
                .get_or_create(&CrossingLabel {
                    label: c.label.clone(),
                })
                .inc();
        }
    }

    /// Refreshes the gauges (and the group-commit counters) from the store until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, store: Store, mut stop: watch::Receiver<bool>) {
        let m = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            let mut last = AdmissionBatchStats::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                m.batched(&mut last, store.ledger().admission_batch_stats());
                if let Ok(n) = store.ledger().open_reservations_count().await {
                    m.open_reservations
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                if let Ok(due) = store
                    .ledger()
                    .reports_due_count(OffsetDateTime::now_utc(), DUE_SOON)
                    .await
                {
                    m.reports_due
                        .set(i64::try_from(due.open).unwrap_or(i64::MAX));
                    m.reports_overdue
                        .set(i64::try_from(due.overdue).unwrap_or(i64::MAX));
                    m.reports_due_soon
                        .set(i64::try_from(due.due_soon).unwrap_or(i64::MAX));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn series_that_alerts_read_exist_before_their_first_event() {
        let policy = Policy::from_toml(crate::policy_file::DEFAULT_POLICY).unwrap();
        let mut registry = Registry::default();
        let metrics = LedgerMetrics::register(&mut registry);
        metrics.start_at_zero(&policy);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(
                "computegate_admissions_total{decision=\"admitted\",reason=\"within_limits\"} 0"
            ),
            "{out}"
        );
        for threshold in policy.thresholds() {
            let series = format!(
                "computegate_threshold_crossings_total{{label=\"{}\"}} 0",
                threshold.label
            );
            assert!(out.contains(&series), "{series} missing from {out}");
        }
        for tier in policy.tiers() {
            for family in ["admitted", "measured"] {
                let series = format!(
                    "computegate_flop_{family}_total{{tier=\"{}\"}} 0",
                    tier.name
                );
                assert!(out.contains(&series), "{series} missing from {out}");
            }
        }
    }

    #[test]
    fn group_commit_counters_add_what_the_store_did_since_the_last_refresh() {
        let mut registry = Registry::default();
        let metrics = LedgerMetrics::register(&mut registry);
        let mut last = AdmissionBatchStats::default();
        let stats = |batches, bulk_batches, batched_admissions| AdmissionBatchStats {
            batches,
            bulk_batches,
            batched_admissions,
        };
        metrics.batched(&mut last, stats(3, 2, 40));
        metrics.batched(&mut last, stats(5, 3, 70));
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        for series in [
            "computegate_admission_batches_total{path=\"bulk\"} 3",
            "computegate_admission_batches_total{path=\"one_by_one\"} 2",
            "computegate_admissions_batched_total 70",
        ] {
            assert!(out.contains(series), "{series} missing from {out}");
        }
    }
}

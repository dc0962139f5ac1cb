//! Metering metrics (bounded labels: decision, reason, tier, threshold label): admissions,
//! FLOP admitted by tier, threshold crossings, and gauges of open
//! reservations and reports due, refreshed from the store every 15 s.

use std::sync::Arc;
use std::time::Duration;

use computegate_gateway::admission::LedgerUnavailable;
use computegate_kyc::Store;
use computegate_kyc::ledger::Crossing;
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

/// The metering metrics.
#[derive(Clone)]
pub struct LedgerMetrics {
    admissions: Family<AdmissionLabels, Counter>,
    flop_admitted: Family<TierLabel, Counter<f64>>,
    crossings: Family<CrossingLabel, Counter>,
    leases_expired: Counter,
    open_reservations: Gauge,
    reports_due: Gauge,
    reports_overdue: Gauge,
}

// === impl LedgerMetrics ===

impl LedgerMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            admissions: Family::default(),
            flop_admitted: Family::default(),
            crossings: Family::default(),
            leases_expired: Counter::default(),
            open_reservations: Gauge::default(),
            reports_due: Gauge::default(),
            reports_overdue: Gauge::default(),
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
        Arc::new(m)
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

    /// Refreshes the gauges from the store until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, store: Store, mut stop: watch::Receiver<bool>) {
        let m = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if let Ok(n) = store.ledger().open_reservations_count().await {
                    m.open_reservations
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                if let Ok(due) = store
                    .ledger()
                    .reports_due_count(OffsetDateTime::now_utc())
                    .await
                {
                    m.reports_due
                        .set(i64::try_from(due.open).unwrap_or(i64::MAX));
                    m.reports_overdue
                        .set(i64::try_from(due.overdue).unwrap_or(i64::MAX));
                }
            }
        });
    }
}

//! Verification metrics. Labels are bounded (status, list format, outcome, funnel stage) and
//! never carry personal data or ids.

use std::sync::atomic::AtomicU64;

use computegate_kyc::screening::ListFormat;
use computegate_kyc::verification::{ApplicationStats, ApplicationStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

/// Funnel stages, in order.
const FUNNEL_STAGES: [&str; 5] = ["draft", "submitted", "screened", "approved", "rejected"];

/// Decision outcomes: an approval that granted the tier, the first of two top-tier approvals,
/// a rejection, a request for more information.
const OUTCOMES: [&str; 4] = ["approved", "first_approval", "rejected", "info_requested"];

/// The verification metrics of one process.
#[derive(Debug, Clone)]
pub struct KycMetrics {
    applications: Family<StatusLabel, Gauge>,
    queue_size: Gauge,
    queue_oldest_age: Gauge<f64, AtomicU64>,
    screening_hits: Family<ListLabel, Counter>,
    decisions: Family<OutcomeLabel, Counter>,
    funnel: Family<StageLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListLabel {
    list: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

// === impl KycMetrics ===

impl KycMetrics {
    /// Registers the metrics into `registry`, every series present from the start.
    pub fn register(registry: &mut Registry) -> KycMetrics {
        let m = KycMetrics {
            applications: Family::default(),
            queue_size: Gauge::default(),
            queue_oldest_age: Gauge::default(),
            screening_hits: Family::default(),
            decisions: Family::default(),
            funnel: Family::default(),
        };
        registry.register(
            "computegate_kyc_applications",
            "Verification applications by status (refreshed periodically from the store)",
            m.applications.clone(),
        );
        registry.register(
            "computegate_kyc_queue_size",
            "Applications waiting for a staff decision (pending_review)",
            m.queue_size.clone(),
        );
        registry.register(
            "computegate_kyc_queue_oldest_age_seconds",
            "Age of the oldest application waiting for review, since its submission",
            m.queue_oldest_age.clone(),
        );
        registry.register(
            "computegate_screening_hits",
            "Screened parties whose best match is a hit, by list format",
            m.screening_hits.clone(),
        );
        registry.register(
            "computegate_kyc_decisions",
            "Staff decisions by outcome (approved, first_approval, rejected, info_requested)",
            m.decisions.clone(),
        );
        registry.register(
            "computegate_kyc_funnel",
            "Applications reaching each verification stage (draft, submitted, screened, approved, rejected)",
            m.funnel.clone(),
        );
        for status in ApplicationStatus::ALL {
            let _ = m.applications.get_or_create(&StatusLabel {
                status: status.as_str(),
            });
        }
        for stage in FUNNEL_STAGES {
            let _ = m.funnel.get_or_create(&StageLabel { stage });
        }
        for outcome in OUTCOMES {
            let _ = m.decisions.get_or_create(&OutcomeLabel { outcome });
        }
        for list in [ListFormat::Csl, ListFormat::Sdn, ListFormat::OpenSanctions] {
            let _ = m.screening_hits.get_or_create(&ListLabel {
                list: list.as_str(),
            });
        }
        m
    }

    /// Counts an application reaching `stage` (one of [`FUNNEL_STAGES`]).
    pub fn funnel(&self, stage: &'static str) {
        self.funnel.get_or_create(&StageLabel { stage }).inc();
    }

    /// Counts a staff decision (one of [`OUTCOMES`]).
    pub fn decision(&self, outcome: &'static str) {
        self.decisions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts `n` screening hits against a list of `format`.
    pub fn screening_hits(&self, format: ListFormat, n: u64) {
        if n > 0 {
            self.screening_hits
                .get_or_create(&ListLabel {
                    list: format.as_str(),
                })
                .inc_by(n);
        }
    }

    /// Sets the application gauges from the store's counts.
    pub fn set_stats(&self, stats: &ApplicationStats, now: OffsetDateTime) {
        for status in ApplicationStatus::ALL {
            let n = stats
                .by_status
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.applications
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(n);
            if status == ApplicationStatus::PendingReview {
                self.queue_size.set(n);
            }
        }
        let age = stats
            .oldest_pending
            .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        self.queue_oldest_age.set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn series_are_bounded_and_set_from_stats() {
        let mut registry = Registry::default();
        let m = KycMetrics::register(&mut registry);
        let now = OffsetDateTime::now_utc();
        m.set_stats(
            &ApplicationStats {
                by_status: vec![(ApplicationStatus::PendingReview, 3)],
                oldest_pending: Some(now - time::Duration::seconds(90)),
            },
            now,
        );
        m.funnel("draft");
        m.decision("approved");
        m.screening_hits(ListFormat::Sdn, 2);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("computegate_kyc_applications{status=\"pending_review\"} 3"));
        assert!(text.contains("computegate_kyc_applications{status=\"draft\"} 0"));
        assert!(text.contains("computegate_kyc_queue_size 3"));
        assert!(text.contains("computegate_kyc_queue_oldest_age_seconds 90"));
        assert!(text.contains("computegate_kyc_funnel_total{stage=\"draft\"} 1"));
        assert!(text.contains("computegate_kyc_decisions_total{outcome=\"approved\"} 1"));
        assert!(text.contains("computegate_screening_hits_total{list=\"sdn\"} 2"));
    }
}

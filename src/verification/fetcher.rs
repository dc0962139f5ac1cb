//! The shared half of the Onfido fetch worker (`idv_fetch`): the API client if configured,
//! the wake-up the webhook handler rings after queueing a notice, and the worker's metrics.
//! Kept apart from the worker so the service holds it without importing the worker.

use computegate_kyc::verification::onfido::OnfidoResource;
use computegate_kyc::verification::{IdvOutcome, IdvProvider};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use super::onfido_api::OnfidoApi;

/// The Onfido fetch worker's shared half: the API client (if configured), the wake-up and
/// the metrics.
pub struct IdvFetcher {
    pub(super) api: Option<OnfidoApi>,
    pub(super) wake: Notify,
    pub(super) metrics: FetchMetrics,
}

#[derive(Debug, Clone)]
pub(super) struct FetchMetrics {
    pub(super) requests: Family<RequestLabel, Counter>,
    pub(super) retries: Family<ProviderLabel, Counter>,
    pub(super) given_up: Family<ProviderLabel, Counter>,
    recorded: Family<RecordedLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabel {
    pub(super) provider: &'static str,
    pub(super) resource: &'static str,
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProviderLabel {
    pub(super) provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordedLabel {
    provider: &'static str,
    outcome: &'static str,
}

// === impl IdvFetcher ===

impl IdvFetcher {
    /// A fetcher with `api` (`None`: notices are queued and wait for a token), its metrics
    /// registered in `registry`.
    pub fn new(api: Option<OnfidoApi>, registry: &mut Registry) -> IdvFetcher {
        IdvFetcher {
            api,
            wake: Notify::new(),
            metrics: FetchMetrics::register(registry),
        }
    }

    /// Asks the worker to look at the queue now (a notice was just queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

// === impl FetchMetrics ===

impl FetchMetrics {
    pub(super) fn register(registry: &mut Registry) -> FetchMetrics {
        let m = FetchMetrics {
            requests: Family::default(),
            retries: Family::default(),
            given_up: Family::default(),
            recorded: Family::default(),
        };
        registry.register(
            "computegate_idv_provider_requests",
            "Requests to an IDV provider's API by resource and result (ok, timeout, transport, status_4xx, status_5xx, not_json)",
            m.requests.clone(),
        );
        registry.register(
            "computegate_idv_fetch_retries",
            "Provider fetches scheduled for another attempt after a failure that may pass",
            m.retries.clone(),
        );
        registry.register(
            "computegate_idv_fetch_given_up",
            "Provider fetches given up (attempts used up, or a failure that cannot pass)",
            m.given_up.clone(),
        );
        registry.register(
            "computegate_idv_fetch_recorded",
            "IDV outcomes recorded from a provider fetch, by outcome",
            m.recorded.clone(),
        );
        let provider = IdvProvider::Onfido.as_str();
        let _ = m.retries.get_or_create(&ProviderLabel { provider });
        let _ = m.given_up.get_or_create(&ProviderLabel { provider });
        // The request family exists before the first fetch (dashboards and alerts read it).
        for resource in [
            OnfidoResource::Check,
            OnfidoResource::Report,
            OnfidoResource::WorkflowRun,
        ] {
            let _ = m.requests.get_or_create(&RequestLabel {
                provider,
                resource: resource.as_str(),
                result: "ok",
            });
        }
        m
    }

    pub(super) fn recorded(&self, provider: &'static str, outcome: IdvOutcome) {
        self.recorded
            .get_or_create(&RecordedLabel {
                provider,
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

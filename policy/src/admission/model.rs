//! The admission vocabulary the ledger and the gateway share: cumulative totals around a
//! decision, a threshold crossing, and a cap or threshold denial with its typed reason. A leaf:
//! it imports nothing from the other admission modules.

use uuid::Uuid;

use crate::{Action, Scope};

/// Why a job was refused by the ledger's rules (a cap or a `block` threshold).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Denial {
    /// The rule that refused it.
    pub reason: DenialReason,
    /// The FLOP limit it would pass (cap or blocking threshold).
    pub limit_flop: Option<f64>,
    /// The blocking threshold's label.
    pub threshold_label: Option<String>,
    /// The blocking threshold's scope.
    pub scope: Option<Scope>,
}

/// The rule behind a ledger denial (bounded, usable as a metric label via
/// [`DenialReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenialReason {
    /// The lineage total would pass the per-run cap.
    RunCap,
    /// The customer's rolling-window total would pass the customer cap.
    CustomerWindowCap,
    /// The customer already has the most concurrent jobs allowed.
    ConcurrentJobs {
        /// The limit.
        limit: u32,
    },
    /// A `block` threshold would be reached.
    Threshold,
}

/// Cumulative totals around a decision.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Lineage, lifetime.
    pub lineage_flop: f64,
    /// Customer within [`LedgerLimits::window`](crate::LedgerLimits::window).
    pub customer_window_flop: f64,
    /// Customer within [`ThresholdPolicy::window`](crate::ThresholdPolicy::window).
    pub customer_flop: f64,
    /// Organization within the threshold window, when the customer has one.
    pub organization_flop: Option<f64>,
    /// Linked group (or the customer alone) within the threshold window.
    pub group_flop: f64,
    /// The customer's reserved or running jobs; counted only when a concurrency cap applies.
    pub open_jobs: Option<u64>,
}

/// A threshold crossed: `previous < threshold_flop <= projected`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Crossing {
    /// The rule's label.
    pub label: String,
    /// The rule's FLOP.
    pub threshold_flop: f64,
    /// The rule's scope.
    pub scope: Scope,
    /// Lineage root, customer, organization or group id.
    pub scope_id: Uuid,
    /// The rule's action.
    pub action: Action,
    /// Total before.
    pub previous_flop: f64,
    /// Total after.
    pub projected_flop: f64,
    /// Days until a report for it is due (from the rule).
    pub report_due_days: u32,
}

// === impl DenialReason ===

impl DenialReason {
    /// Bounded name for metrics and problem details.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::RunCap => "run_cap",
            DenialReason::CustomerWindowCap => "customer_window_cap",
            DenialReason::ConcurrentJobs { .. } => "concurrent_jobs",
            DenialReason::Threshold => "threshold",
        }
    }
}

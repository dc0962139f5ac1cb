//! The policy in force as staff read it: its version and date, each tier's caps and required
//! evidence, and each threshold with its FLOP, scopes, actions, the source it rests on and that
//! source's legal standing (in force, proposed, recommended, revoked).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::Staff;
use crate::api::ApiState;
use crate::verification::Verification;
use crate::web::{Chrome, render};

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    chrome: Chrome,
    version: String,
    effective_from: String,
    description: String,
    tiers: Vec<TierLine>,
    thresholds: Vec<ThresholdLine>,
}

struct TierLine {
    name: String,
    description: String,
    max_accelerators: String,
    max_flop_per_run: String,
    max_flop_per_window: String,
    window: String,
    requires: String,
    reverify: String,
}

struct ThresholdLine {
    label: String,
    flop: String,
    scopes: String,
    actions: String,
    source: String,
    status: String,
    applies_when: String,
    report_due_days: u32,
    notes: String,
}

/// The policy route.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/policy", get(policy))
}

fn or_none<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "no cap".to_owned(), |v| v.to_string())
}

async fn policy(State(kyc): State<Arc<Verification>>, staff: Staff) -> Response {
    let policy = kyc.policy_in_force();
    let tiers = policy
        .tiers()
        .iter()
        .map(|t| TierLine {
            name: t.name.clone(),
            description: t.description.clone(),
            max_accelerators: or_none(t.max_accelerators_per_job),
            max_flop_per_run: or_none(t.max_flop_per_run.map(|f| format!("{f:e}"))),
            max_flop_per_window: or_none(t.max_flop_per_customer_window.map(|f| format!("{f:e}"))),
            window: humantime::format_duration(t.window).to_string(),
            requires: t
                .requires
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reverify: t.reverify_every.map_or_else(
                || "never".to_owned(),
                |d| humantime::format_duration(d).to_string(),
            ),
        })
        .collect();
    let thresholds = policy
        .thresholds()
        .iter()
        .map(|t| ThresholdLine {
            label: t.label.clone(),
            flop: format!("{:e}", t.flop),
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            actions: t
                .actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            source: t.source.clone(),
            status: t.status.as_str().replace('_', " "),
            applies_when: t
                .applies_when
                .map_or_else(|| "always".to_owned(), |c| format!("{c:?}")),
            report_due_days: t.report_due_days,
            notes: t.notes.clone(),
        })
        .collect();
    render(&PolicyPage {
        chrome: staff.chrome("Policy in force", "policy"),
        version: policy.version().to_owned(),
        effective_from: policy.effective_from().to_string(),
        description: policy.description().to_owned(),
        tiers,
        thresholds,
    })
}

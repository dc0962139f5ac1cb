//! Usage and jobs: the customer's totals against every budget they are counted in (run
//! lineage, customer, organization, linked group) with the thresholds ahead and what crossing
//! each means, the open jobs against the tier's concurrency cap, the jobs with their estimated,
//! measured and charged FLOP, and the notices (crossed `notify` thresholds). One call to the
//! metering service's usage view, the same the JSON API answers.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::display::{date, flop};
use super::session::SignedIn;
use crate::api::error::ApiError;
use crate::metering::Metering;
use crate::metering::usage_view::{ScopeView, UsageView};
use crate::web::{Chrome, WebError, render};

#[derive(Template)]
#[template(path = "portal/usage.html")]
struct UsagePage {
    chrome: Chrome,
    tier: String,
    policy_version: String,
    open_jobs: String,
    scopes: Vec<ScopeRow>,
    /// `(id, run, status, decision, estimate, measured, charged, decided)`.
    jobs: Vec<[String; 8]>,
    /// `(when, message)`.
    notices: Vec<(String, String)>,
}

struct ScopeRow {
    title: String,
    window: String,
    total: String,
    cap: String,
    remaining: String,
    /// Per cent of the cap used (0–100), when there is a cap.
    used_percent: Option<u64>,
    /// `(label, at, remaining, meaning)`.
    ahead: Vec<(String, String, String, String)>,
}

/// `GET /usage`.
pub(crate) async fn page(
    State(metering): State<Arc<Metering>>,
    me: SignedIn,
) -> Result<Response, WebError> {
    let p = &me.caller.principal;
    let view = metering
        .customer_usage(me.caller.customer_id, me.organization_id(), &p.tier)
        .await
        .map_err(ApiError::from)?;
    Ok(render(&page_of(me.chrome("Usage and jobs", "usage"), view)))
}

fn page_of(chrome: Chrome, view: UsageView) -> UsagePage {
    let c = &view.concurrent_jobs;
    UsagePage {
        chrome,
        open_jobs: match c.cap {
            Some(cap) => format!("{} of {cap}", c.open),
            None => format!("{} (no cap)", c.open),
        },
        scopes: view.scopes.iter().map(scope_row).collect(),
        jobs: (view.jobs.iter())
            .map(|j| {
                [
                    j.id.to_string(),
                    j.run_id.clone(),
                    j.status.as_str().replace('_', " "),
                    decision_words(&j.decision),
                    flop(j.estimate_flop),
                    flop(j.measured_flop),
                    flop(j.charged_flop),
                    date(j.decided_at),
                ]
            })
            .collect(),
        notices: (view.notices.iter())
            .map(|n| (date(n.at), n.message.clone()))
            .collect(),
        tier: view.tier,
        policy_version: view.policy_version,
    }
}

/// The ledger's decision code in words (the codes of `kyc::ledger`'s admission record).
fn decision_words(code: &str) -> String {
    match code {
        "admitted" => "Admitted".into(),
        "admitted_after_review" => "Admitted after review".into(),
        "held_for_review" => "Held for review by compliance staff".into(),
        "denied_run_cap" => {
            "Refused: the training run would pass your tier's FLOP-per-run cap".into()
        }
        "denied_customer_window_cap" => {
            "Refused: your compute in the rolling window would pass your tier's cap".into()
        }
        "denied_concurrent_jobs" => "Refused: your tier's limit of jobs at once is reached".into(),
        "denied_threshold" => "Refused: a blocking compute threshold would be crossed".into(),
        other => other.replace('_', " "),
    }
}

fn scope_row(s: &ScopeView) -> ScopeRow {
    let title = match s.scope {
        "run" => format!("Training run {}", s.run_id.as_deref().unwrap_or_default()),
        "customer" => "You".into(),
        "organization" => "Your organization".into(),
        "group" => "Linked accounts".into(),
        other => other.to_owned(),
    };
    ScopeRow {
        title,
        window: s.window.clone().unwrap_or_else(|| "lifetime".into()),
        total: flop(s.total_flop),
        cap: s.cap_flop.map_or_else(|| "no cap".into(), flop),
        remaining: s.remaining_flop.map_or_else(|| "—".into(), flop),
        used_percent: s
            .cap_flop
            .filter(|c| *c > 0.0)
            .map(|c| ((s.total_flop / c) * 100.0).clamp(0.0, 100.0) as u64),
        ahead: (s.thresholds_ahead.iter())
            .map(|t| {
                (
                    t.label.clone(),
                    flop(t.flop),
                    flop(t.remaining_flop),
                    t.means.join("; "),
                )
            })
            .collect(),
    }
}

//! Onfido as it really sends: its webhooks carry no result, only a notice that a resource
//! changed (`{"payload":{"resource_type","action","object":{"id","status",
//! "completed_at_iso8601","href"}}}`, API v3.6), so the outcome is read from the resource
//! itself through Onfido's API. This module holds the pure half of that: which notices matter
//! ([`notice`]), where the resource lives ([`OnfidoRegion`], [`OnfidoResource::path`]) and
//! what a fetched resource means for us ([`resolve`]). The fetching, retrying and recording
//! live with the caller (the durable queue in `idv_fetches`, the HTTP client in the binary).
//!
//! The application a resource concerns is the one whose id the integration put in the
//! check's or workflow run's `tags` when it created it (`POST /v3.6/checks` or
//! `POST /v3.6/workflow_runs` with `"tags": ["<application id>"]`): both resources carry
//! `tags` (API v3.6 `check_shared.tags`, `workflow_run_shared.tags`), the applicant has no
//! free field of its own.

use std::str::FromStr;

use uuid::Uuid;

use super::webhooks::{IdvOutcome, WebhookError};
use crate::names::{UnknownName, stored_enum};

/// Onfido's API regions (`https://api.{region}.onfido.com/v3.6`, API v3.6 `servers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnfidoRegion {
    /// Europe (`api.eu.onfido.com`), Onfido's default.
    Eu,
    /// United States (`api.us.onfido.com`).
    Us,
    /// Canada (`api.ca.onfido.com`).
    Ca,
}

/// A resource whose completion Onfido announces and whose state we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnfidoResource {
    /// A check (`check.completed`): `result` is `clear` or `consider`.
    Check,
    /// A report (`report.completed`): decided by its check (`check_id`).
    Report,
    /// An Onfido Studio workflow run (`workflow_run.completed`).
    WorkflowRun,
}

/// A verified Onfido notice that needs its resource fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnfidoNotice {
    /// The kind of resource.
    pub resource: OnfidoResource,
    /// Its id (`payload.object.id`).
    pub id: Uuid,
    /// The idempotency key of the delivery: `<action>:<object id>` (Onfido sends no event id).
    pub event_id: String,
}

/// What a fetched resource means for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A final outcome for an application.
    Outcome {
        /// The idempotency key of the outcome: `check:<id>` or `workflow_run:<id>`, so a
        /// check announced by several notices (its reports and itself) is recorded once.
        key: String,
        /// The application named in the resource's tags.
        application_id: Uuid,
        /// The outcome.
        outcome: IdvOutcome,
    },
    /// A report: its check decides; fetch that.
    FollowCheck(Uuid),
    /// The resource is not finished yet (a report completed before its check): nothing to
    /// record; the check's own `check.completed` will follow.
    NotFinal,
}

/// Why a fetched resource could not be used. Neither gets better by asking again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The body is not the documented shape (a field missing or of an unknown value).
    #[error("Onfido resource is not the documented shape: {0}")]
    Malformed(&'static str),
    /// No tag names an application.
    #[error("Onfido resource carries no application id in its tags")]
    MissingReference,
}

// === impl OnfidoRegion ===

impl OnfidoRegion {
    /// The API base URL of the region, version included, without a trailing slash.
    pub fn base_url(self) -> &'static str {
        match self {
            OnfidoRegion::Eu => "https://api.eu.onfido.com/v3.6",
            OnfidoRegion::Us => "https://api.us.onfido.com/v3.6",
            OnfidoRegion::Ca => "https://api.ca.onfido.com/v3.6",
        }
    }
}

impl FromStr for OnfidoRegion {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<OnfidoRegion, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "eu" => Ok(OnfidoRegion::Eu),
            "us" => Ok(OnfidoRegion::Us),
            "ca" => Ok(OnfidoRegion::Ca),
            _ => Err(UnknownName),
        }
    }
}

// === impl OnfidoResource ===

stored_enum!(OnfidoResource {
    Check => "check",
    Report => "report",
    WorkflowRun => "workflow_run",
});

impl OnfidoResource {
    /// The collection path under the API base URL (`/checks/{id}`, …).
    pub fn path(self) -> &'static str {
        match self {
            OnfidoResource::Check => "checks",
            OnfidoResource::Report => "reports",
            OnfidoResource::WorkflowRun => "workflow_runs",
        }
    }

    /// The URL of resource `id` under `base` (a region's [`OnfidoRegion::base_url`] or a
    /// configured one). The id is a UUID, so it cannot leave the collection; the event's own
    /// `href` is never followed, so a signed body cannot point us at another host.
    pub fn url(self, base: &str, id: Uuid) -> String {
        format!("{}/{}/{}", base.trim_end_matches('/'), self.path(), id)
    }
}

/// Maps a verified Onfido body to the resource to fetch; `Ok(None)` for actions we do not
/// consume (acknowledged, nothing stored).
pub fn notice(v: &serde_json::Value) -> Result<Option<OnfidoNotice>, WebhookError> {
    let payload = &v["payload"];
    let action = payload["action"]
        .as_str()
        .ok_or(WebhookError::MalformedPayload)?;
    let resource = match action {
        "check.completed" => OnfidoResource::Check,
        "report.completed" => OnfidoResource::Report,
        "workflow_run.completed" => OnfidoResource::WorkflowRun,
        _ => return Ok(None),
    };
    let id = payload["object"]["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(WebhookError::MalformedPayload)?;
    Ok(Some(OnfidoNotice {
        resource,
        id,
        event_id: format!("{action}:{id}"),
    }))
}

/// What the fetched `body` of `resource` means (API v3.6 `check`, `report`, `workflow_run`).
pub fn resolve(
    resource: OnfidoResource,
    body: &serde_json::Value,
) -> Result<Resolved, ResolveError> {
    let id = body["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(ResolveError::Malformed("id"))?;
    let status = body["status"]
        .as_str()
        .ok_or(ResolveError::Malformed("status"))?;
    match resource {
        OnfidoResource::Report => body["check_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(Resolved::FollowCheck)
            .ok_or(ResolveError::Malformed("check_id")),
        OnfidoResource::Check => {
            if status != "complete" {
                return Ok(Resolved::NotFinal);
            }
            let outcome = match body["result"].as_str() {
                Some("clear") => IdvOutcome::Verified,
                // `consider`: something needs a person's look, not a refusal by itself.
                Some("consider") => IdvOutcome::RequiresInput,
                _ => return Err(ResolveError::Malformed("result")),
            };
            Ok(Resolved::Outcome {
                key: format!("check:{id}"),
                application_id: tagged_application(body)?,
                outcome,
            })
        }
        OnfidoResource::WorkflowRun => {
            let Some(outcome) = workflow_outcome(status)? else {
                return Ok(Resolved::NotFinal);
            };
            Ok(Resolved::Outcome {
                key: format!("workflow_run:{id}"),
                application_id: tagged_application(body)?,
                outcome,
            })
        }
    }
}

/// A workflow run's status as our outcome; `None` while it runs.
fn workflow_outcome(status: &str) -> Result<Option<IdvOutcome>, ResolveError> {
    Ok(Some(match status {
        "approved" => IdvOutcome::Verified,
        "declined" => IdvOutcome::Failed,
        // A person must look (review); the applicant left before the end (abandoned) and may
        // start again; Onfido's own failure (error) says nothing against the applicant.
        "review" | "abandoned" | "error" => IdvOutcome::RequiresInput,
        "awaiting_input" | "processing" => return Ok(None),
        _ => return Err(ResolveError::Malformed("status")),
    }))
}

/// The first tag that is a UUID: the application id the integration set.
fn tagged_application(body: &serde_json::Value) -> Result<Uuid, ResolveError> {
    body["tags"]
        .as_array()
        .and_then(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str())
                .find_map(|t| Uuid::parse_str(t.trim()).ok())
        })
        .ok_or(ResolveError::MissingReference)
}

#[cfg(test)]
mod tests;

//! The simulator's HTTP surface: the router, and the catalog and job handlers (the shared state is
//! in `state`).
//! Streaming, transfer and diagnostic endpoints live in their own modules.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use uuid::Uuid;

use super::clock::SimTime;
use super::error::SimError;
use super::jobs::{Job, Status, progress};
use super::spec::{self, DatasetSpec, ModelSpec};
use super::state::{Sim, caller, not_found, parse_id, path_id};
use super::store::CancelError;
use super::{console, datasets, diagnostics, logs};

/// A job as served by the API, at one instant.
#[derive(Debug, Serialize)]
struct JobView {
    id: Uuid,
    gpu_type: &'static str,
    gpu_count: u32,
    max_duration_hours: f64,
    run_id: String,
    parent_run_id: Option<String>,
    model: Option<ModelSpec>,
    dataset: Option<DatasetSpec>,
    status: Status,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// Simulated accelerator-seconds consumed so far.
    accelerator_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
}

/// Builds the simulator's router.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/ping", get(diagnostics::ping))
        .route("/v1/gpus", get(gpus))
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/v1/jobs/{id}/logs", get(logs::stream))
        .route("/v1/jobs/{id}/attach", any(console::attach))
        .route(
            "/v1/datasets",
            post(datasets::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/datasets/synthetic", get(datasets::synthetic))
        .route("/v1/slow", get(diagnostics::slow))
        .route("/v1/echo", any(diagnostics::echo))
        .route("/v1/echo/{*rest}", any(diagnostics::echo))
        .fallback(diagnostics::not_found)
        .method_not_allowed_fallback(diagnostics::method_not_allowed)
        .with_state(sim)
}

// === impl Sim ===

impl Sim {
    fn view(&self, job: &Job, now: SimTime) -> JobView {
        let state = progress(job, now);
        let stamp = |t: SimTime| self.clock.timestamp(t);
        JobView {
            id: job.id,
            gpu_type: job.spec.gpu.id,
            gpu_count: job.spec.gpu_count,
            max_duration_hours: job.spec.max_duration_hours,
            run_id: job.spec.run_id.clone(),
            parent_run_id: job.spec.parent_run_id.clone(),
            model: job.spec.model.clone(),
            dataset: job.spec.dataset.clone(),
            status: state.status,
            created_at: stamp(job.submitted_at),
            started_at: state.started_at.map(stamp),
            finished_at: state.finished_at.map(stamp),
            accelerator_seconds: (state.accelerator_seconds * 1000.0).round() / 1000.0,
            failure_reason: state.failure_reason,
        }
    }
}

async fn gpus(State(sim): State<Arc<Sim>>) -> Response {
    let now = sim.clock.now();
    let catalog = sim.jobs().availability(now);
    Json(catalog).into_response()
}

async fn create_job(
    State(sim): State<Arc<Sim>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, SimError> {
    let body = body.map_err(|rejection| SimError::Body {
        status: rejection.status(),
        detail: rejection.body_text(),
    })?;
    let spec = spec::parse(&body)?;
    let id = Uuid::now_v7();
    let now = sim.clock.now();
    let view = {
        let mut table = sim.jobs();
        let job = table.submit(id, spec, now)?;
        job.owner = caller(&headers);
        sim.view(job, now)
    };
    tracing::debug!(job = %id, gpu_type = view.gpu_type, gpu_count = view.gpu_count, "job submitted");
    // A job admitted by the gateway carries its ledger id: report its usage back.
    let ledger_job = headers
        .get("x-computegate-job")
        .and_then(|v| v.to_str().ok());
    if let (Some(reporting), Some(ledger_job)) = (sim.usage(), ledger_job) {
        let task = super::usage::report(sim.clone(), id, ledger_job.to_string(), reporting.clone());
        tokio::spawn(task);
    }
    let location = [(header::LOCATION, format!("/v1/jobs/{id}"))];
    Ok((StatusCode::CREATED, location, Json(view)).into_response())
}

async fn list_jobs(State(sim): State<Arc<Sim>>, headers: axum::http::HeaderMap) -> Response {
    let now = sim.clock.now();
    let who = caller(&headers);
    let views: Vec<JobView> = {
        let table = sim.jobs();
        table
            .iter()
            .filter(|job| job.visible_to(who.as_deref()))
            .map(|job| sim.view(job, now))
            .collect()
    };
    Json(views).into_response()
}

async fn get_job(
    State(sim): State<Arc<Sim>>,
    path: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, SimError> {
    let id = path_id(path)?;
    let who = caller(&headers);
    let view = sim.with_job(&id, who.as_deref(), |job, now| sim.view(job, now))?;
    Ok(Json(view).into_response())
}

async fn cancel_job(
    State(sim): State<Arc<Sim>>,
    path: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, SimError> {
    let id = path_id(path)?;
    let uuid = parse_id(&id)?;
    let now = sim.clock.now();
    let who = caller(&headers);
    let view = {
        let mut table = sim.jobs();
        if !table
            .get(&uuid)
            .is_some_and(|j| j.visible_to(who.as_deref()))
        {
            return Err(not_found(&id));
        }
        match table.cancel(&uuid, now) {
            Ok(job) => sim.view(job, now),
            Err(CancelError::NotFound) => return Err(not_found(&id)),
            Err(CancelError::Ended(ended)) => return Err(SimError::JobEnded { id, ended }),
        }
    };
    tracing::debug!(job = %uuid, "job cancelled");
    Ok(Json(view).into_response())
}

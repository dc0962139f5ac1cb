//! The simulator's shared state: the clock, the job table, the shutdown signal and where usage
//! is reported, with the job-id parsing every handler module uses. The router and handlers are in
//! `routes` and the streaming modules; they import from here, never the other way round.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use tokio::sync::watch;
use uuid::Uuid;

use super::clock::{SimClock, SimTime};
use super::error::SimError;
use super::jobs::Job;
use super::store::JobTable;

/// State shared by all requests.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) clock: SimClock,
    jobs: Mutex<JobTable>,
    shutdown: watch::Receiver<bool>,
    usage: Option<Arc<UsageReporting>>,
}

/// Where and how the simulator reports usage.
#[derive(Debug, Clone)]
pub struct UsageReporting {
    /// `http://host:port/computegate/v1/meter/usage`.
    pub url: http::Uri,
    /// The shared signing secret (`COMPUTEGATE_USAGE_SECRET` on the gateway).
    pub secret: String,
    /// Real time between reports.
    pub interval: Duration,
}

// === impl Sim ===

impl Sim {
    /// State for a simulator on `clock` that stops streaming once `shutdown` turns true.
    pub(crate) fn new(
        clock: SimClock,
        shutdown: watch::Receiver<bool>,
        usage: Option<UsageReporting>,
    ) -> Self {
        Sim {
            clock,
            jobs: Mutex::new(JobTable::default()),
            shutdown,
            usage: usage.map(Arc::new),
        }
    }

    /// The job table. Critical sections are short and never span an `.await`.
    pub(crate) fn jobs(&self) -> MutexGuard<'_, JobTable> {
        // A panic while holding the lock cannot leave the table half-updated (each operation
        // mutates one map entry last), so a poisoned lock is still consistent.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver that turns true when the simulator shuts down.
    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Looks up job `id` (as given in a path) as `caller` sees it (another customer's job is
    /// not found) and renders `f` of it, under the lock.
    pub(crate) fn with_job<T>(
        &self,
        id: &str,
        caller: Option<&str>,
        f: impl FnOnce(&Job, SimTime) -> T,
    ) -> Result<T, SimError> {
        let uuid = parse_id(id)?;
        let now = self.clock.now();
        let table = self.jobs();
        let job = table
            .get(&uuid)
            .filter(|j| j.visible_to(caller))
            .ok_or_else(|| not_found(id))?;
        Ok(f(job, now))
    }

    /// Where usage is reported, when it is.
    pub(crate) fn usage(&self) -> Option<&Arc<UsageReporting>> {
        self.usage.as_ref()
    }
}

/// The verified customer the gateway forwarded (`X-Computegate-Customer`), if any. The gateway
/// strips client-sent `X-Computegate-*` headers, so behind it this is the authenticated caller.
pub(crate) fn caller(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("x-computegate-customer")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The job id in a path, or the 404 it earns.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, SimError> {
    Uuid::try_parse(id).map_err(|_| not_found(id))
}

/// The 404 of job `id`.
pub(crate) fn not_found(id: &str) -> SimError {
    SimError::JobNotFound(id.to_owned())
}

/// The `{id}` path segment, or the 404 a malformed one earns.
pub(crate) fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, SimError> {
    path.map(|Path(id)| id)
        .map_err(|rejection| SimError::JobNotFound(rejection.body_text()))
}

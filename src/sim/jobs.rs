//! Simulated training jobs: how a job progresses over simulated time and what its log says.
//!
//! A job stores only what was decided (its spec, when it was submitted, when it was cancelled);
//! everything observable — status, start and finish times, accelerator-seconds, log lines — is
//! computed by [`progress`] and [`logs`] from a simulated `now`. That keeps the timeline exact at
//! any speed-up and lets a usage meter sample jobs without the jobs doing anything.
//!
//! Timeline: submitted → queued for [`PROVISIONING_SECS`] → running for `max_duration_hours` →
//! succeeded. A job whose model cannot fit in its GPUs' memory (16 bytes per parameter: weights,
//! gradients and Adam state in mixed precision) fails [`OOM_AFTER_SECS`] after it starts. A
//! cancellation before the end ends it then.

use serde::Serialize;
use uuid::Uuid;

use super::clock::SimTime;
use super::spec::JobSpec;

/// Simulated seconds a job waits for its machines before running.
pub(crate) const PROVISIONING_SECS: f64 = 30.0;
/// Simulated seconds between two training log lines.
pub(crate) const LOG_INTERVAL_SECS: f64 = 300.0;
/// Simulated seconds per optimizer step.
const STEP_SECS: f64 = 3.0;
/// Simulated seconds of running before a job whose model does not fit fails.
pub(crate) const OOM_AFTER_SECS: f64 = 45.0;
/// Accelerator memory a parameter needs in mixed-precision Adam training, bytes.
const BYTES_PER_PARAMETER: f64 = 16.0;
const GIB: f64 = (1u64 << 30) as f64;

/// A submitted job: what was asked and what happened to it, not its derived state.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: Uuid,
    pub(crate) spec: JobSpec,
    pub(crate) submitted_at: SimTime,
    cancelled_at: Option<SimTime>,
    /// The verified customer that submitted it (`X-Computegate-Customer` from the gateway);
    /// `None` for a job submitted without one (directly on the simulator's network).
    pub(crate) owner: Option<String>,
}

/// Lifecycle status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Queued,
    Running,
    Succeeded,
    Cancelled,
    Failed,
}

/// A job as observed at one simulated instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobState {
    pub(crate) status: Status,
    pub(crate) started_at: Option<SimTime>,
    pub(crate) finished_at: Option<SimTime>,
    /// Simulated seconds the job has run (so far, or in total once ended).
    pub(crate) run_secs: f64,
    /// `gpu_count × run_secs`.
    pub(crate) accelerator_seconds: f64,
    /// Why the job failed, when it did.
    pub(crate) failure_reason: Option<String>,
}

/// Log lines visible at some instant, from a given index on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogBatch {
    /// The new lines, without line terminators.
    pub(crate) lines: Vec<String>,
    /// Index of the next line not yet returned.
    pub(crate) next: usize,
    /// The final status once the log is complete.
    pub(crate) end: Option<Status>,
    /// When the next line is due if the job is not cancelled (meaningless once ended).
    pub(crate) next_at: SimTime,
}

/// Cancelling a job that has already ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("job already {0:?}")]
pub(crate) struct JobEnded(pub(crate) Status);

// === impl Status ===

impl Status {
    /// Whether the job holds its GPUs (queued or running).
    pub(crate) fn is_active(self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }

    /// Lower-case name as in the API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }
}

// === impl Job ===

impl Job {
    /// A job submitted at `now`.
    pub(crate) fn new(id: Uuid, spec: JobSpec, now: SimTime) -> Self {
        Job {
            id,
            spec,
            submitted_at: now,
            cancelled_at: None,
            owner: None,
        }
    }

    /// Whether `caller` may see and act on the job: a caller with a verified identity sees only
    /// its own jobs; a request without one (the operator, on the simulator's own network) sees
    /// every job.
    pub(crate) fn visible_to(&self, caller: Option<&str>) -> bool {
        caller.is_none_or(|c| self.owner.as_deref() == Some(c))
    }

    /// Cancels the job at `now`, unless it has already ended.
    pub(crate) fn cancel(&mut self, now: SimTime) -> Result<(), JobEnded> {
        let status = progress(self, now).status;
        if !status.is_active() {
            return Err(JobEnded(status));
        }
        self.cancelled_at = Some(now);
        Ok(())
    }

    fn start_at(&self) -> SimTime {
        self.submitted_at.plus(PROVISIONING_SECS)
    }

    /// When and how the job ends if nobody cancels it.
    fn planned_end(&self) -> (SimTime, Status) {
        if self.out_of_memory().is_some() {
            (self.start_at().plus(OOM_AFTER_SECS), Status::Failed)
        } else {
            let secs = self.spec.max_duration_hours * 3600.0;
            (self.start_at().plus(secs), Status::Succeeded)
        }
    }

    /// `(needed, available)` GiB when the model does not fit in the job's accelerators.
    fn out_of_memory(&self) -> Option<(f64, f64)> {
        let params = self.spec.model.as_ref()?.parameters;
        let needed = params * BYTES_PER_PARAMETER / GIB;
        let available = f64::from(self.spec.gpu.memory_gib) * f64::from(self.spec.gpu_count);
        (needed > available).then_some((needed, available))
    }
}

/// The state of `job` at simulated time `now`.
pub(crate) fn progress(job: &Job, now: SimTime) -> JobState {
    let start = job.start_at();
    let (mut end, mut outcome) = job.planned_end();
    if let Some(cancelled) = job.cancelled_at.filter(|c| *c < end) {
        (end, outcome) = (cancelled, Status::Cancelled);
    }
    let ended = now >= end;
    let until = if ended { end } else { now };
    let started_at = (until > start || (!ended && until >= start)).then_some(start);
    let status = match (ended, started_at) {
        (true, _) => outcome,
        (false, Some(_)) => Status::Running,
        (false, None) => Status::Queued,
    };
    let run_secs = until.secs_since(start);
    let failure_reason = (status == Status::Failed)
        .then(|| job.out_of_memory())
        .flatten()
        .map(|(needed, available)| {
            format!(
                "CUDA out of memory: model needs {needed:.0} GiB, {} x {} have {available:.0} GiB",
                job.spec.gpu_count, job.spec.gpu.id
            )
        });
    JobState {
        status,
        started_at,
        finished_at: ended.then_some(end),
        run_secs,
        accelerator_seconds: run_secs * f64::from(job.spec.gpu_count),
        failure_reason,
    }
}

/// The log lines of `job` that exist at `now`, from the `from`-th on.
///
/// Line 0 announces provisioning; then one training line every [`LOG_INTERVAL_SECS`] of run time
/// from the start; then one closing line once the job ended. `t=` is simulated seconds since
/// submission.
pub(crate) fn logs(job: &Job, now: SimTime, from: usize) -> LogBatch {
    let state = progress(job, now);
    let ended = !state.status.is_active();
    let training = match (state.started_at, ended) {
        (None, _) => 0,
        // Lines at k × interval strictly before the end.
        (Some(_), true) => (state.run_secs / LOG_INTERVAL_SECS).ceil() as usize,
        // Lines at k × interval up to now.
        (Some(_), false) => (state.run_secs / LOG_INTERVAL_SECS).floor() as usize + 1,
    };
    let total = 1 + training + usize::from(ended);
    let lines = (from..total)
        .map(|i| match i {
            0 => format!(
                "[sim t=0s] job {} queued: provisioning {} x {} for run {}",
                job.id, job.spec.gpu_count, job.spec.gpu.name, job.spec.run_id
            ),
            i if i <= training => training_line(i - 1),
            _ => closing_line(job, &state),
        })
        .collect();
    let next_at = job
        .start_at()
        .plus(training as f64 * LOG_INTERVAL_SECS)
        .earliest(job.planned_end().0);
    LogBatch {
        lines,
        next: total.max(from),
        end: ended.then_some(state.status),
        next_at,
    }
}

fn training_line(k: usize) -> String {
    let run = k as f64 * LOG_INTERVAL_SECS;
    let step = (run / STEP_SECS) as u64;
    format!(
        "[sim t={:.0}s] step {step} loss {:.4}",
        PROVISIONING_SECS + run,
        loss(step)
    )
}

fn closing_line(job: &Job, state: &JobState) -> String {
    let t = state
        .finished_at
        .map_or(0.0, |end| end.secs_since(job.submitted_at));
    let step = (state.run_secs / STEP_SECS) as u64;
    match (&state.failure_reason, state.started_at) {
        (Some(reason), _) => format!("[sim t={t:.0}s] job failed at step {step}: {reason}"),
        (None, None) => format!("[sim t={t:.0}s] job {} before start", state.status.as_str()),
        (None, Some(_)) => format!(
            "[sim t={t:.0}s] job {} at step {step} loss {:.4} after {:.0}s ({:.0} accelerator-seconds)",
            state.status.as_str(),
            loss(step),
            state.run_secs,
            state.accelerator_seconds
        ),
    }
}

/// A plausible, deterministic training-loss curve: a power law from ~ln(vocabulary) with ripple.
fn loss(step: u64) -> f64 {
    let s = step as f64;
    1.8 + 9.0 * (1.0 + s / 100.0).powf(-0.35) + 0.02 * (s * 0.7).sin()
}

#[cfg(test)]
mod tests;

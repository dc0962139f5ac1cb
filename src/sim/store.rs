//! The simulator's job table: submission against fleet capacity, lookup, cancellation, and
//! bounded retention of ended jobs. Plain data over a simulated `now`; the HTTP layer holds it
//! behind a mutex.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::catalog::{self, CapacityError, GpuAvailability};
use super::clock::SimTime;
use super::jobs::{Job, JobEnded, progress};
use super::spec::JobSpec;

/// Ended jobs kept for `GET /v1/jobs`; older ended jobs are forgotten past this. Active jobs are
/// bounded by the fleet size (each holds at least one accelerator), so the table is bounded.
pub(crate) const MAX_RETAINED_JOBS: usize = 10_000;

/// All jobs, keyed by id. Ids are UUIDv7, so key order is submission order.
#[derive(Debug)]
pub(crate) struct JobTable {
    jobs: BTreeMap<Uuid, Job>,
    retain: usize,
}

/// Why a cancellation did not happen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CancelError {
    /// No job has that id.
    #[error("no such job")]
    NotFound,
    /// The job had already ended.
    #[error(transparent)]
    Ended(#[from] JobEnded),
}

// === impl JobTable ===

impl Default for JobTable {
    fn default() -> Self {
        JobTable::retaining(MAX_RETAINED_JOBS)
    }
}

impl JobTable {
    /// An empty table that keeps at most `retain` jobs once they have ended.
    pub(crate) fn retaining(retain: usize) -> Self {
        JobTable {
            jobs: BTreeMap::new(),
            retain,
        }
    }

    /// Submits a job at `now` if its accelerators are free, and returns it.
    pub(crate) fn submit(
        &mut self,
        id: Uuid,
        spec: JobSpec,
        now: SimTime,
    ) -> Result<&mut Job, CapacityError> {
        catalog::check_capacity(spec.gpu, self.in_use(spec.gpu.id, now), spec.gpu_count)?;
        self.prune(now);
        Ok(self.jobs.entry(id).or_insert(Job::new(id, spec, now)))
    }

    /// The job with this id.
    pub(crate) fn get(&self, id: &Uuid) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Cancels the job with this id at `now`, and returns it.
    pub(crate) fn cancel(&mut self, id: &Uuid, now: SimTime) -> Result<&Job, CancelError> {
        let job = self.jobs.get_mut(id).ok_or(CancelError::NotFound)?;
        job.cancel(now)?;
        Ok(job)
    }

    /// All jobs in submission order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Accelerators of `gpu_type` that active jobs hold at `now`.
    pub(crate) fn in_use(&self, gpu_type: &str, now: SimTime) -> u32 {
        self.jobs
            .values()
            .filter(|j| j.spec.gpu.id == gpu_type && progress(j, now).status.is_active())
            .map(|j| j.spec.gpu_count)
            .sum()
    }

    /// The catalog with what is free at `now`.
    pub(crate) fn availability(&self, now: SimTime) -> Vec<GpuAvailability> {
        catalog::availability(|gpu_type| self.in_use(gpu_type, now))
    }

    /// Forgets the oldest ended jobs while the table is full.
    fn prune(&mut self, now: SimTime) {
        let excess = (self.jobs.len() + 1).saturating_sub(self.retain);
        if excess == 0 {
            return;
        }
        let ended: Vec<Uuid> = self
            .jobs
            .values()
            .filter(|j| !progress(j, now).status.is_active())
            .map(|j| j.id)
            .take(excess)
            .collect();
        for id in ended {
            self.jobs.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::jobs::{PROVISIONING_SECS, Status};

    fn spec(gpu_type: &str, gpu_count: u32) -> JobSpec {
        JobSpec {
            gpu: catalog::find(gpu_type).expect("known type"),
            gpu_count,
            max_duration_hours: 1.0,
            run_id: "run-1".into(),
            parent_run_id: None,
            model: None,
            dataset: None,
        }
    }

    fn t(secs: f64) -> SimTime {
        SimTime::from_secs(secs)
    }

    fn free(table: &JobTable, gpu_type: &str, now: SimTime) -> u32 {
        let cat = table.availability(now);
        cat.iter()
            .find(|e| e.gpu_type == gpu_type)
            .expect("known type")
            .free
    }

    #[test]
    fn running_jobs_hold_gpus_until_they_end() {
        let mut table = JobTable::default();
        table
            .submit(Uuid::now_v7(), spec("h100", 500), t(0.0))
            .expect("fits");
        assert_eq!(free(&table, "h100", t(1.0)), 12);
        assert_eq!(free(&table, "a100", t(1.0)), 256);
        let err = table.submit(Uuid::now_v7(), spec("h100", 16), t(1.0));
        assert_eq!(
            err.map(|j| j.id),
            Err(CapacityError::NotEnoughFree {
                gpu_type: "h100",
                requested: 16,
                free: 12
            })
        );
        let end = t(PROVISIONING_SECS + 3600.0);
        assert_eq!(free(&table, "h100", end), 512);
        table
            .submit(Uuid::now_v7(), spec("h100", 16), end)
            .expect("freed");
    }

    #[test]
    fn cancel_frees_gpus() {
        let mut table = JobTable::default();
        let id = table
            .submit(Uuid::now_v7(), spec("b200", 128), t(0.0))
            .expect("fits")
            .id;
        assert_eq!(free(&table, "b200", t(100.0)), 0);
        let job = table.cancel(&id, t(100.0)).expect("active");
        assert_eq!(progress(job, t(100.0)).status, Status::Cancelled);
        assert_eq!(free(&table, "b200", t(100.0)), 128);
        assert_eq!(
            table.cancel(&id, t(101.0)).map(|j| j.id),
            Err(CancelError::Ended(JobEnded(Status::Cancelled)))
        );
        assert_eq!(
            table.cancel(&Uuid::nil(), t(101.0)).map(|j| j.id),
            Err(CancelError::NotFound)
        );
    }

    #[test]
    fn listing_is_in_submission_order() {
        let mut table = JobTable::default();
        let ids: Vec<Uuid> = (0..5)
            .map(|i| {
                let id = Uuid::now_v7();
                table
                    .submit(id, spec("a100", 1), t(f64::from(i)))
                    .expect("fits");
                id
            })
            .collect();
        assert_eq!(table.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
        assert!(table.get(&ids[2]).is_some());
    }

    #[test]
    fn ended_jobs_are_pruned_oldest_first() {
        let mut table = JobTable::retaining(3);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        // The first job ends early, the second runs long, the third ends early.
        table.submit(ids[0], spec("a100", 1), t(0.0)).expect("fits");
        let mut long = spec("a100", 1);
        long.max_duration_hours = 100.0;
        table.submit(ids[1], long, t(0.0)).expect("fits");
        table.submit(ids[2], spec("a100", 1), t(0.0)).expect("fits");
        let later = t(2.0 * 3600.0);
        let newest = Uuid::now_v7();
        table.submit(newest, spec("a100", 1), later).expect("fits");
        let kept: Vec<Uuid> = table.iter().map(|j| j.id).collect();
        assert_eq!(kept, vec![ids[1], ids[2], newest]);
        assert_eq!(JobTable::default().retain, MAX_RETAINED_JOBS);
    }
}

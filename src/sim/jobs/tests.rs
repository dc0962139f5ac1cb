use super::*;
use crate::sim::catalog;
use crate::sim::spec::ModelSpec;

fn spec(gpu_count: u32, hours: f64, parameters: Option<f64>) -> JobSpec {
    JobSpec {
        gpu: catalog::find("h100").expect("h100 is in the fleet"),
        gpu_count,
        max_duration_hours: hours,
        run_id: "run-1".into(),
        parent_run_id: None,
        model: parameters.map(|parameters| ModelSpec { parameters }),
        dataset: None,
    }
}

fn job(gpu_count: u32, hours: f64) -> Job {
    Job::new(
        Uuid::nil(),
        spec(gpu_count, hours, None),
        SimTime::from_secs(100.0),
    )
}

fn at(secs_after_submit: f64) -> SimTime {
    SimTime::from_secs(100.0 + secs_after_submit)
}

#[test]
fn job_is_queued_then_runs_then_succeeds() {
    let job = job(8, 2.0);
    let queued = progress(&job, at(10.0));
    assert_eq!(queued.status, Status::Queued);
    assert_eq!((queued.started_at, queued.finished_at), (None, None));
    assert_eq!(queued.accelerator_seconds, 0.0);

    let running = progress(&job, at(PROVISIONING_SECS + 600.0));
    assert_eq!(running.status, Status::Running);
    assert_eq!(running.started_at, Some(at(PROVISIONING_SECS)));
    assert_eq!(running.finished_at, None);
    assert_eq!(running.accelerator_seconds, 8.0 * 600.0);

    let done = progress(&job, at(PROVISIONING_SECS + 7200.0));
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.finished_at, Some(at(PROVISIONING_SECS + 7200.0)));
    assert_eq!(done.accelerator_seconds, 8.0 * 7200.0);
    assert_eq!(
        progress(&job, at(1e9)),
        done,
        "nothing changes after the end"
    );
}

#[test]
fn cancel_before_start_never_runs() {
    let mut job = job(8, 2.0);
    job.cancel(at(5.0)).expect("active");
    let state = progress(&job, at(1000.0));
    assert_eq!(state.status, Status::Cancelled);
    assert_eq!(state.started_at, None);
    assert_eq!(state.finished_at, Some(at(5.0)));
    assert_eq!(state.accelerator_seconds, 0.0);
    assert_eq!(job.cancel(at(6.0)), Err(JobEnded(Status::Cancelled)));
}

#[test]
fn cancel_while_running_bills_the_time_run() {
    let mut job = job(4, 2.0);
    job.cancel(at(PROVISIONING_SECS + 100.0)).expect("active");
    let state = progress(&job, at(1e6));
    assert_eq!(state.status, Status::Cancelled);
    assert_eq!(state.started_at, Some(at(PROVISIONING_SECS)));
    assert_eq!(state.accelerator_seconds, 400.0);
}

#[test]
fn cancel_after_end_is_refused() {
    let mut job = job(1, 1.0);
    assert_eq!(
        job.cancel(at(PROVISIONING_SECS + 3600.0)),
        Err(JobEnded(Status::Succeeded))
    );
    assert_eq!(progress(&job, at(1e6)).status, Status::Succeeded);
}

#[test]
fn model_too_large_fails_out_of_memory() {
    // 70e9 parameters × 16 B ≈ 1043 GiB > 8 × 80 GiB.
    let job = Job::new(Uuid::nil(), spec(8, 2.0, Some(70e9)), at(0.0));
    let state = progress(&job, at(PROVISIONING_SECS + OOM_AFTER_SECS));
    assert_eq!(state.status, Status::Failed);
    assert_eq!(state.accelerator_seconds, 8.0 * OOM_AFTER_SECS);
    let reason = state.failure_reason.expect("reason");
    assert!(
        reason.contains("out of memory") && reason.contains("1043 GiB"),
        "{reason}"
    );

    // 7e9 parameters fit easily.
    let fits = Job::new(Uuid::nil(), spec(8, 2.0, Some(7e9)), at(0.0));
    assert_eq!(progress(&fits, at(1e6)).status, Status::Succeeded);
}

#[test]
fn status_only_moves_forward_and_usage_never_shrinks() {
    let mut job = job(2, 1.0);
    job.cancel(at(PROVISIONING_SECS + 1800.0)).expect("active");
    let rank = |s: Status| match s {
        Status::Queued => 0,
        Status::Running => 1,
        _ => 2,
    };
    let mut last = progress(&job, at(0.0));
    for i in 0..400 {
        let state = progress(&job, at(f64::from(i) * 13.7));
        assert!(rank(state.status) >= rank(last.status));
        assert!(state.accelerator_seconds >= last.accelerator_seconds);
        last = state;
    }
    assert_eq!(last.status, Status::Cancelled);
    assert_eq!(last.accelerator_seconds, 2.0 * 1800.0);
}

#[test]
fn full_log_of_a_two_hour_job() {
    let job = job(8, 2.0);
    let log = logs(&job, at(1e6), 0);
    assert_eq!(log.end, Some(Status::Succeeded));
    // Provisioning, one line per 5 simulated minutes of 2 h, the closing line.
    assert_eq!(log.lines.len(), 1 + 24 + 1);
    assert_eq!(log.next, 26);
    assert!(
        log.lines[0].starts_with("[sim t=0s] job "),
        "{}",
        log.lines[0]
    );
    assert!(log.lines[0].contains("8 x NVIDIA H100"));
    assert!(log.lines[1].starts_with("[sim t=30s] step 0 loss "));
    assert!(log.lines[2].starts_with("[sim t=330s] step 100 loss "));
    assert!(log.lines[25].starts_with("[sim t=7230s] job succeeded at step 2400"));
    assert!(log.lines[25].contains("57600 accelerator-seconds"));
    assert!(logs(&job, at(1e6), 26).lines.is_empty());
}

#[test]
fn logs_read_incrementally_match_the_full_log() {
    let mut job = job(8, 3.0);
    job.cancel(at(PROVISIONING_SECS + 5000.0)).expect("active");
    let full = logs(&job, at(1e6), 0);
    assert_eq!(full.end, Some(Status::Cancelled));
    let mut lines = Vec::new();
    let mut next = 0;
    let mut t = 0.0;
    loop {
        let batch = logs(&job, at(t), next);
        lines.extend(batch.lines);
        next = batch.next;
        if batch.end.is_some() {
            break;
        }
        assert!(batch.next_at > at(t) || t < PROVISIONING_SECS);
        t += 97.0;
    }
    assert_eq!(lines, full.lines);
}

#[test]
fn queued_job_log_waits_for_the_start() {
    let job = job(1, 1.0);
    let log = logs(&job, at(1.0), 0);
    assert_eq!(log.lines.len(), 1);
    assert_eq!(log.end, None);
    assert_eq!(log.next_at, at(PROVISIONING_SECS));
    let log = logs(&job, at(PROVISIONING_SECS + 10.0), 1);
    assert_eq!(log.lines.len(), 1);
    assert_eq!(log.next_at, at(PROVISIONING_SECS + LOG_INTERVAL_SECS));
}

#[test]
fn cancelled_before_start_log_says_so() {
    let mut job = job(1, 1.0);
    job.cancel(at(3.0)).expect("active");
    let log = logs(&job, at(100.0), 0);
    assert_eq!(log.lines.len(), 2);
    assert_eq!(log.lines[1], "[sim t=3s] job cancelled before start");
}

#[test]
fn loss_decreases_over_training() {
    assert!(loss(0) > 10.0);
    assert!(loss(0) > loss(1000));
    assert!(loss(1000) > loss(100_000));
    assert!(loss(100_000) > 1.8);
}

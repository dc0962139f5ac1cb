//! The threads argon2 runs on: a fixed set, one per concurrency slot, instead of tokio's
//! blocking pool.
//!
//! argon2 allocates its whole memory cost (19 MiB by default) for every hash. On tokio's blocking
//! pool successive hashes land on whichever of up to hundreds of threads is free, and glibc keeps
//! a freed block of that size in each thread's arena: resident memory grew with the number of
//! threads that had ever hashed (measured: +230 MiB in ten seconds of wrong-password logins) and
//! was not given back. With a fixed set of threads it stays at about `threads × memory cost`.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A unit of work for a worker thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of named threads taking jobs from one queue. The threads end when this is
/// dropped (the queue closes).
pub(super) struct Workers {
    tx: mpsc::Sender<Job>,
}

/// The pool is gone or the work panicked.
#[derive(Debug)]
pub(super) struct WorkerGone;

// === impl Workers ===

impl Workers {
    /// Starts `count` threads (at least one).
    pub(super) fn new(count: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..count.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let job = match rx.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job must not take the thread with it: the caller sees
                        // its result channel close instead.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { tx })
    }

    /// Runs `work` on one of the threads and waits for its result.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, WorkerGone> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.tx.send(job).map_err(|_| WorkerGone)?;
        result.await.map_err(|_| WorkerGone)
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

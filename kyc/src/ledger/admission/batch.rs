//! Group commit of admissions on SQLite.
//!
//! SQLite runs one write transaction at a time and, with `synchronous=FULL`, pays one WAL
//! `fsync` per commit, so one admission per transaction caps throughput at one `fsync` per
//! decision. Here admissions queue in the [`AdmissionQueue`] of their [`Store`]; whoever gets
//! the store's writer lock next takes every queued admission and decides them one after the
//! other in a single `BEGIN IMMEDIATE` transaction, and commits once. Each admission sees the ones before it exactly as if they had committed separately
//! (same connection, same order), and no caller hears its decision before the commit that
//! makes it durable. If any admission of the batch fails (or must start over), or the shared
//! commit fails, the whole transaction is rolled back and each admission of the batch is
//! decided again in a transaction of its own, so one caller's failure never becomes another's
//! and a partly written admission is never committed.
//!
//! The batch runs in a task of its own: a caller that goes away can cancel neither its
//! neighbours' decisions nor its own once the batch has started (as with a single
//! transaction that was already committing); a queued admission whose caller went away before
//! the batch started is skipped.
//!
//! PostgreSQL does not batch: admissions there run concurrently on separate connections and
//! the server already shares `fsync`s between concurrent commits.

use sqlx::SqlitePool;
use tokio::sync::{OwnedMutexGuard, oneshot};
use uuid::Uuid;

use super::admit_in;
use crate::ledger::{
    AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError, MAX_ATTEMPTS,
};
use crate::store::{Store, StoreError};

/// Most admissions decided in one transaction: bounds how long the writer lock is held and
/// how much one failed commit has to redo.
const MAX_BATCH: usize = 128;

/// Admissions waiting for the SQLite writer lock (one queue per [`Store`]).
#[derive(Debug, Default)]
pub(crate) struct AdmissionQueue {
    waiting: std::sync::Mutex<Vec<Queued>>,
}

/// One queued admission and where its decision goes.
#[derive(Debug)]
struct Queued {
    req: AdmissionRequest,
    options: AdmissionOptions,
    job_id: Uuid,
    reply: oneshot::Sender<Result<AdmissionDecision, LedgerError>>,
}

/// Queues the admission, decides the waiting batch when this caller gets the writer lock, and
/// returns this admission's decision once it is committed.
pub(super) async fn admit(
    store: &Store,
    pool: &SqlitePool,
    req: &AdmissionRequest,
    options: &AdmissionOptions,
    job_id: Uuid,
) -> Result<AdmissionDecision, LedgerError> {
    let (reply, decided) = oneshot::channel();
    let queue = store.admission_queue();
    queue.push(Queued {
        req: req.clone(),
        options: options.clone(),
        job_id,
        reply,
    });
    let writer = store.sqlite_writer().clone().lock_owned().await;
    let batch = queue.take();
    if batch.is_empty() {
        // An earlier batch decided this admission (and released the lock after replying).
        drop(writer);
    } else {
        tokio::spawn(run(pool.clone(), batch, writer));
    }
    decided.await.map_err(|_| {
        // The batch task panicked before replying.
        LedgerError::Store(StoreError::Database(sqlx::Error::WorkerCrashed))
    })?
}

// === impl AdmissionQueue ===

impl AdmissionQueue {
    fn push(&self, q: Queued) {
        self.lock().push(q);
    }

    /// Up to [`MAX_BATCH`] admissions whose callers still wait, oldest first.
    fn take(&self) -> Vec<Queued> {
        let mut waiting = self.lock();
        let n = waiting.len().min(MAX_BATCH);
        waiting
            .drain(..n)
            .filter(|q| !q.reply.is_closed())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // A panic while holding this lock can only happen inside `Vec::push`/`drain` (out of
        // memory); the vector is still valid, so keep using it.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decides `batch` in one transaction and replies to every caller; holds the writer lock
/// until done. When the shared transaction cannot be committed as a whole, every admission of
/// the batch is decided again alone.
async fn run(pool: SqlitePool, batch: Vec<Queued>, _writer: OwnedMutexGuard<()>) {
    match decide_together(&pool, &batch).await {
        Ok(decisions) => {
            for (q, d) in batch.into_iter().zip(decisions) {
                let _ = q.reply.send(Ok(d));
            }
        }
        Err(()) => {
            for q in batch {
                let decision = decide_alone(&pool, &q).await;
                let _ = q.reply.send(decision);
            }
        }
    }
}

/// One transaction, one commit, no savepoints (each would cost two more statements per
/// admission). `Err`: some admission failed or asked to start over, or the transaction itself
/// failed; it is rolled back (dropped) and nothing of the batch is recorded.
async fn decide_together(pool: &SqlitePool, batch: &[Queued]) -> Result<Vec<AdmissionDecision>, ()> {
    if batch.len() == 1 {
        // Nothing to share: `decide_alone` reports this admission's own error.
        return Err(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(drop)?;
    let mut decisions = Vec::with_capacity(batch.len());
    for q in batch {
        match admit_in(&mut tx, &q.req, &q.options, q.job_id).await {
            Ok(Some(decision)) => decisions.push(decision),
            Ok(None) | Err(_) => return Err(()),
        }
    }
    tx.commit().await.map_err(drop)?;
    Ok(decisions)
}

/// One admission in a transaction of its own, started over (as [`Store::admit`] does on
/// PostgreSQL) when a group change raced the locks.
async fn decide_alone(pool: &SqlitePool, q: &Queued) -> Result<AdmissionDecision, LedgerError> {
    for _ in 0..MAX_ATTEMPTS {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from)?;
        if let Some(decision) = admit_in(&mut tx, &q.req, &q.options, q.job_id).await? {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(decision);
        }
    }
    Err(LedgerError::Contended)
}

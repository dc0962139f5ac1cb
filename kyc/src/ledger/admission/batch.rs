//! Group commit of admissions on SQLite.
//!
//! SQLite runs one write transaction at a time and, with `synchronous=FULL`, pays one WAL `fsync`
//! per commit, so one admission per transaction caps throughput at one `fsync` per decision. Here
//! admissions queue in the [`AdmissionQueue`] of their [`Store`]; whoever gets the store's writer
//! lock next takes every queued admission and decides them one after the other in a single `BEGIN
//! IMMEDIATE` transaction, and commits once. Each admission sees the ones before it exactly as if
//! they had committed separately (same connection, same order), and no caller hears its decision
//! before the commit that makes it durable. If any admission of the batch fails (or must start
//! over), or the shared commit fails, the whole transaction is rolled back and each admission of
//! the batch is decided again in a transaction of its own, so one caller's failure never becomes
//! another's and a partly written admission is never committed.
//!
//! A batch of other callers' admissions runs in a task of its own: a caller that goes away can
//! cancel neither its neighbours' decisions nor its own once the batch has started (as with a
//! single transaction that was already committing); a queued admission whose caller went away
//! before the batch started is skipped. A caller that finds only its own admission queued
//! decides it in place, in a transaction of its own, with no hand-off.
//!
//! PostgreSQL does not batch: admissions there run concurrently on separate connections and
//! the server already shares `fsync`s between concurrent commits.

use sqlx::SqlitePool;
use tokio::sync::{OwnedMutexGuard, oneshot};
use uuid::Uuid;

use crate::ledger::admit_tx::admit_in;
use crate::ledger::model::{
    AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError, MAX_ATTEMPTS,
};
use crate::store::{Store, StoreError};

/// Most admissions decided in one transaction: bounds how long the writer lock is held and
/// how much one failed commit has to redo.
const MAX_BATCH: usize = 128;

/// Admissions waiting for the SQLite writer lock: one queue per [`Store`], kept in its
/// extensions (see [`AdmissionQueue::of`]), so the store knows nothing of admissions.
#[derive(Debug, Default)]
struct AdmissionQueue {
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
    let queue = AdmissionQueue::of(store);
    queue.push(Queued {
        req: req.clone(),
        options: options.clone(),
        job_id,
        reply,
    });
    // Until a batch holds this admission: take a write turn and decide what waits. Once a batch
    // holds it, its decision will be committed, so the caller waits for it — never reports a
    // failure for an admission that is recorded.
    loop {
        let writer = match store.sqlite_write_turn().await {
            Ok(writer) => writer,
            // Timed out while still queued: withdraw it, nothing is recorded. Already taken
            // by a batch: that batch answers.
            Err(e) if queue.remove(job_id) => return Err(e.into()),
            Err(_) => break,
        };
        let mut batch = queue.take();
        let mine = batch.iter().any(|q| q.job_id == job_id);
        match batch.as_slice() {
            // Only this admission waits: decide it here, with a plain transaction's semantics
            // (cancelled with its caller), saving the hand-off to a task.
            [only] if mine => {
                let decision = decide_alone(pool, only).await;
                drop(writer);
                batch.clear();
                return decision;
            }
            [] => drop(writer),
            _ => drop(tokio::spawn(run(pool.clone(), batch, writer))),
        }
        // Decided by an earlier batch, or in the batch just started: wait for the answer.
        // Still queued (more than one batch's worth waited ahead of it): take another turn.
        if mine || !queue.contains(job_id) {
            break;
        }
    }
    decided.await.map_err(|_| {
        // The batch task panicked before replying.
        LedgerError::Store(StoreError::Database(sqlx::Error::WorkerCrashed))
    })?
}

// === impl AdmissionQueue ===

impl AdmissionQueue {
    /// The queue of `store` (shared by its clones).
    fn of(store: &Store) -> std::sync::Arc<AdmissionQueue> {
        store.extensions().get_or_default()
    }

    fn push(&self, q: Queued) {
        self.lock().push(q);
    }

    /// Takes `job_id` out of the queue; whether it was still there (no batch holds it).
    fn remove(&self, job_id: Uuid) -> bool {
        let mut waiting = self.lock();
        let before = waiting.len();
        waiting.retain(|q| q.job_id != job_id);
        waiting.len() != before
    }

    /// Whether `job_id` still waits in the queue.
    fn contains(&self, job_id: Uuid) -> bool {
        self.lock().iter().any(|q| q.job_id == job_id)
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
async fn decide_together(
    pool: &SqlitePool,
    batch: &[Queued],
) -> Result<Vec<AdmissionDecision>, ()> {
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

/// One admission in a transaction of its own, started over (as [`LedgerStore::admit`] does on
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::*;
    use crate::accounts::CustomerKind;
    use crate::ledger::model::Verdict;
    use computegate_policy::{LedgerLimits, ThresholdPolicy};

    const HASH: &str =
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

    fn request(customer_id: Uuid, run: usize, flop: f64) -> AdmissionRequest {
        let window = Duration::from_secs(86_400);
        AdmissionRequest {
            customer_id,
            organization_id: None,
            run_id: format!("run-{run}"),
            parent_run_id: None,
            estimate_flop: flop,
            hardware_flop: None,
            declared_flop: None,
            basis: "test".into(),
            table_version: "test".into(),
            accelerators: 1,
            accelerator_type: None,
            flop_per_accelerator_second: None,
            bio_sequence: false,
            limits: LedgerLimits {
                max_flop_per_run: None,
                max_flop_per_customer_window: Some(35.0),
                window,
                max_concurrent_jobs: None,
            },
            thresholds: Arc::new(ThresholdPolicy {
                rules: Vec::new(),
                window,
            }),
            identity_snapshot: None,
            route: "/v1/jobs".into(),
            request_id: format!("req-{run}"),
            client_ip: None,
            lease: None,
            now: OffsetDateTime::now_utc(),
        }
    }

    /// A writer stuck behind the lock fails after the pool's acquire timeout as an unavailable
    /// store (the caller answers 503), and the admission it queued is never decided. Real
    /// time (10 s): a paused clock would also fire the pool's own timers while SQLite works.
    #[tokio::test]
    async fn a_writer_waits_for_its_turn_at_most_the_acquire_timeout() {
        let path = std::env::temp_dir().join(format!("cg-turn-{}.db", Uuid::now_v7().simple()));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        let email = format!("{}@turn.example", Uuid::now_v7().simple());
        let now = OffsetDateTime::now_utc();
        let customer = store
            .accounts()
            .create_customer(&email, HASH, CustomerKind::Organization, now)
            .await
            .expect("customer")
            .id;
        let held = store.sqlite_writer().clone().lock_owned().await;
        let waited = store.ledger().admit(&request(customer, 0, 10.0)).await;
        assert!(
            matches!(
                waited,
                Err(LedgerError::Store(StoreError::Database(
                    sqlx::Error::PoolTimedOut
                )))
            ),
            "{waited:?}"
        );
        drop(held);
        // The next admission decides only itself: the timed-out one was skipped.
        let next = store
            .ledger()
            .admit(&request(customer, 1, 10.0))
            .await
            .expect("admit");
        let runs = store
            .ledger()
            .list_runs(&crate::ledger::RunFilter {
                customer_id: Some(customer),
                since: None,
                limit: 10,
                after: None,
            })
            .await
            .expect("runs");
        assert_eq!(
            runs.len(),
            1,
            "only the second admission was recorded: {runs:?}"
        );
        assert_eq!(runs[0].run_id, "run-1", "{runs:?}");
        assert_eq!(next.verdict, crate::ledger::Verdict::Admitted);
        drop(store);
        let _ = std::fs::remove_file(&path);
    }

    /// Six admissions queued behind the writer lock form one batch; one of them names an
    /// unknown customer, so the batch is rolled back and decided one by one: the cap still
    /// counts every earlier admission exactly once and each caller gets its own outcome.
    #[tokio::test]
    async fn a_failing_admission_does_not_leak_into_its_batch() {
        let path = std::env::temp_dir().join(format!("cg-batch-{}.db", Uuid::now_v7().simple()));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        let email = format!("{}@batch.example", Uuid::now_v7().simple());
        let now = OffsetDateTime::now_utc();
        let customer = store
            .accounts()
            .create_customer(&email, HASH, CustomerKind::Organization, now)
            .await
            .expect("customer")
            .id;
        let writer = store.sqlite_writer().clone().lock_owned().await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let who = if i == 2 { Uuid::now_v7() } else { customer };
            let (racer, req) = (store.clone(), request(who, i, 10.0));
            tasks.push(tokio::spawn(
                async move { racer.ledger().admit(&req).await },
            ));
            while AdmissionQueue::of(&store).lock().len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(writer);
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task"));
        }
        assert!(matches!(outcomes[2], Err(LedgerError::UnknownCustomer)));
        let verdicts: Vec<bool> = [0, 1, 3, 4, 5]
            .iter()
            .map(|&i| match &outcomes[i] {
                Ok(d) => d.verdict == Verdict::Admitted,
                Err(e) => panic!("admission {i} failed: {e}"),
            })
            .collect();
        // 35 FLOP of window cap, 10 FLOP each, decided in queue order.
        assert_eq!(verdicts, [true, true, true, false, false]);
        let verified = store.audit().verify_audit_chain().await.expect("verify");
        assert!(verified.first_broken.is_none());
        assert_eq!(
            verified.records, 5,
            "one audit record per decision, none for the error"
        );
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

//! Group commit of admissions, on both backends.
//!
//! One admission per transaction pays one commit (`fsync`) per decision, and on PostgreSQL
//! holds the audit chain's head lock across that commit, so concurrent admissions cannot share
//! a WAL flush: that caps decisions at about one `fsync` plus a few round trips each. Here
//! admissions queue in the [`AdmissionQueue`] of their [`Store`]; whoever gets the store's
//! admission turn next (SQLite: the store's writer lock; PostgreSQL: a per-store turn) takes
//! every queued admission and decides them one after the other in a single transaction, in
//! queue order, each against the totals the ones before it left (same connection, same
//! transaction); their audit records are appended together at the end, in that order (one
//! head update and one multi-row insert, [`crate::audit::append_all`]), and the transaction
//! commits once. No caller hears its decision before the commit that makes it durable. In the
//! common case the whole batch is read, decided and written with a handful of statements
//! ([`bulk`]); otherwise admission by admission ([`decide_in`]).
//!
//! If any admission of the batch fails (or must start over), or the shared commit fails, the
//! whole transaction is rolled back and each admission of the batch is decided again in a
//! transaction of its own, so one caller's failure never becomes another's and a partly
//! written admission is never committed. On PostgreSQL the batch transaction waits at most
//! 250 ms for any row lock ([`BATCH_BEGIN`]): two replicas' batches that lock customers' budget
//! rows in opposite orders would otherwise wait for the server's deadlock detector (one
//! second); instead one gives up at once and decides its admissions alone.
//!
//! A batch of other callers' admissions runs in a task of its own: a caller that goes away can
//! cancel neither its neighbours' decisions nor its own once the batch has started (as with a
//! single transaction that was already committing); a queued admission whose caller went away
//! before the batch started is skipped. A caller that finds only its own admission queued
//! decides it in place, in a transaction of its own, with no hand-off.
//!
//! The batching window ([`LedgerStore::set_admission_batch_window`], 0 by default) makes the
//! caller that gets the turn wait that long for more admissions before it takes the queue:
//! larger batches, fewer commits, for that much more latency. Without it a batch is whatever
//! queued while the previous one ran, which already grows with the load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, oneshot};
use uuid::Uuid;

use super::bulk;
use crate::audit::ChainTx;
use crate::ledger::admit_tx::{admit_in, decide_in};
use crate::ledger::audit;
use crate::ledger::model::{
    AdmissionDecision, AdmissionOptions, AdmissionRequest, LedgerError, MAX_ATTEMPTS,
};
use crate::ledger::sql::{BulkTx, LedgerTx};
use crate::store::{Backend, LedgerStore, Store, StoreError};

/// Most admissions decided in one transaction: bounds how long the turn is held and how much
/// one failed commit has to redo.
const MAX_BATCH: usize = 128;

/// PostgreSQL: a batch transaction's `BEGIN`, which also bounds how long it waits for one row
/// lock before it gives up and its admissions are decided alone (see the module docs) — both
/// in one round trip (one simple query).
const BATCH_BEGIN: &str = "BEGIN; SET LOCAL lock_timeout = '250ms'";

/// The longest a caller waits for its turn, as long as for a pooled connection: past it the
/// store is unavailable (503), as with an exhausted pool.
const TURN_TIMEOUT: Duration = Duration::from_secs(10);

/// Admissions waiting for their turn: one queue per [`Store`], kept in its extensions (see
/// [`AdmissionQueue::of`]), so the store knows nothing of admissions.
#[derive(Debug, Default)]
struct AdmissionQueue {
    waiting: std::sync::Mutex<Vec<Queued>>,
    /// PostgreSQL's admission turn (SQLite uses the store's writer lock).
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The batching window in microseconds.
    window_us: AtomicU64,
    /// Batches committed together, and how many of them with the batch statements.
    batches: AtomicU64,
    bulk_batches: AtomicU64,
    /// Admissions decided in those batches.
    batched: AtomicU64,
}

/// How admissions were grouped since the store was opened (this process only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionBatchStats {
    /// Transactions that decided two or more admissions and committed.
    pub batches: u64,
    /// Those of them decided with the batch statements (the common case).
    pub bulk_batches: u64,
    /// Admissions decided in those transactions.
    pub batched_admissions: u64,
}

/// One queued admission and where its decision goes.
#[derive(Debug)]
struct Queued {
    req: AdmissionRequest,
    options: AdmissionOptions,
    job_id: Uuid,
    reply: oneshot::Sender<Result<AdmissionDecision, LedgerError>>,
}

/// Queues the admission, decides the waiting batch when this caller gets the turn, and returns
/// this admission's decision once it is committed.
pub(super) async fn admit(
    store: &Store,
    req: &AdmissionRequest,
    options: &AdmissionOptions,
    job_id: Uuid,
) -> Result<AdmissionDecision, LedgerError> {
    let backend = store.backend_checked()?.clone();
    let (reply, decided) = oneshot::channel();
    let queue = AdmissionQueue::of(store);
    queue.push(Queued {
        req: req.clone(),
        options: options.clone(),
        job_id,
        reply,
    });
    // Until a batch holds this admission: take a turn and decide what waits. Once a batch
    // holds it, its decision will be committed, so the caller waits for it — never reports a
    // failure for an admission that is recorded.
    let mut decided = decided;
    loop {
        let turn = tokio::select! {
            // The answer wins over the turn: a caller whose admission another caller's batch
            // decided leaves the line for the turn instead of taking it (and deciding a
            // batch of one) just because its place in the line came up.
            biased;
            answer = &mut decided => return answer.unwrap_or_else(|_| Err(batch_crashed())),
            turn = queue.turn(store, &backend) => turn,
        };
        let turn = match turn {
            Ok(turn) => turn,
            // Timed out while still queued: withdraw it, nothing is recorded. Already taken
            // by a batch: that batch answers.
            Err(e) if queue.remove(job_id) => return Err(e.into()),
            Err(_) => break,
        };
        let window = queue.window();
        if !window.is_zero() && queue.len() < MAX_BATCH {
            tokio::time::sleep(window).await;
        }
        let mut batch = queue.take();
        let mine = batch.iter().any(|q| q.job_id == job_id);
        match batch.as_slice() {
            // Only this admission waits: decide it here, with a plain transaction's semantics
            // (cancelled with its caller), saving the hand-off to a task.
            [only] if mine => {
                let decision = decide_alone(&backend, only).await;
                drop(turn);
                batch.clear();
                return decision;
            }
            [] => drop(turn),
            _ => drop(tokio::spawn(run(
                backend.clone(),
                queue.clone(),
                batch,
                turn,
            ))),
        }
        // Decided by an earlier batch, or in the batch just started: wait for the answer.
        // Still queued (more than one batch's worth waited ahead of it): take another turn.
        if mine || !queue.contains(job_id) {
            break;
        }
    }
    decided.await.unwrap_or_else(|_| Err(batch_crashed()))
}

/// The error of an admission whose batch task panicked before replying.
fn batch_crashed() -> LedgerError {
    LedgerError::Store(StoreError::Database(sqlx::Error::WorkerCrashed))
}

// === impl LedgerStore ===

impl LedgerStore<'_> {
    /// How long the caller that gets the admission turn waits for more admissions to decide
    /// in the same transaction (0, the default: none; see `admission::batch`). For this
    /// store and its clones.
    pub fn set_admission_batch_window(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        AdmissionQueue::of(self.store)
            .window_us
            .store(us, Ordering::Relaxed);
    }

    /// How admissions were grouped so far (see [`AdmissionBatchStats`]).
    pub fn admission_batch_stats(&self) -> AdmissionBatchStats {
        let queue = AdmissionQueue::of(self.store);
        AdmissionBatchStats {
            batches: queue.batches.load(Ordering::Relaxed),
            bulk_batches: queue.bulk_batches.load(Ordering::Relaxed),
            batched_admissions: queue.batched.load(Ordering::Relaxed),
        }
    }
}

// === impl AdmissionQueue ===

impl AdmissionQueue {
    /// The queue of `store` (shared by its clones).
    fn of(store: &Store) -> Arc<AdmissionQueue> {
        store.extensions().get_or_default()
    }

    /// Waits for the turn to decide queued admissions: SQLite's writer lock (which every
    /// write transaction of the process takes), PostgreSQL's per-store turn.
    async fn turn(
        &self,
        store: &Store,
        backend: &Backend,
    ) -> Result<OwnedMutexGuard<()>, StoreError> {
        match backend {
            Backend::Sqlite(_) => store.sqlite_write_turn().await,
            Backend::Postgres(_) => {
                tokio::time::timeout(TURN_TIMEOUT, self.turn.clone().lock_owned())
                    .await
                    .map_err(|_| StoreError::from(sqlx::Error::PoolTimedOut))
            }
        }
    }

    fn window(&self) -> Duration {
        Duration::from_micros(self.window_us.load(Ordering::Relaxed))
    }

    fn push(&self, q: Queued) {
        self.lock().push(q);
    }

    fn len(&self) -> usize {
        self.lock().len()
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

/// Decides `batch` in one transaction and replies to every caller; holds the turn until done.
/// When the shared transaction cannot be committed as a whole, every admission of the batch
/// is decided again alone.
async fn run(
    backend: Backend,
    queue: Arc<AdmissionQueue>,
    batch: Vec<Queued>,
    _turn: OwnedMutexGuard<()>,
) {
    match decide_together(&backend, &batch).await {
        Ok((decisions, bulk)) => {
            queue.batches.fetch_add(1, Ordering::Relaxed);
            queue
                .bulk_batches
                .fetch_add(u64::from(bulk), Ordering::Relaxed);
            queue
                .batched
                .fetch_add(decisions.len() as u64, Ordering::Relaxed);
            for (q, d) in batch.into_iter().zip(decisions) {
                let _ = q.reply.send(Ok(d));
            }
        }
        Err(()) => {
            for q in batch {
                let decision = decide_alone(&backend, &q).await;
                let _ = q.reply.send(decision);
            }
        }
    }
}

/// Runs `$body` in a new write transaction `$tx` of `$backend` (no turn is taken: the caller
/// holds it), commits it, and evaluates to the body's value. `$lock_timeout`: on PostgreSQL,
/// begin with [`BATCH_BEGIN`], bounding every row-lock wait.
macro_rules! write_tx {
    ($backend:expr, $lock_timeout:expr, |$tx:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite(pool) => {
                let mut $tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::from)?;
                let value = $body;
                $tx.commit().await.map_err(StoreError::from)?;
                value
            }
            Backend::Postgres(pool) => {
                let begun = if $lock_timeout {
                    pool.begin_with(BATCH_BEGIN).await
                } else {
                    pool.begin().await
                };
                let mut $tx = begun.map_err(StoreError::from)?;
                let value = $body;
                $tx.commit().await.map_err(StoreError::from)?;
                value
            }
        }
    };
}

/// One transaction, one commit, no savepoints (each would cost two more statements per
/// admission); the audit records of the whole batch appended last, together. `Err`: some
/// admission failed or asked to start over, or the transaction itself failed; it is rolled
/// back (dropped) and nothing of the batch is recorded.
async fn decide_together(
    backend: &Backend,
    batch: &[Queued],
) -> Result<(Vec<AdmissionDecision>, bool), ()> {
    if batch.len() == 1 {
        // Nothing to share: `decide_alone` reports this admission's own error.
        return Err(());
    }
    let together: Result<Option<(Vec<AdmissionDecision>, bool)>, LedgerError> = async {
        Ok(write_tx!(backend, true, |tx| {
            match decide_batch_in(&mut tx, batch).await? {
                Some(decisions) => Some(decisions),
                // Start over: not as a batch (dropping `tx` rolls it back).
                None => return Ok(None),
            }
        }))
    }
    .await;
    match together {
        Ok(Some(decided)) => Ok(decided),
        Ok(None) => Err(()),
        Err(e) => {
            tracing::debug!(error = %e, "admission batch rolled back; deciding its admissions alone");
            Err(())
        }
    }
}

/// The batch transaction's body: every admission decided in order — with the batch statements
/// in the common case ([`bulk`]), else one by one — then their audit records, together.
/// `None`: some admission must start over. The flag: decided with the batch statements.
async fn decide_batch_in<T: LedgerTx + ChainTx + BulkTx>(
    tx: &mut T,
    batch: &[Queued],
) -> Result<Option<(Vec<AdmissionDecision>, bool)>, LedgerError> {
    let items: Vec<bulk::Item<'_>> = batch
        .iter()
        .map(|q| (&q.req, &q.options, q.job_id))
        .collect();
    let bulk = bulk::decide_bulk(tx, &items).await?;
    let in_bulk = bulk.is_some();
    let decided = match bulk {
        Some(decided) => decided,
        None => {
            let mut decided = Vec::with_capacity(batch.len());
            for q in batch {
                match decide_in(tx, &q.req, &q.options, q.job_id).await? {
                    Some(d) => decided.push(d),
                    None => return Ok(None),
                }
            }
            decided
        }
    };
    let mut decisions = Vec::with_capacity(batch.len());
    let mut entries = Vec::with_capacity(batch.len());
    for (decision, records) in decided {
        decisions.push(decision);
        entries.extend(records);
    }
    audit::record(tx, &entries).await?;
    Ok(Some((decisions, in_bulk)))
}

/// One admission in a transaction of its own, started over when a group change raced the
/// locks.
async fn decide_alone(backend: &Backend, q: &Queued) -> Result<AdmissionDecision, LedgerError> {
    for _ in 0..MAX_ATTEMPTS {
        let attempt = write_tx!(backend, false, |tx| admit_in(
            &mut tx, &q.req, &q.options, q.job_id
        )
        .await?);
        if let Some(decision) = attempt {
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

    /// Opens a fresh SQLite store with four customers — two in one organization, two linked
    /// into one group — each with three runs that already exist (so a batch takes the batch
    /// statements). Returns the store, its file and the customers.
    async fn populated() -> (Store, std::path::PathBuf, Vec<(Uuid, Option<Uuid>)>) {
        let path = std::env::temp_dir().join(format!("cg-same-{}.db", Uuid::now_v7().simple()));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        let now = OffsetDateTime::now_utc();
        let org = store
            .accounts()
            .create_organization("Org", &crate::accounts::Actor::system("test"), now)
            .await
            .expect("org")
            .id;
        let mut customers = Vec::new();
        for k in 0..4 {
            let email = format!("{}@same.example", Uuid::now_v7().simple());
            let c = store
                .accounts()
                .create_customer(&email, HASH, CustomerKind::Organization, now)
                .await
                .expect("customer")
                .id;
            customers.push((c, (k < 2).then_some(org)));
        }
        let master = crate::crypto::MasterKey::from_base64(&"A".repeat(43)).expect("key");
        let card = crate::ledger::LinkValue::payment_fingerprint("shared").expect("value");
        let hash = crate::ledger::AttributeKey::derive(&master).hash(&card);
        for &(c, _) in &customers[1..3] {
            store
                .ledger()
                .link_by_attribute(
                    c,
                    crate::ledger::LinkAttribute::PaymentFingerprint,
                    &hash,
                    now,
                )
                .await
                .expect("link");
        }
        for &(c, org) in &customers {
            for run in 0..3 {
                let mut first = request(c, run, 0.0);
                first.organization_id = org;
                store.ledger().admit(&first).await.expect("first job");
            }
        }
        (store, path, customers)
    }

    /// The `i`-th admission of the mixed sequence: customers, runs, sizes and caps vary so
    /// that later admissions see earlier ones in every scope, and some are denied.
    fn mixed(customers: &[(Uuid, Option<Uuid>)], i: usize) -> AdmissionRequest {
        let (c, org) = customers[(i * 7 + i / 3) % 4];
        let mut req = request(c, i % 3, [3.0, 8.0, 13.0][i % 3]);
        req.organization_id = org;
        req.limits.max_flop_per_run = Some(40.0);
        req.limits.max_flop_per_customer_window = Some(60.0);
        req.limits.max_concurrent_jobs = i.is_multiple_of(5).then_some(6);
        req
    }

    /// What the caller sees of a decision, without the ids that differ between stores.
    fn seen(d: &AdmissionDecision) -> String {
        format!(
            "{:?} {:?} {:?}",
            d.verdict, d.totals_after, d.remaining_flop
        )
    }

    /// A batch decided with the batch statements gives every caller exactly the decision and
    /// totals it gets when the same admissions are decided one after the other.
    #[tokio::test]
    async fn a_batch_decides_exactly_as_one_by_one() {
        const N: usize = 40;
        let (alone, alone_path, alone_customers) = populated().await;
        let mut expected = Vec::new();
        for i in 0..N {
            let d = alone
                .ledger()
                .admit(&mixed(&alone_customers, i))
                .await
                .expect("admit");
            expected.push(seen(&d));
        }
        assert_eq!(alone.ledger().admission_batch_stats().batches, 0);

        let (batched, batched_path, customers) = populated().await;
        let writer = batched.sqlite_writer().clone().lock_owned().await;
        let mut tasks = Vec::new();
        for i in 0..N {
            let (racer, req) = (batched.clone(), mixed(&customers, i));
            tasks.push(tokio::spawn(
                async move { racer.ledger().admit(&req).await },
            ));
            while AdmissionQueue::of(&batched).lock().len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(writer);
        let mut got = Vec::new();
        for t in tasks {
            got.push(seen(&t.await.expect("task").expect("admit")));
        }
        let stats = batched.ledger().admission_batch_stats();
        assert_eq!(stats.bulk_batches, 1, "{stats:?}");
        assert_eq!(stats.batched_admissions, N as u64, "{stats:?}");
        assert!(got.iter().any(|d| d.starts_with("Denied")), "{got:?}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "admission {i}");
        }
        let verified = batched.audit().verify_audit_chain().await.expect("verify");
        assert!(verified.first_broken.is_none());
        for (store, path) in [(alone, alone_path), (batched, batched_path)] {
            store.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

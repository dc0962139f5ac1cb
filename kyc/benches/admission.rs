//! Admission throughput and latency of `LedgerStore::admit` on SQLite (a temporary file) and
//! PostgreSQL (`COMPUTEGATE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! a database is created for the run and dropped after it, and the backend is skipped with a
//! message when the server does not answer).
//!
//! For each backend and each concurrency (8 and 32 tasks by default), every task admits jobs
//! for its own customers back to back for a fixed time (`COMPUTEGATE_BENCH_SECONDS`, default 5)
//! after a one-second warm-up; the bench prints decisions per second and latency percentiles,
//! the same for the audit-chain append alone (`AuditStore::record_audit`, the serialization point
//! every admission passes through), and a markdown snippet for BENCHMARKS.md. Then criterion
//! measures one uncontended admission on SQLite.
//!
//!     cargo bench -p computegate-kyc --bench admission
//!
//! Environment: `COMPUTEGATE_BENCH_SECONDS`, `COMPUTEGATE_BENCH_CONCURRENCY` (comma-separated,
//! default `8,32`), `COMPUTEGATE_TEST_DATABASE_URL`, and:
//!
//! - `COMPUTEGATE_BENCH_WINDOWS`: batching windows in microseconds to measure admissions at
//!   (comma-separated, default `0`; see `LedgerStore::set_admission_batch_window`);
//! - `COMPUTEGATE_BENCH_REPLICAS`: stores (pools) on the one database, the tasks dealt among
//!   them in turn — 2 stands for two replicas (default 1; PostgreSQL only, SQLite keeps 1);
//! - `COMPUTEGATE_BENCH_BACKENDS`: `sqlite`, `postgres` or both (default both);
//! - `COMPUTEGATE_BENCH_AUDIT`: 0 skips the audit-append-only rows (default 1);
//! - `COMPUTEGATE_BENCH_CRITERION`: 0 skips the criterion run (default 1).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use computegate_kyc::Store;
use computegate_kyc::accounts::{Actor, CustomerKind};
use computegate_kyc::audit::{AuditAction, AuditEntry};
use computegate_kyc::ledger::{AdmissionBatchStats, AdmissionRequest, Verdict};
use computegate_policy::{Action, LedgerLimits, Scope, ThresholdPolicy, ThresholdRule};
use criterion::Criterion;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Customers per task: each task cycles through its own, so tasks never share budget rows.
const CUSTOMERS_PER_TASK: usize = 4;

/// Runs per customer: after the first round every job hits an existing run and budget rows.
const RUNS_PER_CUSTOMER: usize = 4;

/// The tier's rolling window, also used for the thresholds.
const WINDOW: Duration = Duration::from_secs(30 * 86_400);

const PLACEHOLDER_HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// One measured configuration.
struct Measured {
    backend: &'static str,
    what: &'static str,
    replicas: usize,
    window_us: u64,
    tasks: usize,
    ops: usize,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Group commits during the run (see `LedgerStore::admission_batch_stats`).
    batches: u64,
    bulk_batches: u64,
    batched: u64,
}

/// What a task does once per iteration.
#[derive(Clone, Copy)]
enum Op {
    Admit,
    AuditAppend,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let plan = Plan {
        seconds: env_number("COMPUTEGATE_BENCH_SECONDS", 5),
        concurrency: env_list("COMPUTEGATE_BENCH_CONCURRENCY", "8,32"),
        windows_us: env_list("COMPUTEGATE_BENCH_WINDOWS", "0"),
        audit_rows: env_number("COMPUTEGATE_BENCH_AUDIT", 1) != 0,
    };
    let replicas = env_number("COMPUTEGATE_BENCH_REPLICAS", 1).max(1) as usize;
    let backends = std::env::var("COMPUTEGATE_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .to_lowercase();
    let load_before = load_average();
    let mut results = Vec::new();
    let mut versions = Vec::new();
    runtime.block_on(async {
        if backends.contains("sqlite") {
            let (store, path) = sqlite_store().await;
            versions.push(sqlite_version(&path).await);
            results.extend(measure_all(std::slice::from_ref(&store), "SQLite", &plan).await);
            store.close().await;
            remove_sqlite(&path);
        }
        if !backends.contains("postgres") {
            return;
        }
        match postgres_store().await {
            Some((store, admin, name, url)) => {
                versions.push(postgres_version(&admin).await);
                let mut stores = vec![store];
                for _ in 1..replicas {
                    stores.push(Store::connect(&url).await.expect("another pool"));
                }
                results.extend(measure_all(&stores, "PostgreSQL", &plan).await);
                for store in stores {
                    store.close().await;
                }
                drop_database(&admin, &name).await;
            }
            None => println!(
                "PostgreSQL: skipped (no server at COMPUTEGATE_TEST_DATABASE_URL or {DEFAULT_PG_URL})"
            ),
        }
    });
    let load = format!("{load_before} → {}", load_average());
    print_markdown(&results, &versions, plan.seconds, &load);
    if env_number("COMPUTEGATE_BENCH_CRITERION", 1) != 0 {
        criterion_single_admission(&runtime);
    }
}

/// What to measure on each backend.
struct Plan {
    seconds: u64,
    concurrency: Vec<u64>,
    windows_us: Vec<u64>,
    audit_rows: bool,
}

/// Admissions (at each batching window) and bare audit appends at each concurrency, the tasks
/// dealt among `stores`.
async fn measure_all(stores: &[Store], backend: &'static str, plan: &Plan) -> Vec<Measured> {
    let max_tasks = plan.concurrency.iter().copied().max().unwrap_or(8) as usize;
    let customers = create_customers(&stores[0], max_tasks * CUSTOMERS_PER_TASK).await;
    let mut runs = Vec::new();
    for &tasks in &plan.concurrency {
        for &window in &plan.windows_us {
            runs.push((tasks as usize, Op::Admit, "admission", window));
        }
        if plan.audit_rows {
            runs.push((tasks as usize, Op::AuditAppend, "audit append only", 0));
        }
    }
    let mut out = Vec::new();
    for (tasks, op, what, window_us) in runs {
        for store in stores {
            store
                .ledger()
                .set_admission_batch_window(Duration::from_micros(window_us));
        }
        run_load(stores, &customers, tasks, op, Duration::from_secs(1)).await;
        let duration = Duration::from_secs(plan.seconds);
        let grouped_before = batch_stats(stores);
        let m = run_load(stores, &customers, tasks, op, duration).await;
        let grouped = batch_stats(stores);
        let batches = grouped.batches - grouped_before.batches;
        let m = Measured {
            backend,
            what,
            window_us,
            ..m
        };
        let m = Measured {
            batches,
            bulk_batches: grouped.bulk_batches - grouped_before.bulk_batches,
            batched: grouped.batched_admissions - grouped_before.batched_admissions,
            ..m
        };
        println!(
            "{:<10} {:<18} replicas={} window={:>5} us tasks={:<3} {:>8.0}/s  p50={:>6} us  p99={:>6} us  max={:>7} us  ({} ops; {} batches, {} in bulk, {} admissions batched)",
            m.backend,
            m.what,
            m.replicas,
            m.window_us,
            m.tasks,
            m.ops as f64 / m.seconds,
            m.p50_us,
            m.p99_us,
            m.max_us,
            m.ops,
            m.batches,
            m.bulk_batches,
            m.batched
        );
        out.push(m);
    }
    out
}

/// `tasks` tasks run `op` back to back for `duration`; returns counts and latencies.
async fn run_load(
    stores: &[Store],
    customers: &[Uuid],
    tasks: usize,
    op: Op,
    duration: Duration,
) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let policy = Arc::new(policy());
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mine: Vec<Uuid> =
            customers[t * CUSTOMERS_PER_TASK..(t + 1) * CUSTOMERS_PER_TASK].to_vec();
        let store = stores[t % stores.len()].clone();
        let (stop, policy) = (stop.clone(), policy.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let customer = mine[n % mine.len()];
                let begin = Instant::now();
                match op {
                    Op::Admit => {
                        let req = request(customer, n, policy.clone());
                        let d = store.ledger().admit(&req).await.expect("admit");
                        assert_eq!(d.verdict, Verdict::Admitted);
                    }
                    Op::AuditAppend => {
                        let entry = AuditEntry::new(
                            OffsetDateTime::now_utc(),
                            &Actor::system("bench"),
                            AuditAction::UsageRecorded,
                            format!("customer:{customer}"),
                        );
                        store.audit().record_audit(&entry).await.expect("append");
                    }
                }
                latencies.push(u64::try_from(begin.elapsed().as_micros()).unwrap_or(u64::MAX));
                n += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.expect("task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Measured {
        backend: "",
        what: "",
        replicas: stores.len(),
        window_us: 0,
        tasks,
        ops: latencies.len(),
        seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: latencies.last().copied().unwrap_or(0),
        batches: 0,
        bulk_batches: 0,
        batched: 0,
    }
}

/// A job of a few H100-hours on one of the customer's runs, under the shipped thresholds and
/// caps large enough never to deny.
fn request(customer_id: Uuid, n: usize, thresholds: Arc<ThresholdPolicy>) -> AdmissionRequest {
    AdmissionRequest {
        customer_id,
        organization_id: None,
        run_id: format!("run-{}", (n / CUSTOMERS_PER_TASK) % RUNS_PER_CUSTOMER),
        parent_run_id: None,
        estimate_flop: 1e18,
        hardware_flop: Some(1e18),
        declared_flop: None,
        basis: "hardware:h100:bf16:u0.4".into(),
        table_version: "2025-06".into(),
        accelerators: 8,
        accelerator_type: Some("h100".into()),
        flop_per_accelerator_second: Some(989.4e12 * 0.4),
        bio_sequence: false,
        limits: LedgerLimits {
            max_flop_per_run: Some(1e30),
            max_flop_per_customer_window: Some(1e30),
            window: WINDOW,
            max_concurrent_jobs: None,
        },
        thresholds,
        identity_snapshot: None,
        route: "/v1/jobs".into(),
        request_id: Uuid::new_v4().to_string(),
        client_ip: None,
        lease: None,
        now: OffsetDateTime::now_utc(),
    }
}

/// The shipped thresholds (docs/policy.md) per run lineage and per linked group, over the tier's
/// 30-day window (as the binary wires them).
fn policy() -> ThresholdPolicy {
    let rule = |label: &str, flop, scope, action, bio| ThresholdRule {
        label: label.into(),
        flop,
        scope,
        action,
        bio_sequence_only: bio,
        report_due_days: 15,
    };
    let mut rules = vec![rule("bio_1e23", 1e23, Scope::Run, Action::Review, true)];
    for scope in [Scope::Run, Scope::Group] {
        rules.push(rule("gpai_1e23", 1e23, scope, Action::Notify, false));
        rules.push(rule("eu_art51_1e25", 1e25, scope, Action::Report, false));
        rules.push(rule("us_1e26", 1e26, scope, Action::Review, false));
    }
    ThresholdPolicy {
        rules,
        window: WINDOW,
    }
}

async fn create_customers(store: &Store, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let email = format!("{}@bench.example", Uuid::new_v4().simple());
        let c = store
            .accounts()
            .create_customer(
                &email,
                PLACEHOLDER_HASH,
                CustomerKind::Organization,
                OffsetDateTime::now_utc(),
            )
            .await
            .expect("create customer");
        ids.push(c.id);
    }
    ids
}

async fn sqlite_store() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("cg-bench-{}.db", Uuid::new_v4().simple()));
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    (store, path)
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// A fresh database on the server, or `None` when it does not answer.
/// Also returns the database's URL, for more pools on it.
async fn postgres_store() -> Option<(Store, String, String, String)> {
    let admin =
        std::env::var("COMPUTEGATE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let options = PgConnectOptions::from_str(&admin).ok()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .ok()?;
    let name = format!("cg_bench_{}", Uuid::new_v4().simple());
    // The name is generated from a UUID above, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .ok()?;
    pool.close().await;
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), String::new()), |(b, q)| {
            (b, format!("?{q}"))
        });
    let host = base.rsplit_once('/').map_or(base, |(h, _)| h);
    let url = format!("{host}/{name}{query}");
    let store = Store::connect(&url).await.ok()?;
    store.migrate().await.expect("migrate postgres");
    Some((store, admin, name, url))
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

/// `SQLite 3.x` for the file at `path`.
async fn sqlite_version(path: &std::path::Path) -> String {
    match sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await {
        Ok(pool) => {
            let v: Result<String, _> = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(&pool)
                .await;
            pool.close().await;
            v.map(|v| format!("SQLite {v} (WAL, synchronous=FULL)"))
                .unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// `PostgreSQL 15.x` through the admin URL.
async fn postgres_version(admin: &str) -> String {
    match sqlx::PgPool::connect(admin).await {
        Ok(pool) => {
            let v: Result<String, _> = sqlx::query_scalar("SHOW server_version")
                .fetch_one(&pool)
                .await;
            pool.close().await;
            v.map(|v| format!("PostgreSQL {v} (default settings, fsync on)"))
                .unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// The 1-minute load average, to say how busy the machine was (benchmarks on a shared box).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn print_markdown(results: &[Measured], versions: &[String], seconds: u64, load: &str) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("\n### Job admission (`LedgerStore::admit`)\n");
    println!(
        "Command: `cargo bench -p computegate-kyc --bench admission` ({seconds} s per row after 1 s warm-up)."
    );
    println!(
        "Machine: {cpus} cores ({cpu}); {}; client and server on the same machine; \
         1-minute load average {load} (start → end of the run).",
        versions.join(", ")
    );
    println!(
        "Each task admits jobs back to back for its own {CUSTOMERS_PER_TASK} customers (no shared budget rows); every"
    );
    println!(
        "admission writes its job row, updates its budget rows and appends its audit record in one transaction.\n"
    );
    println!(
        "| backend | operation | replicas | batching window | tasks | decisions/s | p50 | p99 | max |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        println!(
            "| {} | {} | {} | {} µs | {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} ms |",
            m.backend,
            m.what,
            m.replicas,
            m.window_us,
            m.tasks,
            m.ops as f64 / m.seconds,
            m.p50_us as f64 / 1000.0,
            m.p99_us as f64 / 1000.0,
            m.max_us as f64 / 1000.0
        );
    }
    println!();
}

/// Criterion: one uncontended admission on SQLite.
fn criterion_single_admission(runtime: &tokio::runtime::Runtime) {
    let mut c = Criterion::default().configure_from_args();
    let (store, path) = runtime.block_on(sqlite_store());
    let customer = runtime.block_on(create_customers(&store, 1))[0];
    let policy = Arc::new(policy());
    let mut n = 0usize;
    c.bench_function("admission/sqlite/uncontended", |b| {
        b.iter(|| {
            n += 1;
            let req = request(customer, n, policy.clone());
            runtime.block_on(store.ledger().admit(&req)).expect("admit")
        })
    });
    runtime.block_on(store.close());
    remove_sqlite(&path);
    c.final_summary();
}

/// The group-commit counters of all `stores`, summed.
fn batch_stats(stores: &[Store]) -> AdmissionBatchStats {
    stores
        .iter()
        .map(|s| s.ledger().admission_batch_stats())
        .fold(AdmissionBatchStats::default(), |a, b| AdmissionBatchStats {
            batches: a.batches + b.batches,
            bulk_batches: a.bulk_batches + b.bulk_batches,
            batched_admissions: a.batched_admissions + b.batched_admissions,
        })
}

/// Comma-separated numbers (`default` when unset).
fn env_list(key: &str, default: &str) -> Vec<u64> {
    std::env::var(key)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn env_number(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

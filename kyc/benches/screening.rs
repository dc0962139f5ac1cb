//! Screening benchmark and evaluation over a deterministic synthetic list.
//!
//! `cargo bench -p computegate-kyc --bench screening` builds a 1 000 000-entry list (persons,
//! organizations, vessels from name and syllable tables, with dates of birth, countries and
//! identifiers), then:
//!
//! 1. times the index build;
//! 2. criterion: screening one listed-name variant and one unlisted common name;
//! 3. times every screening of the evaluation below (p50 / p99 / max);
//! 4. evaluation — **recall** on variants of listed names (transliteration to Cyrillic,
//!    reordered tokens, diacritics, one-letter typos, homoglyphs) and the **false-positive rate**
//!    on common first × last names that are not listed;
//! 5. imports the same list as CSL CSV into a fresh SQLite file and times it (and the index load
//!    back from SQLite);
//!
//! and prints a markdown snippet with the numbers. `SCREENING_BENCH_ENTRIES` overrides the list
//! size and `SCREENING_BENCH_SKIP_IMPORT=1` skips step 5 (both for quick local runs).

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::io::Cursor;
use std::time::{Duration, Instant};

use computegate_kyc::Store;
use computegate_kyc::screening::normalize::normalize_name;
use computegate_kyc::screening::{
    Decision, EntryKind, ImportRequest, ListEntry, ListFormat, PartialDate, ScoringConfig,
    ScreeningIndex, ScreeningSubject,
};
use criterion::Criterion;
use uuid::Uuid;

#[path = "screening/data.rs"]
mod data;

use data::Rng;

/// Entries sampled per evaluation class.
const EVAL_SAMPLE: usize = 400;

/// Unlisted common names screened for the false-positive rate.
const FP_NAMES: usize = 2_000;

/// Recall per variant class.
type RecallTable = Vec<(&'static str, Tally)>;

/// A variant generator.
type Variant = fn(&str, &mut Rng) -> String;

/// One recall class: how many variants were found at review or above, and as hits.
#[derive(Default, Clone, Copy)]
struct Tally {
    total: usize,
    review: usize,
    hit: usize,
}

fn main() {
    let n = env_usize("SCREENING_BENCH_ENTRIES", 1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("generating {n} synthetic entries…");
    let entries = data::generate(n, 0x5eed);

    let started = Instant::now();
    let index = ScreeningIndex::build(Uuid::nil(), entries, ScoringConfig::default());
    let build = started.elapsed();
    let stats = index.stats();
    println!("index built in {build:.2?}: {stats:?}");

    let mut rng = Rng::new(7);
    let (recall, recall_dob, mut latencies) = evaluate_recall(&index, &mut rng);
    let (fp, lat) = evaluate_false_positives(&index, &mut rng);
    latencies.extend(lat);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let (p50, p99, max) = (pct(0.50), pct(0.99), latencies[latencies.len() - 1]);
    println!(
        "screening latency over {} queries: p50 {p50:.2?}, p99 {p99:.2?}, max {max:.2?}",
        latencies.len()
    );

    let mut c = Criterion::default()
        .sample_size(50)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let listed = index
        .entries()
        .iter()
        .find(|e| e.kind == EntryKind::Person && e.names[0].split(' ').count() >= 3)
        .map(|e| e.names[0].clone())
        .unwrap_or_default();
    let variant = ScreeningSubject::person(data::typo(&listed, &mut Rng::new(1)));
    let unlisted = ScreeningSubject::person("Maria Garcia Lopez");
    c.bench_function("screen/listed_name_with_typo", |b| {
        b.iter(|| index.screen(black_box(&variant)))
    });
    c.bench_function("screen/unlisted_common_name", |b| {
        b.iter(|| index.screen(black_box(&unlisted)))
    });

    let import = if std::env::var_os("SCREENING_BENCH_SKIP_IMPORT").is_some() {
        None
    } else {
        Some(time_sqlite_import(&index))
    };

    print_report(
        n,
        cores,
        build,
        stats,
        &recall,
        &recall_dob,
        &fp,
        (p50, p99, max, latencies.len()),
        import,
    );
    c.final_summary();
}

/// Variants of sampled listed names, screened by name only and with the listed date of birth.
fn evaluate_recall(
    index: &ScreeningIndex,
    rng: &mut Rng,
) -> (RecallTable, RecallTable, Vec<Duration>) {
    let entries = index.entries();
    let mut sample = Vec::new();
    while sample.len() < EVAL_SAMPLE * 2 {
        let e = &entries[rng.below(entries.len())];
        if matches!(e.kind, EntryKind::Person | EntryKind::Organization) {
            sample.push(e);
        }
    }
    let classes: [(&'static str, Variant); 5] = [
        ("transliteration (Cyrillic)", data::to_cyrillic),
        ("reordered tokens", data::reorder),
        ("diacritics", data::diacritics),
        ("one-letter typo", data::typo),
        ("homoglyphs", data::homoglyphs),
    ];
    let mut by_name = Vec::new();
    let mut with_dob = Vec::new();
    let mut latencies = Vec::new();
    for (label, make) in classes {
        let (mut plain, mut dob) = (Tally::default(), Tally::default());
        for e in &sample {
            let mut subject = ScreeningSubject::new(e.kind, make(&e.names[0], rng));
            let started = Instant::now();
            let r = index.screen(&subject);
            latencies.push(started.elapsed());
            plain.count(found(e, &r));
            if e.kind == EntryKind::Person && !e.dates_of_birth.is_empty() {
                subject.date_of_birth = e.dates_of_birth.first().copied();
                dob.count(found(e, &index.screen(&subject)));
            }
        }
        by_name.push((label, plain));
        with_dob.push((label, dob));
    }
    (by_name, with_dob, latencies)
}

/// The decision reached for the variant of `e`, if the best match is `e` (or an entry with
/// the same normalized name: the generator can repeat a name).
fn found(e: &ListEntry, r: &computegate_kyc::screening::ScreeningResult) -> Option<Decision> {
    let best = r.best.as_ref()?;
    let same = best.entry_key == e.key
        || normalize_name(&best.matched_name, e.kind) == normalize_name(&e.names[0], e.kind);
    same.then_some(r.decision)
}

/// Common first names with one or two common surnames, excluding every name that is in fact
/// listed: those whose tokens all occur in one listed person's name (the listed name itself,
/// or it with a middle name or second surname the query leaves out — a match a screening
/// must raise). What remains shares at most some tokens with any listed name.
fn evaluate_false_positives(index: &ScreeningIndex, rng: &mut Rng) -> (FpReport, Vec<Duration>) {
    let listed = ListedTokens::new(index.entries());
    let mut report = FpReport::default();
    let mut latencies = Vec::new();
    let mut seen = HashSet::new();
    let mut attempts = 0;
    while report.screened < FP_NAMES && attempts < FP_NAMES * 50 {
        attempts += 1;
        let name = data::common_name(rng);
        if !seen.insert(name.clone()) {
            continue;
        }
        if listed.contains_all(&name) {
            report.excluded += 1;
            continue;
        }
        let mut subject = ScreeningSubject::person(&name);
        let started = Instant::now();
        let r = index.screen(&subject);
        latencies.push(started.elapsed());
        report.screened += 1;
        report.review += usize::from(r.decision >= Decision::Review);
        report.hit += usize::from(r.decision == Decision::Hit);
        subject.date_of_birth = PartialDate::full(
            1950 + rng.below(55) as u16,
            1 + rng.below(12) as u8,
            1 + rng.below(28) as u8,
        );
        let r = index.screen(&subject);
        report.review_dob += usize::from(r.decision >= Decision::Review);
        report.hit_dob += usize::from(r.decision == Decision::Hit);
    }
    (report, latencies)
}

/// Exact normalized tokens of every listed person name, to tell listed names apart.
struct ListedTokens {
    postings: HashMap<String, Vec<u32>>,
}

impl ListedTokens {
    fn new(entries: &[ListEntry]) -> ListedTokens {
        let mut postings: HashMap<String, Vec<u32>> = HashMap::new();
        let mut id = 0u32;
        for e in entries.iter().filter(|e| e.kind == EntryKind::Person) {
            for name in &e.names {
                for t in normalize_name(name, EntryKind::Person).tokens() {
                    postings.entry(t.clone()).or_default().push(id);
                }
                id += 1;
            }
        }
        ListedTokens { postings }
    }

    /// Whether one listed name contains every token of `name`.
    fn contains_all(&self, name: &str) -> bool {
        let normalized = normalize_name(name, EntryKind::Person);
        let mut lists: Vec<&Vec<u32>> = Vec::new();
        for t in normalized.tokens() {
            match self.postings.get(t) {
                Some(p) => lists.push(p),
                None => return false,
            }
        }
        lists.sort_by_key(|p| p.len());
        let Some((first, rest)) = lists.split_first() else {
            return false;
        };
        first
            .iter()
            .any(|id| rest.iter().all(|p| p.binary_search(id).is_ok()))
    }
}

#[derive(Default)]
struct FpReport {
    screened: usize,
    excluded: usize,
    review: usize,
    hit: usize,
    review_dob: usize,
    hit_dob: usize,
}

/// Imports the list as CSL CSV into a fresh SQLite file; returns (csv bytes, import time,
/// index load time).
fn time_sqlite_import(index: &ScreeningIndex) -> (usize, Duration, Duration) {
    let csv = data::to_csl_csv(index.entries());
    let bytes = csv.len();
    let path =
        std::env::temp_dir().join(format!("cg-screening-bench-{}.db", Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (import, load) = runtime.block_on(async {
        let store = Store::connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        let started = Instant::now();
        let version = store
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "synthetic.csv", Cursor::new(csv)),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("import");
        let import = started.elapsed();
        println!(
            "imported {} entries into SQLite in {import:.2?}",
            version.entry_count
        );
        let started = Instant::now();
        let loaded = store
            .screening()
            .load_screening_index(version.id, ScoringConfig::default())
            .await
            .expect("load index");
        let load = started.elapsed();
        println!(
            "loaded index from SQLite in {load:.2?}: {:?}",
            loaded.stats()
        );
        store.close().await;
        (import, load)
    });
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    (bytes, import, load)
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    n: usize,
    cores: usize,
    build: Duration,
    stats: computegate_kyc::screening::IndexStats,
    recall: &[(&str, Tally)],
    recall_dob: &[(&str, Tally)],
    fp: &FpReport,
    latency: (Duration, Duration, Duration, usize),
    import: Option<(usize, Duration, Duration)>,
) {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\n---- BENCHMARKS.md snippet ----\n");
    println!("### Screening (`kyc::screening`)\n");
    println!(
        "Command: `cargo bench -p computegate-kyc --bench screening` (release). Machine: {cores} cores \
         ({}). Synthetic list of {n} entries (deterministic generator in `kyc/benches/screening/data.rs`: \
         persons, organizations, vessels; {} indexed names, {} distinct tokens).\n",
        cpu_model(),
        stats.names,
        stats.tokens
    );
    println!("| measure | result | target |\n|---|---|---|");
    println!(
        "| index build ({n} entries, in memory) | {:.1} s | — |",
        build.as_secs_f64()
    );
    println!(
        "| screen one name: p50 / p99 / max over {} queries | {:.2} / {:.2} / {:.2} ms | p99 ≤ 10 ms |",
        latency.3,
        ms(latency.0),
        ms(latency.1),
        ms(latency.2)
    );
    if let Some((bytes, import, load)) = import {
        println!(
            "| import {n} entries (CSL CSV, {:.0} MB) into SQLite, one transaction | {:.1} s | ≤ 60 s |",
            bytes as f64 / 1e6,
            import.as_secs_f64()
        );
        println!(
            "| load index back from SQLite | {:.1} s | — |",
            load.as_secs_f64()
        );
    }
    println!(
        "\nRecall on variants of {} sampled listed names (persons and organizations), decision ≥ review \
         (hit in brackets); name only, and for persons also with the listed date of birth:\n",
        EVAL_SAMPLE * 2
    );
    println!("| variant | recall, name only | recall, name + DOB (persons) |\n|---|---|---|");
    let mut all = (Tally::default(), Tally::default());
    for ((label, t), (_, d)) in recall.iter().zip(recall_dob) {
        println!(
            "| {label} | {:.1} % ({:.1} %) | {:.1} % ({:.1} %) |",
            pct(t.review, t.total),
            pct(t.hit, t.total),
            pct(d.review, d.total),
            pct(d.hit, d.total)
        );
        all.0.add(t);
        all.1.add(d);
    }
    println!(
        "| **all** | **{:.1} %** ({:.1} %) | **{:.1} %** ({:.1} %) |",
        pct(all.0.review, all.0.total),
        pct(all.0.hit, all.0.total),
        pct(all.1.review, all.1.total),
        pct(all.1.hit, all.1.total)
    );
    println!(
        "\nFalse positives on {} unlisted common names (a common first name with one or two common \
         surnames; {} generated names whose tokens all occur in one listed person's name were \
         excluded as listed): decision ≥ review {:.2} % (hit {:.2} %) by name only; {:.2} % \
         (hit {:.2} %) with a random date of birth.",
        fp.screened,
        fp.excluded,
        pct(fp.review, fp.screened),
        pct(fp.hit, fp.screened),
        pct(fp.review_dob, fp.screened),
        pct(fp.hit_dob, fp.screened)
    );
    println!("\n---- end of snippet ----\n");
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Tally {
    fn count(&mut self, decision: Option<Decision>) {
        self.total += 1;
        self.review += usize::from(decision >= Some(Decision::Review));
        self.hit += usize::from(decision == Some(Decision::Hit));
    }

    fn add(&mut self, other: &Tally) {
        self.total += other.total;
        self.review += other.review;
        self.hit += other.hit;
    }
}

//! Screening recall and false positives on a list shaped like the real SDN + CSL.
//!
//! `cargo bench -p computegate-kyc --bench screening_recall` (or `cargo test --release -p
//! computegate-kyc --bench screening_recall` for the same run without criterion) generates a
//! list of `SCREENING_EVAL_ENTRIES` (default 25 000) entries (`screening/realistic.rs`), then
//! for each scoring configuration — the matcher before this evaluation, each lever added one
//! by one — measures:
//!
//! - **recall** per variant class of the held-out generator (`screening/variants.rs`): the
//!   share of variants that are flagged and whose match with the listed entry itself is at
//!   review band or above (and at hit band); by name only and, for persons with a listed
//!   date of birth, with it;
//! - **false positives** on common unlisted names (a common first name and one or two common
//!   surnames; names whose tokens, or whose phonetic keys, all occur in one listed person's
//!   name are excluded as listed): the share at review or above and at hit, by name only and
//!   with a random date of birth.
//!
//! `SCREENING_EVAL_SET=tuning` uses the tuning seeds (list and variants); the default,
//! `heldout`, other seeds that no weight was tuned against. `SCREENING_EVAL_SHOW_MISSES=1`
//! prints the first variants of each class that were not found at review band.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use computegate_kyc::screening::normalize::normalize_name;
use computegate_kyc::screening::phonetic::phonetic_key;
use computegate_kyc::screening::{
    Decision, EntryKind, ListEntry, PartialDate, ScoringConfig, ScreeningIndex, ScreeningResult,
    ScreeningSubject, Thresholds,
};
use uuid::Uuid;

// The 1 M benchmark's tables and generator; this binary uses only part of them.
#[allow(dead_code)]
#[path = "screening/data.rs"]
mod data;
#[path = "screening/realistic.rs"]
mod realistic;
#[path = "screening/variants.rs"]
mod variants;

use data::Rng;
use realistic::Generated;
use variants::{CLASSES, Class};

/// Variants screened per class.
const PER_CLASS: usize = 300;

/// Ranked matches looked through for the sampled entry.
const RANKED: usize = 50;

/// Unlisted common names screened for the false-positive rate.
const FP_NAMES: usize = 2_000;

#[derive(Default, Clone, Copy)]
struct Tally {
    total: usize,
    review: usize,
    hit: usize,
}

#[derive(Default)]
struct FpReport {
    screened: usize,
    excluded_exact: usize,
    excluded_phonetic: usize,
    review: usize,
    hit: usize,
    review_dob: usize,
    hit_dob: usize,
}

fn main() {
    let n = env_usize("SCREENING_EVAL_ENTRIES", 25_000);
    let heldout = std::env::var("SCREENING_EVAL_SET").map_or(true, |s| s != "tuning");
    let (list_seed, variant_seed) = if heldout {
        (0x4e1d_u64, 0xbeef_u64)
    } else {
        (0x7u64, 0x11u64)
    };
    let set = if heldout { "held-out" } else { "tuning" };
    let generated = realistic::generate(n, list_seed);
    let entries: Vec<ListEntry> = generated.iter().map(|g| g.entry.clone()).collect();
    println!(
        "{set} set: {n} entries ({} persons)",
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Person)
            .count()
    );
    for (label, config) in configs() {
        let started = Instant::now();
        let index = ScreeningIndex::build(Uuid::nil(), entries.clone(), config);
        let build = started.elapsed();
        let mut latencies = Vec::new();
        let recall = evaluate_recall(&index, &generated, variant_seed, &mut latencies);
        let fp = evaluate_false_positives(&index, variant_seed ^ 0xf0, &mut latencies);
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        println!(
            "\n### {label} ({set} set, {n} entries; index {build:.2?}; screening p50 {:.2?} p99 {:.2?} over {} queries)\n",
            pct(0.5),
            pct(0.99),
            latencies.len()
        );
        print_recall(&recall);
        print_fp(&fp);
    }
}

/// The levers off (the weights and thresholds before this evaluation), then each lever added
/// to the previous one; the last is [`ScoringConfig::default`].
/// `SCREENING_EVAL_THRESHOLDS=review,hit` replaces the thresholds of the last one (for tuning
/// on the tuning set).
fn configs() -> Vec<(&'static str, ScoringConfig)> {
    let mut now = ScoringConfig::default();
    if let Ok(t) = std::env::var("SCREENING_EVAL_THRESHOLDS")
        && let Some((review, hit)) = t.split_once(',')
        && let (Ok(review), Ok(hit)) = (review.parse(), hit.parse())
    {
        now.thresholds = Thresholds { review, hit };
    }
    let off = ScoringConfig {
        thresholds: Thresholds {
            review: 0.80,
            hit: 0.92,
        },
        edit_match_min_len: 5,
        phonetic_match: 0.0,
        dob_exact: 0.08,
        dob_month: 0.06,
        dob_year: 0.04,
        dob_near: -0.05,
        dob_conflict: -0.25,
        ..now
    };
    let phonetic = ScoringConfig {
        phonetic_match: now.phonetic_match,
        ..off
    };
    let dob = ScoringConfig {
        dob_exact: now.dob_exact,
        dob_month: now.dob_month,
        dob_year: now.dob_year,
        dob_near: now.dob_near,
        dob_conflict: now.dob_conflict,
        ..phonetic
    };
    vec![
        ("levers off (old weights and thresholds)", off),
        ("+ phonetic keys (index and token pairing)", phonetic),
        ("+ date of birth as a strong feature", dob),
        (
            "+ one-edit tokens from 4 letters, thresholds 0.83 / 0.95 (defaults)",
            now,
        ),
    ]
}

type Recall = Vec<(Class, Tally, Tally)>;

fn evaluate_recall(
    index: &ScreeningIndex,
    generated: &[Generated],
    seed: u64,
    latencies: &mut Vec<Duration>,
) -> Recall {
    let mut rng = Rng::new(seed);
    let show_misses = std::env::var_os("SCREENING_EVAL_SHOW_MISSES").is_some();
    let mut out = Vec::new();
    for class in CLASSES {
        let (mut plain, mut dob) = (Tally::default(), Tally::default());
        let mut tries = 0;
        while plain.total < PER_CLASS && tries < generated.len() * 4 {
            tries += 1;
            let g = &generated[rng.below(generated.len())];
            if g.entry.kind != EntryKind::Person
                && class != Class::Typo
                && class != Class::Reordered
            {
                continue;
            }
            let Some(name) = variants::variant(g, class, &mut rng) else {
                continue;
            };
            let mut subject = ScreeningSubject::new(g.entry.kind, name);
            let started = Instant::now();
            let r = index.screen(&subject);
            latencies.push(started.elapsed());
            let decision = found(index, &g.entry, &subject, &r);
            if show_misses && decision < Some(Decision::Review) && plain.total - plain.review < 12 {
                println!(
                    "miss [{}] {:?} for {:?} -> {:?} {:.3}",
                    label(class),
                    subject.full_name,
                    g.entry.names,
                    r.best.as_ref().map(|b| &b.matched_name),
                    r.score
                );
            }
            plain.count(decision);
            if let Some(&listed) = g.entry.dates_of_birth.first() {
                subject.date_of_birth = Some(listed);
                let r = index.screen(&subject);
                dob.count(found(index, &g.entry, &subject, &r));
            }
        }
        out.push((class, plain, dob));
    }
    out
}

/// The decision for `e` itself when the variant is screened: `None` when the screening is
/// clear; otherwise `e`'s own band among the ranked matches (another listed person with the
/// same name may rank first: the subject is then still flagged, but only `e`'s own score
/// counts here).
fn found(
    index: &ScreeningIndex,
    e: &ListEntry,
    subject: &ScreeningSubject,
    r: &ScreeningResult,
) -> Option<Decision> {
    if r.decision == Decision::Clear {
        return None;
    }
    if r.best.as_ref().is_some_and(|b| b.entry_key == e.key) {
        return Some(r.decision);
    }
    index
        .search(subject, RANKED)
        .into_iter()
        .find(|m| m.entry.key == e.key)
        .map(|m| m.decision)
        .filter(|d| *d >= Decision::Review)
}

fn evaluate_false_positives(
    index: &ScreeningIndex,
    seed: u64,
    latencies: &mut Vec<Duration>,
) -> FpReport {
    let mut rng = Rng::new(seed);
    let show = std::env::var_os("SCREENING_EVAL_SHOW_MISSES").is_some();
    let listed = Listed::new(index.entries());
    let mut report = FpReport::default();
    let mut seen = HashSet::new();
    let mut attempts = 0;
    while report.screened < FP_NAMES && attempts < FP_NAMES * 50 {
        attempts += 1;
        let name = data::common_name(&mut rng);
        if !seen.insert(name.clone()) {
            continue;
        }
        if listed.exact.contains_all(&tokens(&name)) {
            report.excluded_exact += 1;
            continue;
        }
        if listed.phonetic.contains_all(&keys(&name)) {
            report.excluded_phonetic += 1;
            continue;
        }
        let mut subject = ScreeningSubject::person(&name);
        let started = Instant::now();
        let r = index.screen(&subject);
        latencies.push(started.elapsed());
        report.screened += 1;
        if show && r.decision >= Decision::Review {
            println!(
                "false positive {:?}: {:?} {:?} {:.3}",
                r.decision,
                name,
                r.best.as_ref().map(|b| &b.matched_name),
                r.score
            );
        }
        report.review += usize::from(r.decision >= Decision::Review);
        report.hit += usize::from(r.decision == Decision::Hit);
        subject.date_of_birth = PartialDate::full(
            1945 + rng.below(60) as u16,
            1 + rng.below(12) as u8,
            1 + rng.below(28) as u8,
        );
        let r = index.screen(&subject);
        report.review_dob += usize::from(r.decision >= Decision::Review);
        report.hit_dob += usize::from(r.decision == Decision::Hit);
    }
    report
}

fn tokens(name: &str) -> Vec<String> {
    normalize_name(name, EntryKind::Person).tokens().to_vec()
}

fn keys(name: &str) -> Vec<String> {
    tokens(name)
        .iter()
        .map(|t| phonetic_key(t).primary().to_owned())
        .collect()
}

/// Listed person names, by normalized token and by phonetic key.
struct Listed {
    exact: Postings,
    phonetic: Postings,
}

struct Postings(HashMap<String, Vec<u32>>);

impl Listed {
    fn new(entries: &[ListEntry]) -> Listed {
        let mut exact = HashMap::new();
        let mut phonetic = HashMap::new();
        let mut id = 0u32;
        for e in entries.iter().filter(|e| e.kind == EntryKind::Person) {
            for name in &e.names {
                for t in tokens(name) {
                    let key = phonetic_key(&t).primary().to_owned();
                    let p: &mut Vec<u32> = phonetic.entry(key).or_default();
                    if p.last() != Some(&id) {
                        p.push(id);
                    }
                    let p: &mut Vec<u32> = exact.entry(t).or_default();
                    if p.last() != Some(&id) {
                        p.push(id);
                    }
                }
                id += 1;
            }
        }
        Listed {
            exact: Postings(exact),
            phonetic: Postings(phonetic),
        }
    }
}

impl Postings {
    /// Whether one listed name holds every one of `items`.
    fn contains_all(&self, items: &[String]) -> bool {
        let mut lists = Vec::new();
        for t in items {
            match self.0.get(t) {
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

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

fn print_recall(recall: &Recall) {
    println!(
        "| variant | n | name only: ≥ review (hit) | n with DOB | name + listed DOB: ≥ review (hit) |"
    );
    println!("|---|---:|---|---:|---|");
    let (mut all, mut all_dob) = (Tally::default(), Tally::default());
    for (class, t, d) in recall {
        println!(
            "| {} | {} | {:.1} % ({:.1} %) | {} | {:.1} % ({:.1} %) |",
            label(*class),
            t.total,
            pct(t.review, t.total),
            pct(t.hit, t.total),
            d.total,
            pct(d.review, d.total),
            pct(d.hit, d.total)
        );
        all.add(t);
        all_dob.add(d);
    }
    println!(
        "| **all** | {} | **{:.1} %** ({:.1} %) | {} | **{:.1} %** ({:.1} %) |",
        all.total,
        pct(all.review, all.total),
        pct(all.hit, all.total),
        all_dob.total,
        pct(all_dob.review, all_dob.total),
        pct(all_dob.hit, all_dob.total)
    );
}

fn print_fp(fp: &FpReport) {
    println!(
        "\nFalse positives on {} unlisted common names ({} excluded as listed by exact tokens, {} by \
         phonetic keys): name only ≥ review {:.2} % (hit {:.2} %); with a random date of birth ≥ \
         review {:.2} % (hit {:.2} %).",
        fp.screened,
        fp.excluded_exact,
        fp.excluded_phonetic,
        pct(fp.review, fp.screened),
        pct(fp.hit, fp.screened),
        pct(fp.review_dob, fp.screened),
        pct(fp.hit_dob, fp.screened)
    );
}

fn label(class: Class) -> &'static str {
    match class {
        Class::CyrillicEnglish => "Cyrillic → English (popular)",
        Class::CyrillicFrench => "Cyrillic → French",
        Class::CyrillicGerman => "Cyrillic → German",
        Class::CyrillicScholarly => "Cyrillic → ISO 9 / Library of Congress",
        Class::ArabicRomanization => "Arabic: other romanization",
        Class::NativeScript => "native script (Cyrillic, Arabic, Chinese, Greek)",
        Class::Typo => "typo",
        Class::Reordered => "reordered",
        Class::DroppedMiddle => "dropped patronymic / middle name",
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

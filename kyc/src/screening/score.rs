//! The explainable score of one subject against one list entry.
//!
//! `score = min(caps, clamp(Σ feature weights, 0, 1))` where the features are:
//!
//! - **name** (best over the entry's names): `jaro_winkler_weight` × Jaro-Winkler of the
//!   query's sorted-token string against the listed tokens it paired with, in the same order,
//!   plus the rest × a token-set similarity — tokens are paired one to one, a pair counting
//!   when its Jaro-Winkler is at least `token_match_min`, when both tokens have
//!   `edit_match_min_len`+ letters and are one edit apart, or when their phonetic keys agree
//!   (similarity `phonetic_match`; `Chtcherbakov` / `Shcherbakov`, `Youssef` / `Yusuf`); a
//!   patronymic never pairs with a surname (`Ivanovich` / `Ivanov`). The similarity blends
//!   the share of the query's tokens matched (weight `query_coverage_weight`) with the share
//!   of the listed name's tokens matched, each pair counted by its similarity. Weighting the
//!   query side keeps a listed patronymic or second surname that the applicant left out from
//!   sinking a match.
//! - **date of birth**: same day / same month / same year add; a year apart or the same year
//!   with another month or day subtracts a little; two or more years apart subtracts a lot.
//! - **country**: a shared country adds, disjoint non-empty sets subtract.
//! - **identifier number**: the same normalized number adds strongly.
//!
//! Caps (each recorded as a `rule_*` feature): fewer than two matched tokens (a single-token
//! query, a surname-only match) stays below the hit threshold; so does a name with a token
//! matched only by sound, unless the date of birth, country or an identifier agrees
//! (`rule_phonetic_only`); a weak alias stays below review
//! unless the date of birth, country or an identifier corroborates it, and below hit even
//! then; a kind mismatch (person against vessel or organization) stays below review.

use serde::{Deserialize, Serialize};

use super::normalize::{is_patronymic, normalize_id, normalize_name};
use super::phonetic::{PhoneticKey, phonetic_key};
use super::{
    Decision, EntryKind, Feature, ListEntry, MatchExplanation, PartialDate, ScreeningSubject,
    country_code,
};

/// How far below a threshold a capped score is set.
const CAP_MARGIN: f64 = 0.01;

/// Identifier numbers shorter than this (after normalization) never match: too many
/// collisions.
const MIN_ID_LEN: usize = 4;

/// Where the decision bands start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Score at or above which a person reviews the match. Default 0.83.
    pub review: f64,
    /// Score at or above which the match is a hit. Default 0.95.
    pub hit: f64,
}

/// Every weight of the score; policy data, not code. [`ScoringConfig::default`] holds the
/// values the benchmark was measured with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoringConfig {
    /// Decision thresholds.
    pub thresholds: Thresholds,
    /// Share of the name score taken by Jaro-Winkler on the sorted-token string (the rest is
    /// the token-set similarity). Default 0.35.
    pub jaro_winkler_weight: f64,
    /// Per-token Jaro-Winkler at or above which two tokens count as matched. Default 0.90.
    pub token_match_min: f64,
    /// Shortest tokens (in letters) that count as matched when one edit apart even below
    /// `token_match_min` (Jaro-Winkler punishes a typo near the start of a short token).
    /// Default 4.
    pub edit_match_min_len: usize,
    /// Share of the token-set similarity taken by the query's coverage (the rest is the
    /// listed name's coverage). Default 0.60.
    pub query_coverage_weight: f64,
    /// Similarity given to two tokens whose spellings differ but whose phonetic skeleton keys
    /// ([`phonetic_key`](super::phonetic::phonetic_key)) agree (`Chtcherbakov` /
    /// `Shcherbakov`), when their Jaro-Winkler is lower; at or above `token_match_min` such
    /// tokens pair. 0 turns the feature, and the index's phonetic candidates, off.
    /// Default 0.92.
    pub phonetic_match: f64,
    /// Added for the same full date of birth. Default +0.12.
    pub dob_exact: f64,
    /// Added for the same year and month. Default +0.08.
    pub dob_month: f64,
    /// Added for the same year (one side knows only the year). Default +0.05.
    pub dob_year: f64,
    /// Added for a year apart, or the same year with another month or day. Default −0.05.
    pub dob_near: f64,
    /// Added for dates two or more years apart. Default −0.30.
    pub dob_conflict: f64,
    /// Added when subject and entry share a country. Default +0.04.
    pub country_match: f64,
    /// Added when both have countries and share none. Default −0.04.
    pub country_conflict: f64,
    /// Added when an identifier number matches. Default +0.15.
    pub id_match: f64,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoringConfigError {
    /// Thresholds must satisfy `0 < review ≤ hit ≤ 1`.
    #[error(
        "screening thresholds must satisfy 0 < review <= hit <= 1 (review {review}, hit {hit})"
    )]
    Thresholds {
        /// The review threshold given.
        review: f64,
        /// The hit threshold given.
        hit: f64,
    },
    /// A weight is not finite or outside its range.
    #[error("screening weight {0} is out of range")]
    Weight(&'static str),
}

/// A subject's score against one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMatch {
    /// The capped, clamped score.
    pub score: f64,
    /// Which name matched and every contribution.
    pub explanation: MatchExplanation,
}

/// A subject prepared once for scoring against many entries.
#[derive(Debug, Clone)]
pub(crate) struct PreparedSubject {
    pub(crate) kind: EntryKind,
    pub(crate) tokens: Vec<String>,
    /// The phonetic key of each token.
    pub(crate) keys: Vec<PhoneticKey>,
    pub(crate) joined: String,
    pub(crate) date_of_birth: Option<PartialDate>,
    pub(crate) countries: Vec<&'static str>,
    pub(crate) ids: Vec<String>,
}

/// One name of an entry as the scorer sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameRef<'a> {
    /// Its normalized tokens.
    pub(crate) tokens: &'a [&'a str],
    /// The phonetic key of each token.
    pub(crate) keys: &'a [&'a PhoneticKey],
    /// Index into the entry's names, or weak aliases when `weak`.
    pub(crate) idx: usize,
    pub(crate) weak: bool,
}

/// How a query name compares with one list name.
#[derive(Debug, Clone)]
pub(crate) struct NameComparison {
    pub(crate) jaro_winkler: f64,
    pub(crate) token_set: f64,
    /// Matched pairs whose tokens both have two or more letters.
    pub(crate) matched: usize,
    /// Pairs made only by phonetic key (their spellings alone would not pair).
    pub(crate) phonetic: usize,
    pub(crate) pairs: Vec<(usize, usize, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DobRelation {
    Conflict,
    Near,
    Year,
    Month,
    Exact,
}

// === impl ScoringConfig ===

impl Default for ScoringConfig {
    fn default() -> ScoringConfig {
        ScoringConfig {
            thresholds: Thresholds::default(),
            jaro_winkler_weight: 0.35,
            token_match_min: 0.90,
            edit_match_min_len: 4,
            query_coverage_weight: 0.60,
            phonetic_match: 0.92,
            dob_exact: 0.12,
            dob_month: 0.08,
            dob_year: 0.05,
            dob_near: -0.05,
            dob_conflict: -0.30,
            country_match: 0.04,
            country_conflict: -0.04,
            id_match: 0.15,
        }
    }
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            review: 0.83,
            hit: 0.95,
        }
    }
}

impl ScoringConfig {
    /// Checks ranges: thresholds `0 < review ≤ hit ≤ 1`, shares and per-token minimum in
    /// `[0, 1]`, corroborations in `[0, 1]`, contradictions in `[−1, 0]`.
    pub fn validate(&self) -> Result<(), ScoringConfigError> {
        let Thresholds { review, hit } = self.thresholds;
        if !(review > 0.0 && review <= hit && hit <= 1.0) {
            return Err(ScoringConfigError::Thresholds { review, hit });
        }
        let unit = [
            ("jaro_winkler_weight", self.jaro_winkler_weight),
            ("token_match_min", self.token_match_min),
            ("query_coverage_weight", self.query_coverage_weight),
            ("phonetic_match", self.phonetic_match),
            ("dob_exact", self.dob_exact),
            ("dob_month", self.dob_month),
            ("dob_year", self.dob_year),
            ("country_match", self.country_match),
            ("id_match", self.id_match),
        ];
        let negative = [
            ("dob_near", self.dob_near),
            ("dob_conflict", self.dob_conflict),
            ("country_conflict", self.country_conflict),
        ];
        for (name, w) in unit {
            if !(0.0..=1.0).contains(&w) {
                return Err(ScoringConfigError::Weight(name));
            }
        }
        for (name, w) in negative {
            if !(-1.0..=0.0).contains(&w) {
                return Err(ScoringConfigError::Weight(name));
            }
        }
        Ok(())
    }

    /// The decision band of a score.
    pub fn decide(&self, score: f64) -> Decision {
        if score >= self.thresholds.hit {
            Decision::Hit
        } else if score >= self.thresholds.review {
            Decision::Review
        } else {
            Decision::Clear
        }
    }
}

/// Scores `subject` against one entry (the best of its names). `None` when no name of the
/// entry shares anything with the subject's name. The index calls the same code for each
/// candidate; this entry point serves tests and one-off checks.
pub fn score_entry(
    config: &ScoringConfig,
    subject: &ScreeningSubject,
    entry: &ListEntry,
) -> Option<ScoredMatch> {
    let prepared = PreparedSubject::new(subject);
    let names: Vec<(usize, bool, Vec<String>)> = entry
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (i, false, n))
        .chain(
            entry
                .weak_aliases
                .iter()
                .enumerate()
                .map(|(i, n)| (i, true, n)),
        )
        .map(|(i, weak, n)| (i, weak, normalize_name(n, entry.kind).tokens().to_vec()))
        .collect();
    let mut best: Option<ScoredMatch> = None;
    for (idx, weak, tokens) in &names {
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let keys: Vec<PhoneticKey> = tokens.iter().map(|t| phonetic_key(t)).collect();
        let key_refs: Vec<&PhoneticKey> = keys.iter().collect();
        let name = NameRef {
            tokens: &refs,
            keys: &key_refs,
            idx: *idx,
            weak: *weak,
        };
        let Some(scored) = score_name(config, &prepared, entry, name, true, 0.0) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| scored.score > b.score) {
            best = Some(scored);
        }
    }
    best
}

// === impl PreparedSubject ===

impl PreparedSubject {
    /// The most corroboration can add for this subject: only what it brings (a date of
    /// birth, countries, identifiers) can agree.
    pub(crate) fn max_bonus(&self, config: &ScoringConfig) -> f64 {
        let mut bonus = 0.0;
        if self.date_of_birth.is_some() {
            bonus += config.dob_exact.max(config.dob_month).max(config.dob_year);
        }
        if !self.countries.is_empty() {
            bonus += config.country_match;
        }
        if !self.ids.is_empty() {
            bonus += config.id_match;
        }
        bonus
    }

    pub(crate) fn new(subject: &ScreeningSubject) -> PreparedSubject {
        let name = normalize_name(&subject.full_name, subject.kind);
        let mut countries: Vec<&'static str> = subject
            .countries
            .iter()
            .filter_map(|c| country_code(c))
            .collect();
        countries.sort_unstable();
        countries.dedup();
        let ids = subject
            .id_numbers
            .iter()
            .map(|i| normalize_id(i))
            .filter(|i| i.len() >= MIN_ID_LEN)
            .collect();
        PreparedSubject {
            kind: subject.kind,
            joined: name.joined(),
            keys: name.tokens().iter().map(|t| phonetic_key(t)).collect(),
            tokens: name.tokens().to_vec(),
            date_of_birth: subject.date_of_birth,
            countries,
            ids,
        }
    }
}

/// Scores the subject against one name of `entry` (strong name `idx`, or weak alias `idx`).
/// `None` when the names share no token, or when the token pairing already shows that the
/// score cannot reach `floor` (the best score the caller has so far; 0 to always score).
/// With `explain`, the result carries every feature; without, only the score (the index
/// scores thousands of candidates and explains one).
pub(crate) fn score_name(
    config: &ScoringConfig,
    subject: &PreparedSubject,
    entry: &ListEntry,
    name: NameRef<'_>,
    explain: bool,
    floor: f64,
) -> Option<ScoredMatch> {
    let query: Vec<&str> = subject.tokens.iter().map(String::as_str).collect();
    let query_keys: Vec<&PhoneticKey> = subject.keys.iter().collect();
    let name_floor = floor - subject.max_bonus(config);
    let cmp = compare_names(
        (&query, &query_keys),
        &subject.joined,
        (name.tokens, name.keys),
        config,
        name_floor,
    )?;
    let mut sheet = Sheet::new(explain);
    name_features(config, &query, name.tokens, &cmp, &mut sheet);
    let corroborated = corroboration(config, subject, entry, &mut sheet);
    let mut score = sheet.sum.clamp(0.0, 1.0);
    let t = config.thresholds;
    let below = |threshold: f64| (threshold - CAP_MARGIN).max(0.0);
    if !subject.kind.compatible(entry.kind) {
        sheet.cap(&mut score, below(t.review), "rule_kind_mismatch", || {
            format!(
                "a {} cannot match a listed {}",
                subject.kind.as_str(),
                entry.kind.as_str()
            )
        });
    }
    if name.weak {
        let (limit, note) = if corroborated {
            (below(t.hit), "weak alias: corroborated, at most a review")
        } else {
            (
                below(t.review),
                "weak alias without corroboration: never a match alone",
            )
        };
        sheet.cap(&mut score, limit, "weak_alias", || note.to_owned());
    }
    if cmp.phonetic > 0 && !corroborated {
        sheet.cap(&mut score, below(t.hit), "rule_phonetic_only", || {
            format!(
                "{} token(s) matched only by sound: without a date of birth, country or \
                 identifier that agrees, at most a review",
                cmp.phonetic
            )
        });
    }
    if cmp.matched < 2 {
        sheet.cap(&mut score, below(t.hit), "rule_single_token", || {
            format!(
                "{} token(s) matched: a single-token or surname-only match is never a hit",
                cmp.matched
            )
        });
    }
    let matched_name = if !explain {
        String::new()
    } else if name.weak {
        entry
            .weak_aliases
            .get(name.idx)
            .cloned()
            .unwrap_or_default()
    } else {
        entry.names.get(name.idx).cloned().unwrap_or_default()
    };
    Some(ScoredMatch {
        score,
        explanation: MatchExplanation {
            entry_key: if explain {
                entry.key.clone()
            } else {
                String::new()
            },
            matched_name,
            features: sheet.features,
        },
    })
}

/// The most any `name_len`-token name of a `kind` entry can score against the subject: every
/// token paired perfectly, every corroboration the subject can offer agreeing, and the caps
/// that are certain to apply. The index skips candidates whose bound is below the best score so far;
/// it prunes names much longer than the query once a good match is known.
pub(crate) fn upper_bound(
    config: &ScoringConfig,
    subject: &PreparedSubject,
    kind: EntryKind,
    name_len: usize,
    weak: bool,
) -> f64 {
    let q = subject.tokens.len();
    let pairs = q.min(name_len) as f64;
    let w = config.query_coverage_weight;
    let token_set = (pairs * (w / q.max(1) as f64 + (1.0 - w) / name_len.max(1) as f64)).min(1.0);
    let name = config.jaro_winkler_weight + (1.0 - config.jaro_winkler_weight) * token_set;
    let mut bound = (name + subject.max_bonus(config)).min(1.0);
    if q < 2 || name_len < 2 || weak {
        bound = bound.min((config.thresholds.hit - CAP_MARGIN).max(0.0));
    }
    if !subject.kind.compatible(kind) {
        bound = bound.min((config.thresholds.review - CAP_MARGIN).max(0.0));
    }
    bound
}

/// The one-to-one token pairing (a patronymic never with a surname) and then Jaro-Winkler of
/// the query's sorted-token string against the paired listed tokens in the same order; `None`
/// when no token pairs, or when the pairing bounds the name score (before corroboration)
/// below `floor` (the string comparison, the costly part, is then skipped). Each side is its
/// tokens and their phonetic keys.
pub(crate) fn compare_names(
    (query, query_keys): (&[&str], &[&PhoneticKey]),
    query_joined: &str,
    (name, name_keys): (&[&str], &[&PhoneticKey]),
    config: &ScoringConfig,
    floor: f64,
) -> Option<NameComparison> {
    let agree = |i: usize, j: usize| matches!((query_keys.get(i), name_keys.get(j)), (Some(a), Some(b)) if a.agrees(b));
    // (query token, name token, similarity, paired by phonetic key only)
    let mut candidates: Vec<(usize, usize, f64, bool)> = Vec::new();
    for (i, q) in query.iter().enumerate() {
        for (j, n) in name.iter().enumerate() {
            // A patronymic is not its father's surname (`Ivanovich`, `Ivanov`); a typo in
            // a patronymic's ending still pairs.
            if is_patronymic(q) != is_patronymic(n) && q.len().abs_diff(n.len()) > 1 {
                continue;
            }
            let sim = token_similarity(q, n);
            let by_spelling = sim >= config.token_match_min || one_edit_apart(q, n, sim, config);
            let by_sound = config.phonetic_match > sim && agree(i, j);
            match (by_spelling, by_sound) {
                (true, true) => candidates.push((i, j, config.phonetic_match, false)),
                (true, false) => candidates.push((i, j, sim, false)),
                (false, true) => candidates.push((i, j, config.phonetic_match, true)),
                (false, false) => {}
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    // Best pairs first; ties broken by position so the pairing is deterministic.
    candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let mut used_q = vec![false; query.len()];
    let mut used_n = vec![false; name.len()];
    let mut pairs = Vec::new();
    // The listed name's tokens in the order of the query tokens they paired with; a token
    // paired by sound stands as the query spells it (its spelling difference is what the key
    // forgives; the token-set similarity already counts it below an exact match).
    let mut aligned: Vec<(usize, &str)> = Vec::new();
    let mut phonetic = 0;
    for (i, j, sim, by_sound) in candidates {
        if !used_q[i] && !used_n[j] {
            used_q[i] = true;
            used_n[j] = true;
            pairs.push((i, j, sim));
            phonetic += usize::from(by_sound);
            aligned.push((i, if by_sound { query[i] } else { name[j] }));
        }
    }
    let sum: f64 = pairs.iter().map(|p| p.2).sum();
    let w = config.query_coverage_weight;
    let token_set = sum * (w / query.len() as f64 + (1.0 - w) / name.len() as f64);
    let matched = pairs
        .iter()
        .filter(|(i, j, _)| query[*i].len() >= 2 && name[*j].len() >= 2)
        .count();
    // Jaro-Winkler is at most 1.
    let best_case = config.jaro_winkler_weight + (1.0 - config.jaro_winkler_weight) * token_set;
    if best_case < floor {
        return None;
    }
    // In query order: two spellings of one name sort differently (`tchegouk oleg`, `cheguk
    // oleg`). Unpaired listed tokens (a patronymic or second surname the applicant left out)
    // are already counted by the token-set coverage; leaving them in the string would count
    // them twice.
    aligned.sort_unstable();
    let aligned: Vec<&str> = aligned.into_iter().map(|(_, t)| t).collect();
    let jaro_winkler = jaro_winkler(query_joined, &aligned.join(" "));
    Some(NameComparison {
        jaro_winkler,
        token_set,
        matched,
        phonetic,
        pairs,
    })
}

fn token_similarity(a: &str, b: &str) -> f64 {
    if a == b { 1.0 } else { jaro_winkler(a, b) }
}

/// Longest strings compared without allocating.
const STACK_JW: usize = 128;

/// Jaro-Winkler, the same value as `strsim::jaro_winkler`, without its per-call allocation for
/// the short ASCII strings normalization produces (the index calls this thousands of times
/// per query).
pub(crate) fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > STACK_JW || b.len() > STACK_JW || !a.is_ascii() || !b.is_ascii() {
        return strsim::jaro_winkler(
            std::str::from_utf8(a).unwrap_or_default(),
            std::str::from_utf8(b).unwrap_or_default(),
        );
    }
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let range = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_flags = [false; STACK_JW];
    let mut b_flags = [false; STACK_JW];
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(range);
        let hi = b.len().min(i + range + 1);
        for j in lo..hi {
            if !b_flags[j] && b[j] == ca {
                a_flags[i] = true;
                b_flags[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        if !a_flags[i] {
            continue;
        }
        while !b_flags[j] {
            j += 1;
        }
        if ca != b[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let m = matches as f64;
    let jaro =
        (m / a.len() as f64 + m / b.len() as f64 + (m - (transpositions / 2) as f64) / m) / 3.0;
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    jaro + 0.1 * prefix as f64 * (1.0 - jaro)
}

/// Whether two long-enough tokens are one edit (insertion, deletion, substitution or
/// transposition) apart. Such a pair always has Jaro-Winkler above 0.8, so lower values skip
/// the edit-distance computation.
fn one_edit_apart(a: &str, b: &str, jaro_winkler: f64, config: &ScoringConfig) -> bool {
    let min = config.edit_match_min_len;
    a.len() >= min
        && b.len() >= min
        && a.len().abs_diff(b.len()) <= 1
        && jaro_winkler >= 0.8
        && strsim::osa_distance(a, b) <= 1
}

/// Collects feature weights, and the features themselves when explaining.
struct Sheet {
    explain: bool,
    sum: f64,
    features: Vec<Feature>,
}

impl Sheet {
    fn new(explain: bool) -> Sheet {
        Sheet {
            explain,
            sum: 0.0,
            features: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, value: f64, weight: f64, note: impl FnOnce() -> String) {
        self.sum += weight;
        if self.explain {
            self.features.push(Feature {
                name: name.to_owned(),
                value,
                weight,
                note: note(),
            });
        }
    }

    /// Lowers `score` to `limit` if above it, recording the rule.
    fn cap(&mut self, score: &mut f64, limit: f64, name: &str, note: impl FnOnce() -> String) {
        if *score > limit {
            if self.explain {
                self.features.push(Feature {
                    name: name.to_owned(),
                    value: 1.0,
                    weight: limit - *score,
                    note: note(),
                });
            }
            *score = limit;
        }
    }
}

fn name_features(
    config: &ScoringConfig,
    query: &[&str],
    name: &[&str],
    cmp: &NameComparison,
    sheet: &mut Sheet,
) {
    sheet.add(
        "name_jaro_winkler",
        cmp.jaro_winkler,
        config.jaro_winkler_weight * cmp.jaro_winkler,
        || format!("\"{}\" vs \"{}\"", query.join(" "), name.join(" ")),
    );
    sheet.add(
        "name_token_set",
        cmp.token_set,
        (1.0 - config.jaro_winkler_weight) * cmp.token_set,
        || {
            let pairs: Vec<String> = cmp
                .pairs
                .iter()
                .map(|&(i, j, sim)| format!("{}~{} {:.2}", query[i], name[j], sim))
                .collect();
            format!(
                "{} of {} query tokens matched ({})",
                cmp.pairs.len(),
                query.len(),
                pairs.join(", ")
            )
        },
    );
}

/// Adds the date-of-birth, country and identifier features; true when any of them agrees.
fn corroboration(
    config: &ScoringConfig,
    subject: &PreparedSubject,
    entry: &ListEntry,
    sheet: &mut Sheet,
) -> bool {
    let mut agrees = false;
    if let Some(dob) = subject.date_of_birth
        && let Some((relation, listed)) = entry
            .dates_of_birth
            .iter()
            .map(|d| (relate(dob, *d), *d))
            .max_by_key(|(r, d)| (*r, std::cmp::Reverse(*d)))
    {
        let (value, weight, word) = match relation {
            DobRelation::Exact => (1.0, config.dob_exact, "same date"),
            DobRelation::Month => (0.75, config.dob_month, "same month"),
            DobRelation::Year => (0.5, config.dob_year, "same year"),
            DobRelation::Near => (-0.25, config.dob_near, "close but different"),
            DobRelation::Conflict => (-1.0, config.dob_conflict, "conflicting"),
        };
        agrees |= relation >= DobRelation::Year;
        sheet.add("date_of_birth", value, weight, || {
            format!("{dob} vs listed {listed}: {word}")
        });
    }
    if !subject.countries.is_empty() && !entry.countries.is_empty() {
        let shared = subject
            .countries
            .iter()
            .filter(|c| entry.countries.iter().any(|e| e == *c));
        if shared.clone().next().is_none() {
            sheet.add("country", -1.0, config.country_conflict, || {
                format!(
                    "{} vs listed {}: no country in common",
                    subject.countries.join(","),
                    entry.countries.join(",")
                )
            });
        } else {
            agrees = true;
            sheet.add("country", 1.0, config.country_match, || {
                format!("shared {}", shared.copied().collect::<Vec<_>>().join(","))
            });
        }
    }
    if !subject.ids.is_empty()
        && let Some(id) = entry
            .id_numbers
            .iter()
            .find(|listed| subject.ids.contains(&normalize_id(listed)))
    {
        agrees = true;
        sheet.add("id_number", 1.0, config.id_match, || {
            format!("identifier {id} matches")
        });
    }
    agrees
}

fn relate(a: PartialDate, b: PartialDate) -> DobRelation {
    let years = a.get_year().abs_diff(b.get_year());
    if years == 1 {
        return DobRelation::Near;
    }
    if years > 1 {
        return DobRelation::Conflict;
    }
    match (a.get_month(), b.get_month()) {
        (Some(am), Some(bm)) if am != bm => DobRelation::Near,
        (Some(_), Some(_)) => match (a.get_day(), b.get_day()) {
            (Some(ad), Some(bd)) if ad == bd => DobRelation::Exact,
            (Some(_), Some(_)) => DobRelation::Near,
            _ => DobRelation::Month,
        },
        _ => DobRelation::Year,
    }
}

#[cfg(test)]
mod tests;

//! The in-memory candidate index and [`ScreeningIndex::screen`].
//!
//! Layout (all flat vectors, so a million entries build in seconds and stay compact):
//! a vocabulary of normalized tokens; every entry name (weak aliases flagged) as a run of
//! token ids; per token the sorted list of names that contain it (postings); and a deletion
//! neighbourhood — for each token of four or more letters, a hash of the token and of each
//! one-letter deletion of it — so a query token finds vocabulary tokens one edit away
//! (insertion, deletion, substitution or transposition) with a handful of binary searches.
//!
//! A phonetic index maps each token's skeleton key ([`phonetic_key`]) to the vocabulary tokens
//! with that key, so a query token also reaches the spellings another romanization gives the
//! same name (`Chtcherbakov` reaches `shcherbakov`), one edit or not.
//!
//! A query keeps the names that share at least two of its tokens (exactly, one edit away or
//! by phonetic key);
//! a one-token query keeps the names with that token, shortest names first. Tokens so common
//! that their postings exceed [`FREQUENT_POSTINGS`] do not enumerate candidates: they are
//! checked by binary search against the candidates the rarer tokens produced. At most
//! [`MAX_SCORED`] candidates are considered, those whose shared tokens are rarest first; each is
//! skipped when even a perfect match on the tokens it shares could not beat the best score so
//! far, scored as a number otherwise, and only the winner is explained.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use uuid::Uuid;

use super::normalize::normalize_name;
use super::phonetic::{PhoneticKey, phonetic_key};
use super::score::{self, PreparedSubject, ScoredMatch, ScoringConfig, score_name, upper_bound};
use super::{Decision, ListEntry, MatchExplanation, ScreeningResult, ScreeningSubject};

/// Postings longer than this are checked by lookup instead of enumerated.
const FREQUENT_POSTINGS: usize = 5_000;

/// Most candidate names scored for one query (those sharing the rarest tokens first).
const MAX_SCORED: usize = 1_500;

/// Most candidate names scored for a one-token query (which can only be a review).
const MAX_SCORED_SINGLE: usize = 1_000;

/// Query tokens considered (a name longer than this is truncated).
const MAX_QUERY_TOKENS: usize = 32;

/// Shortest vocabulary token given a deletion neighbourhood; shortest query token looked up
/// one edit away.
const MIN_FUZZY_VOCAB: usize = 4;
const MIN_FUZZY_QUERY: usize = 3;

/// Shortest phonetic key reading that reaches other spellings through the index.
const MIN_INDEX_KEY_LEN: usize = 2;

/// A phonetic key reading shared by more vocabulary tokens than this reaches none of them: it
/// says too little about the name.
const MAX_KEY_SPELLINGS: usize = 4_096;

/// A denied-party list ready to screen against. Immutable once built; share it behind an
/// `Arc` and swap it when a new list version is imported.
pub struct ScreeningIndex {
    list_version: Uuid,
    config: ScoringConfig,
    entries: Vec<ListEntry>,
    names: Vec<NameRef>,
    /// `name_tokens[name_starts[n]..name_starts[n + 1]]` are the token ids of name `n`.
    name_starts: Vec<u32>,
    name_tokens: Vec<u32>,
    vocab: Vec<Box<str>>,
    vocab_ids: FxHashMap<Box<str>, u32>,
    /// `postings[posting_starts[t]..posting_starts[t + 1]]`: sorted names containing token `t`.
    posting_starts: Vec<u32>,
    postings: Vec<u32>,
    /// `(hash32(variant) << 32) | token id`, sorted.
    deletes: Vec<u64>,
    /// The phonetic key of each vocabulary token.
    vocab_keys: Vec<PhoneticKey>,
    /// `(hash32(key) << 32) | token id`, sorted, for every reading of [`MIN_INDEX_KEY_LEN`]+
    /// letters.
    phonetic: Vec<u64>,
}

/// Sizes of a built index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// List entries.
    pub entries: usize,
    /// Indexed names, including weak aliases.
    pub names: usize,
    /// Distinct normalized tokens.
    pub tokens: usize,
    /// Deletion-neighbourhood keys.
    pub deletion_keys: usize,
    /// Phonetic-index entries (one per key reading of each vocabulary token).
    pub phonetic_keys: usize,
}

/// One entry of an ad-hoc [`ScreeningIndex::search`], with why it scored as it did.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedMatch<'a> {
    /// The list entry.
    pub entry: &'a ListEntry,
    /// Its best name's score in `[0, 1]`.
    pub score: f64,
    /// The decision that score would give under the index's thresholds.
    pub decision: Decision,
    /// Which name matched and every contribution.
    pub explanation: MatchExplanation,
}

/// Which entry name an indexed name is.
#[derive(Debug, Clone, Copy)]
struct NameRef {
    entry: u32,
    idx: u16,
    weak: bool,
}

/// A fast non-cryptographic hasher for integer and short-string keys (the index is built from
/// list data, not from requests, so hash flooding is not a concern; results never depend on
/// iteration order).
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// One query token and the vocabulary tokens it reaches.
struct Group {
    tokens: Vec<u32>,
    size: usize,
}

// === impl ScreeningIndex ===

impl ScreeningIndex {
    /// Builds the index for `entries` of list version `list_version`. Names that normalize to
    /// nothing are skipped; an entry may then be unreachable, which only happens for names
    /// made of punctuation.
    pub fn build(list_version: Uuid, entries: Vec<ListEntry>, config: ScoringConfig) -> Self {
        let mut index = ScreeningIndex {
            list_version,
            config,
            entries: Vec::new(),
            names: Vec::new(),
            name_starts: vec![0],
            name_tokens: Vec::new(),
            vocab: Vec::new(),
            vocab_ids: FxHashMap::default(),
            posting_starts: Vec::new(),
            postings: Vec::new(),
            deletes: Vec::new(),
            vocab_keys: Vec::new(),
            phonetic: Vec::new(),
        };
        for (e, entry) in entries.iter().enumerate() {
            index.add_names(e, entry);
        }
        index.entries = entries;
        index.build_postings();
        index.build_deletes();
        index.build_phonetic();
        index
    }

    /// The list version this index was built from.
    pub fn list_version(&self) -> Uuid {
        self.list_version
    }

    /// The scoring configuration in use.
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// Replaces the scoring configuration (thresholds and weights are policy data).
    pub fn set_config(&mut self, config: ScoringConfig) {
        self.config = config;
    }

    /// The entries, in list order.
    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// Sizes, for logs and the benchmark.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            entries: self.entries.len(),
            names: self.names.len(),
            tokens: self.vocab.len(),
            deletion_keys: self.deletes.len(),
            phonetic_keys: self.phonetic.len(),
        }
    }

    /// Screens one subject: candidates from the index, each scored, the best one explained.
    /// Pure and deterministic: the same index and subject give the same result.
    pub fn screen(&self, subject: &ScreeningSubject) -> ScreeningResult {
        let prepared = PreparedSubject::new(subject);
        // Numbers only for every candidate, skipping those that cannot beat the best so far;
        // then the explanation for the winner.
        let mut best: Option<(f64, u32, u32)> = None;
        for name in self.candidates(&prepared.tokens, &prepared.keys) {
            let NameRef { entry, weak, .. } = self.names[name as usize];
            if let Some((score, _, best_name)) = best {
                let kind = self.entries[entry as usize].kind;
                let bound = upper_bound(&self.config, &prepared, kind, self.name_len(name), weak);
                // Name ids follow entry order, so a tie only wins with a smaller id.
                if bound < score || bound == score && name > best_name {
                    continue;
                }
            }
            let floor = best.map_or(0.0, |(score, _, _)| score);
            let Some(scored) = self.score(&prepared, name, false, floor) else {
                continue;
            };
            let better = best.is_none_or(|(score, b_entry, b_name)| {
                scored.score > score || scored.score == score && (entry, name) < (b_entry, b_name)
            });
            if better {
                best = Some((scored.score, entry, name));
            }
        }
        let explained = best.and_then(|(_, _, name)| self.score(&prepared, name, true, 0.0));
        let score = explained.as_ref().map_or(0.0, |m| m.score);
        ScreeningResult {
            list_version: self.list_version,
            score,
            decision: self.config.decide(score),
            best: explained.map(|m| m.explanation),
        }
    }

    /// The `limit` best-scoring entries for `subject`, best first, each with its explanation:
    /// the ad-hoc search staff run ("who on the list looks like this name?"), where seeing the
    /// runners-up matters as much as the winner. One match per entry (its best-scoring name);
    /// entries scoring 0 are left out. Slower than [`screen`](Self::screen), which prunes
    /// every candidate that cannot win; fine for one query at a time.
    pub fn search(&self, subject: &ScreeningSubject, limit: usize) -> Vec<RankedMatch<'_>> {
        let prepared = PreparedSubject::new(subject);
        let mut best_per_entry: FxHashMap<u32, (u32, ScoredMatch)> = FxHashMap::default();
        for name in self.candidates(&prepared.tokens, &prepared.keys) {
            let entry = self.names[name as usize].entry;
            let Some(scored) = self.score(&prepared, name, true, 0.0) else {
                continue;
            };
            if scored.score <= 0.0 {
                continue;
            }
            let better = best_per_entry.get(&entry).is_none_or(|(kept, m)| {
                scored.score > m.score || scored.score == m.score && name < *kept
            });
            if better {
                best_per_entry.insert(entry, (name, scored));
            }
        }
        let mut ranked: Vec<(u32, ScoredMatch)> = best_per_entry
            .into_iter()
            .map(|(entry, (_, scored))| (entry, scored))
            .collect();
        // Best first; equal scores in list order, so the answer is deterministic.
        ranked.sort_by(|(ea, a), (eb, b)| b.score.total_cmp(&a.score).then(ea.cmp(eb)));
        ranked.truncate(limit);
        ranked
            .into_iter()
            .map(|(entry, scored)| RankedMatch {
                entry: &self.entries[entry as usize],
                score: scored.score,
                decision: self.config.decide(scored.score),
                explanation: scored.explanation,
            })
            .collect()
    }

    fn score(
        &self,
        subject: &PreparedSubject,
        name: u32,
        explain: bool,
        floor: f64,
    ) -> Option<ScoredMatch> {
        let NameRef { entry, idx, weak } = self.names[name as usize];
        let tokens = self.name_token_strs(name);
        let keys = self.name_keys(name);
        let name = score::NameRef {
            tokens: &tokens,
            keys: &keys,
            idx: usize::from(idx),
            weak,
        };
        score_name(
            &self.config,
            subject,
            &self.entries[entry as usize],
            name,
            explain,
            floor,
        )
    }

    fn name_len(&self, name: u32) -> usize {
        (self.name_starts[name as usize + 1] - self.name_starts[name as usize]) as usize
    }

    fn add_names(&mut self, e: usize, entry: &ListEntry) {
        let Ok(entry_id) = u32::try_from(e) else {
            return;
        };
        let mut seen: Vec<Vec<String>> = Vec::new();
        let strong = entry.names.iter().map(|n| (n, false));
        let weak = entry.weak_aliases.iter().map(|n| (n, true));
        let mut counts = [0u16; 2];
        for (name, is_weak) in strong.chain(weak) {
            let idx = counts[usize::from(is_weak)];
            counts[usize::from(is_weak)] = idx.saturating_add(1);
            let normalized = normalize_name(name, entry.kind);
            if normalized.is_empty() || seen.iter().any(|s| s == normalized.tokens()) {
                continue;
            }
            for token in normalized.tokens() {
                let id = self.intern(token);
                self.name_tokens.push(id);
            }
            seen.push(normalized.tokens().to_vec());
            self.names.push(NameRef {
                entry: entry_id,
                idx,
                weak: is_weak,
            });
            self.name_starts.push(self.name_tokens.len() as u32);
        }
    }

    fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.vocab_ids.get(token) {
            return id;
        }
        let id = self.vocab.len() as u32;
        self.vocab.push(token.into());
        self.vocab_ids.insert(token.into(), id);
        id
    }

    /// Counting sort of (token, name) pairs: names are visited in order, so every postings
    /// list comes out sorted.
    fn build_postings(&mut self) {
        let mut counts = vec![0u32; self.vocab.len() + 1];
        for &t in &self.name_tokens {
            counts[t as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut next = counts.clone();
        let mut postings = vec![0u32; self.name_tokens.len()];
        for name in 0..self.names.len() {
            let (start, end) = (self.name_starts[name], self.name_starts[name + 1]);
            for &t in &self.name_tokens[start as usize..end as usize] {
                let slot = &mut next[t as usize];
                postings[*slot as usize] = name as u32;
                *slot += 1;
            }
        }
        self.posting_starts = counts;
        self.postings = postings;
    }

    fn build_deletes(&mut self) {
        let mut deletes = Vec::new();
        let mut buf = Vec::new();
        for (id, token) in self.vocab.iter().enumerate() {
            let bytes = token.as_bytes();
            if bytes.len() < MIN_FUZZY_VOCAB {
                continue;
            }
            deletes.push(delete_key(hash32(bytes), id as u32));
            for skip in 0..bytes.len() {
                deletion(bytes, skip, &mut buf);
                deletes.push(delete_key(hash32(&buf), id as u32));
            }
        }
        deletes.sort_unstable();
        deletes.dedup();
        self.deletes = deletes;
    }

    /// Every vocabulary token's phonetic key, and the key index over the informative ones.
    fn build_phonetic(&mut self) {
        self.vocab_keys = self.vocab.iter().map(|t| phonetic_key(t)).collect();
        let mut phonetic: Vec<u64> = self
            .vocab_keys
            .iter()
            .enumerate()
            .flat_map(|(id, k)| k.forms().map(move |f| (id, f)))
            .filter(|(_, form)| form.len() >= MIN_INDEX_KEY_LEN)
            .map(|(id, form)| delete_key(hash32(form.as_bytes()), id as u32))
            .collect();
        phonetic.sort_unstable();
        self.phonetic = phonetic;
    }

    fn postings_of(&self, token: u32) -> &[u32] {
        let start = self.posting_starts[token as usize] as usize;
        let end = self.posting_starts[token as usize + 1] as usize;
        &self.postings[start..end]
    }

    fn name_token_ids(&self, name: u32) -> &[u32] {
        let start = self.name_starts[name as usize] as usize;
        let end = self.name_starts[name as usize + 1] as usize;
        &self.name_tokens[start..end]
    }

    fn name_token_strs(&self, name: u32) -> Vec<&str> {
        self.name_token_ids(name)
            .iter()
            .map(|&t| &*self.vocab[t as usize])
            .collect()
    }

    fn name_keys(&self, name: u32) -> Vec<&PhoneticKey> {
        self.name_token_ids(name)
            .iter()
            .map(|&t| &self.vocab_keys[t as usize])
            .collect()
    }

    /// Vocabulary tokens sharing a reading of `key` (none for a short reading or one shared
    /// by too many spellings, or when the phonetic feature is off).
    fn phonetic_reach(&self, key: &PhoneticKey, out: &mut Vec<u32>) {
        if self.config.phonetic_match <= 0.0 {
            return;
        }
        for form in key.forms().filter(|f| f.len() >= MIN_INDEX_KEY_LEN) {
            let hash = u64::from(hash32(form.as_bytes()));
            let lo = self.phonetic.partition_point(|&d| (d >> 32) < hash);
            let ids: Vec<u32> = self.phonetic[lo..]
                .iter()
                .take_while(|&&d| (d >> 32) == hash)
                .map(|&d| (d & u64::from(u32::MAX)) as u32)
                .filter(|&id| self.vocab_keys[id as usize].forms().any(|f| f == form))
                .collect();
            if ids.len() <= MAX_KEY_SPELLINGS {
                out.extend(ids);
            }
        }
    }

    /// Vocabulary tokens equal to `q`, one edit away from it, or sharing its phonetic `key`.
    fn reach(&self, q: &str, key: &PhoneticKey) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(&id) = self.vocab_ids.get(q) {
            out.push(id);
        }
        self.phonetic_reach(key, &mut out);
        let bytes = q.as_bytes();
        if bytes.len() < MIN_FUZZY_QUERY {
            out.sort_unstable();
            out.dedup();
            return out;
        }
        let mut keys = vec![hash32(bytes)];
        let mut buf = Vec::new();
        for skip in 0..bytes.len() {
            deletion(bytes, skip, &mut buf);
            keys.push(hash32(&buf));
            // The query has an extra letter and the shorter token is too short to have a
            // neighbourhood of its own.
            if let Some(&id) = std::str::from_utf8(&buf)
                .ok()
                .and_then(|s| self.vocab_ids.get(s))
            {
                out.push(id);
            }
        }
        for key in keys {
            let lo = self
                .deletes
                .partition_point(|&d| (d >> 32) < u64::from(key));
            for &d in self.deletes[lo..]
                .iter()
                .take_while(|&&d| (d >> 32) == u64::from(key))
            {
                let id = (d & u64::from(u32::MAX)) as u32;
                let token = &*self.vocab[id as usize];
                if token.len().abs_diff(q.len()) <= 1 && strsim::osa_distance(token, q) <= 1 {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Candidate names for the query tokens, rarest shared tokens first, at most
    /// [`MAX_SCORED`].
    fn candidates(&self, query: &[String], keys: &[PhoneticKey]) -> Vec<u32> {
        let groups: Vec<Group> = query
            .iter()
            .zip(keys)
            .take(MAX_QUERY_TOKENS)
            .map(|(q, key)| {
                let tokens = self.reach(q, key);
                let size = tokens.iter().map(|&t| self.postings_of(t).len()).sum();
                Group { tokens, size }
            })
            .filter(|g| g.size > 0)
            .collect();
        if groups.is_empty() {
            return Vec::new();
        }
        if query.len() == 1 {
            return self.single_token_candidates(&groups[0]);
        }
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&g| (groups[g].size, g));
        let mut masks: FxHashMap<u32, u32> = FxHashMap::default();
        for (rank, &g) in order.iter().enumerate() {
            let bit = 1u32 << g;
            if rank == 0 || groups[g].size <= FREQUENT_POSTINGS {
                for &t in &groups[g].tokens {
                    for &name in self.postings_of(t) {
                        *masks.entry(name).or_default() |= bit;
                    }
                }
            } else {
                // A name has a handful of tokens and the group (sorted) may have hundreds.
                for (name, mask) in masks.iter_mut() {
                    let contains = self
                        .name_token_ids(*name)
                        .iter()
                        .any(|t| groups[g].tokens.binary_search(t).is_ok());
                    if contains {
                        *mask |= bit;
                    }
                }
            }
        }
        // Rank by the information the shared tokens carry (inverse document frequency), so
        // a name reached through a rare token and a common one comes before the many names
        // that share only common tokens with the query.
        let total = self.names.len().max(1) as f64;
        let weights: Vec<f64> = groups
            .iter()
            .map(|g| (total / (1 + g.size) as f64).ln().max(0.0))
            .collect();
        let mut ranked: Vec<(f64, u32)> = masks
            .into_iter()
            .filter(|(_, mask)| mask.count_ones() >= 2)
            .map(|(name, mask)| {
                let weight: f64 = (0..groups.len())
                    .filter(|g| mask & (1 << g) != 0)
                    .map(|g| weights[g])
                    .sum();
                (weight, name)
            })
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.truncate(MAX_SCORED);
        ranked.into_iter().map(|(_, name)| name).collect()
    }

    /// A one-token query can only be a review; it looks at the shortest names first, since
    /// those are the ones it can resemble.
    fn single_token_candidates(&self, group: &Group) -> Vec<u32> {
        let mut names: Vec<(usize, u32)> = group
            .tokens
            .iter()
            .flat_map(|&t| self.postings_of(t).iter().copied())
            .map(|name| (self.name_len(name), name))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.truncate(MAX_SCORED_SINGLE);
        names.into_iter().map(|(_, name)| name).collect()
    }
}

impl std::fmt::Debug for ScreeningIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreeningIndex")
            .field("list_version", &self.list_version)
            .field("stats", &self.stats())
            .finish()
    }
}

/// `bytes` without the byte at `skip`, into `buf`.
fn deletion(bytes: &[u8], skip: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&bytes[..skip]);
    buf.extend_from_slice(&bytes[skip + 1..]);
}

fn delete_key(hash: u32, token: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(token)
}

/// FNV-1a, 32 bits: collisions only add candidates that the edit-distance check removes.
fn hash32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

// === impl FxHasher ===

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests;

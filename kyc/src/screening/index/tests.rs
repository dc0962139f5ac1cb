use super::*;
use crate::screening::{Decision, EntryKind, PartialDate};

fn entry(key: &str, kind: EntryKind, names: &[&str]) -> ListEntry {
    ListEntry {
        key: key.into(),
        source: "TEST".into(),
        kind,
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        weak_aliases: vec![],
        dates_of_birth: vec![],
        countries: vec![],
        id_numbers: vec![],
        programs: vec![],
    }
}

fn index() -> ScreeningIndex {
    let mut zorvath = entry(
        "p1",
        EntryKind::Person,
        &["Ivan Petrovich ZORVATH", "Ivan ZORVAT"],
    );
    zorvath.dates_of_birth = vec![PartialDate::full(1970, 1, 12).unwrap()];
    zorvath.weak_aliases = vec!["Glassmaker".into()];
    let entries = vec![
        zorvath,
        entry("p2", EntryKind::Person, &["Vladimir Kostelanov"]),
        entry("p3", EntryKind::Person, &["José María Quintanar Ybarra"]),
        entry("p4", EntryKind::Person, &["Сергей Дмитриевич Волков"]),
        entry("o1", EntryKind::Organization, &["Korvalis Shipping LLC"]),
        entry(
            "o2",
            EntryKind::Organization,
            &["Tarnex Industrial Holdings"],
        ),
        entry("v1", EntryKind::Vessel, &["NORTHERN ZEPHYR"]),
    ];
    ScreeningIndex::build(Uuid::nil(), entries, ScoringConfig::default())
}

fn best(index: &ScreeningIndex, subject: &ScreeningSubject) -> (Option<String>, Decision) {
    let r = index.screen(subject);
    (r.best.map(|b| b.entry_key), r.decision)
}

#[test]
fn variants_are_found() {
    let idx = index();
    let cases = [
        ("Ivan Petrovich Zorvath", "p1"),
        ("ZORVATH, Ivan Petrovich", "p1"), // reordered
        ("Ivan Zorvat", "p1"),             // second name
        ("Ivan Zorwath", "p1"),            // one-letter typo
        ("Ivna Zorvath", "p1"),            // transposition
        ("Ivan Zorvathh", "p1"),           // insertion
        ("Ivаn Zоrvath", "p1"),            // Cyrillic а and о
        ("Иван Зорват", "p1"),             // transliteration
        ("Vladimir Kostelanov", "p2"),
        ("Vladimir Kostelanov", "p2"),
        ("Jose Maria Quintanar Ybarra", "p3"), // diacritics removed
        ("QUINTANAR YBARRA, José María", "p3"),
        ("Sergei Dmitrievich Volkov", "p4"), // Latin form of a Cyrillic listing
        ("KORVALIS SHIPPING COMPANY LIMITED", "o1"), // legal forms
        ("Korvalis Shiping", "o1"),
    ];
    for (name, key) in cases {
        let kind = if key.starts_with('o') {
            EntryKind::Organization
        } else {
            EntryKind::Person
        };
        let (found, decision) = best(&idx, &ScreeningSubject::new(kind, name));
        assert_eq!(found.as_deref(), Some(key), "{name}");
        assert!(decision >= Decision::Review, "{name}: {decision:?}");
    }
}

#[test]
fn one_shared_token_is_not_a_candidate() {
    let idx = index();
    let (found, decision) = best(&idx, &ScreeningSubject::person("Maria Zorvath"));
    assert!(found.is_none(), "{found:?}");
    assert_eq!(decision, Decision::Clear);
    let r = idx.screen(&ScreeningSubject::person("Nobody Atall"));
    assert_eq!(r.score, 0.0);
    assert!(r.best.is_none());
}

#[test]
fn single_token_query_is_at_most_review() {
    let idx = index();
    let r = idx.screen(&ScreeningSubject::person("Zorvath"));
    assert_ne!(r.decision, Decision::Hit);
    let r = idx.screen(&ScreeningSubject::organization("Tarnex"));
    assert_ne!(r.decision, Decision::Hit);
}

#[test]
fn kind_mismatch_and_weak_alias() {
    let idx = index();
    let r = idx.screen(&ScreeningSubject::person("Northern Zephyr"));
    assert_eq!(r.decision, Decision::Clear);
    let r = idx.screen(&ScreeningSubject::new(EntryKind::Vessel, "Northern Zephyr"));
    assert_eq!(r.decision, Decision::Hit);
    // A weak alias is indexed but never a match alone.
    let r = idx.screen(&ScreeningSubject::person("Glassmaker"));
    assert_eq!(r.decision, Decision::Clear);
}

#[test]
fn screening_is_deterministic() {
    let idx = index();
    let s = ScreeningSubject::person("Ivan Zorvat");
    let a = idx.screen(&s);
    for _ in 0..5 {
        assert_eq!(idx.screen(&s), a);
    }
    assert_eq!(a.list_version, Uuid::nil());
    let rebuilt = index();
    assert_eq!(rebuilt.screen(&s), a);
}

#[test]
fn frequent_tokens_are_checked_not_enumerated() {
    // More names with "trading" than FREQUENT_POSTINGS: the rare token drives the search.
    let mut entries: Vec<ListEntry> = (0..FREQUENT_POSTINGS + 100)
        .map(|i| {
            entry(
                &format!("t{i}"),
                EntryKind::Organization,
                &[&format!("Trading Co{}", word(i))],
            )
        })
        .collect();
    entries.push(entry("x", EntryKind::Organization, &["Quorvantic Trading"]));
    let idx = ScreeningIndex::build(Uuid::nil(), entries, ScoringConfig::default());
    let (found, decision) = best(&idx, &ScreeningSubject::organization("Quorvantic Trading"));
    assert_eq!(found.as_deref(), Some("x"));
    assert_eq!(decision, Decision::Hit);
    let stats = idx.stats();
    assert_eq!(stats.entries, FREQUENT_POSTINGS + 101);
    assert!(stats.deletion_keys > stats.tokens);
}

#[test]
fn empty_index_and_empty_query() {
    let idx = ScreeningIndex::build(Uuid::nil(), vec![], ScoringConfig::default());
    assert_eq!(
        idx.screen(&ScreeningSubject::person("Ivan Zorvath")).score,
        0.0
    );
    assert_eq!(index().screen(&ScreeningSubject::person(" -- ")).score, 0.0);
}

/// A distinct letters-only word per number.
fn word(mut i: usize) -> String {
    let mut w = String::new();
    loop {
        w.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

#[test]
fn hash_and_deletions() {
    let mut buf = Vec::new();
    deletion(b"abcd", 1, &mut buf);
    assert_eq!(buf, b"acd");
    assert_ne!(hash32(b"abc"), hash32(b"acb"));
}

#[test]
fn search_ranks_entries_best_first_with_the_winner_of_screen() {
    let idx = index();
    let mut subject = ScreeningSubject::person("Ivan Zorvat");
    subject.date_of_birth = PartialDate::full(1970, 1, 12);
    let ranked = idx.search(&subject, 10);
    let screened = idx.screen(&subject);
    assert_eq!(
        ranked.first().map(|m| m.entry.key.as_str()),
        screened.best.as_ref().map(|b| b.entry_key.as_str())
    );
    assert_eq!(ranked[0].score, screened.score);
    assert_eq!(ranked[0].decision, screened.decision);
    // One match per entry, best first, every one explained.
    let keys: Vec<&str> = ranked.iter().map(|m| m.entry.key.as_str()).collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique);
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        ranked
            .iter()
            .all(|m| m.score > 0.0 && !m.explanation.features.is_empty())
    );
    assert!(
        ranked[0]
            .explanation
            .features
            .iter()
            .any(|f| f.name == "date_of_birth" && f.weight > 0.0)
    );
}

#[test]
fn search_respects_the_limit_and_finds_nothing_for_unrelated_names() {
    let idx = index();
    let subject = ScreeningSubject::organization("Korvalis Shipping");
    assert_eq!(idx.search(&subject, 1).len(), 1);
    assert!(idx.search(&subject, 0).is_empty());
    assert!(
        idx.search(&ScreeningSubject::person("Quentin Applebaum"), 10)
            .is_empty()
    );
}

#[test]
fn other_romanizations_reach_the_entry_through_the_phonetic_index() {
    let entries = vec![
        entry(
            "p1",
            EntryKind::Person,
            &["Yevgeniy Arkadyevich SHCHERBAKOV"],
        ),
        entry("p2", EntryKind::Person, &["Fedor ZAYTSEV"]),
        entry("p3", EntryKind::Person, &["Yusuf al-Rashid"]),
    ];
    let idx = ScreeningIndex::build(Uuid::nil(), entries, ScoringConfig::default());
    assert!(idx.stats().phonetic_keys > 0);
    for (name, key) in [
        ("Evgueni Chtcherbakov", "p1"),
        ("Jewgeni Schtscherbakow", "p1"),
        ("Fëdor Zajcev", "p2"),
        ("Fjodor Saizew", "p2"),
        ("Youssef ar-Rachid", "p3"),
    ] {
        let (found, decision) = best(&idx, &ScreeningSubject::person(name));
        assert_eq!(found.as_deref(), Some(key), "{name}");
        assert!(decision >= Decision::Review, "{name}: {decision:?}");
    }
}

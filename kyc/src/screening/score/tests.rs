use super::*;

fn person_entry() -> ListEntry {
    ListEntry {
        key: "test:1".into(),
        source: "TEST".into(),
        kind: EntryKind::Person,
        names: vec!["Ivan Petrovich ZORVATH".into(), "Ivan ZORVAT".into()],
        weak_aliases: vec!["The Glassmaker".into()],
        dates_of_birth: vec![PartialDate::full(1970, 1, 12).unwrap()],
        countries: vec!["RU".into()],
        id_numbers: vec!["P-7788123".into()],
        programs: vec!["TEST".into()],
    }
}

fn vessel_entry() -> ListEntry {
    ListEntry {
        key: "test:2".into(),
        kind: EntryKind::Vessel,
        names: vec!["NORTHERN ZEPHYR".into()],
        weak_aliases: vec![],
        dates_of_birth: vec![],
        countries: vec![],
        id_numbers: vec!["IMO 9187629".into()],
        ..person_entry()
    }
}

fn score(subject: &ScreeningSubject, entry: &ListEntry) -> ScoredMatch {
    score_entry(&ScoringConfig::default(), subject, entry).expect("a candidate")
}

fn feature<'a>(m: &'a ScoredMatch, name: &str) -> Option<&'a Feature> {
    m.explanation.features.iter().find(|f| f.name == name)
}

fn decide(m: &ScoredMatch) -> Decision {
    ScoringConfig::default().decide(m.score)
}

#[test]
fn exact_name_is_a_hit_and_weights_add_up() {
    let m = score(
        &ScreeningSubject::person("zorvath ivan petrovich"),
        &person_entry(),
    );
    assert_eq!(m.explanation.matched_name, "Ivan Petrovich ZORVATH");
    assert!((m.score - 1.0).abs() < 1e-9, "{m:?}");
    assert_eq!(decide(&m), Decision::Hit);
    let sum: f64 = m.explanation.features.iter().map(|f| f.weight).sum();
    assert!((sum - m.score).abs() < 1e-9);
}

#[test]
fn surname_only_and_single_token_are_never_hits() {
    for name in ["Zorvath", "Maria Zorvath", "ZORVATH"] {
        let m = score(&ScreeningSubject::person(name), &person_entry());
        assert_ne!(decide(&m), Decision::Hit, "{name}: {m:?}");
        assert!(m.score < ScoringConfig::default().thresholds.hit);
    }
    // A single-token exact match is at most a review, even with an identifier match.
    let org = ListEntry {
        key: "test:3".into(),
        kind: EntryKind::Organization,
        names: vec!["KORVALINEX".into()],
        weak_aliases: vec![],
        dates_of_birth: vec![],
        ..person_entry()
    };
    let mut subject = ScreeningSubject::organization("Korvalinex LLC");
    subject.id_numbers = vec!["P7788123".into()];
    let m = score(&subject, &org);
    assert!(feature(&m, "rule_single_token").is_some(), "{m:?}");
    assert!(feature(&m, "id_number").is_some(), "{m:?}");
    assert_eq!(decide(&m), Decision::Review);
}

#[test]
fn kind_mismatch_is_never_even_a_review() {
    let m = score(
        &ScreeningSubject::person("Northern Zephyr"),
        &vessel_entry(),
    );
    assert!(feature(&m, "rule_kind_mismatch").is_some());
    assert_eq!(decide(&m), Decision::Clear);
    let m = score(
        &ScreeningSubject::new(EntryKind::Vessel, "Northern Zephyr"),
        &vessel_entry(),
    );
    assert_eq!(decide(&m), Decision::Hit);
}

#[test]
fn date_of_birth_corroborates_or_contradicts() {
    let base = ScreeningSubject::person("Ivan Zorvath");
    let plain = score(&base, &person_entry()).score;
    let with = |dob| {
        let mut s = base.clone();
        s.date_of_birth = dob;
        score(&s, &person_entry())
    };
    let conflict = with(PartialDate::full(1985, 3, 1));
    assert!(conflict.score < plain - 0.2, "{conflict:?}");
    assert_eq!(decide(&conflict), Decision::Clear);
    assert_eq!(feature(&conflict, "date_of_birth").unwrap().value, -1.0);
    let near = with(PartialDate::year(1971));
    assert!(near.score < plain && near.score > conflict.score);
    // A partial name match gains from a matching date.
    let mut partial = ScreeningSubject::person("Ivan Petrov Zorvath");
    let before = score(&partial, &person_entry()).score;
    partial.date_of_birth = PartialDate::year_month(1970, 1);
    let after = score(&partial, &person_entry());
    assert!(after.score > before, "{before} {after:?}");
    assert_eq!(feature(&after, "date_of_birth").unwrap().value, 0.75);
}

#[test]
fn id_number_match_raises_the_score() {
    let mut s = ScreeningSubject::person("Ivan Zorvatov");
    let before = score(&s, &person_entry()).score;
    s.id_numbers = vec!["p 7788123".into()];
    let after = score(&s, &person_entry());
    let expected = (before + 0.15).min(1.0);
    assert!((after.score - expected).abs() < 1e-9, "{before} {after:?}");
    assert_eq!(feature(&after, "id_number").unwrap().weight, 0.15);
}

#[test]
fn country_corroborates_or_contradicts() {
    let mut s = ScreeningSubject::person("Ivan Petrov Zorvath");
    let base = score(&s, &person_entry()).score;
    s.countries = vec!["Russia".into()];
    assert!(score(&s, &person_entry()).score > base);
    s.countries = vec!["DE".into()];
    assert!(score(&s, &person_entry()).score < base);
}

#[test]
fn weak_alias_only_corroborates() {
    let s = ScreeningSubject::person("The Glassmaker");
    let m = score(&s, &person_entry());
    assert_eq!(m.explanation.matched_name, "The Glassmaker");
    assert_eq!(decide(&m), Decision::Clear, "{m:?}");
    let mut s = s;
    s.date_of_birth = PartialDate::full(1970, 1, 12);
    let m = score(&s, &person_entry());
    assert_eq!(decide(&m), Decision::Review, "{m:?}");
}

#[test]
fn unrelated_names_give_no_candidate() {
    let s = ScreeningSubject::person("Alice Brown");
    assert!(score_entry(&ScoringConfig::default(), &s, &person_entry()).is_none());
}

#[test]
fn relations() {
    let d = |y, m, dd| PartialDate::full(y, m, dd).unwrap();
    assert_eq!(relate(d(1970, 1, 12), d(1970, 1, 12)), DobRelation::Exact);
    assert_eq!(relate(d(1970, 1, 12), d(1970, 1, 13)), DobRelation::Near);
    assert_eq!(relate(d(1970, 1, 12), d(1970, 2, 12)), DobRelation::Near);
    assert_eq!(
        relate(d(1970, 1, 12), PartialDate::year_month(1970, 1).unwrap()),
        DobRelation::Month
    );
    assert_eq!(
        relate(d(1970, 1, 12), PartialDate::year(1970).unwrap()),
        DobRelation::Year
    );
    assert_eq!(relate(d(1970, 1, 12), d(1971, 1, 12)), DobRelation::Near);
    assert_eq!(
        relate(d(1970, 1, 12), d(1975, 1, 12)),
        DobRelation::Conflict
    );
}

#[test]
fn config_validation() {
    assert!(ScoringConfig::default().validate().is_ok());
    let mut c = ScoringConfig::default();
    c.thresholds.review = c.thresholds.hit + 0.01;
    assert!(matches!(
        c.validate(),
        Err(ScoringConfigError::Thresholds { .. })
    ));
    let c = ScoringConfig {
        dob_conflict: 0.3,
        ..ScoringConfig::default()
    };
    assert_eq!(
        c.validate(),
        Err(ScoringConfigError::Weight("dob_conflict"))
    );
    let c = ScoringConfig {
        id_match: f64::NAN,
        ..ScoringConfig::default()
    };
    assert!(c.validate().is_err());
}

/// Compares two token lists (the query's joined string and both sides' keys computed here).
fn compare(query: &[&str], name: &[&str], c: &ScoringConfig, floor: f64) -> Option<NameComparison> {
    let mut sorted = query.to_vec();
    sorted.sort_unstable();
    let keys = |t: &[&str]| -> Vec<PhoneticKey> { t.iter().map(|t| phonetic_key(t)).collect() };
    let (qk, nk) = (keys(query), keys(name));
    let (qk, nk): (Vec<&PhoneticKey>, Vec<&PhoneticKey>) =
        (qk.iter().collect(), nk.iter().collect());
    compare_names((query, &qk), &sorted.join(" "), (name, &nk), c, floor)
}

#[test]
fn token_pairing_tolerates_one_edit() {
    let c = ScoringConfig::default();
    let cmp = compare(&["smyth", "john"], &["john", "smith"], &c, 0.0).unwrap();
    assert_eq!(cmp.matched, 2, "{cmp:?}");
    let cmp = compare(&["jane", "smith"], &["john", "smith"], &c, 0.0).unwrap();
    assert_eq!(cmp.matched, 1, "{cmp:?}");
    // An omitted middle name costs less than an unmatched query token.
    let full = compare(
        &["ivan", "zorvath"],
        &["ivan", "petrovich", "zorvath"],
        &c,
        0.0,
    )
    .unwrap();
    assert!(
        (full.token_set - (0.6 + 0.4 * 2.0 / 3.0)).abs() < 1e-9,
        "{full:?}"
    );
    let extra = compare(
        &["ivan", "petrovich", "zorvath"],
        &["ivan", "zorvath"],
        &c,
        0.0,
    )
    .unwrap();
    // A floor above what the pairing allows skips the comparison.
    assert!(compare(&["jane", "smith"], &["john", "smith"], &c, 0.99).is_none());
    assert!(extra.token_set < full.token_set);
}

#[test]
fn jaro_winkler_agrees_with_strsim() {
    let words = [
        "",
        "a",
        "ab",
        "martha",
        "marhta",
        "dixon",
        "dicksonx",
        "jellyfish",
        "smellyfish",
        "ivan zorvath",
        "ivan petrovich zorvath",
        "putin vladimir",
        "vladimir vladimirovich putin",
        "aaaa",
        "aaab",
        "abcdefghijklmnop",
        "ponmlkjihgfedcba",
    ];
    for a in words {
        for b in words {
            let ours = jaro_winkler(a, b);
            let theirs = strsim::jaro_winkler(a, b);
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{a:?} {b:?}: {ours} vs {theirs}"
            );
        }
    }
    let long = "x".repeat(300);
    assert_eq!(
        jaro_winkler(&long, &long),
        strsim::jaro_winkler(&long, &long)
    );
    assert_eq!(jaro_winkler("é", "e"), strsim::jaro_winkler("é", "e"));
}

proptest::proptest! {
    #[test]
    fn jaro_winkler_matches_strsim_on_ascii(a in "[a-e ]{0,40}", b in "[a-e ]{0,40}") {
        let ours = jaro_winkler(&a, &b);
        let theirs = strsim::jaro_winkler(&a, &b);
        proptest::prop_assert!((ours - theirs).abs() < 1e-12, "{} vs {}", ours, theirs);
    }
}

fn shcherbakov() -> ListEntry {
    ListEntry {
        key: "test:3".into(),
        names: vec!["Yevgeniy Arkadyevich SHCHERBAKOV".into()],
        weak_aliases: vec![],
        countries: vec![],
        id_numbers: vec![],
        dates_of_birth: vec![PartialDate::full(1961, 3, 5).unwrap()],
        ..person_entry()
    }
}

#[test]
fn other_romanizations_pair_by_sound_and_need_corroboration_for_a_hit() {
    for name in [
        "Evgueni Arkadievitch Chtcherbakov",
        "Jewgeni Arkadjewitsch Schtscherbakow",
        "Evgenij Arkad'evič Ŝerbakov",
    ] {
        let m = score(&ScreeningSubject::person(name), &shcherbakov());
        assert_eq!(decide(&m), Decision::Review, "{name}: {m:?}");
        let mut subject = ScreeningSubject::person(name);
        subject.date_of_birth = PartialDate::full(1961, 3, 5);
        let m = score(&subject, &shcherbakov());
        assert_eq!(
            decide(&m),
            Decision::Hit,
            "{name} with the listed date of birth: {m:?}"
        );
        // A date of birth years apart sends it back below review.
        subject.date_of_birth = PartialDate::full(1975, 3, 5);
        assert_eq!(decide(&score(&subject, &shcherbakov())), Decision::Clear);
    }
}

#[test]
fn a_match_by_sound_alone_is_at_most_a_review() {
    // `Jouravlev` (French) and `Zhuravlev` pair by sound only.
    let entry = ListEntry {
        names: vec!["Viktor ZHURAVLEV".into()],
        dates_of_birth: vec![],
        ..shcherbakov()
    };
    let m = score(&ScreeningSubject::person("Viktor Jouravlev"), &entry);
    assert!(feature(&m, "rule_phonetic_only").is_some(), "{m:?}");
    assert_eq!(decide(&m), Decision::Review, "{m:?}");
}

#[test]
fn phonetic_pairing_can_be_turned_off() {
    let off = ScoringConfig {
        phonetic_match: 0.0,
        ..ScoringConfig::default()
    };
    let subject = ScreeningSubject::person("Evgueni Chtcherbakov");
    let m = score_entry(&off, &subject, &shcherbakov());
    assert!(m.is_none_or(|m| off.decide(m.score) == Decision::Clear));
}

#[test]
fn a_patronymic_does_not_pair_with_a_surname() {
    let c = ScoringConfig::default();
    let cmp = compare(
        &["ivan", "ivanov"],
        &["ivan", "ivanovich", "zorvath"],
        &c,
        0.0,
    )
    .unwrap();
    assert_eq!(cmp.matched, 1, "{cmp:?}");
    // A typo in the patronymic's ending still pairs.
    let cmp = compare(
        &["ivanovihc", "zorvath"],
        &["ivanovich", "zorvath"],
        &c,
        0.0,
    )
    .unwrap();
    assert_eq!(cmp.matched, 2, "{cmp:?}");
}

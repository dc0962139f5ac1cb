//! Screening list versions and results in the store, on SQLite and PostgreSQL alike (the
//! PostgreSQL variants are ignored by default; `scripts/test.sh` runs them).

#[path = "support/mod.rs"]
mod support;

/// Named so that `cargo test -p computegate-kyc screening` selects these tests.
mod screening {
    use std::io::Cursor;
    use std::path::PathBuf;

    use computegate_kyc::screening::{
        Decision, ImportRequest, ListFormat, ListInput, ScoringConfig, ScreeningError,
        ScreeningSubject,
    };
    use sha2::{Digest, Sha256};
    use time::Duration;
    use uuid::Uuid;

    use crate::support::{Ctx, t0};

    fn data(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/screening")
            .join(name);
        std::fs::read(path).expect("test data")
    }

    fn input(name: &str) -> ListInput<Cursor<Vec<u8>>> {
        ListInput {
            file_name: name.into(),
            reader: Cursor::new(data(name)),
        }
    }

    fn sdn_request() -> ImportRequest<Cursor<Vec<u8>>> {
        ImportRequest {
            format: ListFormat::Sdn,
            main: input("sdn.csv"),
            aliases: Some(input("alt.csv")),
            addresses: Some(input("add.csv")),
            label: Some("SDN test set".into()),
        }
    }

    async fn import_latest_load_and_record(ctx: Ctx) {
        let s = &ctx.store;
        assert!(
            s.screening()
                .latest_screening_version()
                .await
                .unwrap()
                .is_none()
        );

        let csl = s
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "csl.csv", Cursor::new(data("csl.csv"))),
                t0(),
            )
            .await
            .unwrap();
        assert_eq!(csl.format, ListFormat::Csl);
        assert_eq!(csl.entry_count, 12);
        assert_eq!(csl.source_file, "csl.csv");
        assert_eq!(csl.sha256, hex::encode(Sha256::digest(data("csl.csv"))));
        assert!(csl.label.starts_with("csl 2030-01-01 "), "{}", csl.label);
        assert_eq!(csl.imported_at, t0());
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(csl.clone())
        );

        let later = t0() + Duration::hours(1);
        let sdn = s
            .screening()
            .import_screening_list(sdn_request(), later)
            .await
            .unwrap();
        assert_eq!(sdn.entry_count, 12);
        assert_eq!(sdn.source_file, "sdn.csv+alt.csv+add.csv");
        assert_eq!(sdn.label, "SDN test set");
        assert_eq!(sdn.sha256.len(), 64);
        assert_ne!(sdn.sha256, hex::encode(Sha256::digest(data("sdn.csv"))));
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(sdn.clone())
        );
        assert_eq!(
            s.screening().screening_list_version(csl.id).await.unwrap(),
            Some(csl.clone())
        );

        // Each version loads into its own index, with its own entries.
        let index = s
            .screening()
            .load_screening_index(sdn.id, ScoringConfig::default())
            .await
            .unwrap();
        assert_eq!(index.list_version(), sdn.id);
        assert_eq!(index.entries().len(), 12);
        let subject = ScreeningSubject::person("Ivan Petrovich Zorvath");
        let hit = index.screen(&subject);
        assert_eq!(hit.decision, Decision::Hit);
        assert_eq!(hit.best.as_ref().unwrap().entry_key, "sdn:36001");
        let csl_index = s
            .screening()
            .load_screening_index(csl.id, ScoringConfig::default())
            .await
            .unwrap();
        let csl_hit = csl_index.screen(&subject);
        assert!(csl_hit.best.as_ref().unwrap().entry_key.starts_with("csl:"));

        // Results keep the list version and the explanation.
        let clear = index.screen(&ScreeningSubject::person("Jane Doe"));
        let first = s
            .screening()
            .record_screening("customer:1", &clear, t0())
            .await
            .unwrap();
        let second = s
            .screening()
            .record_screening("customer:1", &hit, later)
            .await
            .unwrap();
        s.screening()
            .record_screening("customer:2", &csl_hit, later)
            .await
            .unwrap();
        let stored = s
            .screening()
            .screening_results_for("customer:1")
            .await
            .unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].id, second);
        assert_eq!(stored[0].list_version, sdn.id);
        assert_eq!(stored[0].decision, Decision::Hit);
        assert_eq!(stored[0].best, hit.best);
        assert!((stored[0].score - hit.score).abs() < 1e-12);
        assert_eq!(stored[0].screened_at, later);
        assert_eq!(stored[1].id, first);
        assert_eq!(stored[1].decision, Decision::Clear);
        assert_eq!(stored[1].best, None);
        assert!(
            s.screening()
                .screening_results_for("nobody")
                .await
                .unwrap()
                .is_empty()
        );
    }

    async fn unknown_versions_and_bad_input(ctx: Ctx) {
        let s = &ctx.store;
        let unknown = Uuid::now_v7();
        let err = s
            .screening()
            .load_screening_index(unknown, ScoringConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScreeningError::UnknownVersion(v) if v == unknown),
            "{err:?}"
        );
        let orphan = computegate_kyc::screening::ScreeningResult {
            list_version: unknown,
            score: 0.0,
            decision: Decision::Clear,
            best: None,
        };
        let err = s
            .screening()
            .record_screening("customer:1", &orphan, t0())
            .await
            .unwrap_err();
        assert!(matches!(err, ScreeningError::UnknownVersion(_)), "{err:?}");
        let err = s
            .screening()
            .record_screening("", &orphan, t0())
            .await
            .unwrap_err();
        assert!(matches!(err, ScreeningError::InvalidText(_)), "{err:?}");

        let mut bad_config = ScoringConfig::default();
        bad_config.thresholds.hit = 0.5;
        let good = s
            .screening()
            .import_screening_list(
                ImportRequest::new(
                    ListFormat::OpenSanctions,
                    "os.jsonl",
                    Cursor::new(data("opensanctions.jsonl")),
                ),
                t0(),
            )
            .await
            .unwrap();
        assert_eq!(good.entry_count, 12);
        let err = s
            .screening()
            .load_screening_index(good.id, bad_config)
            .await
            .unwrap_err();
        assert!(matches!(err, ScreeningError::Config(_)), "{err:?}");

        // A malformed file stores nothing and says where it broke.
        let mut broken = data("opensanctions.jsonl");
        broken.extend_from_slice(
            b"{\"id\": \"late\", \"schema\": \"Person\", \"properties\": {\"name\": [7]}}\n",
        );
        let err = s
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::OpenSanctions, "bad.jsonl", Cursor::new(broken)),
                t0() + Duration::hours(2),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("opensanctions: line 16, record 15: field \"name\" is invalid"),
            "{err}"
        );
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(good.clone())
        );

        // So does a list with no entries at all.
        let err = s
            .screening()
            .import_screening_list(
                ImportRequest::new(
                    ListFormat::Csl,
                    "empty.csv",
                    Cursor::new(b"id,source,name\n".to_vec()),
                ),
                t0() + Duration::hours(3),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ScreeningError::EmptyList), "{err:?}");
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(good)
        );
    }

    async fn large_import_is_chunked(ctx: Ctx) {
        // More than one full chunk plus a partial one, with keys and order preserved.
        let mut csv = String::from("id,source,type,name,dates_of_birth\n");
        for i in 0..2_345 {
            csv.push_str(&format!(
                "{i},TEST,Individual,\"Person{i} Testname{}\",1970-01-01\n",
                i % 7
            ));
        }
        let v = ctx
            .store
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "big.csv", Cursor::new(csv.into_bytes())),
                t0(),
            )
            .await
            .unwrap();
        assert_eq!(v.entry_count, 2_345);
        let index = ctx
            .store
            .screening()
            .load_screening_index(v.id, ScoringConfig::default())
            .await
            .unwrap();
        let keys: Vec<&str> = index.entries().iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys[0], "csl:TEST:0");
        assert_eq!(keys[2_344], "csl:TEST:2344");
        let r = index.screen(&ScreeningSubject::person("Person1234 Testname2"));
        assert_eq!(r.best.unwrap().entry_key, "csl:TEST:1234");
    }

    crate::store_suite!(
        import_latest_load_and_record,
        unknown_versions_and_bad_input,
        large_import_is_chunked,
    );
}

//! Screening list versions and results in the store, on SQLite and PostgreSQL alike (the
//! PostgreSQL variants are ignored by default; `scripts/test.sh` runs them).

#[path = "support/mod.rs"]
mod support;

/// Named so that `cargo test -p computegate-kyc screening` selects these tests.
mod screening {
    use std::io::{Cursor, Read};
    use std::path::PathBuf;
    use std::sync::mpsc;

    use computegate_kyc::accounts::Actor;
    use computegate_kyc::audit::{AuditAction, AuditEntry};
    use computegate_kyc::screening::{
        BATCH_ROWS, Decision, ImportRequest, ListFormat, ListInput, ScoringConfig, ScreeningError,
        ScreeningSubject,
    };
    use sha2::{Digest, Sha256};
    use time::Duration;
    use uuid::Uuid;

    use crate::support::{Backend, Ctx, t0};

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
        let csv = people_csv(2_345);
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

    /// A CSL CSV of `n` people, `csl:TEST:0` to `csl:TEST:{n-1}`.
    fn people_csv(n: usize) -> String {
        let mut csv = String::from("id,source,type,name,dates_of_birth\n");
        for i in 0..n {
            csv.push_str(&format!(
                "{i},TEST,Individual,\"Person{i} Testname{}\",1970-01-01\n",
                i % 7
            ));
        }
        csv
    }

    /// Hands out `bytes`, then fails with an I/O error (a file cut off, a disk gone), or, with
    /// a gate, first waits until the test opens it.
    struct Interrupted {
        bytes: Cursor<Vec<u8>>,
        /// Where the interruption is.
        at: u64,
        /// `None`: fail there. `Some`: tell the test, wait for it, then go on.
        gate: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
    }

    impl Read for Interrupted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let position = self.bytes.position();
            if position == self.at {
                match self.gate.take() {
                    None => return Err(std::io::Error::other("the file is cut off")),
                    Some((reached, open)) => {
                        reached.send(()).unwrap();
                        open.recv().unwrap();
                    }
                }
            }
            let room = if position < self.at {
                usize::try_from(self.at - position).unwrap().min(buf.len())
            } else {
                buf.len()
            };
            self.bytes.read(&mut buf[..room])
        }
    }

    /// Byte offset of line `n` (0-based, the header being line 0) of `text`.
    fn line_offset(text: &str, n: usize) -> u64 {
        let offset: usize = text.split_inclusive('\n').take(n).map(str::len).sum();
        u64::try_from(offset).unwrap()
    }

    async fn a_failed_import_leaves_the_previous_list_current(ctx: Ctx) {
        let s = &ctx.store;
        let good = s
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "csl.csv", Cursor::new(data("csl.csv"))),
                t0(),
            )
            .await
            .unwrap();
        // Cut off after two committed batches and part of a third.
        let csv = people_csv(BATCH_ROWS * 3);
        let reader = Interrupted {
            at: line_offset(&csv, BATCH_ROWS * 2 + 1_500),
            bytes: Cursor::new(csv.into_bytes()),
            gate: None,
        };
        let err = s
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "cut.csv", reader),
                t0() + Duration::hours(1),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ScreeningError::Parse(_)) && format!("{err:?}").contains("cut off"),
            "{err:?}"
        );
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(good.clone())
        );
        let (lists, entries) = counts(&ctx).await;
        assert_eq!(
            (lists, entries),
            (1, 12),
            "no rows of the failed import remain"
        );
    }

    async fn a_write_during_a_large_import_takes_its_turn(ctx: Ctx) {
        let s = ctx.store.clone();
        let good = s
            .screening()
            .import_screening_list(
                ImportRequest::new(ListFormat::Csl, "csl.csv", Cursor::new(data("csl.csv"))),
                t0(),
            )
            .await
            .unwrap();
        // The import stops reading after two batches until the test has written.
        let csv = people_csv(BATCH_ROWS * 3);
        let (reached_tx, reached) = mpsc::channel();
        let (open, open_rx) = mpsc::channel();
        let reader = Interrupted {
            at: line_offset(&csv, BATCH_ROWS * 2 + 1_500),
            bytes: Cursor::new(csv.into_bytes()),
            gate: Some((reached_tx, open_rx)),
        };
        let importer = s.clone();
        let import = tokio::spawn(async move {
            importer
                .screening()
                .import_screening_list(
                    ImportRequest::new(ListFormat::Csl, "big.csv", reader),
                    t0() + Duration::hours(1),
                )
                .await
        });
        tokio::task::spawn_blocking(move || reached.recv().unwrap())
            .await
            .unwrap();
        // Midway, a transactional write (an audit record: SQLite's write lock, taken in turn)
        // goes through at once, and readers still see the previous version as current.
        let entry = AuditEntry::new(
            t0(),
            &Actor::system("test"),
            AuditAction::ScreeningListImported,
            "screening_list:test",
        );
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s.audit().record_audit(&entry),
        )
        .await
        .expect("the write is not held up behind the whole import")
        .unwrap();
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(good)
        );
        // At least the first batch is committed (the parser is 7 chunks past the channel's
        // 4), though not yet current.
        let (_, entries) = counts(&ctx).await;
        assert!(
            entries >= 12 + i64::try_from(BATCH_ROWS).unwrap(),
            "{entries}"
        );
        assert!(!import.is_finished());
        open.send(()).unwrap();
        let version = import.await.unwrap().unwrap();
        assert_eq!(version.entry_count, u64::try_from(BATCH_ROWS * 3).unwrap());
        assert_eq!(
            s.screening().latest_screening_version().await.unwrap(),
            Some(version)
        );
    }

    /// Rows in `screening_lists` and `screening_entries`.
    async fn counts(ctx: &Ctx) -> (i64, i64) {
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM screening_lists), \
             (SELECT COUNT(*) FROM screening_entries)";
        match ctx.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&ctx.url).await.unwrap();
                let row = sqlx::query_as(SQL).fetch_one(&pool).await.unwrap();
                pool.close().await;
                row
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&ctx.url).await.unwrap();
                let row = sqlx::query_as(SQL).fetch_one(&pool).await.unwrap();
                pool.close().await;
                row
            }
        }
    }

    crate::store_suite!(
        import_latest_load_and_record,
        unknown_versions_and_bad_input,
        large_import_is_chunked,
        a_failed_import_leaves_the_previous_list_current,
        a_write_during_a_large_import_takes_its_turn,
    );
}

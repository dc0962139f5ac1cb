//! Operator ergonomics through the real binary: commands that only read never create or
//! migrate a store (SQLite and PostgreSQL), `migrate status` lists migrations and gates a
//! deploy with `--check`, long commands report progress as log lines when stderr is not a
//! terminal, and `completions` prints a script that knows the subcommands and enum values.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use computegate_kyc::Store;
use computegate_kyc::store::SchemaState;
use support::cluster::PgDatabase;
use support::{TempDir, run_cli};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every command that only reads, with the store options `target` appended.
fn read_only_commands(target: &[&str]) -> Vec<Vec<String>> {
    let commands: [&[&str]; 6] = [
        &["audit", "verify"],
        &["audit", "export", "--since", "2026-01-01"],
        &[
            "report",
            "export",
            "--kind",
            "training-runs",
            "--since",
            "2026-01-01",
        ],
        &["screening", "check", "Ivan Zorvath"],
        &["migrate", "status"],
        &["migrate", "status", "--check"],
    ];
    commands
        .iter()
        .map(|c| c.iter().chain(target).map(|s| s.to_string()).collect())
        .collect()
}

/// Runs `args`; returns the exit code, stdout and stderr.
fn cli(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = run_cli(&args, env);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn kyc_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kyc/tests/data/screening")
        .join(name)
}

#[test]
fn read_only_commands_never_create_a_store() {
    let dir = TempDir::new("ro-missing");
    let data = dir.path().join("data");
    let target = ["--data-dir", data.to_str().unwrap()];
    for args in read_only_commands(&target) {
        let (code, _, err) = cli(&args, &[]);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no database at") && err.contains("`computegate migrate`"),
            "{args:?}: {err}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}

#[tokio::test]
async fn read_only_commands_leave_an_unmigrated_sqlite_store_unmigrated() {
    let dir = TempDir::new("ro-sqlite");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data.join("computegate.db").display()
    );
    Store::connect(&url).await.unwrap().close().await;
    let target = ["--data-dir", data.to_str().unwrap()];
    check_read_only_against_an_empty_store(&target);
    let store = Store::connect_existing(&url).await.unwrap();
    assert!(
        matches!(
            store.schema_state().await.unwrap(),
            SchemaState::Behind { found: None, .. }
        ),
        "the store is still unmigrated"
    );
    store.close().await;
}

#[test]
#[ignore = "needs postgres"]
fn read_only_commands_leave_an_unmigrated_postgres_store_unmigrated() {
    let db = PgDatabase::create();
    let dir = TempDir::new("ro-postgres");
    let config = dir.write(
        "computegate.toml",
        format!(
            "data_dir = {:?}\n[database]\nurl = {:?}\n",
            dir.path().join("data").display().to_string(),
            db.url
        ),
    );
    let target = ["--config", config.to_str().unwrap()];
    check_read_only_against_an_empty_store(&target);
    assert_eq!(
        db.sql(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        .trim(),
        "0",
        "no table was created"
    );
}

/// Runs every read-only command against an existing store without a schema: each fails with
/// what to run, and `migrate status` lists every migration as pending.
fn check_read_only_against_an_empty_store(target: &[&str]) {
    for args in read_only_commands(target) {
        let (code, out, err) = cli(&args, &[]);
        if args[..2] == ["migrate", "status"] {
            let exit = if args.contains(&"--check".to_string()) {
                1
            } else {
                0
            };
            assert_eq!(code, Some(exit), "{args:?}: {err}");
            assert!(out.starts_with("VERSION"), "{out}");
            assert!(
                out.lines()
                    .skip(1)
                    .take_while(|l| !l.contains(" applied, "))
                    .all(|l| l.contains(" pending ")),
                "{out}"
            );
            assert!(out.contains("0 applied, "), "{out}");
        } else {
            assert_eq!(code, Some(1), "{args:?}: {err}");
            assert!(
                err.contains("the store has no schema yet")
                    && err.contains("`computegate migrate`"),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn migrate_reports_each_migration_and_status_lists_them_applied() {
    let dir = TempDir::new("migrate-status");
    let data = dir.path().join("data");
    let target = ["--data-dir".to_string(), data.display().to_string()];
    let args: Vec<String> = ["migrate".to_string()]
        .into_iter()
        .chain(target.clone())
        .collect();
    let (code, out, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("database schema is up to date"), "{out}");
    // Stderr is a pipe here: count lines through the log, never a bar redrawn with `\r` or
    // colour codes.
    assert!(err.contains("migration applied"), "{err}");
    assert!(err.contains("migrate done:"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let applied = err.matches("migration applied").count();

    let args: Vec<String> = ["migrate", "status", "--check"]
        .iter()
        .map(|s| s.to_string())
        .chain(target.clone())
        .collect();
    let (code, out, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("{applied} applied, 0 pending")),
        "{out}"
    );
    assert!(out.contains("identity"), "descriptions are listed: {out}");
    assert!(
        !out.contains("Applied {") && !out.contains("Some("),
        "no Debug output: {out}"
    );

    // A second `migrate` has nothing to apply and says so without progress lines.
    let args: Vec<String> = ["migrate".to_string()]
        .into_iter()
        .chain(target.clone())
        .collect();
    let (code, _, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("migration applied"), "{err}");

    // A newer binary's migration (a rollback): writing commands refuse the store even when
    // nothing of their own is pending; `migrate status` lists it as unknown.
    support::metering::sqlite_exec(
        &data.join("computegate.db"),
        "INSERT INTO _sqlx_migrations VALUES (9999, 'from a newer binary', \
         datetime('now'), 1, x'00', 1)",
        &[],
    );
    let (code, out, err) = cli(&args, &[]);
    assert_eq!(code, Some(1), "migrate on a newer schema: {out} {err}");
    assert!(err.contains("unknown to this binary"), "{err}");
    let staff: Vec<String> = [
        "staff",
        "create",
        "--email",
        "rollback@example.test",
        "--role",
        "reviewer",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(target.clone())
    .collect();
    let (code, out, err) = cli(&staff, &[]);
    assert_eq!(code, Some(1), "staff create on a newer schema: {out} {err}");
    assert!(err.contains("unknown to this binary"), "{err}");
    let args: Vec<String> = ["migrate", "status"]
        .iter()
        .map(|s| s.to_string())
        .chain(target)
        .collect();
    let (code, out, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 unknown to this binary"), "{out}");
}

#[test]
fn screening_import_logs_progress_when_stderr_is_not_a_terminal() {
    let dir = TempDir::new("import-progress");
    let data = dir.path().join("data");
    let args: Vec<String> = [
        "screening",
        "import",
        "--format",
        "csl",
        kyc_data("csl.csv").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("12 entries"), "{out}");
    assert!(err.contains("screening import done: 12 entries"), "{err}");
    assert!(
        err.contains("screening rescreen done: 0 applications"),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");

    // The export counts what it writes.
    let output = dir.path().join("audit.jsonl");
    let args: Vec<String> = [
        "audit",
        "export",
        "--since",
        "2020-01-01",
        "--output",
        output.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, _, err) = cli(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    let bytes = std::fs::metadata(&output).unwrap().len();
    assert!(
        err.contains(&format!("audit export done: {bytes} bytes")),
        "{err}"
    );
}

#[test]
fn enum_arguments_list_their_values_and_complete_in_shells() {
    let help = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        cli(&args, &[])
    };
    let (code, out, _) = help(&["staff", "create", "--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("senior_reviewer"), "{out}");
    let (code, _, err) = help(&[
        "audit",
        "export",
        "--since",
        "2026-01-01",
        "--format",
        "xml",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[possible values: jsonl, csv]"), "{err}");

    let (code, script, err) = help(&["completions", "bash"]);
    assert_eq!(code, Some(0), "{err}");
    for word in [
        "migrate",
        "screening",
        "completions",
        "training-runs",
        "opensanctions",
        "senior_reviewer",
        "kubernetes",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = help(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {err}");
        assert!(script.contains("computegate"), "{shell}");
    }
    let (code, _, err) = help(&["completions", "tcsh"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bash"), "{err}");
}

#[test]
fn config_check_takes_the_file_from_computegate_config() {
    let dir = TempDir::new("config-env");
    let config = dir.write(
        "computegate.toml",
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    );
    let args = ["config".to_string(), "check".to_string()];
    let (code, out, err) = cli(&args, &[("COMPUTEGATE_CONFIG", config.to_str().unwrap())]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(": ok ("), "{out}");
    let (code, _, err) = cli(&args, &[]);
    assert_eq!(code, Some(2), "{err}");
}

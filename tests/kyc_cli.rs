//! Black-box tests of the verification operator commands: `screening import` (formats, bad
//! input, screening deferred until a list exists) and `audit export` / `audit verify`.

mod kyc_support;
mod support;

use std::time::Duration;

use serde_json::Value;

use kyc_support::{Kyc, data, individual};
use support::identity::{Setup, eventually};
use support::{TempDir, within};

const TIMEOUT: Duration = Duration::from_secs(120);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn screening_import_refuses_bad_input_and_imports_nothing() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let csl = data("csl.csv");
        let csl = csl.to_str().unwrap();
        let out = kyc.cli(&["screening", "import", "--format", "xml", csl]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            text(&out.stderr).contains("csl, sdn, opensanctions"),
            "{out:?}"
        );
        let out = kyc.cli(&[
            "screening",
            "import",
            "--format",
            "csl",
            "/nonexistent/list.csv",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let out = kyc.cli(&["screening", "import", "--format", "csl", "--alt", csl, csl]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let empty = data("empty.csv");
        let out = kyc.cli(&[
            "screening",
            "import",
            "--format",
            "csl",
            empty.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(text(&out.stderr).contains("no entries"), "{out:?}");

        // With no list at all, a submission waits in `submitted`; once a list is imported
        // (OpenSanctions here) the background sweep screens it.
        let c = kyc.customer().await;
        let app = kyc
            .draft(
                &c,
                &individual("Viktor Kalashov", "1971-03-14", "CY", "K1234567"),
            )
            .await;
        let view = kyc.submit(&c, &app).await;
        assert_eq!(view["status"], "submitted", "{view}");
        let out = kyc.import("opensanctions", "opensanctions.jsonl");
        assert!(out.contains("1 entries"), "{out}");
        assert!(out.contains("re-screened 0 applications"), "{out}");
        eventually(
            Duration::from_secs(30),
            "the sweep screens the submission",
            || async {
                let view: Value = kyc.application(&c, &app).await.json().await.unwrap();
                view["status"] == "pending_review"
            },
        )
        .await;
        let reviewer = kyc.staff("reviewer").await;
        let file = kyc.case_file(&reviewer, &app).await;
        assert_eq!(file["screening"]["decision"], "hit", "{file}");
    })
    .await;
}

#[tokio::test]
async fn screening_check_prints_ranked_matches_with_their_explanation() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let out = kyc.cli(&["screening", "check", "Viktor Kalashov"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            text(&out.stderr).contains("no denied-party list has been imported"),
            "{out:?}"
        );
        for bad in [
            &[
                "screening",
                "check",
                "Viktor Kalashov",
                "--dob",
                "14/03/1971",
            ][..],
            &[
                "screening",
                "check",
                "Viktor Kalashov",
                "--country",
                "Atlantis",
            ],
            &["screening", "check", "Viktor Kalashov", "--kind", "vessel"],
            &["screening", "check", "  "],
        ] {
            let out = kyc.cli(bad);
            assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        }

        kyc.import("csl", "csl.csv");
        let out = kyc.cli(&[
            "screening",
            "check",
            "Victor Kalashoff",
            "--dob",
            "1971-03-14",
            "--country",
            "CY",
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let printed = text(&out.stdout);
        assert!(printed.contains("1. "), "{printed}");
        assert!(printed.contains("KALASHOV"), "{printed}");
        assert!(printed.contains("date_of_birth"), "{printed}");
        assert!(printed.contains("hit"), "{printed}");

        let out = kyc.cli(&["screening", "check", "Quorvant", "--kind", "organization"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(text(&out.stdout).contains("QUORVANT"), "{out:?}");

        let out = kyc.cli(&["screening", "check", "Marguerite Fontaine"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(text(&out.stdout).contains("no match"), "{out:?}");
    })
    .await;
}

#[tokio::test]
async fn audit_export_and_verify() {
    within(TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        kyc.import("csl", "csl.csv");
        let c = kyc.customer().await;
        let app = kyc
            .draft(
                &c,
                &individual("Lena Berg", "1990-01-01", "DE", "C01X00T47"),
            )
            .await;
        kyc.submit(&c, &app).await;

        // JSON lines to a file: every line a record with its hash, chained.
        let dir = TempDir::new("audit-export");
        let file = dir.path().join("audit.jsonl");
        let out = kyc.cli(&[
            "audit",
            "export",
            "--since",
            "2000-01-01T00:00:00Z",
            "--format",
            "jsonl",
            "--output",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let lines: Vec<Value> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert!(lines.len() >= 5, "{lines:?}");
        for pair in lines.windows(2) {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "{pair:?}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l["action"] == "screening.list.imported"),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["action"] == "kyc.application.submitted"),
            "{lines:?}"
        );
        assert!(text(&out.stdout).contains(&format!("exported {} records", lines.len())));
        // Nothing after a future date; a bad date or format is a usage error.
        let out = kyc.cli(&[
            "audit",
            "export",
            "--since",
            "2999-01-01",
            "--format",
            "jsonl",
        ]);
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
        let out = kyc.cli(&["audit", "export", "--since", "last week", "--format", "csv"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let out = kyc.cli(&[
            "audit",
            "export",
            "--since",
            "2000-01-01",
            "--format",
            "xml",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");

        // Intact, then a record deleted behind the gateway's back.
        let out = kyc.cli(&["audit", "verify"]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            text(&out.stdout).starts_with(&format!("chain intact, {} records", lines.len())),
            "{out:?}"
        );
        let out = std::process::Command::new("sqlite3")
            .arg(kyc.gw.sqlite_path())
            .arg("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2")
            .output()
            .expect("run sqlite3");
        assert!(out.status.success(), "sqlite3: {out:?}");
        let out = kyc.cli(&["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            text(&out.stdout).contains("chain broken at seq 2: deleted"),
            "{out:?}"
        );
        assert!(
            text(&out.stderr).contains("audit chain broken at seq 2"),
            "{out:?}"
        );
    })
    .await;
}

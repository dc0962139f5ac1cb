//! The `COMPUTEGATE_*` environment through the real binary: a misspelt variable stops the
//! command with the closest known name, secrets are read from `<NAME>_FILE` (not from both),
//! and `COMPUTEGATE_CONFIG` names the configuration when no option does.

mod support;

use std::ffi::OsStr;

use support::identity::master_key;
use support::{TempDir, run_cli};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_misspelt_variable_stops_the_command_with_the_closest_name() {
    let dir = TempDir::new("env-misspelt");
    let data = dir.path().join("data");
    let args = [
        OsStr::new("audit"),
        OsStr::new("verify"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ];
    let out = run_cli(&args, &[("COMPUTEGATE_MASTER_KEYS", "x")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("did you mean COMPUTEGATE_MASTER_KEY?"),
        "{out:?}"
    );
    let out = run_cli(&args, &[("COMPUTEGATE_SERVR__PUBLIC_ADDR", "0.0.0.0:1")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("not a configuration section"),
        "{out:?}"
    );
    // The same command gets as far as the store once the environment is right (a read-only
    // command never creates or migrates a store, so a missing one is refused with what to run).
    let out = run_cli(&args, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("`computegate migrate`"),
        "{out:?}"
    );
}

#[test]
fn the_config_and_the_master_key_come_from_the_environment_and_files() {
    let dir = TempDir::new("env-files");
    let data = dir.path().join("data");
    let config = dir.write(
        "computegate.toml",
        format!("data_dir = {:?}\n", data.display().to_string()),
    );
    let key = dir.write("master.key", format!("{}\n", master_key()));
    let (config, key) = (config.display().to_string(), key.display().to_string());
    let verify = [OsStr::new("audit"), OsStr::new("verify")];
    let out = run_cli(
        &[OsStr::new("migrate")],
        &[
            ("COMPUTEGATE_CONFIG", &config),
            ("COMPUTEGATE_MASTER_KEY_FILE", &key),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run_cli(
        &verify,
        &[
            ("COMPUTEGATE_CONFIG", &config),
            ("COMPUTEGATE_MASTER_KEY_FILE", &key),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("chain intact"), "{out:?}");
    // Both forms of one secret, or an unreadable file: refused before anything runs.
    let out = run_cli(
        &verify,
        &[
            ("COMPUTEGATE_CONFIG", &config),
            ("COMPUTEGATE_MASTER_KEY", "x"),
            ("COMPUTEGATE_MASTER_KEY_FILE", &key),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("both set"), "{out:?}");
    let out = run_cli(
        &verify,
        &[
            ("COMPUTEGATE_CONFIG", &config),
            ("COMPUTEGATE_MASTER_KEY_FILE", "/nonexistent/master.key"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!text(&out.stderr).contains(&master_key()[..8]));
    // Without an option or COMPUTEGATE_CONFIG, the command says what to give.
    let out = run_cli(&verify, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("COMPUTEGATE_CONFIG"), "{out:?}");
}

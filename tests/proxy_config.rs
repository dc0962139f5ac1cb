//! Black-box tests of configuration errors through the real binary: `computegate config check`
//! and `computegate serve` refuse a bad file with exit code 2 and an error naming the key.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use support::{Proc, TEST_TIMEOUT, TempDir, config, route, run_cli, upstream, within};

/// A valid configuration with one upstream and one route.
fn good() -> String {
    let sim = "127.0.0.1:8081".parse().expect("address");
    config(
        "",
        &format!(
            "{}{}",
            upstream("sim", &[sim], ""),
            route("ping", "/v1/ping", "sim", "")
        ),
    )
}

/// Runs `config check FILE` and returns (exit code, stdout, stderr).
fn check(file: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = run_cli(
        &[OsStr::new("config"), OsStr::new("check"), file.as_os_str()],
        env,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `config check` refuses `text` with exit 2 naming `key`.
fn assert_refused(dir: &TempDir, name: &str, text: &str, key: &str) {
    let file = dir.write(name, text);
    let (code, _, stderr) = check(&file, &[]);
    assert_eq!(code, Some(2), "{name}: {stderr}");
    assert!(
        stderr.contains(key),
        "{name}: error does not name `{key}`: {stderr}"
    );
}

#[test]
fn config_check_accepts_a_good_file() {
    let dir = TempDir::new("config");
    let file = dir.write("good.toml", good());
    let (code, stdout, stderr) = check(&file, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn config_check_names_the_bad_key() {
    let dir = TempDir::new("config");
    let text = good();
    assert_refused(
        &dir,
        "duration.toml",
        &text.replace("shutdown_grace = \"10s\"", "shutdown_grace = \"soon\""),
        "server.shutdown_grace",
    );
    assert_refused(
        &dir,
        "upstream.toml",
        &text.replace("upstream = \"sim\"", "upstream = \"nope\""),
        "routes[0].upstream",
    );
    assert_refused(
        &dir,
        "address.toml",
        &text.replace("127.0.0.1:8081", "not-an-address"),
        "upstreams.sim.addresses[0]",
    );
    assert_refused(
        &dir,
        "size.toml",
        &text.replace(
            "class = \"public\"",
            "class = \"public\"\nmax_body = \"lots\"",
        ),
        "routes[0].max_body",
    );
    let tls = text.replace(
        "\n[upstreams.sim]",
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\n[upstreams.sim]",
    );
    assert_refused(&dir, "tls.toml", &tls, "server.tls.cert");

    let missing = dir.path().join("missing.toml");
    let (code, _, stderr) = check(&missing, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn environment_override_errors_name_the_key() {
    let dir = TempDir::new("config");
    let file = dir.write("good.toml", good());
    let (code, _, stderr) = check(&file, &[("COMPUTEGATE_SERVER__PUBLIC_ADDR", "nowhere")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server.public_addr"), "{stderr}");
}

#[tokio::test]
async fn serve_refuses_a_bad_file_with_exit_2() {
    within(TEST_TIMEOUT, async {
        let dir = TempDir::new("config");
        let file = dir.write(
            "bad.toml",
            good().replace("upstream = \"sim\"", "upstream = \"nope\""),
        );
        let args = [
            OsStr::new("serve"),
            OsStr::new("--config"),
            file.as_os_str(),
        ];
        let mut proc = Proc::spawn(&args, &[]);
        let status = proc.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(2), "{}", proc.stderr());
        proc.wait_for_stderr("routes[0].upstream", Duration::from_secs(5))
            .await;
    })
    .await;
}

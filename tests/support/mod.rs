//! Shared harness of the black-box data-plane tests: runs the real `computegate` binary (gateway
//! and simulator) on `127.0.0.1:0` ports, writes their configuration into a private temp dir,
//! and offers the clients the tests talk through (reqwest, raw hyper HTTP/1.1, raw TCP).
//!
//! Every spawned process is killed when its handle drops, so a failing test leaves nothing
//! running. Each test binary uses a different subset of this module, hence `dead_code`.

#![allow(dead_code)]

pub(crate) mod cluster;
pub(crate) mod identity;
pub(crate) mod metering;
pub(crate) mod outage;
pub(crate) mod prometheus;
pub(crate) mod raw;
pub(crate) mod upstream;

use std::ffi::OsStr;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use tokio::sync::oneshot;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_computegate");
/// Base of every problem `type` URI.
pub(crate) const PROBLEM_BASE: &str = "https://computegate.dev/problems/";
/// Budget of one ordinary test body; generous for a loaded 2-core machine.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment override of `server.runtime`.
pub(crate) const RUNTIME_VAR: &str = "COMPUTEGATE_SERVER__RUNTIME";
/// How long a process may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a test body under `limit`, failing the test instead of hanging.
pub(crate) async fn within<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, body).await {
        Ok(out) => out,
        Err(_) => panic!("test did not finish within {limit:?}"),
    }
}

/// A private directory removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

/// A running child process, killed on drop; its stderr is collected for assertions.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

/// A running simulator.
#[derive(Debug)]
pub(crate) struct Sim {
    /// The process.
    pub(crate) proc: Proc,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

/// A running gateway and the directory holding its configuration.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// The process.
    pub(crate) proc: Proc,
    /// Public (data-plane) listener.
    pub(crate) public: SocketAddr,
    /// Admin listener.
    pub(crate) admin: SocketAddr,
    /// External-authorization listener (`[authz]`), when configured.
    pub(crate) authz: Option<SocketAddr>,
    /// Holds `gateway.toml` and the data dir.
    pub(crate) dir: TempDir,
}

// === impl TempDir ===

impl TempDir {
    /// A new empty directory under the system temp dir, unique per process and call.
    pub(crate) fn new(tag: &str) -> Self {
        let name = format!(
            "computegate-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside the directory and returns the file's path.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === impl Proc ===

impl Proc {
    /// Starts `computegate ARGS` with `env` added (and no inherited `COMPUTEGATE_*` variable) and
    /// waits for its first stdout line.
    pub(crate) async fn start(
        args: &[&OsStr],
        env: &[(&str, &str)],
    ) -> Result<(Self, String), (Self, String)> {
        let mut proc = Self::spawn(args, env);
        let (tx, rx) = oneshot::channel();
        let stdout = proc.child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(line)) => Ok((proc, line)),
            Ok(Err(_)) => {
                let why = format!(
                    "exited before listening; stderr:\n{}",
                    proc.wait_stderr_eof()
                );
                Err((proc, why))
            }
            Err(_) => {
                let why = format!(
                    "not listening after {START_TIMEOUT:?}; stderr:\n{}",
                    proc.stderr()
                );
                Err((proc, why))
            }
        }
    }

    /// Spawns `computegate ARGS` without waiting for anything.
    pub(crate) fn spawn(args: &[&OsStr], env: &[(&str, &str)]) -> Self {
        let mut child = command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn computegate");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self { child, stderr }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`) with `kill(1)`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Everything the process wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until stderr contains `needle`.
    pub(crate) async fn wait_for_stderr(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "stderr never showed {needle:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit and returns its status.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size (`VmHWM` of `/proc/PID/status`), bytes.
    pub(crate) fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM line");
        let kib: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("VmHWM in kB");
        kib * 1024
    }

    /// Stderr once the process has exited and the pipe has drained (bounded wait).
    fn wait_stderr_eof(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.stderr()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// === impl Sim ===

impl Sim {
    /// A simulator on a free port at the default speed.
    pub(crate) async fn start() -> Self {
        Self::start_on("127.0.0.1:0", 3600.0).await
    }

    /// A simulator on `addr` with simulated seconds per real second `speedup`.
    pub(crate) async fn start_on(addr: &str, speedup: f64) -> Self {
        let speedup = speedup.to_string();
        let args = ["sim", "--addr", addr, "--speedup", &speedup].map(OsStr::new);
        let (proc, line) = Proc::start(&args, &[])
            .await
            .unwrap_or_else(|(_, why)| panic!("simulator {why}"));
        let addr = line
            .strip_prefix("computegate simulator listening: http://")
            .unwrap_or_else(|| panic!("unexpected simulator banner {line:?}"))
            .parse()
            .expect("simulator address");
        Self { proc, addr }
    }
}

// === impl Gateway ===

impl Gateway {
    /// Starts `computegate serve` with `body` (the TOML after `data_dir`, see [`config`]).
    pub(crate) async fn start(body: &str) -> Self {
        Self::start_with_env(body, &[]).await
    }

    /// As [`Gateway::start`], with extra environment variables.
    pub(crate) async fn start_with_env(body: &str, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("gateway");
        let text = format!("data_dir = {:?}\n{body}", dir.path().join("data"));
        let file = dir.write("gateway.toml", text);
        let args = [
            OsStr::new("serve"),
            OsStr::new("--config"),
            file.as_os_str(),
        ];
        // `serve` needs a master key; each test has its own data dir, so a fixed one is enough
        // unless the test brings its own.
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "COMPUTEGATE_MASTER_KEY") {
            env.push(("COMPUTEGATE_MASTER_KEY", TEST_MASTER_KEY));
        }
        // `COMPUTEGATE_TEST_SERVER_RUNTIME=work_stealing` (or `thread_per_core`, the default)
        // runs every gateway of the suite in that runtime (`server.runtime`), unless the test
        // chooses one itself.
        let runtime = std::env::var("COMPUTEGATE_TEST_SERVER_RUNTIME").unwrap_or_default();
        if !runtime.is_empty() && !env.iter().any(|(k, _)| *k == RUNTIME_VAR) {
            env.push((RUNTIME_VAR, &runtime));
        }
        let (proc, line) = Proc::start(&args, &env)
            .await
            .unwrap_or_else(|(_, why)| panic!("gateway {why}"));
        let (public, admin, authz) = parse_banner(&line);
        Self {
            proc,
            public,
            admin,
            authz,
            dir,
        }
    }

    /// `http://PUBLIC{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// `http://ADMIN{path}`.
    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// Parses `computegate listening: public=ADDR admin=ADDR[ authz=ADDR]`.
fn parse_banner(line: &str) -> (SocketAddr, SocketAddr, Option<SocketAddr>) {
    let rest = line
        .strip_prefix("computegate listening: public=")
        .unwrap_or_else(|| panic!("unexpected gateway banner {line:?}"));
    let (public, rest) = rest
        .split_once(" admin=")
        .unwrap_or_else(|| panic!("unexpected gateway banner {line:?}"));
    let (admin, authz) = match rest.split_once(" authz=") {
        Some((admin, authz)) => (admin, Some(authz.parse().expect("authz address"))),
        None => (rest, None),
    };
    (
        public.parse().expect("public address"),
        admin.parse().expect("admin address"),
        authz,
    )
}

/// A gateway configuration (everything but `data_dir`): both listeners on free ports,
/// `server_extra` lines inside `[server]`, then `rest` (upstreams and routes).
pub(crate) fn config(server_extra: &str, rest: &str) -> String {
    format!(
        "[server]\npublic_addr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\n\
         shutdown_grace = \"10s\"\n{server_extra}\n\n{rest}\n\n[log]\nlevel = \"info\"\n"
    )
}

/// An `[upstreams.NAME]` table over `addresses`, with `extra` key lines.
pub(crate) fn upstream(name: &str, addresses: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[upstreams.{name}]\naddresses = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// A public `[[routes]]` entry named `name` for `prefix` to `upstream`, with `extra` key lines.
pub(crate) fn route(name: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\n\
         class = \"public\"\n{extra}\n"
    )
}

/// A config with one upstream `sim` at `sim` and one public route `all` for `/`.
pub(crate) fn sim_everything(sim: SocketAddr, server_extra: &str, route_extra: &str) -> String {
    config(
        server_extra,
        &format!(
            "{}{}",
            upstream("sim", &[sim], ""),
            route("all", "/", "sim", route_extra)
        ),
    )
}

/// Runs `computegate ARGS` to completion (no inherited `COMPUTEGATE_*` variable, `env` added).
pub(crate) fn run_cli(args: &[&OsStr], env: &[(&str, &str)]) -> std::process::Output {
    command(args, env).output().expect("run computegate")
}

/// Runs `computegate ARGS` to completion with `input` on its standard input.
pub(crate) fn run_cli_with_stdin(
    args: &[&OsStr],
    env: &[(&str, &str)],
    input: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = command(args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn computegate");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for computegate")
}

/// Master key for gateways whose test does not set one (32 zero bytes, base64).
pub(crate) const TEST_MASTER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// `computegate ARGS` with stdin closed, no inherited `COMPUTEGATE_*` variable and `env` added.
fn command(args: &[&OsStr], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COMPUTEGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// An address nothing listens on (bound, then released).
pub(crate) fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// Installs the ring crypto provider (reqwest's rustls is built without one).
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain-HTTP client that never uses a system proxy. Idle pooled connections are dropped
/// after 5 s, before the gateway closes them (`server.header_read_timeout`, 10 s by default):
/// otherwise a test that pauses that long may send on a connection the gateway is closing at
/// that moment and see a transport error — the idle-timeout race every HTTP client has.
pub(crate) fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// Asserts that `resp` is the gateway's problem document `slug` with `status`; returns it.
pub(crate) async fn expect_problem(
    resp: reqwest::Response,
    status: u16,
    slug: &str,
) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status of {resp:?}");
    let headers = resp.headers().clone();
    let doc: serde_json::Value = resp.json().await.expect("problem body is JSON");
    assert_problem_parts(&headers, &doc, status, slug);
    doc
}

/// Asserts the headers and JSON document of a problem answer.
pub(crate) fn assert_problem_parts(
    headers: &HeaderMap,
    doc: &serde_json::Value,
    status: u16,
    slug: &str,
) {
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "content type of {doc}"
    );
    assert!(
        headers.contains_key("x-request-id"),
        "no X-Request-Id on {doc}"
    );
    assert_eq!(doc["type"], format!("{PROBLEM_BASE}{slug}"), "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(
        doc["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{doc}"
    );
}

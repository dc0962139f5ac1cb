//! Servers a test may stop, crash or freeze: a private `redis-server` and a private PostgreSQL
//! cluster (`initdb` + `pg_ctl`), each on its own loopback port with its data in a temp dir.
//! The shared Redis and PostgreSQL of the test script are never touched by outage tests.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and
//! started as the `postgres` user (`runuser`). Every process started here is stopped when its
//! guard drops, also after a failed assertion.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// How long a private server may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A private `redis-server` on a free loopback port, restartable on the same port.
#[derive(Debug)]
pub(crate) struct OwnRedis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// A private PostgreSQL cluster with database `test`, trust authentication on loopback.
#[derive(Debug)]
pub(crate) struct OwnPostgres {
    port: u16,
    data: PathBuf,
    // Holds `data`; removed after the server stopped.
    dir: TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    super::closed_port().port()
}

// === impl OwnRedis ===

impl OwnRedis {
    /// Starts a new server without persistence and waits until it answers.
    pub(crate) fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: TempDir::new("redis"),
            child: None,
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: connections drop at once, nothing is saved).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub(crate) fn resume(&mut self) {
        assert!(self.child.is_none(), "redis already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

// === impl OwnPostgres ===

impl OwnPostgres {
    /// Creates and starts a new cluster and its `test` database.
    pub(crate) fn start() -> Self {
        let bin = postgres_bin();
        let dir = TempDir::new("pg");
        let data = dir.path().join("data");
        let as_postgres = is_root();
        if as_postgres {
            // The temp dir is private to root; postgres needs to enter it.
            let _ = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status();
        }
        let pg = Self {
            port: free_port(),
            data,
            dir,
            bin,
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data.to_str().expect("utf-8 temp path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.resume();
        let out = Command::new("psql")
            .args([
                &pg.url_of("postgres"),
                "-qtA",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "CREATE DATABASE test",
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT/test`.
    pub(crate) fn url(&self) -> String {
        self.url_of("test")
    }

    fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub(crate) fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let data = self.data.to_str().expect("utf-8 temp path").to_owned();
        let log = self.dir.path().join("pg.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8 temp path"),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        wait_for_port(self.port, "postgres");
    }

    /// A clean, fast shutdown (clients are disconnected).
    pub(crate) fn stop(&self) {
        let data = self.data.to_str().expect("utf-8 temp path").to_owned();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// A crash: SIGKILL to the postmaster and every backend (recovery runs on the next start).
    pub(crate) fn crash(&self) {
        let pids = self.pids();
        signal_all("KILL", &pids);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
    }

    /// A hang: SIGSTOP to the postmaster and every backend. Connections stay open; nothing
    /// answers until [`OwnPostgres::thaw`].
    pub(crate) fn freeze(&self) {
        signal_all("STOP", &self.pids());
    }

    /// Ends a [`OwnPostgres::freeze`].
    pub(crate) fn thaw(&self) {
        signal_all("CONT", &self.pids());
    }

    /// The postmaster's pid and its children's (the backends of this cluster only).
    fn pids(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
        let Some(main) = text.lines().next().map(str::trim).filter(|l| !l.is_empty()) else {
            return Vec::new();
        };
        let children = Command::new("pgrep")
            .args(["-P", main])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        std::iter::once(main.to_owned())
            .chain(children.lines().map(|l| l.trim().to_owned()))
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.thaw();
        signal_all("KILL", &self.pids());
    }
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian layout) or `pg_config --bindir`.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    if let Some(bin) = found.pop() {
        return bin;
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("find PostgreSQL binaries (pg_config)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn signal_all(signal: &str, pids: &[String]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids)
        .status();
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + READY_LIMIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

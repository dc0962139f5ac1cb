//! `computegate demo` on free ports: the one-process gateway, simulator and embedded store,
//! with the addresses (and the rest of its next steps) read from what it prints.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Proc, TempDir};

/// `computegate demo` on free ports.
#[derive(Debug)]
pub(crate) struct Demo {
    /// The process.
    pub(crate) proc: Proc,
    /// Public listener.
    pub(crate) public: SocketAddr,
    /// Admin listener.
    pub(crate) admin: SocketAddr,
    /// The simulator.
    pub(crate) sim: SocketAddr,
    /// Its data dir.
    pub(crate) dir: TempDir,
    /// What it printed once it ran (its next steps).
    pub(crate) printed: String,
}

// === impl Demo ===

impl Demo {
    /// Starts `computegate demo` with every listener on a free port and reads the addresses it
    /// prints.
    pub(crate) async fn start() -> Self {
        let dir = TempDir::new("demo");
        let data = dir.path().join("data");
        let args = [
            OsStr::new("demo"),
            OsStr::new("--data-dir"),
            data.as_os_str(),
            OsStr::new("--public-addr"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--admin-addr"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--sim-addr"),
            OsStr::new("127.0.0.1:0"),
        ];
        let mut proc = Proc::spawn(&args, &[]);
        let stdout = proc.child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Everything the demo prints up to its last line, "Stop with Ctrl-C."
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut printed = String::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                printed.push_str(&line);
                printed.push('\n');
                if line.trim() == "Stop with Ctrl-C." {
                    break;
                }
            }
            let _ = tx.send(printed);
            for _ in lines {}
        });
        let printed = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(printed)) if printed.contains("Stop with Ctrl-C.") => printed,
            other => panic!(
                "demo did not print its next steps ({other:?}):\n{}",
                proc.stderr()
            ),
        };
        let addr = |prefix: &str| -> SocketAddr {
            printed
                .lines()
                .find_map(|line| line.trim_start().strip_prefix(prefix))
                .and_then(|rest| {
                    rest.trim()
                        .trim_start_matches("http://")
                        .split_whitespace()
                        .next()
                })
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("demo printed no {prefix} address:\n{printed}"))
        };
        Self {
            public: addr("gateway (public)"),
            admin: addr("admin listener"),
            sim: addr("compute simulator"),
            printed,
            proc,
            dir,
        }
    }
}

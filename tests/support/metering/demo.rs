//! `computegate demo` on free ports: the one-process gateway, simulator and embedded store,
//! with the addresses read from what it prints.

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
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut found: Vec<String> = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                let trimmed = line.trim_start();
                let addr = |prefix: &str| {
                    trimmed.strip_prefix(prefix).map(|rest| {
                        rest.trim()
                            .trim_start_matches("http://")
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                };
                for prefix in ["gateway (public)", "admin (metrics)", "compute simulator"] {
                    if let Some(a) = addr(prefix) {
                        found.push(a);
                    }
                }
                if found.len() == 3 {
                    break;
                }
            }
            let _ = tx.send(found);
            for _ in lines {}
        });
        let found = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(found)) if found.len() == 3 => found,
            other => panic!(
                "demo did not print its addresses ({other:?}):\n{}",
                proc.stderr()
            ),
        };
        let parse = |s: &str| s.parse().unwrap_or_else(|_| panic!("demo address {s:?}"));
        Self {
            public: parse(&found[0]),
            admin: parse(&found[1]),
            sim: parse(&found[2]),
            proc,
            dir,
        }
    }
}

//! The access log: one JSON line per data-plane request (who, what, when, from where), the
//! record of access the customer-identification rules ask for.
//!
//! A line is rendered in the request task (a few hundred bytes, no store call) and handed to a
//! writer thread over a bounded channel (a thread, so a slow disk never blocks an async
//! worker); the writer batches queued lines into one write. When the channel is full, a plain request's line is
//! dropped and counted (`computegate_access_log_dropped_total`) rather than slowing the data
//! plane; a job submission's line is never dropped: its request waits for room. Lines go to
//! stderr or are appended to a file (rotation is the platform's: logrotate `copytruncate`, or a
//! container runtime collecting stderr).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::io::Write;

use tokio::sync::mpsc;

/// Lines buffered between request tasks and the writer before plain requests are dropped.
const CHANNEL_LINES: usize = 16 * 1024;

/// Where access-log lines go (`log.access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log.
    Off,
    /// The process's standard error (default).
    Stderr,
    /// Appended to this file, created when missing.
    File(PathBuf),
}

/// One data-plane request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The request id (also in `X-Request-Id`).
    pub request_id: &'a str,
    /// The verified customer; `null` on public routes and failed authentications.
    pub customer: Option<&'a str>,
    /// The credential's public id: API key id or access token `jti`.
    pub credential_id: Option<&'a str>,
    /// Route name (`control` for the gateway's own APIs; `null` when no route matched).
    pub route: Option<&'a str>,
    /// Request method.
    pub method: &'a str,
    /// Answer status.
    pub status: u16,
    /// Request body bytes as declared (`Content-Length`), when declared.
    pub request_bytes: Option<u64>,
    /// Response body bytes as declared (`Content-Length`); `null` for streamed answers.
    pub response_bytes: Option<u64>,
    /// Time to the response head, milliseconds.
    pub latency_ms: f64,
    /// The client address: the peer, or the forwarded client when forwarding headers are
    /// trusted.
    pub client: IpAddr,
    /// Whether the request was a job submission (never dropped).
    pub job_submission: bool,
}

/// The sending side of the access log. Cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Vec<u8>>,
    dropped: Counter,
}

/// The access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open access log {path}: {source}")]
pub struct AccessLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

// === impl AccessLogTarget ===

impl AccessLogTarget {
    /// `off`, `stderr` or a file path.
    pub fn parse(text: &str) -> AccessLogTarget {
        match text {
            "off" => AccessLogTarget::Off,
            "stderr" | "-" => AccessLogTarget::Stderr,
            path => AccessLogTarget::File(PathBuf::from(path)),
        }
    }
}

// === impl AccessLog ===

impl AccessLog {
    /// Opens `target` and starts its writer thread; `None` when the log is off.
    pub fn open(
        target: &AccessLogTarget,
        registry: &mut Registry,
    ) -> Result<Option<AccessLog>, AccessLogError> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(None),
            AccessLogTarget::Stderr => Box::new(std::io::stderr()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        let dropped = Counter::default();
        registry.register(
            "computegate_access_log_dropped",
            "Access-log lines dropped because the writer fell behind (never job submissions)",
            dropped.clone(),
        );
        let (tx, rx) = mpsc::channel(CHANNEL_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))
            .map_err(|source| AccessLogError {
                path: PathBuf::from("<writer thread>"),
                source,
            })?;
        Ok(Some(AccessLog { tx, dropped }))
    }

    /// Logs `record`; a job submission waits for room, anything else is dropped (and
    /// counted) when the writer is behind.
    pub async fn record(&self, record: &AccessRecord<'_>) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            // Cannot fail: every field serializes (no maps with non-string keys).
            Err(_) => return,
        };
        line.push(b'\n');
        if record.job_submission {
            let _ = self.tx.send(line).await;
        } else if self.tx.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

/// Writes lines as they come, several per write when they queue up; ends when every sender
/// is gone.
fn write_lines(mut rx: mpsc::Receiver<Vec<u8>>, mut out: Box<dyn Write + Send>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(line) = rx.blocking_recv() {
        batch.extend_from_slice(&line);
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if let Err(e) = out.write_all(&batch) {
            tracing::warn!(error = %e, "access log write failed");
        }
        let _ = out.flush();
        batch.clear();
    }
}

/// `now` as RFC 3339 UTC with milliseconds (`2026-01-02T03:04:05.678Z`), without a date crate.
pub fn rfc3339_millis(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        assert_eq!(rfc3339_millis(t), "2026-01-02T03:04:05.678Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn targets_parse() {
        assert_eq!(AccessLogTarget::parse("off"), AccessLogTarget::Off);
        assert_eq!(AccessLogTarget::parse("stderr"), AccessLogTarget::Stderr);
        assert_eq!(
            AccessLogTarget::parse("/var/log/cg.jsonl"),
            AccessLogTarget::File("/var/log/cg.jsonl".into())
        );
    }
}

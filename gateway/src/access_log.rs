//! The access log: one JSON line per data-plane request (who, what, when, from where), the
//! record of access the customer-identification rules ask for.
//!
//! A line is rendered in the request task (a few hundred bytes, no store call) and appended to a
//! shared buffer; a writer thread (a thread, so a slow disk never blocks an async worker) takes
//! the whole buffer and writes it in one call. The writer is woken only when a line lands in an
//! empty buffer, and then lets lines gather for [`BATCH_WINDOW`] before it writes: under load it
//! runs about a hundred times a second whatever the request rate, so a request costs a
//! lock-protected copy and no system call (a channel woke the writer and wrote once for nearly
//! every request: two `futex` calls and a `write` each, measured with `strace -c`). When the
//! buffer holds [`BUFFER_BYTES`], a plain request's line is dropped and counted
//! (`computegate_access_log_dropped_total`) rather than slowing the data plane; a job
//! submission's line is never dropped: its request waits for room. Lines go to stderr or are
//! appended to a file (rotation is the platform's: logrotate `copytruncate`, or a container
//! runtime collecting stderr).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::Notify;

/// Bytes buffered between request tasks and the writer before plain requests' lines are dropped
/// (about 16 000 lines).
const BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// How long the writer lets lines gather after the first one before it writes them.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

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

/// The sending side of the access log. Cheap to clone; when the last clone is dropped the
/// writer writes what is buffered and ends.
#[derive(Clone)]
pub struct AccessLog {
    handle: Arc<Handle>,
    dropped: Counter,
}

/// Owned by the clones of [`AccessLog`]: dropping the last one closes the buffer and waits
/// for the writer to write what is pending (a clean shutdown loses no line).
struct Handle {
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What request tasks and the writer share.
struct Shared {
    pending: Mutex<Pending>,
    /// The writer waits here while the buffer is empty.
    wake: Condvar,
    /// Job submissions wait here for room; the writer notifies after every write.
    room: Notify,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The writer is waiting on `wake` (a line into the empty buffer must wake it).
    writer_idle: bool,
    /// Every sender is gone: write what is left and end.
    closed: bool,
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
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            room: Notify::new(),
        });
        let writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&writer, out))
            .map_err(|source| AccessLogError {
                path: PathBuf::from("<writer thread>"),
                source,
            })?;
        Ok(Some(AccessLog {
            handle: Arc::new(Handle {
                shared,
                writer: Mutex::new(Some(writer)),
            }),
            dropped,
        }))
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
        let shared = &self.handle.shared;
        loop {
            // Registered before the check, so a write finishing in between still wakes us.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match shared.push(&line) {
                Pushed::Buffered => return,
                Pushed::Full if record.job_submission => room.await,
                Pushed::Full => {
                    self.dropped.inc();
                    return;
                }
            }
        }
    }
}

/// Whether a line went into the buffer.
enum Pushed {
    Buffered,
    Full,
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: keep logging.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `line` unless the buffer is full; wakes the writer when it was idle.
    fn push(&self, line: &[u8]) -> Pushed {
        let mut pending = self.lock();
        if !pending.lines.is_empty() && pending.lines.len() + line.len() > BUFFER_BYTES {
            return Pushed::Full;
        }
        pending.lines.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.writer_idle);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
        Pushed::Buffered
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        // One last write of at most BUFFER_BYTES; joining keeps those lines when the process
        // exits right after (the writer never waits on anything but this buffer).
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// Waits for a line, lets more gather for [`BATCH_WINDOW`], writes them all in one call; ends
/// once every sender is gone and the buffer is written.
fn write_lines(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.closed {
            pending.writer_idle = true;
            pending = shared
                .wake
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let closing = pending.closed;
        drop(pending);
        if !closing {
            std::thread::sleep(BATCH_WINDOW);
        }
        std::mem::swap(&mut shared.lock().lines, &mut batch);
        if !batch.is_empty() {
            if let Err(e) = out.write_all(&batch) {
                tracing::warn!(error = %e, "access log write failed");
            }
            let _ = out.flush();
            batch.clear();
        }
        shared.room.notify_waiters();
        if closing && shared.lock().lines.is_empty() {
            return;
        }
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

    #[tokio::test]
    async fn dropping_the_last_handle_writes_every_pending_line() {
        let dir = std::env::temp_dir().join(format!("cg-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("access.jsonl");
        let mut registry = Registry::default();
        let log = AccessLog::open(&AccessLogTarget::File(path.clone()), &mut registry)
            .expect("open")
            .expect("a log");
        let clone = log.clone();
        for i in 0..500u16 {
            let id = format!("req-{i}");
            let record = AccessRecord {
                time: rfc3339_millis(UNIX_EPOCH),
                request_id: &id,
                customer: None,
                credential_id: None,
                route: None,
                method: "GET",
                status: 200,
                request_bytes: None,
                response_bytes: None,
                latency_ms: 0.1,
                client: IpAddr::from([127, 0, 0, 1]),
                job_submission: i % 2 == 0,
            };
            clone.record(&record).await;
        }
        drop(clone);
        drop(log);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            text.lines().count(),
            500,
            "every line written once the log is dropped"
        );
        assert!(text.lines().last().expect("a line").contains("\"req-499\""));
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

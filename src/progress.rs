//! Progress of the long operator commands (list imports, re-screens, exports, migrations): a
//! bar redrawn in place on stderr when stderr is a terminal, and otherwise a count line through
//! tracing every [`LOG_EVERY`] (so a log file or a journal gets periodic counts, and never
//! carriage returns or escape codes). Either way a last line gives the total and the rate.
//!
//! The decisions (is a line due, what does the bar look like) are pure functions of the counts
//! and the time, which the caller's clock supplies; only [`Progress`] writes.

use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;

/// How often a count line is logged when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// How often the bar is redrawn: faster than the eye needs only costs writes.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Width of the bar itself, in characters.
const BAR_WIDTH: usize = 30;

/// Progress of one operation: what it counts, how far it is, where it reports.
#[derive(Debug)]
pub struct Progress {
    /// What is being done, e.g. `screening import` (a fixed name: never user data).
    task: &'static str,
    /// What is counted, e.g. `entries`.
    unit: &'static str,
    /// The number to reach, when known.
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_report: Instant,
    mode: Mode,
}

/// Where the progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Redrawn on stderr, a terminal.
    Bar,
    /// Count lines through tracing.
    Log,
}

/// A writer that counts the bytes written through it as the progress of an export (the
/// exporters stream records and report no count until they finish).
#[derive(Debug)]
pub struct Counting<W> {
    inner: W,
    progress: Progress,
}

// === impl Progress ===

impl Progress {
    /// Starts reporting `task`, counting `unit`, towards `total` when known: a bar when stderr
    /// is a terminal, log lines otherwise.
    pub fn start(task: &'static str, unit: &'static str, total: Option<u64>) -> Progress {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Log
        };
        let now = Instant::now();
        Progress {
            task,
            unit,
            total,
            done: 0,
            started: now,
            last_report: now,
            mode,
        }
    }

    /// Sets the count done so far and reports it when a report is due.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        let now = Instant::now();
        let every = match self.mode {
            Mode::Bar => REDRAW_EVERY,
            Mode::Log => LOG_EVERY,
        };
        if !due(self.last_report, now, every) {
            return;
        }
        self.last_report = now;
        let elapsed = now.duration_since(self.started);
        match self.mode {
            Mode::Bar => {
                let line = render_bar(self.task, self.unit, self.done, self.total, elapsed);
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{line}");
                let _ = err.flush();
            }
            Mode::Log => tracing::info!(
                task = self.task,
                done = self.done,
                total = self.total,
                per_second = rate(self.done, elapsed),
                "{}",
                counts(self.task, self.unit, self.done, self.total)
            ),
        }
    }

    /// Adds `n` to the count done.
    pub fn advance(&mut self, n: u64) {
        self.set(self.done.saturating_add(n));
    }

    /// Ends the report with the total and the rate (and a new line after the bar).
    pub fn finish(self) {
        let elapsed = self.started.elapsed();
        if self.mode == Mode::Bar {
            let line = render_bar(self.task, self.unit, self.done, self.total, elapsed);
            eprintln!("\r{line}");
        }
        tracing::info!(
            task = self.task,
            done = self.done,
            seconds = elapsed.as_secs_f64(),
            per_second = rate(self.done, elapsed),
            "{} done: {} {} in {:.1}s",
            self.task,
            self.done,
            self.unit,
            elapsed.as_secs_f64()
        );
    }
}

// === impl Counting ===

impl<W> Counting<W> {
    /// Counts what is written to `inner` on `progress`.
    pub fn new(inner: W, progress: Progress) -> Counting<W> {
        Counting { inner, progress }
    }

    /// The writer and the progress, to finish both.
    pub fn into_parts(self) -> (W, Progress) {
        (self.inner, self.progress)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.progress.advance(u64::try_from(n).unwrap_or(u64::MAX));
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a report is due at `now`, the last one having been at `last`.
fn due(last: Instant, now: Instant, every: Duration) -> bool {
    now.duration_since(last) >= every
}

/// Items per second, rounded down (0 before any time has passed).
fn rate(done: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (done as f64 / secs) as u64
    } else {
        0
    }
}

/// `screening import: 20000 of 100000 entries` (or without `of …` when the total is unknown).
fn counts(task: &str, unit: &str, done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) => format!("{task}: {done} of {total} {unit}"),
        None => format!("{task}: {done} {unit}"),
    }
}

/// The bar line: `task [#####-----]  50% 5 of 10 unit, 12/s`; without a total, only the
/// counts and the rate.
fn render_bar(task: &str, unit: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let per_second = rate(done, elapsed);
    match total {
        Some(total) if total > 0 => {
            let fraction = (done.min(total) as f64) / (total as f64);
            let filled = ((fraction * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
            format!(
                "{task} [{}{}] {:>3.0}% {done} of {total} {unit}, {per_second}/s",
                "#".repeat(filled),
                "-".repeat(BAR_WIDTH - filled),
                fraction * 100.0,
            )
        }
        _ => format!("{task}: {done} {unit}, {per_second}/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_due_once_the_interval_has_passed() {
        let t = Instant::now();
        assert!(!due(t, t + Duration::from_secs(4), LOG_EVERY));
        assert!(due(t, t + LOG_EVERY, LOG_EVERY));
    }

    #[test]
    fn the_bar_fills_with_the_fraction_done() {
        let line = render_bar("import", "entries", 5, Some(10), Duration::from_secs(1));
        assert_eq!(
            line,
            format!(
                "import [{}{}]  50% 5 of 10 entries, 5/s",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        // More than the total (a count that was an estimate) never overflows the bar.
        let line = render_bar("import", "entries", 12, Some(10), Duration::ZERO);
        assert!(line.contains(&"#".repeat(BAR_WIDTH)), "{line}");
        assert!(line.contains("100%") && line.ends_with("0/s"), "{line}");
        assert_eq!(
            render_bar("export", "records", 7, None, Duration::from_secs(2)),
            "export: 7 records, 3/s"
        );
    }

    #[test]
    fn count_lines_name_the_total_when_known() {
        assert_eq!(
            counts("rescreen", "applications", 3, Some(9)),
            "rescreen: 3 of 9 applications"
        );
        assert_eq!(counts("export", "records", 3, None), "export: 3 records");
    }
}

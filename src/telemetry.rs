//! Process-wide logging set-up (tracing to stderr, text or JSON).

use computegate_gateway::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a bad filter falls back to `info` with a warning.
/// `RUST_LOG`, when set, takes the place of `log.level`.
pub fn init(log: &LogConfig) {
    let level = directive(log, std::env::var("RUST_LOG").ok());
    let (filter, bad) = match EnvFilter::try_new(&level) {
        Ok(f) => (f, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    // Colour codes only for a person at a terminal, never into a file, a pipe or a journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        _ => builder.try_init(),
    };
    if bad {
        tracing::warn!(level = %level, "the log filter (RUST_LOG or log.level) is not valid; using info");
    }
}

/// The filter directive: `RUST_LOG` when set and not blank, else `log.level`.
fn directive(log: &LogConfig, rust_log: Option<String>) -> String {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| log.level.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_takes_the_place_of_the_configured_level() {
        let log = LogConfig::default();
        assert_eq!(directive(&log, None), "info");
        assert_eq!(directive(&log, Some(" ".into())), "info");
        assert_eq!(
            directive(&log, Some("computegate=debug".into())),
            "computegate=debug"
        );
    }
}

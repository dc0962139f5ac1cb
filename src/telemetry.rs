//! Process-wide logging set-up (tracing to stderr, text or JSON).

use computegate_gateway::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a bad filter falls back to `info` with a warning.
pub fn init(log: &LogConfig) {
    let (filter, bad) = match EnvFilter::try_new(&log.level) {
        Ok(f) => (f, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        _ => builder.try_init(),
    };
    if bad {
        tracing::warn!(level = %log.level, "log.level is not a valid filter; using info");
    }
}

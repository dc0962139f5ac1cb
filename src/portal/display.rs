//! How the portal's pages write times and FLOP counts.

use time::OffsetDateTime;

/// A time as the pages show it: `2026-12-07 04:05 UTC`.
pub(crate) fn date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A FLOP count as the pages show it: `1.50e22` (`0` for none).
pub(crate) fn flop(f: f64) -> String {
    if f == 0.0 {
        "0".into()
    } else {
        format!("{f:.2e}")
    }
}

//! Simulated time: the clock that simulated jobs run on.
//!
//! Simulated time starts at zero when the simulator starts and runs `speedup` times faster than
//! real time. [`SimTime`] is a plain value; everything that decides something (job progress, log
//! lines, GPU accounting) takes one as input, and only [`SimClock`] reads the real clock.

use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in simulated time: simulated seconds since the simulator started.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub(crate) struct SimTime(f64);

/// Maps real time to simulated time: a real start [`Instant`] plus a speed-up factor.
#[derive(Debug, Clone)]
pub(crate) struct SimClock {
    started: Instant,
    wall_epoch: OffsetDateTime,
    speedup: f64,
}

// === impl SimTime ===

impl SimTime {
    /// The instant the simulator started.
    #[cfg(test)]
    pub(crate) const ZERO: SimTime = SimTime(0.0);

    /// `secs` simulated seconds after the simulator started.
    #[cfg(test)]
    pub(crate) fn from_secs(secs: f64) -> Self {
        SimTime(secs)
    }

    /// Simulated seconds since the simulator started.
    pub(crate) fn as_secs(self) -> f64 {
        self.0
    }

    /// This instant moved `secs` simulated seconds later.
    pub(crate) fn plus(self, secs: f64) -> Self {
        SimTime(self.0 + secs)
    }

    /// The earlier of `self` and `other`.
    pub(crate) fn earliest(self, other: SimTime) -> Self {
        if other < self { other } else { self }
    }

    /// Simulated seconds from `earlier` to `self`, zero if `earlier` is not earlier.
    pub(crate) fn secs_since(self, earlier: SimTime) -> f64 {
        (self.0 - earlier.0).max(0.0)
    }
}

// === impl SimClock ===

impl SimClock {
    /// Starts a clock now. `speedup` must be finite and positive (checked by the config).
    pub(crate) fn start(speedup: f64) -> Self {
        SimClock {
            started: Instant::now(),
            wall_epoch: OffsetDateTime::now_utc(),
            speedup,
        }
    }

    /// The current simulated time.
    pub(crate) fn now(&self) -> SimTime {
        SimTime(self.started.elapsed().as_secs_f64() * self.speedup)
    }

    /// Real time left until simulated time `t` (zero if it has passed).
    pub(crate) fn real_until(&self, t: SimTime) -> Duration {
        real_duration(t.secs_since(self.now()), self.speedup)
    }

    /// Simulated time `t` as an RFC 3339 wall-clock timestamp (the simulated calendar starts at
    /// the real time the simulator started).
    pub(crate) fn timestamp(&self, t: SimTime) -> String {
        timestamp(self.wall_epoch, t)
    }
}

/// Real duration of `sim_secs` simulated seconds at `speedup`; zero for negative or NaN input,
/// saturating for huge ones.
pub(crate) fn real_duration(sim_secs: f64, speedup: f64) -> Duration {
    let real = sim_secs / speedup;
    if real.is_nan() || real <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(real).unwrap_or(Duration::MAX)
}

/// `epoch` plus `t`, formatted as RFC 3339 with millisecond precision.
pub(crate) fn timestamp(epoch: OffsetDateTime, t: SimTime) -> String {
    let at = time::Duration::checked_seconds_f64(t.as_secs())
        .and_then(|d| epoch.checked_add(d))
        // Only reachable after simulating past year 9999; the epoch is still a valid timestamp.
        .unwrap_or(epoch);
    let at = at
        .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(at);
    // Formatting fails only for years outside 0..=9999, excluded above by falling back to epoch.
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sim_time_arithmetic() {
        let t = SimTime::from_secs(10.0);
        assert_eq!(t.plus(5.0).as_secs(), 15.0);
        assert_eq!(t.plus(5.0).secs_since(t), 5.0);
        assert_eq!(t.secs_since(t.plus(5.0)), 0.0);
        assert!(SimTime::ZERO < t);
    }

    #[test]
    fn real_duration_divides_by_speedup() {
        assert_eq!(real_duration(7200.0, 3600.0), Duration::from_secs(2));
        assert_eq!(real_duration(-1.0, 3600.0), Duration::ZERO);
        assert_eq!(real_duration(f64::NAN, 3600.0), Duration::ZERO);
        assert_eq!(real_duration(f64::INFINITY, 1.0), Duration::MAX);
    }

    #[test]
    fn timestamps_follow_simulated_time() {
        let epoch = datetime!(2025-01-01 00:00:00.123456 UTC);
        assert_eq!(timestamp(epoch, SimTime::ZERO), "2025-01-01T00:00:00.123Z");
        assert_eq!(
            timestamp(epoch, SimTime::from_secs(7200.0)),
            "2025-01-01T02:00:00.123Z"
        );
        assert_eq!(
            timestamp(epoch, SimTime::from_secs(f64::MAX)),
            "2025-01-01T00:00:00.123Z"
        );
    }

    #[test]
    fn clock_runs_at_speedup() {
        let clock = SimClock::start(1_000_000.0);
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now().as_secs() >= 2000.0);
        assert_eq!(clock.real_until(SimTime::ZERO), Duration::ZERO);
    }
}

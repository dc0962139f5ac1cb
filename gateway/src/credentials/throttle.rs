//! A fixed-window counter per key (client address, API-key id, …) with a bounded number of
//! keys: the throttle that stands in front of expensive credential checks.
//!
//! Each key counts events in a window that starts with its first event; once the count reaches
//! the limit, [`WindowCounter::check`] refuses until the window ends. Memory is bounded by
//! `capacity` keys: at capacity, expired windows are dropped first, then every window (an
//! attacker able to churn that many keys could already spread its attempts below the limit).
//! Time is an input, so the counter is tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events per key in fixed windows; see the module docs.
#[derive(Debug)]
pub struct WindowCounter<K> {
    limit: u32,
    window: Duration,
    capacity: usize,
    windows: Mutex<HashMap<K, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

// === impl WindowCounter ===

impl<K: Hash + Eq + Clone> WindowCounter<K> {
    /// At most `limit` events per key per `window`, for at most `capacity` keys at once. A
    /// `limit` of 0 turns the counter off (nothing is ever refused).
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        Self {
            limit,
            window,
            capacity: capacity.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while `key` has used up its window at `now`.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let map = self.lock();
        match map.get(key) {
            Some(w) if w.count >= self.limit => {
                let ends = w.started + self.window;
                match ends.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => Err(left),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one event of `key` at `now`.
    pub fn hit(&self, key: &K, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut map = self.lock();
        if let Some(w) = map.get_mut(key) {
            if now.saturating_duration_since(w.started) >= self.window {
                *w = Window {
                    started: now,
                    count: 1,
                };
            } else {
                w.count = w.count.saturating_add(1);
            }
            return;
        }
        if map.len() >= self.capacity {
            let window = self.window;
            map.retain(|_, w| now.saturating_duration_since(w.started) < window);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            key.clone(),
            Window {
                started: now,
                count: 1,
            },
        );
    }

    /// Admits one event of `key` at `now` and counts it, or refuses it (not counted) while
    /// the window is used up: for limits on every attempt rather than on failures.
    pub fn admit(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.check(key, now)?;
        self.hit(key, now);
        Ok(())
    }

    /// Forgets `key` (e.g. after a success that proves the client honest).
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        // Poisoning only follows a panic while holding the lock; the map stays valid.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_ends() {
        let c = WindowCounter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(c.check(&"a", t0).is_ok());
            c.hit(&"a", t0);
        }
        let left = c.check(&"a", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(left, Duration::from_secs(50));
        assert!(c.check(&"b", t0).is_ok(), "other keys are separate");
        assert!(c.check(&"a", t0 + Duration::from_secs(60)).is_ok());
        c.hit(&"a", t0 + Duration::from_secs(61));
        assert!(
            c.check(&"a", t0 + Duration::from_secs(61)).is_ok(),
            "new window"
        );
    }

    #[test]
    fn admit_lets_exactly_the_limit_through() {
        let c = WindowCounter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let admitted = (0..10).filter(|_| c.admit(&"ip", t0).is_ok()).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn memory_is_bounded() {
        let c = WindowCounter::new(1, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for i in 0..1000 {
            c.hit(&i, t0);
            assert!(c.len() <= 10);
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let c = WindowCounter::new(0, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            c.hit(&1, t0);
        }
        assert!(c.check(&1, t0).is_ok());
        assert!(c.is_empty());
    }
}

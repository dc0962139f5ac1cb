//! The client's request body under a read deadline and a minimum rate (`server.body_read_timeout`,
//! `server.body_min_rate`), so a body trickled a byte at a time cannot hold a connection and a
//! request slot for as long as the client likes.
//!
//! The allowance is the mod_reqtimeout model: `body_read_timeout` from the first read of the body,
//! plus one second for every `body_min_rate` bytes received. A client sending at or above the
//! minimum rate is never cut off, whatever the body's size; one sending slower runs out of time.
//! The clock starts at the first read, not at the request head, so time the gateway spends before
//! reading (authentication, a queue for argon2) is not charged to the client.
//!
//! When the allowance runs out the body fails with [`BodyReadTimeout`] and its [`BodyClock`]
//! remembers it; [`crate::proxy::Gateway::handle`] then answers 408 `body-timeout` whatever the
//! reader made of the error (job admission, streaming to the upstream, a control-plane handler),
//! and on HTTP/1.x says `Connection: close` because the rest of the body is still on the wire.
//!
//! The clock also remembers whether the body was read to its end. An HTTP/1.x answer made before
//! that (a handler that refused early, a JSON extractor past its limit, an upstream that answered
//! first) leaves the rest of the body on the connection, so hyper closes it after the answer; the
//! handler then says `Connection: close`, or the client would send its next request on a
//! connection that is about to close and fail it (`IncompleteMessage`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// The client's body did not arrive within its allowance.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within the body read allowance")]
pub struct BodyReadTimeout;

/// How long a body may take: a base time plus one second per `min_rate` bytes received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Base allowance from the first read.
    pub timeout: Duration,
    /// Bytes per second that earn one more second each; never 0 (validated in config).
    pub min_rate: u64,
}

/// Whether a request's body ran out of time, and whether it was read to its end; shared by the
/// body and the request handler.
#[derive(Debug, Clone, Default)]
pub struct BodyClock(Arc<ClockState>);

#[derive(Debug, Default)]
struct ClockState {
    expired: AtomicBool,
    finished: AtomicBool,
}

/// A request body read under a [`BodyPace`].
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    pace: BodyPace,
    clock: BodyClock,
    started: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl BodyPace ===

impl BodyPace {
    /// The allowance after `received` bytes: `timeout + received / min_rate` seconds, saturating.
    pub fn allowance(&self, received: u64) -> Duration {
        let rate = self.min_rate.max(1);
        let nanos = u128::from(received % rate) * 1_000_000_000 / u128::from(rate);
        // `nanos` < 1e9 because the remainder is below `rate`.
        let earned = Duration::new(received / rate, nanos as u32);
        self.timeout.saturating_add(earned)
    }
}

// === impl BodyClock ===

impl BodyClock {
    /// Whether the body was cut off for being too slow.
    pub fn expired(&self) -> bool {
        self.0.expired.load(Ordering::Relaxed)
    }

    /// Whether the body was read to its end (nothing of it is left on the connection).
    pub fn finished(&self) -> bool {
        self.0.finished.load(Ordering::Relaxed)
    }

    fn finish(&self) {
        self.0.finished.store(true, Ordering::Relaxed);
    }
}

// === impl ClientBody ===

impl ClientBody {
    /// Wraps `inner` under `pace`; the returned clock tells afterwards whether it ran out.
    pub fn new(inner: Incoming, pace: BodyPace) -> (Self, BodyClock) {
        let clock = BodyClock::default();
        let body = Self {
            inner,
            pace,
            clock: clock.clone(),
            started: None,
            received: 0,
            timer: None,
        };
        (body, clock)
    }

    fn deadline(&self, started: Instant) -> Instant {
        started + self.pace.allowance(self.received)
    }

    fn expire(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.clock.0.expired.store(true, Ordering::Relaxed);
        self.timer = None;
        Poll::Ready(Some(Err(BodyReadTimeout.into())))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.clock.expired() {
            return Poll::Ready(Some(Err(BodyReadTimeout.into())));
        }
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                // A trickler whose every read succeeds is still out of time past its deadline.
                if this.inner.is_end_stream() {
                    this.clock.finish();
                } else if Instant::now() > this.deadline(started) {
                    return this.expire();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.clock.finish();
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline(started);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                this.expire()
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_one_second_per_min_rate_bytes() {
        let pace = BodyPace {
            timeout: Duration::from_secs(30),
            min_rate: 4096,
        };
        assert_eq!(pace.allowance(0), Duration::from_secs(30));
        assert_eq!(pace.allowance(4096), Duration::from_secs(31));
        assert_eq!(pace.allowance(40 * 4096), Duration::from_secs(70));
        // A trickler at 1 byte/s earns nothing noticeable: out after ~30 s.
        assert!(pace.allowance(30) < Duration::from_secs(31));
    }

    #[test]
    fn the_allowance_saturates_instead_of_overflowing() {
        let pace = BodyPace {
            timeout: Duration::MAX,
            min_rate: 1,
        };
        assert_eq!(pace.allowance(u64::MAX), Duration::MAX);
    }
}

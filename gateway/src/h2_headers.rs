//! A deadline on HTTP/2 header blocks: a HEADERS frame without END_HEADERS must be completed by
//! its CONTINUATION frames within `server.header_read_timeout`, else the connection is closed.
//!
//! hyper's HTTP/2 server has no header-read timeout (its builder offers keep-alive pings,
//! stream and reset limits, and a header-list size, nothing on time), and while a header block
//! is open RFC 9113 §6.10 forbids every other frame on the connection, so a client can hold it
//! with a half-sent block. This wrapper reads the frame headers (9 bytes each) as the bytes go
//! by on their way to hyper, never buffering or altering them, and fails the read with
//! `TimedOut` once a block stays open too long; hyper then drops the connection. Closing, not a
//! 408, is the answer: no request exists yet to answer, and the client is not speaking HTTP/2
//! in good faith.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Length of the client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// Length of a frame header (RFC 9113 §4.1).
const FRAME_HEAD_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;

/// Follows the frame boundaries of a client's HTTP/2 byte stream and whether a header block is
/// open. Time is an input: [`FrameScan::feed`] takes `now`.
#[derive(Debug, Clone)]
pub struct FrameScan {
    state: ScanState,
    open_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum ScanState {
    /// Preface bytes still to skip.
    Preface(usize),
    /// Collecting a frame header.
    Head([u8; FRAME_HEAD_LEN], usize),
    /// Payload bytes still to skip.
    Payload(usize),
}

/// An IO object whose reads fail once an HTTP/2 header block stays open past `timeout`.
#[derive(Debug)]
pub struct H2HeaderWatch<S> {
    inner: S,
    scan: FrameScan,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl FrameScan ===

impl FrameScan {
    /// A scanner at the start of a server-side connection (the client preface comes first).
    pub fn new() -> Self {
        Self {
            state: ScanState::Preface(PREFACE_LEN),
            open_since: None,
        }
    }

    /// When the open header block started, if one is open.
    pub fn open_since(&self) -> Option<Instant> {
        self.open_since
    }

    /// Advances over `bytes`, received at `now`.
    pub fn feed(&mut self, mut bytes: &[u8], now: Instant) {
        while !bytes.is_empty() {
            match &mut self.state {
                ScanState::Preface(left) | ScanState::Payload(left) => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = ScanState::Head([0; FRAME_HEAD_LEN], 0);
                    }
                }
                ScanState::Head(head, have) => {
                    let n = (FRAME_HEAD_LEN - *have).min(bytes.len());
                    head[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == FRAME_HEAD_LEN {
                        let head = *head;
                        self.frame(head, now);
                    }
                }
            }
        }
    }

    fn frame(&mut self, head: [u8; FRAME_HEAD_LEN], now: Instant) {
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let ends_block = flags & FLAG_END_HEADERS != 0;
        match kind {
            TYPE_HEADERS if !ends_block => {
                self.open_since.get_or_insert(now);
            }
            TYPE_HEADERS | TYPE_CONTINUATION if ends_block => self.open_since = None,
            _ => {}
        }
        self.state = if len == 0 {
            ScanState::Head([0; FRAME_HEAD_LEN], 0)
        } else {
            ScanState::Payload(len)
        };
    }
}

impl Default for FrameScan {
    fn default() -> Self {
        Self::new()
    }
}

// === impl H2HeaderWatch ===

impl<S> H2HeaderWatch<S> {
    /// Wraps the server side of an HTTP/2 connection.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            scan: FrameScan::new(),
            timeout,
            timer: None,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "HTTP/2 header block not completed in time",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for H2HeaderWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.scan.feed(&buf.filled()[before..], Instant::now());
        }
        let Some(since) = this.scan.open_since() else {
            this.timer = None;
            return res;
        };
        let deadline = since + this.timeout;
        if Instant::now() >= deadline {
            return Poll::Ready(Err(timed_out()));
        }
        if res.is_pending() {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(timed_out()));
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2HeaderWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_block_opens_on_headers_without_end_headers_and_closes_on_the_last_continuation() {
        let t0 = Instant::now();
        let mut scan = FrameScan::new();
        let settings = frame(0x4, 0, &[0; 6]);
        scan.feed(&[PREFACE, &settings].concat(), t0);
        assert_eq!(scan.open_since(), None);
        scan.feed(&frame(TYPE_HEADERS, 0, b"abc"), t0);
        assert_eq!(scan.open_since(), Some(t0));
        let later = t0 + Duration::from_secs(1);
        scan.feed(&frame(TYPE_CONTINUATION, 0, b"de"), later);
        assert_eq!(
            scan.open_since(),
            Some(t0),
            "still open, since the first frame"
        );
        scan.feed(&frame(TYPE_CONTINUATION, FLAG_END_HEADERS, b"f"), later);
        assert_eq!(scan.open_since(), None);
    }

    #[test]
    fn frames_split_at_every_byte_are_followed() {
        let t0 = Instant::now();
        let mut scan = FrameScan::new();
        let bytes = [
            PREFACE,
            &frame(TYPE_HEADERS, FLAG_END_HEADERS, &[7; 300]),
            &frame(0x0, 0x1, &[1; 70_000]),
            &frame(TYPE_HEADERS, 0x1, b"x"),
        ]
        .concat();
        for b in bytes.chunks(1) {
            scan.feed(b, t0);
        }
        assert_eq!(
            scan.open_since(),
            Some(t0),
            "the last HEADERS lacks END_HEADERS"
        );
    }
}

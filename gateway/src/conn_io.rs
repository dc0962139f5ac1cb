//! A transparent connection wrapper that knows whether a request head is partly received, and
//! replays bytes read ahead to sniff the protocol.
//!
//! hyper closes a connection silently when the header-read timeout fires, and that timer also
//! covers idle keep-alive time. The gateway answers a *slow* client with 408 but closes an idle
//! one quietly; telling them apart needs to know whether bytes arrived since the last response
//! bytes went out, which is what this wrapper records.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps an IO object, recording whether a request head is in progress.
#[derive(Debug)]
pub struct HeadWatch<S> {
    inner: S,
    prefix: Bytes,
    partial: Arc<AtomicBool>,
}

// === impl HeadWatch ===

impl<S> HeadWatch<S> {
    /// Wraps `inner`; the flag is shared with whoever must decide after the connection ends.
    /// `prefix` holds bytes already read from `inner` (protocol sniffing); they are read first.
    pub fn new(inner: S, prefix: Bytes) -> (Self, Arc<AtomicBool>) {
        let partial = Arc::new(AtomicBool::new(!prefix.is_empty()));
        (
            Self {
                inner,
                prefix,
                partial: partial.clone(),
            },
            partial,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.partial.store(true, Ordering::Relaxed);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.partial.store(false, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.partial.store(false, Ordering::Relaxed);
        }
        res
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

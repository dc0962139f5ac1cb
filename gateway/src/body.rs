//! Body types of the data plane: the client body forwarded upstream under a size limit, and the
//! response body that is either the upstream's stream or one the gateway made itself.
//!
//! Bodies are streamed frame by frame (data and trailers); nothing here buffers a whole body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

use crate::client_body::ClientBody;

pub mod peek;

/// Boxed error of body streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's body grew past the route's limit.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {limit} bytes")]
pub struct BodyLimitExceeded {
    /// The limit.
    pub limit: u64,
}

/// Reading the client's body failed (it disconnected, sent a malformed chunk, or ran out of
/// time: [`crate::client_body::BodyReadTimeout`] in the source chain).
#[derive(Debug, thiserror::Error)]
#[error("client request body failed: {0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// Body of a request sent to an upstream.
#[derive(Debug)]
pub enum UpstreamBody {
    /// The client's body, streamed, failing once it passes `limit` bytes.
    Streaming {
        /// The client body.
        inner: ClientBody,
        /// Bytes passed so far.
        seen: u64,
        /// The route's limit.
        limit: u64,
    },
    /// A body already read (job submissions are inspected before forwarding).
    Buffered(Full<Bytes>),
}

/// Body of a response sent to a client.
#[derive(Debug)]
pub enum ResponseBody {
    /// Streamed from the upstream.
    Upstream(Incoming),
    /// Made by the gateway.
    Full(Full<Bytes>),
    /// Anything else (control-plane handlers).
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// Streams `inner`, enforcing `limit`.
    pub fn streaming(inner: ClientBody, limit: u64) -> Self {
        Self::Streaming {
            inner,
            seen: 0,
            limit,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Streaming { inner, seen, limit } => {
                match ready!(Pin::new(inner).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            *seen += data.len() as u64;
                            if *seen > *limit {
                                let err = BodyLimitExceeded { limit: *limit };
                                return Poll::Ready(Some(Err(err.into())));
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => Poll::Ready(Some(Err(ClientBodyError(e).into()))),
                    None => Poll::Ready(None),
                }
            }
            Self::Buffered(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming { inner, .. } => inner.is_end_stream(),
            Self::Buffered(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming { inner, .. } => inner.size_hint(),
            Self::Buffered(full) => full.size_hint(),
        }
    }
}

// === impl ResponseBody ===

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Full::new(bytes.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(Full::new(Bytes::new()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Self::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(b) => b.is_end_stream(),
            Self::Full(b) => b.is_end_stream(),
            Self::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(b) => b.size_hint(),
            Self::Full(b) => b.size_hint(),
            Self::Boxed(b) => b.size_hint(),
        }
    }
}

/// Finds an error of type `E` anywhere in an error's source chain.
pub fn find_in_chain<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

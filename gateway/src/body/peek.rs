//! Looking at the start of a response body without consuming it: [`PeekedBody`] reads frames up
//! to a cap and then serves them again, followed by the rest of the stream. Job ownership reads
//! an accepted job's id this way, idempotent submission the answer it stores for retries.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::{BoxError, ResponseBody};

/// A response body whose first frames were read (to look at them) and are replayed before the
/// rest of the stream.
pub(crate) struct PeekedBody {
    frames: VecDeque<Frame<Bytes>>,
    error: Option<BoxError>,
    rest: Option<ResponseBody>,
}

// === impl PeekedBody ===

impl PeekedBody {
    /// Reads frames of `body` until it ends, fails, or more than `cap` data bytes were read.
    pub(crate) async fn read(mut body: ResponseBody, cap: usize) -> Self {
        let mut frames = VecDeque::new();
        let mut seen = 0usize;
        loop {
            match body.frame().await {
                None => {
                    return Self {
                        frames,
                        error: None,
                        rest: None,
                    };
                }
                Some(Err(e)) => {
                    return Self {
                        frames,
                        error: Some(e),
                        rest: None,
                    };
                }
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    frames.push_back(frame);
                    if seen > cap {
                        return Self {
                            frames,
                            error: None,
                            rest: Some(body),
                        };
                    }
                }
            }
        }
    }

    /// The whole body's data, when it was read to its end without error.
    pub(crate) fn complete_data(&self) -> Option<Bytes> {
        if self.rest.is_some() || self.error.is_some() {
            return None;
        }
        let mut data = BytesMut::new();
        for frame in &self.frames {
            if let Some(chunk) = frame.data_ref() {
                data.extend_from_slice(chunk);
            }
        }
        Some(data.freeze())
    }
}

impl Body for PeekedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + buffered);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + buffered);
                }
                hint
            }
        }
    }
}

// === test support ===

#[cfg(test)]
impl PeekedBody {
    /// A body already read as `frames`, with nothing after them.
    pub(crate) fn from_frames(frames: impl IntoIterator<Item = Frame<Bytes>>) -> Self {
        Self {
            frames: frames.into_iter().collect(),
            error: None,
            rest: None,
        }
    }
}

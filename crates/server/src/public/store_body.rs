//! A response body streaming an object from the store ([`crate::vod::store`]'s
//! ranged reads), shared by stored videos and archived clips.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;

use crate::vod::store::ByteStream;

/// A response body streaming an object from the store. A read failing midway ends
/// the body early: the client sees fewer bytes than `Content-Length` and hyper
/// closes the connection, the HTTP/1.1 way to say the response is incomplete.
pub(super) struct StoreBody {
    // `Mutex` only to make the `Send`-only stream `Sync` as `BoxBody` wants; the
    // body is polled through `&mut`, so it is never locked.
    stream: Option<Mutex<ByteStream>>,
    remaining: u64,
}

impl StoreBody {
    /// A body of the `len` bytes `stream` yields.
    pub(super) fn new(stream: ByteStream, len: u64) -> Self {
        StoreBody {
            stream: Some(Mutex::new(stream)),
            remaining: len,
        }
    }
}

impl Body for StoreBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(stream.get_mut()).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                this.remaining = this.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::error!(error = %e, "store read failed mid-response");
                this.stream = None;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                this.stream = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

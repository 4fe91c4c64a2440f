//! A connection's socket with nginx's `send_timeout`: a write that makes no progress
//! for the limit fails with `TimedOut`, and hyper drops the connection.
//!
//! hyper has a header-read timer but no write timer. Without this, a client that asks
//! for a 4 h MP4 and never reads holds its connection slot, its socket buffers and the
//! clip's chunks for as long as it likes. The clock starts when a write first finds
//! the socket full and stops at any progress, so a slow but moving reader is fine.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `S` whose writes fail once stalled for longer than the limit.
#[derive(Debug)]
pub struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Running while the socket refuses writes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> SendTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        SendTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes a write's outcome on; a pending one arms (or checks) the stall timer.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_reader_times_out_a_slow_one_does_not() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut w = SendTimeout::new(near, Duration::from_secs(60));
        // A reader taking 1 KiB every 50 s never stalls the writer 60 s.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                far.read_exact(&mut buf).await.unwrap();
            }
            far // kept open, never read again
        });
        w.write_all(&[7u8; 5 * 1024]).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = w.write_all(&[7u8; 2048]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(reader.await.unwrap());
    }
}

//! Reading request bodies under limits: a byte cap per kind of upload, an idle
//! timeout between frames and a total deadline (DESIGN §9).
//!
//! The body is collected into one `Bytes` and handed on only when it is complete:
//! an aborted or over-long upload yields an error and nothing is committed
//! (DESIGN §7). A declared `Content-Length` over the cap is refused before reading.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, timeout_at};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or actual size over the limit (413).
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// No frame arrived within the idle timeout, or the deadline passed (408).
    #[error("body not received in time")]
    Timeout,
    /// The client aborted or sent a malformed chunked body (400).
    #[error("body aborted: {0}")]
    Aborted(String),
}

/// Reads the whole body, refusing anything past `limit` bytes.
pub async fn read_limited(
    body: Incoming,
    declared_len: Option<u64>,
    limit: u64,
    idle: Duration,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    if declared_len.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let deadline = Instant::now() + deadline;
    let mut body = body;
    // Capacity from the declared length is trusted only up to the cap.
    let mut buf = BytesMut::with_capacity(declared_len.unwrap_or(0).min(limit) as usize);
    loop {
        let next = Instant::now() + idle;
        let frame = match timeout_at(next.min(deadline), body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Aborted(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    // A chunked upload grew the buffer by doubling: a segment kept for the whole DVR
    // window must not hold up to twice its size, so spare room costs one copy.
    if buf.capacity() - buf.len() > buf.len() / 16 {
        return Ok(Bytes::copy_from_slice(&buf));
    }
    Ok(buf.freeze())
}

//! Reading request bodies under limits: a byte cap per kind of upload, an idle
//! timeout between frames, a total deadline (DESIGN §9), and a shared memory pool
//! for every body still arriving.
//!
//! The body is collected into one buffer and handed on only when it is complete:
//! an aborted or over-long upload yields an error and nothing is committed
//! (DESIGN §7). A declared `Content-Length` over the cap is refused before reading.
//!
//! Memory follows what arrives, not what is declared: the buffer doubles from the
//! first frame's size and never past the declared length, so a body that declares
//! its size ends in a buffer of exactly that size, and one that trickles holds at
//! most twice what it sent (a client declaring 1 MiB and sending a byte a second
//! costs bytes, not a mebibyte). Every byte of buffer is drawn from [`BodyMemory`],
//! a share of the memory budget the engine's chunks never use; when it is spent a
//! body is refused with 503 instead of growing the process past its budget or
//! evicting DVR media for an upload that may never complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// The memory kept for bodies in flight is spent (503).
    #[error("memory for uploads in flight is spent ({limit} bytes); retry shortly")]
    NoMemory {
        /// The pool's size.
        limit: u64,
    },
}

/// The bytes every body still arriving may hold together.
#[derive(Debug)]
pub struct BodyMemory {
    limit: u64,
    held: AtomicU64,
}

impl BodyMemory {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        BodyMemory {
            limit,
            held: AtomicU64::new(0),
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The pool's size.
    pub fn limit_bytes(&self) -> u64 {
        self.limit
    }

    /// An empty share for one body.
    fn share(&self) -> Share<'_> {
        Share {
            pool: self,
            bytes: 0,
        }
    }

    /// Takes `n` more bytes if they fit.
    fn take(&self, n: u64) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&h| h <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One body's share of a [`BodyMemory`], returned when dropped.
struct Share<'a> {
    pool: &'a BodyMemory,
    bytes: u64,
}

impl Share<'_> {
    /// Grows the share to `bytes` in all, if the pool has room.
    fn grow_to(&mut self, bytes: u64) -> Result<(), BodyError> {
        let more = bytes.saturating_sub(self.bytes);
        if !self.pool.take(more) {
            return Err(BodyError::NoMemory {
                limit: self.pool.limit,
            });
        }
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.pool.give_back(self.bytes);
    }
}

/// Reads the whole body, refusing anything past `limit` bytes. The buffer may have
/// spare room; [`crate::payload::keep`] places bytes that are kept.
pub async fn read_limited(
    body: Incoming,
    declared_len: Option<u64>,
    limit: u64,
    memory: &BodyMemory,
    idle: Duration,
    deadline: Duration,
) -> Result<Vec<u8>, BodyError> {
    if declared_len.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let deadline = Instant::now() + deadline;
    let mut body = body;
    let mut share = memory.share();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let next = Instant::now() + idle;
        let frame = match timeout_at(next.min(deadline), body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Aborted(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() as u64 + data.len() as u64;
        if needed > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if needed > buf.capacity() as u64 {
            let capacity = grown_capacity(buf.capacity() as u64, needed, declared_len);
            share.grow_to(capacity)?;
            buf.reserve_exact((capacity - buf.len() as u64) as usize);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// The next buffer size: double what there is (at least `needed`), but no more than a
/// declared length that still covers `needed`.
fn grown_capacity(capacity: u64, needed: u64, declared_len: Option<u64>) -> u64 {
    let doubled = needed.max(capacity.saturating_mul(2));
    match declared_len {
        Some(declared) if declared >= needed => doubled.min(declared),
        _ => doubled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_reached_by_doubling_and_never_passed() {
        let mut capacity = 0;
        let mut sizes = Vec::new();
        for received in (16_384..=100_000).step_by(16_384).chain([100_000]) {
            if received > capacity {
                capacity = grown_capacity(capacity, received, Some(100_000));
                sizes.push(capacity);
            }
        }
        assert_eq!(sizes, [16_384, 32_768, 65_536, 100_000]);
    }

    #[test]
    fn a_trickled_body_holds_at_most_twice_what_it_sent() {
        let mut capacity = 0;
        for received in 1..=10_000u64 {
            if received > capacity {
                capacity = grown_capacity(capacity, received, Some(1 << 20));
            }
            assert!(capacity <= 2 * received, "{capacity} for {received}");
        }
    }

    #[test]
    fn a_body_past_its_declared_length_keeps_doubling() {
        assert_eq!(grown_capacity(100, 150, Some(100)), 200);
        assert_eq!(grown_capacity(0, 10, None), 10);
    }

    #[test]
    fn the_pool_refuses_what_does_not_fit_and_takes_back_what_is_dropped() {
        let pool = BodyMemory::new(100);
        let mut a = pool.share();
        a.grow_to(60).unwrap();
        let mut b = pool.share();
        assert!(matches!(
            b.grow_to(50),
            Err(BodyError::NoMemory { limit: 100 })
        ));
        b.grow_to(40).unwrap();
        assert_eq!(pool.held_bytes(), 100);
        drop(a);
        assert_eq!(pool.held_bytes(), 40);
        drop(b);
        assert_eq!(pool.held_bytes(), 0);
    }
}

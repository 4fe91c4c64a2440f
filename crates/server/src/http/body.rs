//! Reading request bodies under limits: a byte cap per kind of upload, an idle
//! timeout between frames, a total deadline (`ref/api.md` "Limits"), and a shared
//! memory pool for every body still arriving.
//!
//! The body is collected into one buffer, already where its bytes will be kept
//! ([`PayloadBuf`]), and handed on only when it is complete: an aborted or over-long
//! upload yields an error and nothing is committed. A declared `Content-Length` over
//! the cap is refused before reading.
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

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::{Instant, timeout_at};

use super::payload::PayloadBuf;

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
    /// A malformed `Content-Length` (400).
    #[error("malformed Content-Length")]
    BadLength,
    /// The memory kept for bodies in flight is spent (503).
    #[error("memory for uploads in flight is spent ({limit} bytes); retry shortly")]
    NoMemory {
        /// The pool's size.
        limit: u64,
    },
    /// The spool could not keep the body (a full filesystem) (503).
    #[error("storage refused the upload: {0}")]
    Storage(String),
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

/// How a body may arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Most bytes accepted.
    pub max_bytes: u64,
    /// Longest pause between two frames.
    pub idle: Duration,
    /// Longest time for the whole body.
    pub deadline: Duration,
}

/// Reads the whole body into its final home ([`PayloadBuf`]), refusing anything
/// past the limit. Any body type hyper or a framework hands over will do.
pub async fn read_limited<B>(
    mut body: B,
    declared_len: Option<u64>,
    limits: BodyLimits,
    memory: &BodyMemory,
    spool: Option<&dvrclip_spool::Spool>,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let limit = limits.max_bytes;
    if declared_len.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let (idle, deadline) = (limits.idle, Instant::now() + limits.deadline);
    let mut share = memory.share();
    let mut buf = match (spool.and_then(PayloadBuf::spooled), declared_len) {
        (Some(spooled), _) => spooled,
        (None, Some(n)) => PayloadBuf::for_declared(n),
        (None, None) => PayloadBuf::growable(),
    };
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
        // The share follows what arrives, also for a mapping sized up front: its
        // pages become resident only as they are written.
        if needed > share.bytes {
            let capacity = grown_capacity(share.bytes, needed, declared_len);
            share.grow_to(capacity)?;
            buf.reserve_to(capacity as usize);
        }
        buf.extend_from_slice(&data);
    }
    buf.finish().map_err(|e| BodyError::Storage(e.to_string()))
}

/// Reads a request's body as [`read_limited`] does, with the length its headers
/// declare (a malformed `Content-Length` is refused), into `spool` when given.
pub async fn read_request<B>(
    headers: &http::HeaderMap,
    body: B,
    limits: BodyLimits,
    memory: &BodyMemory,
    spool: Option<&dvrclip_spool::Spool>,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    read_limited(body, content_length(headers)?, limits, memory, spool).await
}

/// The declared `Content-Length`, if any; `Err` for a malformed one.
pub fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, BodyError> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(BodyError::BadLength)
        })
        .transpose()
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

    fn read(body: Vec<u8>, declared: Option<u64>, pool: &BodyMemory) -> Result<Bytes, BodyError> {
        let limits = BodyLimits {
            max_bytes: 1 << 20,
            idle: Duration::from_secs(5),
            deadline: Duration::from_secs(5),
        };
        let body = http_body_util::Full::new(Bytes::from(body));
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(read_limited(body, declared, limits, pool, None))
    }

    #[test]
    fn a_declared_segment_lands_in_its_own_mapping_and_the_pool_is_returned() {
        let segment: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let pool = BodyMemory::new(1 << 20);
        let before = crate::http::payload::mapped_count();
        let kept = read(segment.clone(), Some(segment.len() as u64), &pool).unwrap();
        assert_eq!(kept, segment);
        assert!(crate::http::payload::mapped_count() > before, "mapped");
        assert_eq!(
            pool.held_bytes(),
            0,
            "the share goes back once the body is read"
        );
        // A declared length over the limit is refused before a byte is read.
        assert!(matches!(
            read(vec![0; 10], Some(2 << 20), &pool),
            Err(BodyError::TooLarge { .. })
        ));
        // Undeclared bodies arrive whole too.
        assert_eq!(read(segment.clone(), None, &pool).unwrap(), segment);
    }

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

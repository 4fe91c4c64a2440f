//! Global memory accounting for chunks.
//!
//! Owns the counters behind [`MemoryStats`]. The counting is exact by construction,
//! not by bookkeeping in the callers: a chunk adds its cost (payload, parsed tables and
//! its record: [`crate::Chunk::memory_bytes`]) when it is made and subtracts it when
//! its last `Arc` drops ([`Ticket`]), and its "held by a
//! clip" share moves 0→1 and 1→0 with an atomic pin count ([`Ticket::pin`]). So a
//! chunk evicted from the ring but still referenced by a clip keeps counting, as clip
//! memory, until the clip lets go. Each update is one or two relaxed-enough atomic ops.
//!
//! Memory the embedder holds outside chunks on behalf of clients (a server's open
//! connections) is counted through a [`MemoryReservation`], so that the DVR, the
//! only part that can give, makes room for it and the whole stays within the budget.
//!
//! Nothing here decides what to evict; the engine does that with these numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// A snapshot of memory use: bytes of chunks, each its payload plus its parsed tables
/// ([`crate::Chunk::memory_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// The configured global budget.
    pub budget_bytes: u64,
    /// Every chunk still alive: in a ring, in a clip, or in a reader's hands.
    pub total_bytes: u64,
    /// The part of `total_bytes` held by at least one clip (each chunk counted once).
    pub clip_bytes: u64,
    /// Held outside chunks by live [`MemoryReservation`]s; not part of `total_bytes`,
    /// but within the budget with it.
    pub reserved_bytes: u64,
}

impl MemoryStats {
    /// `total_bytes - clip_bytes`: chunks only the DVR (or a transient reader) holds.
    pub fn dvr_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.clip_bytes)
    }
}

/// Shared counters. Signed so that a racing pin/unpin pair can never wrap.
#[derive(Debug, Default)]
pub(crate) struct Account {
    total: AtomicI64,
    clip: AtomicI64,
    reserved: AtomicI64,
}

impl Account {
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total.load(Ordering::SeqCst).max(0) as u64
    }

    pub(crate) fn clip_bytes(&self) -> u64 {
        self.clip.load(Ordering::SeqCst).max(0) as u64
    }

    pub(crate) fn reserved_bytes(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst).max(0) as u64
    }

    /// Everything the budget bounds: chunks and reservations.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.total_bytes().saturating_add(self.reserved_bytes())
    }

    /// What eviction cannot free: chunks held by clips, and reservations.
    pub(crate) fn pinned_bytes(&self) -> u64 {
        self.clip_bytes().saturating_add(self.reserved_bytes())
    }
}

/// Bytes held outside chunks, counted against the budget until dropped
/// ([`crate::Engine::reserve_memory`]).
#[derive(Debug)]
pub struct MemoryReservation {
    account: Arc<Account>,
    bytes: i64,
}

impl MemoryReservation {
    pub(crate) fn new(account: &Arc<Account>, bytes: u64) -> Self {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        account.reserved.fetch_add(bytes, Ordering::SeqCst);
        MemoryReservation {
            account: Arc::clone(account),
            bytes,
        }
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.account
            .reserved
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// One chunk's share of the account. Lives inside the chunk's media, so its
/// `Drop` runs exactly when the last reference to the payload goes.
#[derive(Debug)]
pub(crate) struct Ticket {
    account: Arc<Account>,
    bytes: i64,
    pins: AtomicU32,
}

impl Ticket {
    pub(crate) fn new(account: &Arc<Account>, bytes: u64) -> Self {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        account.total.fetch_add(bytes, Ordering::SeqCst);
        Ticket {
            account: Arc::clone(account),
            bytes,
            pins: AtomicU32::new(0),
        }
    }

    /// The bytes this share counts.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.max(0) as u64
    }

    /// One more clip view holds the chunk; the first one moves it to clip memory.
    pub(crate) fn pin(&self) {
        if self.pins.fetch_add(1, Ordering::SeqCst) == 0 {
            self.account.clip.fetch_add(self.bytes, Ordering::SeqCst);
        }
    }

    /// Undoes one [`Ticket::pin`].
    pub(crate) fn unpin(&self) {
        if self.pins.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.account.clip.fetch_sub(self.bytes, Ordering::SeqCst);
        }
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.pins.load(Ordering::SeqCst) > 0
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Views unpin before they drop their Arcs, so pins are 0 here.
        debug_assert_eq!(self.pins.load(Ordering::SeqCst), 0);
        self.account.total.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

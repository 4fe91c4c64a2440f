//! The process's memory as the OS sees it: its resident size, and giving the heap's
//! free pages back every few seconds (glibc only).
//!
//! glibc's malloc keeps memory freed inside its arenas resident until the top of an
//! arena is free, which churn rarely allows. A thousand slow clients that come and go
//! leave their connections' 20 MiB resident after they left, while the DVR they made
//! room for (their memory is counted in the budget, [`crate::http::serve::CONNECTION_BYTES`])
//! grows back: RSS ends at the budget plus the high-water mark of everything transient.
//! `malloc_trim` returns those free pages: measured on a running `scripts/load-test.sh`
//! server at a 128 MiB budget, RSS went 158 → 143 MiB. Segment payloads do not need
//! it: they live in mappings of their own ([`crate::http::payload`]).
//!
//! The one `unsafe` call in the project is here; elsewhere, and on other allocators,
//! this is a no-op.

use std::time::{Duration, Instant};

use tracing::debug;

/// How often free pages are returned.
pub const TRIM_EVERY: Duration = Duration::from_secs(2);

/// The process's resident set size, bytes (`VmRSS`); 0 where `/proc` has none.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Returns free heap pages to the OS; how long that took.
pub fn release_free_memory() -> Duration {
    let started = Instant::now();
    trim();
    let took = started.elapsed();
    debug!(micros = took.as_micros() as u64, "heap trimmed");
    took
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: `malloc_trim` takes no pointer and touches no memory of ours: it walks
    // glibc's own arenas under their locks, and malloc_trim(3) lists it as MT-Safe, so
    // any thread may call it at any time. Its result (whether memory was released)
    // carries no obligation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_size_is_read_on_linux() {
        let rss = resident_bytes();
        if cfg!(target_os = "linux") {
            assert!(rss > 1 << 20, "{rss}");
        }
    }

    /// What `malloc_trim` is here for: heap pages freed in the middle of an arena
    /// (neighbours still live, so `free` cannot shrink it) go back to the OS. 64 MiB
    /// of 1000-byte allocations, one in a hundred kept: without the trim RSS stays up
    /// (a no-op `trim` fails this); with it at least half of the freed bytes leave.
    /// Other tests of this binary allocate in parallel, hence half, not all.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trimming_returns_freed_heap_pages_to_the_os() {
        const SMALL: usize = 1000;
        const COUNT: usize = 64 << 10;
        let burst: Vec<Vec<u8>> = (0..COUNT).map(|i| vec![i as u8 | 1; SMALL]).collect();
        // Every hundredth stays where it is, and the last: no free run reaches the top.
        let kept: Vec<Vec<u8>> = (burst.into_iter().enumerate())
            .filter(|(i, _)| i % 100 == 0 || *i == COUNT - 1)
            .map(|(_, v)| v)
            .collect();
        let before = resident_bytes();
        release_free_memory();
        let after = resident_bytes();
        let freed = (COUNT - kept.len()) as u64 * SMALL as u64;
        assert!(
            before.saturating_sub(after) >= freed / 2,
            "RSS {before} -> {after} after freeing {freed} bytes"
        );
        drop(kept);
    }
}

//! What the push doors (RTMP, SRT) and their media paths share, written once: a
//! publish's fragments stored as chunks, and a door's counters as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dvrclip_engine::{Engine, StreamId};
use dvrclip_fmp4::fragment::Fragment;

/// Stores each of `fragments` as a chunk of `rendition`, each copied once into the one
/// buffer the engine keeps, and calls `stored` with its length; stops at the first
/// the engine refuses.
pub(crate) fn store_fragments(
    engine: &Engine,
    stream: StreamId,
    rendition: &str,
    fragments: Vec<Fragment>,
    mut stored: impl FnMut(u64),
) -> Result<(), dvrclip_engine::Error> {
    for f in fragments {
        let bytes = f.to_bytes();
        let len = bytes.len() as u64;
        engine.push_segment_bytes(stream, rendition, None, bytes)?;
        stored(len);
    }
    Ok(())
}

/// One counter or gauge of a door: name, type, help, value.
pub(crate) type MetricRow<'a> = (&'a str, &'a str, &'a str, &'a AtomicU64);

/// `rows` in Prometheus' text format.
pub(crate) fn render_metrics(rows: &[MetricRow<'_>]) -> String {
    let mut out = String::new();
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            v.load(Relaxed)
        );
    }
    out
}

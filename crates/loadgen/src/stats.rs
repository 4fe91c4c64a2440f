//! Latency samples and their percentiles, per kind of request, for one step of the
//! ramp. Every sample is kept (a step of 1,000 streams for 30 s is about 90,000
//! uploads: under a megabyte), so percentiles are exact, not estimated.

use std::time::Duration;

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A media segment PUT.
    Segment,
    /// A media playlist PUT.
    Playlist,
    /// `PUT /streaming/streams/{id}/clip_recording`.
    Clip,
    /// GET of a clip's MP4, whole.
    Download,
}

const KINDS: usize = 4;

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Segment => 0,
            Kind::Playlist => 1,
            Kind::Clip => 2,
            Kind::Download => 3,
        }
    }
}

/// Samples gathered since the last [`Stats::take`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    micros: [Vec<u32>; KINDS],
    errors: [u64; KINDS],
    /// Uploads started later than their segment was due by more than a segment's
    /// length: the client (not the server) fell behind.
    pub(crate) late: u64,
    /// Bytes of clip MP4s downloaded.
    pub(crate) download_bytes: u64,
}

impl Stats {
    /// A request that got an answer in `took`; `ok` when the status was the expected one.
    pub(crate) fn record(&mut self, kind: Kind, took: Duration, ok: bool) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        if let Some(v) = self.micros.get_mut(kind.index()) {
            v.push(us);
        }
        if !ok {
            self.error(kind);
        }
    }

    /// A request that failed or was refused.
    pub(crate) fn error(&mut self, kind: Kind) {
        if let Some(e) = self.errors.get_mut(kind.index()) {
            *e += 1;
        }
    }

    /// Everything gathered so far; starts afresh.
    pub(crate) fn take(&mut self) -> Stats {
        std::mem::take(self)
    }

    /// Requests of `kind` answered.
    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.micros.get(kind.index()).map_or(0, Vec::len)
    }

    /// Failures of `kind`.
    pub(crate) fn errors(&self, kind: Kind) -> u64 {
        self.errors.get(kind.index()).copied().unwrap_or(0)
    }

    /// The `p`-th percentile (0–100) of `kind`, milliseconds; `None` without samples.
    pub(crate) fn percentile_ms(&mut self, kind: Kind, p: f64) -> Option<f64> {
        let v = self.micros.get_mut(kind.index())?;
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        // Nearest rank.
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        let i = rank.clamp(1, v.len()) - 1;
        v.get(i).map(|&us| f64::from(us) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Stats::default();
        for ms in 1..=100u64 {
            s.record(Kind::Segment, Duration::from_millis(ms), ms != 7);
        }
        assert_eq!(s.percentile_ms(Kind::Segment, 50.0), Some(50.0));
        assert_eq!(s.percentile_ms(Kind::Segment, 99.0), Some(99.0));
        assert_eq!(s.percentile_ms(Kind::Clip, 99.0), None);
        assert_eq!(s.errors(Kind::Segment), 1);
        let taken = s.take();
        assert_eq!(taken.count(Kind::Segment), 100);
        assert_eq!(s.count(Kind::Segment), 0);
    }
}

//! Following one live media playlist (RFC 8216 §6.3): which segments of a reload are
//! new, when to reload, when the origin has stopped sending. Pure: no I/O and no
//! clock of its own, times are offsets the caller passes in, so the rules are tested
//! on a fake clock without sleeping.
//!
//! - §6.3.4: after a load that brought something new, wait the target duration before
//!   reloading, measured from when that load began; after one that did not, half of it.
//! - §6.3.5: a segment is known by its media sequence number. Each is taken once:
//!   [`Follow::fetched`] moves the next wanted number past it. A playlist whose newest
//!   number lies before what was already taken went backwards (an encoder or packager
//!   restarted its numbering): a reset, taken from the tail again as a new
//!   discontinuity.
//! - §6.3.3: a first load starts [`START_SEGMENTS`] from the live edge, not at the
//!   head of a long window; one reload never takes more than [`MAX_NEW_PER_RELOAD`].

use std::ops::Range;
use std::time::Duration;

use dvrclip_hls::ingest::MediaPlaylist;

/// Segments taken from the tail on a first load or after a reset (§6.3.3: a client
/// should start no less than three target durations from the end).
pub const START_SEGMENTS: usize = 3;
/// At most this many segments are taken from one reload: a window that jumped far
/// ahead is joined at its tail instead of being fetched whole.
pub const MAX_NEW_PER_RELOAD: usize = 16;
/// Target durations outside this range are clamped, seconds: a hostile `0` would
/// poll in a loop and a huge one never.
pub const TARGET_RANGE_SECS: (u64, u64) = (1, 30);
/// `EXT-X-TARGETDURATION` is required (§4.3.3.1); without it, this.
const DEFAULT_TARGET_SECS: u64 = 6;

/// What to do with one load of the playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indices of the playlist's segments to fetch, in order.
    pub fetch: Range<usize>,
    /// The media sequence went backwards: the next chunk opens a discontinuity.
    pub reset: bool,
    /// Segments between what was taken and the playlist's head that the origin no
    /// longer lists (or that were beyond [`MAX_NEW_PER_RELOAD`]): lost.
    pub skipped: u64,
    /// When to reload, from when this load began.
    pub reload_after: Duration,
}

/// One rendition's place in its playlist, kept across reloads and across a switch
/// of origin.
#[derive(Debug, Clone, Default)]
pub struct Follow {
    next_seq: Option<u64>,
    last_new: Option<Duration>,
    target: Option<Duration>,
}

/// The playlist's target duration, clamped to [`TARGET_RANGE_SECS`].
pub fn target_duration(p: &MediaPlaylist) -> Duration {
    let secs = p.target_duration_secs.unwrap_or(DEFAULT_TARGET_SECS);
    Duration::from_secs(secs.clamp(TARGET_RANGE_SECS.0, TARGET_RANGE_SECS.1))
}

impl Follow {
    /// Decides what to take from a load that began at `began`.
    pub fn on_playlist(&mut self, p: &MediaPlaylist, began: Duration) -> Plan {
        let target = target_duration(p);
        self.target = Some(target);
        let n = p.segments.len();
        let first_load = self.last_new.is_none();
        if first_load {
            // Stall detection counts from the first load.
            self.last_new = Some(began);
        }
        let (Some(first), Some(last)) = (p.segments.first(), p.segments.last()) else {
            return Plan {
                fetch: 0..0,
                reset: false,
                skipped: 0,
                reload_after: target / 2,
            };
        };
        let (first, last) = (first.media_sequence, last.media_sequence);
        let tail = n.saturating_sub(START_SEGMENTS);
        let (mut start, reset, mut skipped) = match self.next_seq {
            None => (tail, false, 0),
            Some(next) if last.saturating_add(1) < next => (tail, true, 0),
            Some(next) if next < first => (0, false, first - next),
            // `next - first` < n here, since next <= last + 1.
            Some(next) => (usize::try_from(next - first).unwrap_or(n).min(n), false, 0),
        };
        let bounded = n.saturating_sub(MAX_NEW_PER_RELOAD);
        if start < bounded {
            skipped += (bounded - start) as u64;
            start = bounded;
        }
        let new = start < n;
        if new {
            self.last_new = Some(began);
        }
        Plan {
            fetch: start..n,
            reset,
            skipped,
            reload_after: if new || first_load {
                target
            } else {
                target / 2
            },
        }
    }

    /// Records that the segment numbered `media_sequence` was taken (stored or
    /// refused by the engine: either way it is not fetched again).
    pub fn fetched(&mut self, media_sequence: u64) {
        self.next_seq = Some(media_sequence.saturating_add(1));
    }

    /// Whether nothing new has come for `target_durations` target durations by `now`.
    pub fn stalled(&self, now: Duration, target_durations: u32) -> bool {
        match (self.last_new, self.target) {
            (Some(t), Some(target)) => now.saturating_sub(t) > target * target_durations,
            _ => false,
        }
    }

    /// Restarts the stall count at `now` (a new origin gets its own chance).
    pub fn restart_stall_clock(&mut self, now: Duration) {
        if self.last_new.is_some() {
            self.last_new = Some(now);
        }
    }
}

/// A rendition's name from its playlist URI (`v0/index.m3u8` → `v0`): the last
/// directory when it is a safe name and not `master` (reserved for a clip's master
/// links), else `media_{index}`. Names already taken get the index form too.
pub fn rendition_name(uri: &str, index: usize, taken: &[String]) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let name = dir.rsplit('/').next().unwrap_or("");
    if dvrclip_engine::is_safe_name(name) && name != "master" && !taken.iter().any(|t| t == name) {
        name.to_owned()
    } else {
        format!("media_{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvrclip_hls::ingest::IngestSegment;

    fn playlist(target: u64, first: u64, n: u64) -> MediaPlaylist {
        MediaPlaylist {
            target_duration_secs: Some(target),
            media_sequence: first,
            discontinuity_sequence: 0,
            end_list: false,
            segments: (first..first + n)
                .map(|s| IngestSegment {
                    uri: format!("seg_{s}.m4s"),
                    file_name: format!("seg_{s}.m4s"),
                    duration_secs: target as f64,
                    program_date_time: None,
                    media_sequence: s,
                    discontinuity: false,
                    map_uri: Some("init.mp4".into()),
                })
                .collect(),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Takes every planned segment, as the runner does, and returns their numbers.
    fn take(f: &mut Follow, p: &MediaPlaylist, plan: &Plan) -> Vec<u64> {
        p.segments[plan.fetch.clone()]
            .iter()
            .map(|s| {
                f.fetched(s.media_sequence);
                s.media_sequence
            })
            .collect()
    }

    #[test]
    fn each_segment_once_and_reload_by_the_target_duration() {
        let mut f = Follow::default();
        // First load: three from the live edge (§6.3.3), reload after the target.
        let p = playlist(2, 10, 6);
        let plan = f.on_playlist(&p, secs(0));
        assert_eq!((plan.reload_after, plan.reset), (secs(2), false));
        assert_eq!(take(&mut f, &p, &plan), [13, 14, 15]);
        // Unchanged: "one-half the target duration" (§6.3.4), nothing taken.
        let plan = f.on_playlist(&p, secs(2));
        assert_eq!((plan.fetch.len(), plan.reload_after), (0, secs(1)));
        // The window slid by two: only those two.
        let p = playlist(2, 12, 6);
        let plan = f.on_playlist(&p, secs(3));
        assert_eq!(take(&mut f, &p, &plan), [16, 17]);
        assert_eq!((plan.reload_after, plan.skipped), (secs(2), 0));
    }

    #[test]
    fn a_sequence_going_backwards_is_a_reset() {
        let mut f = Follow::default();
        let p = playlist(2, 100, 6);
        let plan = f.on_playlist(&p, secs(0));
        take(&mut f, &p, &plan);
        let p = playlist(2, 0, 4);
        let plan = f.on_playlist(&p, secs(2));
        assert!(plan.reset);
        assert_eq!(take(&mut f, &p, &plan), [1, 2, 3]);
        let p = playlist(2, 1, 4);
        let plan = f.on_playlist(&p, secs(4));
        assert!(!plan.reset);
        assert_eq!(take(&mut f, &p, &plan), [4]);
    }

    #[test]
    fn lost_segments_and_far_jumps_are_bounded() {
        let mut f = Follow::default();
        let p = playlist(2, 0, 3);
        let plan = f.on_playlist(&p, secs(0));
        take(&mut f, &p, &plan);
        // Segments 3..5 left the window before this reload.
        let p = playlist(2, 5, 3);
        let plan = f.on_playlist(&p, secs(10));
        assert_eq!(plan.skipped, 2);
        assert_eq!(take(&mut f, &p, &plan), [5, 6, 7]);
        // A window far ahead: only its newest MAX_NEW_PER_RELOAD.
        let p = playlist(2, 8, 1000);
        let plan = f.on_playlist(&p, secs(12));
        assert_eq!(plan.fetch.len(), MAX_NEW_PER_RELOAD);
        assert_eq!(plan.skipped, (1000 - MAX_NEW_PER_RELOAD) as u64);
    }

    #[test]
    fn stalls_after_n_target_durations_without_news() {
        let mut f = Follow::default();
        let p = playlist(2, 0, 3);
        let plan = f.on_playlist(&p, secs(0));
        take(&mut f, &p, &plan);
        for t in [1, 2, 3, 4, 5, 6] {
            f.on_playlist(&p, secs(t));
        }
        assert!(!f.stalled(secs(6), 3));
        assert!(f.stalled(secs(7), 3));
        f.restart_stall_clock(secs(7));
        assert!(!f.stalled(secs(8), 3));
    }

    #[test]
    fn hostile_targets_are_clamped_and_empty_playlists_wait() {
        let mut f = Follow::default();
        let plan = f.on_playlist(&playlist(0, 0, 0), secs(0));
        assert_eq!(
            (plan.fetch, plan.reload_after),
            (0..0, Duration::from_millis(500))
        );
        let plan = f.on_playlist(&playlist(u64::MAX, u64::MAX - 2, 2), secs(1));
        assert_eq!(plan.reload_after, secs(30));
        assert_eq!(plan.fetch, 0..2);
    }

    #[test]
    fn names_from_directories_never_master() {
        let mut taken = Vec::new();
        for (i, uri) in [
            "v0/index.m3u8",
            "https://cdn/x/v1/index.m3u8?t=1",
            "index_2.m3u8",
            "master/a.m3u8",
            "../v0/b.m3u8",
        ]
        .iter()
        .enumerate()
        {
            let name = rendition_name(uri, i, &taken);
            taken.push(name);
        }
        assert_eq!(taken, ["v0", "v1", "media_2", "media_3", "media_4"]);
    }
}

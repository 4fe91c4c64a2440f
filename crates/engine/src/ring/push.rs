//! The steps of [`Ring::push`](super::Ring::push) other than placement, each tested on
//! its own: [`check`] the segment against the ring's init, [`RingState::is_retry`],
//! [`RingState::place_input`] for [`place`](super::place::place), [`admit`] the placed
//! chunk, then [`RingState::commit`], the only step that writes. The order is the
//! order of the refusals a caller sees.
//!
//! Everything before `commit` only reads the ring and may refuse; `commit` refuses only
//! a state the ring's own invariants rule out ([`Error::Internal`]), before it changes
//! anything. So a refused push leaves the ring as it was.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_fmp4::{InitSegment, MediaSegment};

use super::place::{Anchor, AnchorSource, Current, PlaceInput, Placement, SharedAnchor};
use super::{Disc, PushInput, PushOutcome, Pushed, RingState, TRUST_WINDOW_MICROS};
use crate::chunk::{Chunk, ChunkMedia, memory_cost};
use crate::memory::Ticket;
use crate::time::{MICROS_PER_SEC, micros_from_ticks};
use crate::{Error, Result, StreamId, WallTime};

/// Longest chunk accepted.
const MAX_CHUNK_MICROS: i64 = 3600 * MICROS_PER_SEC;

/// 9999-12-31T23:59:59Z: wall times stay far from `i64` saturation, so `+1 µs` is
/// always a later time.
const MAX_WALL: WallTime = WallTime::from_unix_secs(253_402_300_799);

/// A segment that passed [`check`]: its media timing on the reference track.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    pub(super) init: Arc<InitSegment>,
    /// The first video track, else the first track of `init`.
    pub(super) ref_track: u32,
    pub(super) timescale: u32,
    pub(super) start_ticks: u64,
    /// Past the last sample; [`admit`] refuses it unless after `start_ticks`.
    pub(super) end_ticks: u64,
    pub(super) keyframe: bool,
    /// Wall time of `start_ticks` by the segment's `prft`, unless a day from arrival.
    pub(super) prft: Option<WallTime>,
}

/// Validates `seg` against the ring's init (present, knows every track, a sample on
/// the reference track) and measures it. Reads nothing but `init`.
pub(super) fn check(
    st: &RingState,
    seg: &MediaSegment,
    arrival: WallTime,
    stream: StreamId,
    rendition: &str,
) -> Result<Candidate> {
    let Some(init) = st.init.clone() else {
        return Err(Error::NoInit {
            stream,
            rendition: rendition.to_owned(),
        });
    };
    if let Some(t) = seg.tracks.iter().find(|t| init.track(t.track_id).is_none()) {
        return Err(Error::TrackMismatch {
            stream,
            rendition: rendition.to_owned(),
            track_id: t.track_id,
        });
    }
    let Some(t) = init.video_track().or_else(|| init.tracks.first()) else {
        return Err(Error::Internal {
            context: format!(
                "ring::push::check: stream {stream} rendition {rendition:?}: the current \
                 init has no track, which push_init refuses"
            ),
        });
    };
    let (ref_track, timescale) = (t.track_id, t.timescale);
    let samples = seg.track(ref_track).map_or(&[][..], |t| &t.samples[..]);
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err(Error::EmptySegment {
            stream,
            rendition: rendition.to_owned(),
        });
    };
    let start_ticks = first.decode_ticks;
    // Saturating: timestamps are untrusted and release builds check overflow.
    let end_ticks = last.decode_ticks.saturating_add(u64::from(last.duration));
    let keyframe = seg.starts_with_keyframe(init.video_track().map(|t| t.track_id));
    // A producer time a day away from arrival is a broken encoder clock, not news.
    let prft = producer_utc(seg, &init, start_ticks, timescale)
        .filter(|u| u.micros_since(arrival).unsigned_abs() <= TRUST_WINDOW_MICROS as u64);
    Ok(Candidate {
        init,
        ref_track,
        timescale,
        start_ticks,
        end_ticks,
        keyframe,
        prft,
    })
}

/// Refuses a chunk no clip could hold: no length (it lies in no clip's range), longer
/// than an hour, or placed outside years 1970-9999 (wall times stay far from `i64`
/// saturation). After [`RingState::is_retry`], so a retry is a no-op whatever it says.
pub(super) fn admit(
    c: &Candidate,
    placed: &Placement,
    stream: StreamId,
    rendition: &str,
) -> Result<()> {
    let duration_micros = micros_from_ticks(c.end_ticks.saturating_sub(c.start_ticks), c.timescale);
    let start_utc = placed.start_utc;
    let reason = if duration_micros > MAX_CHUNK_MICROS {
        "segment longer than 1 h"
    } else if duration_micros == 0 {
        "segment has no duration"
    } else if start_utc < WallTime::EPOCH || start_utc.add_micros(MAX_CHUNK_MICROS) > MAX_WALL {
        "wall-clock time outside 1970..9999"
    } else {
        return Ok(());
    };
    Err(Error::BadTiming {
        stream,
        rendition: rendition.to_owned(),
        reason,
    })
}

impl RingState {
    /// Whether a segment is a retry of a chunk still held in the current
    /// discontinuity: the same start and the same bytes. The same start with other
    /// bytes is an encoder restart that kept its init (ffmpeg run again with the same
    /// settings). O(log n).
    pub(super) fn is_retry(&self, start_ticks: u64, bytes: &Bytes) -> bool {
        match (&self.cur, self.init_changed) {
            (Some(cur), false) => self
                .find_ticks_in_disc(cur.seq, start_ticks)
                .is_some_and(|i| self.chunks[i].bytes() == bytes),
            _ => false,
        }
    }

    /// What [`place`](super::place::place) needs to know of this ring.
    pub(super) fn place_input(
        &self,
        c: &Candidate,
        arrival: WallTime,
        shared: Option<SharedAnchor>,
    ) -> PlaceInput {
        let cur = self.cur.as_ref().filter(|_| !self.init_changed).map(|d| {
            let newest = self.chunks.back().filter(|c| c.discontinuity == d.seq);
            Current {
                anchor: d.anchor,
                end_ticks: d.end_ticks,
                last_start_ticks: newest.map(|c| c.start_ticks()),
            }
        });
        PlaceInput {
            start_ticks: c.start_ticks,
            timescale: c.timescale,
            prft: c.prft,
            arrival,
            cur,
            newest: self
                .chunks
                .back()
                .map(|c| (c.start_utc(), c.end_utc()))
                .or(self.newest),
            shared,
        }
    }

    /// Stores the chunk where `placed` says: opens its discontinuity or advances the
    /// current one, then prunes the window. Amortized O(1).
    pub(super) fn commit(
        &mut self,
        c: Candidate,
        placed: &Placement,
        inp: PushInput<'_>,
        rendition: &str,
    ) -> Result<Pushed> {
        let anchor = Anchor {
            ticks: c.start_ticks,
            utc: placed.start_utc,
        };
        let cur = if placed.new_discontinuity {
            let disc = Disc {
                seq: self.next_disc,
                init: Arc::clone(&c.init),
                ref_track: c.ref_track,
                timescale: c.timescale,
                end_ticks: c.start_ticks,
                anchor,
            };
            self.next_disc += 1;
            self.init_changed = false;
            self.cur.insert(disc)
        } else {
            let Some(cur) = self.cur.as_mut() else {
                return Err(Error::Internal {
                    context: format!(
                        "ring::push::commit: stream {} rendition {rendition:?}: chunk at tick \
                         {} placed in the current discontinuity, but none is open",
                        inp.stream, c.start_ticks
                    ),
                });
            };
            cur
        };
        debug_assert_eq!((cur.ref_track, cur.timescale), (c.ref_track, c.timescale));
        cur.end_ticks = c.end_ticks;
        if placed.source != AnchorSource::MediaTime {
            cur.anchor = anchor;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = inp.segment.bytes.len() as u64;
        let cost = memory_cost(&inp.segment, &inp.tables);
        let media = ChunkMedia {
            seq,
            name: inp.name.map(Arc::from),
            init: Arc::clone(&cur.init),
            segment: inp.segment,
            tables: inp.tables,
            start_ticks: c.start_ticks,
            duration_ticks: c.end_ticks.saturating_sub(c.start_ticks),
            timescale: c.timescale,
            keyframe: c.keyframe,
            arrival: inp.arrival,
            ticket: Ticket::new(inp.account, cost),
        };
        let chunk = Arc::new(Chunk {
            media: Arc::new(media),
            start_utc: placed.start_utc,
            discontinuity: cur.seq,
        });
        self.newest = Some((chunk.start_utc(), chunk.end_utc()));
        self.chunks.push_back(chunk);
        self.sources.push_back(placed.source);
        self.bytes += bytes;
        let evicted = self.prune_window(inp.window_micros);
        let seal = self.seal(placed.new_discontinuity);
        self.check_invariants();
        Ok(Pushed {
            outcome: PushOutcome::Stored {
                seq,
                new_discontinuity: placed.new_discontinuity,
                start_utc: placed.start_utc,
            },
            evicted,
            seal,
        })
    }
}

/// Wall time of `start_ticks` from the segment's `prft`, if it has a usable one.
fn producer_utc(
    seg: &MediaSegment,
    init: &InitSegment,
    start_ticks: u64,
    timescale: u32,
) -> Option<WallTime> {
    let p = seg.producer_time?;
    let utc = WallTime::from_unix_micros(p.unix_micros()?);
    let p_scale = init.track(p.track_id).map_or(timescale, |t| t.timescale);
    // Tracks of one encoder share a time origin, so µs convert across timescales.
    let p_micros = micros_from_ticks(p.media_ticks, p_scale);
    let s_micros = micros_from_ticks(start_ticks, timescale);
    Some(utc.add_micros(s_micros - p_micros))
}

#[cfg(test)]
mod tests {
    use dvrclip_fmp4::ProducerTime;

    use super::*;
    use crate::memory::Account;
    use crate::testutil::{FRAME, init, input, segment};

    const T0: WallTime = WallTime::from_unix_secs(1_795_564_800);
    const SEC: u64 = 30 * FRAME;

    /// The state right after `push_init`.
    fn fresh() -> RingState {
        RingState {
            init: Some(Arc::new(init())),
            init_changed: true,
            ..RingState::default()
        }
    }

    fn check_ok(st: &RingState, seg: &MediaSegment) -> Candidate {
        match check(st, seg, T0, StreamId(1), "r") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn placed(start_utc: WallTime, source: AnchorSource, new: bool) -> Placement {
        Placement {
            start_utc,
            source,
            new_discontinuity: new,
            shared: None,
        }
    }

    /// Commits a 1 s chunk from `start_ticks` placed as told.
    fn commit(
        st: &mut RingState,
        account: &Arc<Account>,
        start_ticks: u64,
        p: Placement,
    ) -> Pushed {
        let seg = segment(start_ticks, 30, true);
        let c = check_ok(st, &seg);
        match st.commit(c, &p, input(seg, T0, account), "r") {
            Ok(pushed) => pushed,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn check_refuses_in_order() {
        let seg = segment(0, 30, true);
        let r = check(&RingState::default(), &seg, T0, StreamId(1), "r");
        assert!(matches!(r, Err(Error::NoInit { .. })), "{r:?}");

        let mut two = seg.clone();
        let mut other = two.tracks[0].clone();
        other.track_id = 2;
        two.tracks.push(other);
        two.tracks[0].samples.clear();
        let r = check(&fresh(), &two, T0, StreamId(1), "r");
        assert!(
            matches!(r, Err(Error::TrackMismatch { track_id: 2, .. })),
            "{r:?}"
        );

        let mut empty = seg.clone();
        empty.tracks[0].samples.clear();
        let r = check(&fresh(), &empty, T0, StreamId(1), "r");
        assert!(matches!(r, Err(Error::EmptySegment { .. })), "{r:?}");
    }

    /// `push_init` refuses an init without tracks, so finding one is our bug: a 500
    /// that says where, never a 4xx blaming the upload.
    #[test]
    fn an_init_without_tracks_is_internal() {
        let mut init = init();
        init.tracks.clear();
        let st = RingState {
            init: Some(Arc::new(init)),
            ..RingState::default()
        };
        let mut seg = segment(0, 30, true);
        seg.tracks.clear();
        match check(&st, &seg, T0, StreamId(1), "r") {
            Err(Error::Internal { context }) => assert!(context.contains("check"), "{context}"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn check_measures_the_reference_track() {
        let c = check_ok(&fresh(), &segment(5 * SEC, 15, false));
        assert_eq!(
            (
                c.ref_track,
                c.timescale,
                c.start_ticks,
                c.end_ticks,
                c.keyframe,
                c.prft
            ),
            (1, 90_000, 5 * SEC, 5 * SEC + 15 * FRAME, false, None)
        );
        assert!(check_ok(&fresh(), &segment(0, 1, true)).keyframe);
    }

    /// ISO/IEC 14496-12 §8.16.5: "`ntp_timestamp` ... corresponds to `media_time`"; the
    /// chunk's own start is shifted from it by media time.
    #[test]
    fn prft_maps_the_start_unless_a_day_from_arrival() {
        let ntp = |t: WallTime| ((t.unix_secs() as u64) + ProducerTime::NTP_UNIX_OFFSET_SECS) << 32;
        let mut seg = segment(10 * SEC, 30, true);
        seg.producer_time = Some(ProducerTime {
            track_id: 1,
            ntp_timestamp: ntp(T0),
            media_ticks: 8 * SEC,
        });
        assert_eq!(
            check_ok(&fresh(), &seg).prft,
            Some(T0.add_micros(2_000_000))
        );
        for days in [-2, 2] {
            let far = T0.add_micros(days * 86_400_000_000);
            seg.producer_time = Some(ProducerTime {
                track_id: 1,
                ntp_timestamp: ntp(far),
                media_ticks: 10 * SEC,
            });
            assert_eq!(check_ok(&fresh(), &seg).prft, None, "{days} days");
        }
    }

    #[test]
    fn a_retry_is_the_same_start_and_bytes_in_the_current_discontinuity() {
        let account = Arc::new(Account::default());
        let mut st = fresh();
        let seg = segment(0, 30, true);
        assert!(!st.is_retry(0, &seg.bytes), "nothing held");
        commit(
            &mut st,
            &account,
            0,
            placed(T0, AnchorSource::Arrival, true),
        );
        assert!(st.is_retry(0, &seg.bytes));
        // Same start, other bytes: an encoder restart that kept its init.
        assert!(!st.is_retry(0, &segment(0, 31, true).bytes));
        assert!(!st.is_retry(FRAME, &seg.bytes));
        // After a new init, the next chunk opens a discontinuity whatever it holds.
        st.init_changed = true;
        assert!(!st.is_retry(0, &seg.bytes));
    }

    #[test]
    fn admit_refuses_what_no_clip_could_hold() {
        let c = check_ok(&fresh(), &segment(0, 30, true));
        let at = |utc| placed(utc, AnchorSource::Arrival, true);
        let reason = |c: &Candidate, p: &Placement| match admit(c, p, StreamId(1), "r") {
            Ok(()) => "",
            Err(Error::BadTiming { reason, .. }) => reason,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(reason(&c, &at(T0)), "");
        let none = Candidate {
            end_ticks: c.start_ticks,
            ..c.clone()
        };
        assert_eq!(reason(&none, &at(T0)), "segment has no duration");
        let hour = Candidate {
            end_ticks: 3600 * 90_000,
            ..c.clone()
        };
        assert_eq!(reason(&hour, &at(T0)), "");
        let long = Candidate {
            end_ticks: 3600 * 90_000 + 90,
            ..c.clone()
        };
        assert_eq!(reason(&long, &at(T0)), "segment longer than 1 h");
        for utc in [
            WallTime::EPOCH.add_micros(-1),
            MAX_WALL.add_micros(-3_599_999_999),
        ] {
            assert_eq!(reason(&c, &at(utc)), "wall-clock time outside 1970..9999");
        }
    }

    #[test]
    fn commit_opens_and_continues_discontinuities() {
        let account = Arc::new(Account::default());
        let mut st = fresh();
        let p = commit(
            &mut st,
            &account,
            0,
            placed(T0, AnchorSource::Arrival, true),
        );
        assert_eq!(
            p.outcome,
            PushOutcome::Stored {
                seq: 0,
                new_discontinuity: true,
                start_utc: T0
            }
        );
        assert!(!st.init_changed);
        let anchor = |st: &RingState| st.cur.as_ref().map(|d| (d.seq, d.anchor, d.end_ticks));
        let a0 = Anchor { ticks: 0, utc: T0 };
        assert_eq!(anchor(&st), Some((0, a0, SEC)));

        // Media time keeps the anchor it advanced; any other source moves it.
        let t1 = T0.add_micros(1_000_000);
        commit(
            &mut st,
            &account,
            SEC,
            placed(t1, AnchorSource::MediaTime, false),
        );
        assert_eq!(anchor(&st), Some((0, a0, 2 * SEC)));
        let t2 = T0.add_micros(2_500_000);
        commit(
            &mut st,
            &account,
            2 * SEC,
            placed(t2, AnchorSource::ProducerTime, false),
        );
        let a2 = Anchor {
            ticks: 2 * SEC,
            utc: t2,
        };
        assert_eq!(anchor(&st), Some((0, a2, 3 * SEC)));

        let t3 = T0.add_micros(9_000_000);
        commit(
            &mut st,
            &account,
            0,
            placed(t3, AnchorSource::Arrival, true),
        );
        assert_eq!(anchor(&st), Some((1, Anchor { ticks: 0, utc: t3 }, SEC)));
        let discs: Vec<_> = st
            .chunks
            .iter()
            .map(|c| (c.seq(), c.discontinuity))
            .collect();
        assert_eq!(discs, [(0, 0), (1, 0), (2, 0), (3, 1)]);
        assert_eq!(st.sources.len(), 4);
        assert_eq!(st.bytes, 4 * 300);
        assert_eq!(st.newest, Some((t3, t3.add_micros(1_000_000))));
    }

    #[test]
    fn commit_prunes_the_window() {
        let account = Arc::new(Account::default());
        let mut st = fresh();
        commit(
            &mut st,
            &account,
            0,
            placed(T0, AnchorSource::Arrival, true),
        );
        let seg = segment(SEC, 30, true);
        let c = check_ok(&st, &seg);
        let p = placed(T0.add_micros(1_000_000), AnchorSource::MediaTime, false);
        let inp = PushInput {
            window_micros: 1_000_000,
            ..input(seg, T0, &account)
        };
        let evicted = match st.commit(c, &p, inp, "r") {
            Ok(pushed) => pushed.evicted,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(evicted.iter().map(|c| c.seq()).collect::<Vec<_>>(), [0]);
        assert_eq!((st.chunks.len(), st.bytes), (1, 300));
    }

    /// `place` continues only a discontinuity that exists; told otherwise, `commit`
    /// reports our bug (a 500) and changes nothing.
    #[test]
    fn continuing_without_a_discontinuity_is_internal_and_changes_nothing() {
        let account = Arc::new(Account::default());
        let mut st = fresh();
        let seg = segment(0, 30, true);
        let c = check_ok(&st, &seg);
        let p = placed(T0, AnchorSource::MediaTime, false);
        match st.commit(c, &p, input(seg, T0, &account), "r") {
            Err(Error::Internal { context }) => assert!(context.contains("commit"), "{context}"),
            r => panic!("{:?}", r.map(|p| p.outcome)),
        }
        assert_eq!((st.next_seq, st.next_disc, st.chunks.len()), (0, 0, 0));
        assert_eq!(account.total_bytes(), 0);
    }
}

//! Where a chunk lies on the wall clock: the placement rules of a push (design/architecture.md "Ingest")
//! as one pure function, [`place`], of what the ring knows.
//!
//! Owns the clock mapping types ([`AnchorSource`], [`SharedAnchor`]) and the rules.
//! Must not touch a ring or a lock: the caller copies in the current discontinuity,
//! the newest chunk's times and the stream's shared anchor, and stores what comes back.
//!
//! The chunk's raw time, first rule that applies:
//! 1. its own `prft` (ISO/IEC 14496-12 §8.16.5), already dropped by the caller when a
//!    day away from arrival;
//! 2. media time continuing the current discontinuity (within
//!    [`JUMP_TOLERANCE_MICROS`] of its end, after its newest start): the anchor
//!    advanced by media time;
//! 3. anything else opens a discontinuity. A forward jump of at most
//!    [`EXTRAPOLATE_MAX_MICROS`] with the same init (a lost upload) still advances the
//!    anchor;
//! 4. else the stream's shared anchor when it maps within
//!    [`SHARED_ANCHOR_MAX_MICROS`] of arrival (one timeline for a ladder), else the
//!    arrival itself, which becomes the shared anchor.
//!
//! Floors, so `start_utc` strictly increases and discontinuities never overlap: a
//! continuing chunk starts after the newest start; a new discontinuity starts at or
//! after the newest end. The newest times survive eviction of that chunk.

use crate::WallTime;
use crate::time::{MICROS_PER_SEC, micros_from_ticks, micros_from_ticks_signed};

/// Media time may wander this far from the previous chunk's end before it counts as
/// a jump (a new discontinuity): encoders round tfdt, and audio frames straddle.
pub(super) const JUMP_TOLERANCE_MICROS: i64 = 100_000;

/// A forward jump up to this long with the same init keeps the old clock mapping
/// (a lost upload, not a restart).
pub(super) const EXTRAPOLATE_MAX_MICROS: i64 = 300 * MICROS_PER_SEC;

/// How far another rendition's anchor may sit from this arrival and still be shared,
/// so renditions of one encoder land on one timeline.
pub(super) const SHARED_ANCHOR_MAX_MICROS: i64 = 3 * MICROS_PER_SEC;

/// Where a chunk's `start_utc` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorSource {
    /// The chunk's own `prft` box (ISO/IEC 14496-12 §8.16.5).
    ProducerTime,
    /// The playlist's `EXT-X-PROGRAM-DATE-TIME` for this segment.
    PlaylistDate,
    /// An earlier anchor of the same discontinuity advanced by media time.
    MediaTime,
    /// Arrival time of the discontinuity's first chunk. An encoder uploads a chunk
    /// once it is complete, so wall time runs about one chunk ahead of production:
    /// a clip of "now" starts with the newest chunk held.
    Arrival,
}

/// A clock mapping: `utc` is the wall time of media time `ticks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Anchor {
    pub(super) ticks: u64,
    pub(super) utc: WallTime,
}

/// A stream-wide mapping from media time (µs) to wall time, shared between renditions
/// anchored by arrival so one encoder's ladder lands on one timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedAnchor {
    pub(crate) media_micros: i64,
    pub(crate) utc: WallTime,
}

/// The current discontinuity as [`place`] needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Current {
    pub(super) anchor: Anchor,
    /// Media time just past its newest chunk.
    pub(super) end_ticks: u64,
    /// Start of its newest chunk, while the ring still holds it.
    pub(super) last_start_ticks: Option<u64>,
}

/// What [`place`] decides from. Ticks are the reference track's, at `timescale`.
#[derive(Clone, Copy, Debug)]
pub(super) struct PlaceInput {
    pub(super) start_ticks: u64,
    pub(super) timescale: u32,
    /// The chunk's trusted `prft` time.
    pub(super) prft: Option<WallTime>,
    pub(super) arrival: WallTime,
    /// `None` when no discontinuity is open or a new init came since.
    pub(super) cur: Option<Current>,
    /// Start and end of the newest chunk stored, even if evicted since.
    pub(super) newest: Option<(WallTime, WallTime)>,
    pub(super) shared: Option<SharedAnchor>,
}

/// What [`place`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    pub(super) start_utc: WallTime,
    pub(super) source: AnchorSource,
    pub(super) new_discontinuity: bool,
    /// The stream's new shared anchor, when this chunk anchored on its arrival.
    pub(super) shared: Option<SharedAnchor>,
}

/// Applies the rules of the module doc. O(1).
pub(super) fn place(p: &PlaceInput) -> Placement {
    let (start, timescale) = (p.start_ticks, p.timescale);
    let tol_ticks = (JUMP_TOLERANCE_MICROS as u64 * u64::from(timescale)) / MICROS_PER_SEC as u64;
    let continuing = p.cur.filter(|c| {
        start.saturating_add(tol_ticks) >= c.end_ticks
            && start <= c.end_ticks.saturating_add(tol_ticks)
            && c.last_start_ticks.is_none_or(|t| start > t)
    });
    if let Some(cur) = continuing {
        let (utc, source) = match p.prft {
            Some(u) => (u, AnchorSource::ProducerTime),
            None => (
                at_ticks(cur.anchor, start, timescale),
                AnchorSource::MediaTime,
            ),
        };
        // Strictly after the previous start keeps wall-time search a binary search.
        let floor = p.newest.map_or(utc, |(s, _)| s.add_micros(1));
        return Placement {
            start_utc: utc.max(floor),
            source,
            new_discontinuity: false,
            shared: None,
        };
    }
    let extrapolated = p.cur.filter(|c| start > c.end_ticks).and_then(|c| {
        let jump = micros_from_ticks(start - c.end_ticks, timescale);
        (jump <= EXTRAPOLATE_MAX_MICROS).then(|| at_ticks(c.anchor, start, timescale))
    });
    let (utc, source, shared) = match (p.prft, extrapolated) {
        (Some(u), _) => (u, AnchorSource::ProducerTime, None),
        (None, Some(u)) => (u, AnchorSource::MediaTime, None),
        (None, None) => {
            let (u, shared) = shared_or_arrival(p.shared, start, timescale, p.arrival);
            (u, AnchorSource::Arrival, shared)
        }
    };
    let floor = p.newest.map(|(s, e)| e.max(s.add_micros(1)));
    Placement {
        start_utc: floor.map_or(utc, |f| utc.max(f)),
        source,
        new_discontinuity: true,
        shared,
    }
}

/// Wall time of `ticks` by `anchor`.
pub(super) fn at_ticks(anchor: Anchor, ticks: u64, timescale: u32) -> WallTime {
    let d = i128::from(ticks) - i128::from(anchor.ticks);
    anchor
        .utc
        .add_micros(micros_from_ticks_signed(d, timescale))
}

/// The shared anchor's time for `ticks` if it lies near `arrival`, else `arrival` and
/// the anchor that replaces the shared one.
fn shared_or_arrival(
    shared: Option<SharedAnchor>,
    ticks: u64,
    timescale: u32,
    arrival: WallTime,
) -> (WallTime, Option<SharedAnchor>) {
    let media_micros = micros_from_ticks(ticks, timescale);
    if let Some(a) = shared {
        let candidate = a.utc.add_micros(media_micros - a.media_micros);
        if candidate.micros_since(arrival).unsigned_abs() <= SHARED_ANCHOR_MAX_MICROS as u64 {
            return (candidate, None);
        }
    }
    let anchor = SharedAnchor {
        media_micros,
        utc: arrival,
    };
    (arrival, Some(anchor))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HZ: u32 = 90_000;
    const SEC: u64 = HZ as u64;

    fn t(secs: i64) -> WallTime {
        WallTime::from_unix_secs(1_000_000 + secs)
    }

    /// A discontinuity anchored at tick 0 = `t(0)`, its newest chunk `[9 s, 10 s)`.
    fn cur() -> Option<Current> {
        Some(Current {
            anchor: Anchor {
                ticks: 0,
                utc: t(0),
            },
            end_ticks: 10 * SEC,
            last_start_ticks: Some(9 * SEC),
        })
    }

    /// The chunk after [`cur`], arriving on time.
    fn next() -> PlaceInput {
        PlaceInput {
            start_ticks: 10 * SEC,
            timescale: HZ,
            prft: None,
            arrival: t(11),
            cur: cur(),
            newest: Some((t(9), t(10))),
            shared: None,
        }
    }

    fn at(start_secs: u64) -> PlaceInput {
        PlaceInput {
            start_ticks: start_secs * SEC,
            ..next()
        }
    }

    #[test]
    fn continuation_advances_the_anchor_by_media_time() {
        let p = place(&next());
        assert_eq!(
            p,
            Placement {
                start_utc: t(10),
                source: AnchorSource::MediaTime,
                new_discontinuity: false,
                shared: None
            }
        );
        // Within the tolerance on either side of the end it still continues.
        let tol = JUMP_TOLERANCE_MICROS as u64 * SEC / 1_000_000;
        for start in [10 * SEC - tol, 10 * SEC + tol] {
            let p = place(&PlaceInput {
                start_ticks: start,
                ..next()
            });
            assert!(!p.new_discontinuity, "{start}");
        }
    }

    #[test]
    fn prft_wins_continuing_or_not() {
        let prft = Some(t(50));
        for inp in [next(), at(1000), at(1)] {
            let p = place(&PlaceInput { prft, ..inp });
            assert_eq!((p.start_utc, p.source), (t(50), AnchorSource::ProducerTime));
            assert_eq!(p.shared, None);
        }
        assert!(!place(&PlaceInput { prft, ..next() }).new_discontinuity);
    }

    /// "a forward jump of up to 5 min with the same init keeps the clock mapping"
    #[test]
    fn a_lost_upload_extrapolates_in_a_new_discontinuity() {
        let p = place(&at(10 + 300));
        assert_eq!(
            (p.start_utc, p.source, p.new_discontinuity),
            (t(310), AnchorSource::MediaTime, true)
        );
        let p = place(&PlaceInput {
            start_ticks: 310 * SEC + 1,
            ..next()
        });
        assert_eq!(p.source, AnchorSource::Arrival, "past 5 min");
    }

    #[test]
    fn backwards_or_far_jumps_anchor_on_arrival_and_share_it() {
        for inp in [
            at(0),
            at(5),
            at(400),
            PlaceInput {
                cur: None,
                ..next()
            },
        ] {
            let p = place(&inp);
            assert_eq!(
                (p.start_utc, p.source, p.new_discontinuity),
                (t(11), AnchorSource::Arrival, true)
            );
            let media_micros = micros_from_ticks(inp.start_ticks, HZ);
            assert_eq!(
                p.shared,
                Some(SharedAnchor {
                    media_micros,
                    utc: t(11)
                })
            );
        }
    }

    #[test]
    fn a_retry_of_an_older_start_opens_a_discontinuity() {
        // Ends where the discontinuity ends, but not after its newest start.
        let p = place(&PlaceInput {
            cur: cur().map(|c| Current {
                last_start_ticks: Some(10 * SEC),
                ..c
            }),
            ..next()
        });
        assert!(p.new_discontinuity);
    }

    #[test]
    fn a_shared_anchor_near_arrival_is_used_and_kept() {
        let shared = SharedAnchor {
            media_micros: 0,
            utc: t(20),
        };
        // Media 0 restarts the encoder: 0 s maps to t(20), 2 s from arrival t(22).
        let inp = PlaceInput {
            start_ticks: 0,
            arrival: t(22),
            shared: Some(shared),
            ..next()
        };
        let p = place(&inp);
        assert_eq!(
            (p.start_utc, p.source, p.shared),
            (t(20), AnchorSource::Arrival, None)
        );
        // 4 s away: arrival wins and replaces it.
        let p = place(&PlaceInput {
            arrival: t(24),
            ..inp
        });
        assert_eq!(p.start_utc, t(24));
        assert_eq!(p.shared.map(|a| a.utc), Some(t(24)));
    }

    #[test]
    fn floors_keep_starts_rising_and_discontinuities_apart() {
        // A continuing chunk whose media time maps before the newest start.
        let p = place(&PlaceInput {
            newest: Some((t(30), t(31))),
            ..next()
        });
        assert_eq!(p.start_utc, t(30).add_micros(1));
        // A new discontinuity starts at the newest end, even one evicted since
        // (`cur` is gone but `newest` is kept).
        let p = place(&PlaceInput {
            arrival: t(5),
            cur: None,
            ..next()
        });
        assert_eq!((p.start_utc, p.new_discontinuity), (t(10), true));
        // A zero-length newest chunk still pushes it strictly after its start.
        let p = place(&PlaceInput {
            arrival: t(5),
            cur: None,
            newest: Some((t(10), t(10))),
            ..next()
        });
        assert_eq!(p.start_utc, t(10).add_micros(1));
    }

    fn any_input() -> impl Strategy<Value = PlaceInput> {
        let ticks = prop_oneof![0u64..(20 * SEC), any::<u64>()];
        let utc = (-(1i64 << 40)..(1i64 << 40)).prop_map(|s| t(0).add_micros(s));
        let cur = prop::option::of((
            ticks.clone(),
            utc.clone(),
            ticks.clone(),
            prop::option::of(ticks.clone()),
        ))
        .prop_map(|c| {
            c.map(|(at, utc, end_ticks, last_start_ticks)| Current {
                anchor: Anchor { ticks: at, utc },
                end_ticks,
                last_start_ticks,
            })
        });
        let shared = prop::option::of((0i64..(1 << 40), utc.clone()))
            .prop_map(|s| s.map(|(media_micros, utc)| SharedAnchor { media_micros, utc }));
        (
            ticks,
            prop_oneof![Just(HZ), 1u32..200_000, Just(u32::MAX)],
            prop::option::of(utc.clone()),
            utc.clone(),
            cur,
            prop::option::of((utc, 0i64..(1 << 32))),
            shared,
        )
            .prop_map(
                |(start_ticks, timescale, prft, arrival, cur, newest, shared)| PlaceInput {
                    start_ticks,
                    timescale,
                    prft,
                    arrival,
                    cur,
                    newest: newest.map(|(s, d)| (s, s.add_micros(d))),
                    shared,
                },
            )
    }

    proptest! {
        /// The ring's wall-time invariants, for any input: after the newest start, and
        /// a new discontinuity at or after the newest end.
        #[test]
        fn starts_rise_and_discontinuities_do_not_overlap(p in any_input()) {
            let out = place(&p);
            if let Some((s, e)) = p.newest {
                prop_assert!(out.start_utc > s);
                if out.new_discontinuity {
                    prop_assert!(out.start_utc >= e);
                }
            }
            prop_assert!(out.new_discontinuity || p.cur.is_some());
            prop_assert_eq!(out.source == AnchorSource::ProducerTime, p.prft.is_some());
            if let Some(a) = out.shared {
                prop_assert_eq!((out.source, a.utc), (AnchorSource::Arrival, p.arrival));
            }
        }
    }
}

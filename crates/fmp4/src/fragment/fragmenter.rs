//! [`Fragmenter`]: the state between samples. Decides where each fragment ends and
//! what each sample's duration is (the rules are the `fragment` module doc's
//! "Cutting" and "Durations"), checks each sample before it changes anything, and
//! hands finished fragments to `moof`.
//!
//! Costs: O(1) per sample besides its NAL framing check (O(NAL units)), O(samples) to
//! write a fragment. Held: at most two fragments' samples, each under
//! [`Options::max_bytes`] counted as payload plus one [`Pending`] per sample.

use std::time::Duration;

use bytes::Bytes;

use super::init::{self, Written};
use super::input::{InputSample, TrackConfig, check_nal_framing};
use super::moof::{self, FIXED_BYTES, Pending, ROW_BYTES, TRAF_BYTES};
use super::{
    CutReason, Fragment, FragmentError, MAX_BYTES_RANGE, MAX_DECODE_TICKS, MAX_TRACKS, Options,
};
use crate::model::TrackKind;

/// Turns elementary-stream samples into an init segment and fragments.
///
/// ```
/// use bytes::Bytes;
/// use dvrclip_fmp4::fragment::{CodecConfig, Fragmenter, InputSample, Options, TrackConfig};
///
/// let aac = CodecConfig::Aac { audio_specific_config: Bytes::from_static(&[0x11, 0x90]) };
/// let mut f = Fragmenter::new(vec![TrackConfig::new(48_000, aac)], Options::default())?;
/// let init = f.init_segment().clone(); // ftyp + moov, for the HLS EXT-X-MAP
/// let mut fragments = Vec::new();
/// for i in 0..200u64 {
///     let frame = InputSample {
///         track: 0,
///         decode_ticks: i * 1024,
///         composition_offset: 0,
///         is_sync: true,
///         data: Bytes::from_static(&[0x21, 0x10, 0x04]),
///     };
///     fragments.extend(f.push(frame)?);
/// }
/// fragments.extend(f.flush()?);
/// // 200 frames of 1024 at 48 kHz: a fragment every 2 s (94 frames), then the rest.
/// let counts: Vec<u32> = fragments.iter().map(|f| f.tracks[0].sample_count).collect();
/// assert_eq!(counts, [94, 94, 12]);
/// # Ok::<(), dvrclip_fmp4::fragment::FragmentError>(())
/// ```
#[derive(Debug)]
pub struct Fragmenter {
    options: Options,
    init: Bytes,
    tracks: Vec<TrackState>,
    /// The first video track: fragments start with its keyframes.
    reference: Option<usize>,
    /// The track whose time is measured against the target: the reference, else 0.
    timing: usize,
    /// Receives the samples that arrive.
    open: Building,
    /// Cut, waiting for one more sample of some track to know its last duration.
    closing: Option<Building>,
    next_sequence: u32,
}

#[derive(Debug)]
struct TrackState {
    written: Written,
    last_decode: Option<u64>,
    /// The most recent duration given to one of the track's samples.
    last_duration: Option<u32>,
}

/// A fragment being filled.
#[derive(Debug)]
struct Building {
    /// Per track, in decode order.
    runs: Vec<Vec<Pending>>,
    samples: usize,
    /// What the fragment costs so far, bytes: an upper bound of its size on the wire
    /// and of the memory its samples hold.
    cost: usize,
    ended_by: CutReason,
}

impl Building {
    fn new(tracks: usize) -> Self {
        Building {
            runs: (0..tracks).map(|_| Vec::new()).collect(),
            samples: 0,
            cost: base_cost(tracks),
            ended_by: CutReason::Flush,
        }
    }

    /// Every track's last sample has its duration.
    fn complete(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.last().is_none_or(|s| s.duration.is_some()))
    }
}

/// What a fragment costs before any sample.
fn base_cost(tracks: usize) -> usize {
    FIXED_BYTES + TRAF_BYTES * tracks
}

/// What one sample adds: its payload and the larger of its `trun` row and its
/// bookkeeping here.
fn sample_cost(len: usize) -> usize {
    len.saturating_add(ROW_BYTES.max(std::mem::size_of::<Pending>()))
}

/// `ticks` of `timescale` last at least `d`.
fn reaches(ticks: u64, timescale: u32, d: Duration) -> bool {
    u128::from(ticks) * 1_000_000_000 >= d.as_nanos() * u128::from(timescale)
}

impl Fragmenter {
    /// A fragmenter for `tracks` (samples name them by index; the init's `track_ID`s
    /// are 1, 2, ...). Writes the init segment now: every configuration is checked
    /// here, not at the first sample.
    pub fn new(tracks: Vec<TrackConfig>, options: Options) -> Result<Self, FragmentError> {
        if tracks.is_empty() {
            return Err(FragmentError::NoTracks);
        }
        if tracks.len() > MAX_TRACKS {
            return Err(FragmentError::TooManyTracks(tracks.len()));
        }
        if options.target_duration.is_zero() {
            return Err(FragmentError::BadOptions("target_duration is 0"));
        }
        if options.max_duration < options.target_duration {
            return Err(FragmentError::BadOptions(
                "max_duration is shorter than target_duration",
            ));
        }
        if !MAX_BYTES_RANGE.contains(&options.max_bytes) {
            return Err(FragmentError::BadOptions("max_bytes outside 4 KiB..=1 GiB"));
        }
        if base_cost(tracks.len()) > options.max_bytes / 2 {
            return Err(FragmentError::BadOptions(
                "max_bytes leaves no room for samples beside the track headers",
            ));
        }
        let (init, written) = init::write(&tracks)?;
        let reference = written.iter().position(|w| w.kind == TrackKind::Video);
        Ok(Fragmenter {
            options,
            init,
            reference,
            timing: reference.unwrap_or(0),
            open: Building::new(written.len()),
            closing: None,
            tracks: written
                .into_iter()
                .map(|written| TrackState {
                    written,
                    last_decode: None,
                    last_duration: None,
                })
                .collect(),
            next_sequence: 1,
        })
    }

    /// The init segment (`ftyp` + `moov`): the same bytes for the fragmenter's life.
    pub fn init_segment(&self) -> &Bytes {
        &self.init
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The index of the track fragments are cut on (the first video track), if any.
    pub fn reference_track(&self) -> Option<usize> {
        self.reference
    }

    /// Bytes held for fragments not yet returned: payloads plus bookkeeping, at most
    /// twice [`Options::max_bytes`]. What a door counts in its memory budget.
    pub fn held_bytes(&self) -> usize {
        let closing = self.closing.as_ref().map_or(0, |c| c.cost);
        if self.open.samples == 0 {
            closing
        } else {
            closing + self.open.cost
        }
    }

    /// Takes one sample; returns the fragments it completed, in order: usually none,
    /// one when it completes a cut fragment's durations, two when a cut found the
    /// previous one still waiting for a track that stopped.
    ///
    /// A refused sample (any `Err` but the unreachable [`FragmentError::TooLarge`])
    /// changes nothing: the caller may drop it and go on.
    pub fn push(&mut self, sample: InputSample) -> Result<Vec<Fragment>, FragmentError> {
        let t = sample.track;
        let dts = sample.decode_ticks;
        let track = self
            .tracks
            .get(t)
            .ok_or(FragmentError::UnknownTrack { track: t })?;
        if dts > MAX_DECODE_TICKS {
            return Err(FragmentError::DecodeTimeTooLarge {
                track: t,
                decode_ticks: dts,
            });
        }
        let gap = match track.last_decode {
            Some(prev) if dts <= prev => {
                return Err(FragmentError::NotIncreasing {
                    track: t,
                    previous_ticks: prev,
                    decode_ticks: dts,
                });
            }
            Some(prev) => {
                Some(
                    u32::try_from(dts - prev).map_err(|_| FragmentError::GapTooLong {
                        track: t,
                        previous_ticks: prev,
                        decode_ticks: dts,
                    })?,
                )
            }
            None => None,
        };
        let size = sample.data.len();
        if size == 0 {
            return Err(FragmentError::EmptySample {
                track: t,
                decode_ticks: dts,
            });
        }
        let cost = sample_cost(size);
        if base_cost(self.tracks.len()) + cost > self.options.max_bytes {
            return Err(FragmentError::SampleTooLarge {
                track: t,
                decode_ticks: dts,
                size,
                max_bytes: self.options.max_bytes,
            });
        }
        if let Some(n) = track.written.nal_length_size {
            check_nal_framing(&sample.data, n).map_err(|at| FragmentError::BadNalUnits {
                track: t,
                decode_ticks: dts,
                at,
            })?;
        }

        // Accepted: nothing below refuses it.
        let cut = self.cut_before(t, dts, sample.is_sync, cost);
        if let Some(d) = gap {
            self.set_last_duration(t, d);
        }
        let mut out = Vec::new();
        if let Some(reason) = cut {
            if let Some(waiting) = self.closing.take() {
                out.push(self.finish(waiting)?);
            }
            let mut cut = std::mem::replace(&mut self.open, Building::new(self.tracks.len()));
            cut.ended_by = reason;
            self.closing = Some(cut);
        }
        self.open.runs[t].push(Pending {
            decode_ticks: dts,
            duration: None,
            composition_offset: sample.composition_offset,
            is_sync: sample.is_sync,
            data: sample.data,
        });
        self.open.samples += 1;
        self.open.cost += cost;
        self.tracks[t].last_decode = Some(dts);
        if let Some(waiting) = self.closing.take_if(|c| c.complete()) {
            out.push(self.finish(waiting)?);
        }
        Ok(out)
    }

    /// Ends the input (or a pause a door wants published): returns the fragment
    /// waiting for durations and the open one, each track's last sample given its
    /// previous duration. Samples may follow; they start a new fragment and must
    /// still come after their track's last decode time.
    pub fn flush(&mut self) -> Result<Vec<Fragment>, FragmentError> {
        let mut out = Vec::new();
        if let Some(waiting) = self.closing.take() {
            out.push(self.finish(waiting)?);
        }
        if self.open.samples > 0 {
            let mut last = std::mem::replace(&mut self.open, Building::new(self.tracks.len()));
            last.ended_by = CutReason::Flush;
            out.push(self.finish(last)?);
        }
        Ok(out)
    }

    /// Whether the open fragment ends before a sample of track `t` at `dts`.
    fn cut_before(&self, t: usize, dts: u64, is_sync: bool, cost: usize) -> Option<CutReason> {
        if self.open.samples == 0 {
            return None;
        }
        if self.open.cost + cost > self.options.max_bytes {
            return Some(CutReason::MaxBytes);
        }
        let timescale = self.tracks[t].written.timescale;
        // Decode times increase per track, so `dts` is past the run's first.
        let since_first = |first: &Pending| dts - first.decode_ticks;
        if let Some(first) = self.open.runs[t].first() {
            if reaches(since_first(first), timescale, self.options.max_duration) {
                return Some(CutReason::MaxDuration);
            }
        }
        if t != self.timing {
            return None;
        }
        let first = self.open.runs[t].first()?;
        if !reaches(since_first(first), timescale, self.options.target_duration) {
            return None;
        }
        match self.reference {
            Some(_) if is_sync => Some(CutReason::Keyframe),
            Some(_) => None,
            None => Some(CutReason::Target),
        }
    }

    /// Gives track `t`'s latest sample (in the open fragment, else in the one waiting)
    /// its duration. A sample already written (after a flush, or repeated when its
    /// track stalled) keeps what it got.
    fn set_last_duration(&mut self, t: usize, d: u32) {
        let last = match self.open.runs[t].last_mut() {
            Some(s) => Some(s),
            None => self.closing.as_mut().and_then(|c| c.runs[t].last_mut()),
        };
        if let Some(s) = last {
            s.duration = Some(d);
            self.tracks[t].last_duration = Some(d);
        }
    }

    /// Writes `b`, giving each track's last sample its previous duration if its next
    /// sample has not come.
    fn finish(&mut self, mut b: Building) -> Result<Fragment, FragmentError> {
        for (run, track) in b.runs.iter_mut().zip(&self.tracks) {
            if let Some(last) = run.last_mut().filter(|s| s.duration.is_none()) {
                let repeat = track.last_duration;
                last.duration = Some(repeat.unwrap_or(track.written.fallback_duration));
            }
        }
        let sequence_number = self.next_sequence;
        // mfhd numbers are 32-bit; after 2^32 fragments (270 years of 2 s) they wrap.
        self.next_sequence = self.next_sequence.checked_add(1).unwrap_or(1);
        moof::write(sequence_number, b.runs, self.reference, b.ended_by)
    }
}

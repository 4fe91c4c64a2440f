//! Media segments (one or more `moof`+`mdat` pairs, ISO/IEC 14496-12 §8.8) into a
//! [`MediaSegment`]: every sample of every track with its decode time, duration,
//! composition offset, sync flag and byte range in the segment's one `Bytes`.
//!
//! Owns the fragment defaulting rules: a sample's field comes from `trun`, else from
//! `tfhd`, else from the init's `trex` (§8.8.7-8.8.8); data offsets follow §8.8.7.1
//! (explicit base, `default-base-is-moof`, or the implicit chain across `traf`s) and
//! §8.8.8.3 (a `trun` without `data_offset` continues where the previous run ended).
//! Also reads `prft` (§8.16.5) and `emsg` (ISO/IEC 23009-1 §5.10.3.3); `styp`, `sidx`,
//! `free`, `skip` and unknown top-level boxes are skipped. No payload byte is copied.

use std::ops::Range;

use bytes::Bytes;

use crate::error::{Error, ErrorKind};
use crate::model::{
    EventMessage, FourCC, InitSegment, MediaSegment, ProducerTime, Sample, Track, TrackSamples,
};
use crate::reader::{BoxRef, Boxes, Cursor, Path};

// tfhd flags (§8.8.7.1).
const BASE_DATA_OFFSET: u32 = 0x00_0001;
const SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const DEFAULT_DURATION: u32 = 0x00_0008;
const DEFAULT_SIZE: u32 = 0x00_0010;
const DEFAULT_FLAGS: u32 = 0x00_0020;
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
// trun flags (§8.8.8.1).
const DATA_OFFSET: u32 = 0x00_0001;
const FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const SAMPLE_DURATION: u32 = 0x00_0100;
const SAMPLE_SIZE: u32 = 0x00_0200;
const SAMPLE_FLAGS: u32 = 0x00_0400;
const SAMPLE_CTO: u32 = 0x00_0800;
/// `sample_is_non_sync_sample` in the sample flags word (§8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// Parses a media segment against the init segment that describes its tracks.
///
/// Every `traf` must name a track of `init` ([`ErrorKind::UnknownTrack`] otherwise: the
/// fragment belongs to another init), and every sample's bytes must lie inside one
/// `mdat` of this segment.
pub fn parse_segment(bytes: Bytes, init: &InitSegment) -> Result<MediaSegment, Error> {
    let data = &bytes[..];
    if u32::try_from(data.len()).is_err() {
        // Sample offsets are u32; ref/api.md "Operations" caps segments far below this anyway.
        return Err(Path::ROOT.error(0, ErrorKind::BadSize(data.len() as u64)));
    }
    let mut p = Parser {
        data,
        init,
        seg: MediaSegment {
            bytes: bytes.clone(),
            producer_time: None,
            events: Vec::new(),
            tracks: Vec::new(),
            mdat_ranges: Vec::new(),
        },
        next_decode: Vec::new(),
        runs: Vec::new(),
    };
    let mut moofs = 0usize;
    for b in Boxes::top(data) {
        let b = b?;
        match &b.typ.0 {
            b"moof" => {
                p.moof(b)?;
                moofs += 1;
            }
            b"mdat" => p.seg.mdat_ranges.push(b.body as u32..b.end as u32),
            b"prft" if p.seg.producer_time.is_none() => p.seg.producer_time = Some(prft(data, b)?),
            b"emsg" => p.seg.events.push(emsg(&bytes, b)?),
            _ => {}
        }
    }
    if moofs == 0 {
        return Err(Path::ROOT.error(0, ErrorKind::Missing(FourCC::new(b"moof"))));
    }
    p.check_ranges()?;
    Ok(p.seg)
}

struct Parser<'a> {
    data: &'a [u8],
    init: &'a InitSegment,
    seg: MediaSegment,
    /// Per entry of `seg.tracks`: decode time of the next sample.
    next_decode: Vec<u64>,
    /// Byte spans of the runs still to be checked against the `mdat`s, which usually
    /// follow their `moof`, with the `trun` for errors.
    runs: Vec<(Range<u64>, BoxRef)>,
}

impl Parser<'_> {
    fn moof(&mut self, moof: BoxRef) -> Result<(), Error> {
        let data = self.data;
        // §8.8.7.1: without an explicit base or default-base-is-moof, "the base-data-
        // offset for the first track in the movie fragment is the position of the first
        // byte of the enclosing Movie Fragment Box, and for second and subsequent track
        // fragments, the default is the end of the data defined by the preceding track
        // fragment".
        let mut prev_traf_end: Option<u64> = None;
        for traf in moof.children(data, 0) {
            let traf = traf?;
            if traf.typ.0 != *b"traf" {
                continue;
            }
            let tfhd = traf.require(data, b"tfhd")?;
            let h = Tfhd::parse(data, tfhd)?;
            let track = self
                .init
                .track(h.track_id)
                .ok_or_else(|| tfhd.error(ErrorKind::UnknownTrack(h.track_id)))?;
            let base = match (h.base_data_offset, prev_traf_end) {
                (Some(base), _) => base,
                (None, _) if h.flags & DEFAULT_BASE_IS_MOOF != 0 => moof.start as u64,
                (None, Some(end)) => end,
                (None, None) => moof.start as u64,
            };
            let tfdt = match traf.find(data, b"tfdt")? {
                Some(b) => {
                    let mut c = b.cursor(data);
                    let (version, _) = c.version_flags()?;
                    Some(c.u32_or_u64(version)?)
                }
                None => None,
            };
            let t = self.track_index(track, &h, tfdt);
            if let Some(tfdt) = tfdt {
                self.next_decode[t] = tfdt;
            }
            // The first run starts at the base, each later one where the last ended.
            let mut run_end = base;
            for trun in traf.children(data, 0) {
                let trun = trun?;
                if trun.typ.0 != *b"trun" {
                    continue;
                }
                run_end = self.trun(trun, t, track, &h, base, run_end)?;
            }
            prev_traf_end = Some(run_end);
        }
        Ok(())
    }

    /// The entry of `seg.tracks` for this track, made on first sight.
    fn track_index(&mut self, track: &Track, h: &Tfhd, tfdt: Option<u64>) -> usize {
        if let Some(i) = self
            .seg
            .tracks
            .iter()
            .position(|t| t.track_id == track.track_id)
        {
            return i;
        }
        self.seg.tracks.push(TrackSamples {
            track_id: track.track_id,
            base_decode_ticks: tfdt.unwrap_or(0),
            sample_description_index: h
                .sample_description_index
                .unwrap_or(track.defaults.sample_description_index),
            samples: Vec::new(),
        });
        self.next_decode.push(tfdt.unwrap_or(0));
        self.seg.tracks.len() - 1
    }

    /// Appends one `trun`'s samples; returns the offset just past its data.
    /// `continue_at` is where a run without `data_offset` starts (§8.8.8.3: "the data
    /// for this run starts immediately after the data of the previous run, or at the
    /// base-data-offset defined by the track fragment header if this is the first run").
    fn trun(
        &mut self,
        trun: BoxRef,
        t: usize,
        track: &Track,
        h: &Tfhd,
        base: u64,
        continue_at: u64,
    ) -> Result<u64, Error> {
        let mut c = trun.cursor(self.data);
        let (_version, flags) = c.version_flags()?;
        let count = c.u32()? as usize;
        let mut pos = if flags & DATA_OFFSET != 0 {
            let off = i64::from(c.i32()?);
            base.checked_add_signed(off)
                .ok_or_else(|| c.error(ErrorKind::Invalid("data_offset before the segment")))?
        } else {
            continue_at
        };
        let first_flags = if flags & FIRST_SAMPLE_FLAGS != 0 {
            Some(c.u32()?)
        } else {
            None
        };
        let per_sample = 4
            * (flags & (SAMPLE_DURATION | SAMPLE_SIZE | SAMPLE_FLAGS | SAMPLE_CTO)).count_ones()
                as usize;
        let default_size = h.default_size.unwrap_or(track.defaults.sample_size);
        // Check the count against bytes present before allocating: each sample takes
        // `per_sample` bytes of this box, or else `default_size` bytes of the segment.
        let (each, available) = if per_sample > 0 {
            (per_sample, c.remaining())
        } else {
            (default_size as usize, self.data.len())
        };
        let needed = count
            .checked_mul(each)
            .ok_or_else(|| c.error(ErrorKind::BadSize(u64::MAX)))?;
        if needed > available || (each == 0 && count > 0) {
            return Err(c.error(ErrorKind::Invalid(
                "sample_count larger than the data present",
            )));
        }

        let default_duration = h.default_duration.unwrap_or(track.defaults.sample_duration);
        let default_flags = h.default_flags.unwrap_or(track.defaults.sample_flags);
        // The per-sample table, already known to be all there: rows of `per_sample`
        // bytes holding the present fields in this order (§8.8.8.2).
        let table = if per_sample > 0 {
            c.take(needed)?
        } else {
            &[][..]
        };
        let mut at = 0;
        let mut column = |flag: u32| {
            (flags & flag != 0).then(|| {
                at += 4;
                at - 4
            })
        };
        let (duration_at, size_at) = (column(SAMPLE_DURATION), column(SAMPLE_SIZE));
        let (flags_at, cto_at) = (column(SAMPLE_FLAGS), column(SAMPLE_CTO));
        let samples = &mut self.seg.tracks[t].samples;
        samples.reserve(count);
        let start = pos;
        let mut decode = self.next_decode[t];
        // An empty row per sample when every field comes from the defaults.
        let mut rows = table.chunks_exact(per_sample.max(1));
        for i in 0..count {
            let row = rows.next().unwrap_or(&[]);
            // Columns lie inside their row by construction; `get` keeps that unchecked
            // fact from becoming a panic.
            let field = |k: Option<usize>, default: u32| match k.and_then(|k| row.get(k..k + 4)) {
                Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                None => default,
            };
            let duration = field(duration_at, default_duration);
            let size = field(size_at, default_size);
            let sample_flags = match first_flags {
                Some(f) if i == 0 => f,
                _ => field(flags_at, default_flags),
            };
            // v0 offsets are unsigned, v1 signed; both are read as i32. A v0 value of
            // 2^31 or more (over six hours at 90 kHz) comes from a writer that meant a
            // negative offset and forgot v1, so its bits are taken as signed, as ffmpeg
            // reads them.
            let composition_offset = field(cto_at, 0) as i32;
            let offset = u32::try_from(pos)
                .map_err(|_| c.error(ErrorKind::Invalid("sample data outside the segment")))?;
            pos = pos
                .checked_add(u64::from(size))
                .ok_or_else(|| c.error(ErrorKind::Invalid("sample data outside the segment")))?;
            samples.push(Sample {
                decode_ticks: decode,
                duration,
                composition_offset,
                offset,
                size,
                is_sync: sample_flags & NON_SYNC == 0,
            });
            decode = decode
                .checked_add(u64::from(duration))
                .ok_or_else(|| c.error(ErrorKind::Invalid("decode time overflows 64 bits")))?;
        }
        self.next_decode[t] = decode;
        if count > 0 {
            self.runs.push((start..pos, trun));
        }
        Ok(pos)
    }

    /// Every sample lies inside one `mdat` body. A run's samples are contiguous, so
    /// checking the run's span checks them all; `mdat_ranges` are in file order and
    /// disjoint, so a binary search finds the only candidate.
    fn check_ranges(&self) -> Result<(), Error> {
        let mdats = &self.seg.mdat_ranges;
        for (span, trun) in &self.runs {
            let i = mdats.partition_point(|m| u64::from(m.start) <= span.start);
            let inside = i > 0 && span.end <= u64::from(mdats[i - 1].end);
            if !inside {
                return Err(trun.error(ErrorKind::Invalid("sample data outside every mdat")));
            }
        }
        Ok(())
    }
}

/// The fields of a `tfhd` (§8.8.7), each `None` when its flag is clear.
struct Tfhd {
    flags: u32,
    track_id: u32,
    base_data_offset: Option<u64>,
    sample_description_index: Option<u32>,
    default_duration: Option<u32>,
    default_size: Option<u32>,
    default_flags: Option<u32>,
}

impl Tfhd {
    fn parse(data: &[u8], b: BoxRef) -> Result<Self, Error> {
        let mut c = b.cursor(data);
        let (_, flags) = c.version_flags()?;
        let opt = |c: &mut Cursor<'_>, flag| -> Result<Option<u32>, Error> {
            if flags & flag != 0 {
                c.u32().map(Some)
            } else {
                Ok(None)
            }
        };
        let track_id = c.u32()?;
        let base_data_offset = if flags & BASE_DATA_OFFSET != 0 {
            Some(c.u64()?)
        } else {
            None
        };
        Ok(Tfhd {
            flags,
            track_id,
            base_data_offset,
            sample_description_index: opt(&mut c, SAMPLE_DESCRIPTION_INDEX)?,
            default_duration: opt(&mut c, DEFAULT_DURATION)?,
            default_size: opt(&mut c, DEFAULT_SIZE)?,
            default_flags: opt(&mut c, DEFAULT_FLAGS)?,
        })
    }
}

/// §8.16.5 ProducerReferenceTimeBox.
fn prft(data: &[u8], b: BoxRef) -> Result<ProducerTime, Error> {
    let mut c = b.cursor(data);
    let (version, _) = c.version_flags()?;
    Ok(ProducerTime {
        track_id: c.u32()?,
        ntp_timestamp: c.u64()?,
        media_ticks: c.u32_or_u64(version)?,
    })
}

/// ISO/IEC 23009-1 §5.10.3.3 DASHEventMessageBox: v0 puts the strings first and a
/// time delta; v1 puts an absolute 64-bit time first.
fn emsg(bytes: &Bytes, b: BoxRef) -> Result<EventMessage, Error> {
    let mut c = b.cursor(bytes);
    let (version, _) = c.version_flags()?;
    let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
    let mut m = EventMessage {
        scheme_id_uri: String::new(),
        value: String::new(),
        timescale: 0,
        presentation_time: 0,
        event_duration: 0,
        id: 0,
        message_data: Bytes::new(),
    };
    match version {
        0 => {
            m.scheme_id_uri = text(c.cstr()?);
            m.value = text(c.cstr()?);
            m.timescale = c.u32()?;
            m.presentation_time = u64::from(c.u32()?);
            m.event_duration = c.u32()?;
            m.id = c.u32()?;
        }
        1 => {
            m.timescale = c.u32()?;
            m.presentation_time = c.u64()?;
            m.event_duration = c.u32()?;
            m.id = c.u32()?;
            m.scheme_id_uri = text(c.cstr()?);
            m.value = text(c.cstr()?);
        }
        _ => return Err(b.error(ErrorKind::Invalid("emsg version other than 0 or 1"))),
    }
    m.message_data = bytes.slice(c.rest());
    Ok(m)
}

//! Where a media segment states its decode times: each `traf`'s `tfdt`
//! (`baseMediaDecodeTime`, ISO/IEC 14496-12 §8.8.12), with the track it belongs to and
//! the byte span of the field, so a tool can re-stamp a recorded segment in place (the
//! load generator replays fixture segments as a live stream whose media time keeps
//! growing).
//!
//! Only the walk lives here, over the crate's one box layer (`reader`); writing the new
//! value is the caller's (a big-endian integer of the span's width). Nothing else in a
//! segment carries media time that the ingest path reads: `sidx` is skipped by the
//! parser, and `prft` pairs a wall clock with a media time for producers only.

use std::ops::Range;

use crate::error::{Error, ErrorKind};
use crate::reader::Boxes;

/// One `tfdt` of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeTimeField {
    /// The `tfhd` track id of the `traf` holding it.
    pub track_id: u32,
    /// Its value, ticks of the track's timescale.
    pub ticks: u64,
    /// The bytes of the value in the segment: 4 (version 0) or 8 (version 1) long.
    pub span: Range<usize>,
}

/// Every `moof/traf/tfdt` of `segment`, in file order. A `traf` without `tfdt` is
/// left out; one without `tfhd` is refused ([`ErrorKind::Missing`]).
pub fn decode_time_fields(segment: &[u8]) -> Result<Vec<DecodeTimeField>, Error> {
    let mut fields = Vec::new();
    for moof in Boxes::top(segment) {
        let moof = moof?;
        if moof.typ.0 != *b"moof" {
            continue;
        }
        for traf in moof.children(segment, 0) {
            let traf = traf?;
            if traf.typ.0 != *b"traf" {
                continue;
            }
            let tfhd = traf.require(segment, b"tfhd")?;
            let mut h = tfhd.cursor(segment);
            h.version_flags()?;
            let track_id = h.u32()?;
            let Some(tfdt) = traf.find(segment, b"tfdt")? else {
                continue;
            };
            let mut c = tfdt.cursor(segment);
            let (version, _) = c.version_flags()?;
            let ticks = c.u32_or_u64(version)?;
            // The value follows the 4 bytes of version and flags; the cursor has just
            // read it whole, so the span lies inside the box.
            let start = tfdt.body + 4;
            let width = if version == 1 { 8 } else { 4 };
            fields.push(DecodeTimeField {
                track_id,
                ticks,
                span: start..start + width,
            });
        }
    }
    Ok(fields)
}

/// Writes `ticks` into `field`'s span of `segment` (the bytes it was found in).
/// Refused when the value does not fit a version 0 field, or the span is not inside
/// `segment`.
pub fn write_decode_time(
    segment: &mut [u8],
    field: &DecodeTimeField,
    ticks: u64,
) -> Result<(), Error> {
    let out_of_range = || Error {
        path: "moof/traf/tfdt".into(),
        offset: field.span.start as u64,
        kind: ErrorKind::Invalid("decode time does not fit its tfdt field"),
    };
    let dest = segment
        .get_mut(field.span.clone())
        .ok_or_else(out_of_range)?;
    match dest.len() {
        4 => dest.copy_from_slice(
            &u32::try_from(ticks)
                .map_err(|_| out_of_range())?
                .to_be_bytes(),
        ),
        8 => dest.copy_from_slice(&ticks.to_be_bytes()),
        _ => return Err(out_of_range()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
        std::fs::read(format!("{root}{path}")).unwrap()
    }

    #[test]
    fn finds_each_tracks_tfdt_and_rewrites_it() {
        let init = crate::parse_init(fixture("h264_aac/init.mp4").into()).unwrap();
        let mut seg = fixture("h264_aac/seg_001.m4s");
        let before = crate::parse_segment(seg.clone().into(), &init).unwrap();
        let fields = decode_time_fields(&seg).unwrap();
        assert_eq!(fields.len(), before.tracks.len());
        for f in &fields {
            let t = before.track(f.track_id).unwrap();
            assert_eq!(f.ticks, t.base_decode_ticks);
            write_decode_time(&mut seg, f, f.ticks + 1_000_000).unwrap();
        }
        let after = crate::parse_segment(seg.into(), &init).unwrap();
        for (a, b) in after.tracks.iter().zip(&before.tracks) {
            assert_eq!(a.base_decode_ticks, b.base_decode_ticks + 1_000_000);
            assert_eq!(a.samples.len(), b.samples.len());
        }
    }

    #[test]
    fn refuses_truncation_and_overflow() {
        let seg = fixture("h264_aac/seg_001.m4s");
        let fields = decode_time_fields(&seg).unwrap();
        assert!(decode_time_fields(&seg[..seg.len() - 1]).is_err());
        let mut copy = seg.clone();
        let f = &fields[0];
        if f.span.len() == 4 {
            assert!(write_decode_time(&mut copy, f, u64::from(u32::MAX) + 1).is_err());
            assert_eq!(copy, seg, "a refused write changes nothing");
        }
    }
}

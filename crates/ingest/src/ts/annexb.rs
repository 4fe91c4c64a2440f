//! H.264 and H.265 access units from an Annex B byte stream (ITU-T H.264 Annex B,
//! H.265 Annex B: NAL units after `00 00 01` start codes, as ISO/IEC 13818-1 §2.14
//! and §2.17 carry them in PES packets) to the samples ISO/IEC 14496-15 wants: NAL
//! units after 4-byte lengths (§5.3.2, §8.3.2), with the parameter sets taken out
//! of the sample and gathered for the `avcC`/`hvcC` (built by
//! `dvrclip_fmp4::params`). A keyframe is an IDR picture (H.264 type 5) or an IRAP
//! picture (H.265 types 16..=23).
//!
//! Conversion copies each kept NAL unit once, into a buffer sized first by a scan
//! of the start codes. Parameter sets are kept per id, at most [`MAX_SETS`] of each
//! kind, each at most [`MAX_SET_BYTES`]; one that does not parse drops its access
//! unit (the decoder could not use it either).

use bytes::Bytes;
use dvrclip_fmp4::params;

use super::psi::VideoCodec;

/// Parameter sets kept per kind (SPS, PPS, VPS).
pub(crate) const MAX_SETS: usize = 16;
/// Largest parameter set kept, bytes.
pub(crate) const MAX_SET_BYTES: usize = 4096;

/// Why an access unit is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnnexBError {
    /// A parameter set that does not parse, or more than the caps.
    BadParameterSet,
    /// Nothing left once the parameter sets and delimiters are out.
    Empty,
}

/// The NAL units of an Annex B buffer, start codes and trailing zero bytes removed.
pub(crate) fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits {
        data,
        at: next_start(data, 0).map_or(data.len(), |(_, after)| after),
    }
}

pub(crate) struct NalUnits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.at < self.data.len() {
            let start = self.at;
            let (end, after) =
                next_start(self.data, start).unwrap_or((self.data.len(), self.data.len()));
            self.at = after;
            let mut nal = self.data.get(start..end)?;
            while let [head @ .., 0] = nal {
                nal = head; // trailing_zero_8bits, or the zero_byte of a 4-byte start code
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// The next `00 00 01` at or after `from`: (its offset, the offset after it).
fn next_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(window) = data.get(i..i + 3) {
        match window {
            [0, 0, 1] => return Some((i, i + 3)),
            // Skip ahead: no start code can begin before the next zero pair.
            [_, _, b] if *b > 1 => i += 3,
            _ => i += 1,
        }
    }
    None
}

/// One converted access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessUnit {
    /// NAL units after 4-byte lengths.
    pub(crate) data: Bytes,
    pub(crate) keyframe: bool,
}

/// The parameter sets seen so far, per id, and whether they changed since the last
/// [`ParameterSets::record`].
#[derive(Debug)]
pub(crate) struct ParameterSets {
    codec: VideoCodec,
    vps: Vec<(u32, Vec<u8>)>,
    sps: Vec<(u32, Vec<u8>)>,
    pps: Vec<(u32, Vec<u8>)>,
    changed: bool,
}

impl ParameterSets {
    pub(crate) fn new(codec: VideoCodec) -> Self {
        ParameterSets {
            codec,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            changed: false,
        }
    }

    pub(crate) fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Whether a set changed since the last record was built.
    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    pub(crate) fn held_bytes(&self) -> usize {
        [&self.vps, &self.sps, &self.pps]
            .iter()
            .flat_map(|l| l.iter())
            .map(|(_, n)| n.capacity() + 8)
            .sum()
    }

    /// The `avcC`/`hvcC` of the sets in hand; `None` until there are enough that
    /// parse together.
    pub(crate) fn record(&mut self) -> Option<Bytes> {
        fn list(l: &[(u32, Vec<u8>)]) -> Vec<&[u8]> {
            l.iter().map(|(_, n)| n.as_slice()).collect()
        }
        let built = match self.codec {
            VideoCodec::Avc => params::build_avc_config(&list(&self.sps), &list(&self.pps)),
            VideoCodec::Hevc => {
                params::build_hevc_config(&list(&self.vps), &list(&self.sps), &list(&self.pps))
            }
        };
        self.changed = false;
        built.ok().map(Bytes::from)
    }

    /// Converts one access unit, keeping its parameter sets.
    pub(crate) fn convert(&mut self, annexb: &[u8]) -> Result<AccessUnit, AnnexBError> {
        let mut size = 0;
        let mut keyframe = false;
        for nal in nal_units(annexb) {
            match self.classify(nal)? {
                Kind::ParameterSet | Kind::Delimiter => {}
                Kind::Picture { irap } => {
                    keyframe |= irap;
                    size += 4 + nal.len();
                }
                Kind::Other => size += 4 + nal.len(),
            }
        }
        if size == 0 {
            return Err(AnnexBError::Empty);
        }
        let mut out = Vec::with_capacity(size);
        for nal in nal_units(annexb) {
            if matches!(self.kind(nal), Kind::Picture { .. } | Kind::Other) {
                out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                out.extend_from_slice(nal);
            }
        }
        Ok(AccessUnit {
            data: Bytes::from(out),
            keyframe,
        })
    }

    /// [`ParameterSets::kind`], storing a parameter set.
    fn classify(&mut self, nal: &[u8]) -> Result<Kind, AnnexBError> {
        let kind = self.kind(nal);
        if kind == Kind::ParameterSet {
            self.store(nal)?;
        }
        Ok(kind)
    }

    fn kind(&self, nal: &[u8]) -> Kind {
        let Some(&h) = nal.first() else {
            return Kind::Other;
        };
        match self.codec {
            VideoCodec::Avc => match h & 0x1f {
                7 | 8 => Kind::ParameterSet,
                9 => Kind::Delimiter,
                1..=5 => Kind::Picture {
                    irap: h & 0x1f == 5,
                },
                _ => Kind::Other,
            },
            VideoCodec::Hevc => match (h >> 1) & 0x3f {
                32..=34 => Kind::ParameterSet,
                35 => Kind::Delimiter,
                t @ 0..=31 => Kind::Picture {
                    irap: (16..=23).contains(&t),
                },
                _ => Kind::Other,
            },
        }
    }

    fn store(&mut self, nal: &[u8]) -> Result<(), AnnexBError> {
        let bad = |_| AnnexBError::BadParameterSet;
        let Some(&header) = nal.first().filter(|_| nal.len() <= MAX_SET_BYTES) else {
            return Err(AnnexBError::BadParameterSet);
        };
        let (list, id) = match self.codec {
            VideoCodec::Avc if header & 0x1f == 7 => {
                (&mut self.sps, params::parse_avc_sps(nal).map_err(bad)?.id)
            }
            VideoCodec::Avc => (&mut self.pps, params::parse_avc_pps(nal).map_err(bad)?.id),
            VideoCodec::Hevc => match (header >> 1) & 0x3f {
                33 => (&mut self.sps, params::parse_hevc_sps(nal).map_err(bad)?.id),
                // VPS: vps_video_parameter_set_id, the first 4 bits after the header.
                32 => (
                    &mut self.vps,
                    u32::from(*nal.get(2).ok_or(AnnexBError::BadParameterSet)? >> 4),
                ),
                // PPS: pps_pic_parameter_set_id, ue(v) after the header; sets with
                // the same first byte replace each other (ids above 0 are rare).
                _ => (
                    &mut self.pps,
                    u32::from(*nal.get(2).ok_or(AnnexBError::BadParameterSet)?),
                ),
            },
        };
        let full = list.len() >= MAX_SETS;
        match list.iter_mut().find(|(i, _)| *i == id) {
            Some((_, old)) if old.as_slice() == nal => {}
            Some((_, old)) => {
                old.clear();
                old.extend_from_slice(nal);
                self.changed = true;
            }
            None if full => return Err(AnnexBError::BadParameterSet),
            None => {
                list.push((id, nal.to_vec()));
                self.changed = true;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ParameterSet,
    Delimiter,
    Picture { irap: bool },
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_codes_of_three_and_four_bytes() {
        let d = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 0, 1, 0x41, 7, 0,
        ];
        let nals: Vec<_> = nal_units(&d).collect();
        assert_eq!(nals, vec![&[9, 0xf0][..], &[0x65, 1, 2], &[0x41, 7]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn a_broken_sps_drops_the_access_unit() {
        let mut sets = ParameterSets::new(VideoCodec::Avc);
        let au = [0, 0, 1, 0x67, 0xff, 0, 0, 1, 0x65, 0x88];
        assert_eq!(sets.convert(&au), Err(AnnexBError::BadParameterSet));
        assert!(sets.record().is_none());
        let au = [0, 0, 1, 0x09, 0xf0];
        assert_eq!(sets.convert(&au), Err(AnnexBError::Empty));
        let au = [0, 0, 1, 0x65, 0x88, 0x84];
        let got = sets.convert(&au).unwrap();
        assert!(got.keyframe);
        assert_eq!(&got.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
    }
}

//! H.264 and H.265 parameter sets: the decoder configuration records that carry them
//! (`avcC`, ISO/IEC 14496-15 §5.3.3; `hvcC`, §8.3.3) and the SPS far enough to give
//! the picture size (ITU-T H.264 §7.3.2.1.1, H.265 §7.3.2.2.1).
//!
//! A record is walked whole before an init is accepted: counts, every NAL unit's
//! length inside the record, every NAL unit's type against its list, and each SPS
//! parsed to a non-empty picture. A record that lies (an SPS longer than the box, a
//! PPS where an SPS belongs) would otherwise become the rendition's init, and every
//! fragment after it would fail to decode. The same functions take parameter sets a
//! fragmenter gathers itself (an RTMP AVC sequence header is an `avcC` record; an
//! MPEG-TS stream gives SPS and PPS NAL units one by one): [`parse_avc_config`],
//! [`parse_avc_sps`], [`parse_avc_pps`], [`parse_hevc_config`], [`parse_hevc_sps`];
//! and [`build_avc_config`] / [`build_hevc_config`] (in `build`) write the record
//! from such NAL units, checked by the same parsers before they are returned.
//!
//! The SPS reader is our own exp-Golomb reader (about 150 lines with H.265's) rather
//! than `h264-reader`: we need the fields up to the cropping window and nothing after,
//! `h264-reader` also parses the VUI (and refuses an SPS whose VUI it dislikes, which
//! encoders get wrong more often than the size), would add four dependencies to a crate
//! that has three, and reads no H.265. Refusals are [`ErrorKind::Invalid`] (malformed,
//! HTTP 400) or [`ErrorKind::UnsupportedCodec`] (a record version this crate does not
//! know, 415). Nothing here allocates more than the input's length.

use crate::error::ErrorKind;
use crate::model::FourCC;

mod build;

pub use build::{build_avc_config, build_hevc_config};

/// What an `avcC` (AVCDecoderConfigurationRecord) holds, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig<'a> {
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility` (the SPS's constraint_set flags).
    pub constraint_flags: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
    /// Bytes of each sample's NAL unit length prefix: 1, 2 or 4.
    pub nal_length_size: u8,
    /// The SPS NAL units (type 7), header byte included.
    pub sps: Vec<&'a [u8]>,
    /// The PPS NAL units (type 8), header byte included.
    pub pps: Vec<&'a [u8]>,
    /// The first SPS parsed; `None` when the record carries none (allowed for `avc3`).
    pub first_sps: Option<AvcSps>,
}

/// The fields of an H.264 SPS up to its cropping window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcSps {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// `seq_parameter_set_id` (0..=31).
    pub id: u32,
    /// Picture width after cropping, luma samples.
    pub width: u32,
    /// Picture height after cropping, luma samples.
    pub height: u32,
}

/// The ids an H.264 PPS carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcPps {
    /// `pic_parameter_set_id` (0..=255).
    pub id: u32,
    /// `seq_parameter_set_id` of the SPS it refers to (0..=31).
    pub sps_id: u32,
}

/// What an `hvcC` (HEVCDecoderConfigurationRecord) holds, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig<'a> {
    /// Bytes of each sample's NAL unit length prefix: 1, 2 or 4.
    pub nal_length_size: u8,
    /// Each array's NAL unit type and its NAL units (2-byte header included).
    pub arrays: Vec<(u8, Vec<&'a [u8]>)>,
    /// The first SPS parsed; `None` when the record carries none (allowed for `hev1`).
    pub first_sps: Option<HevcSps>,
}

/// The fields of an H.265 SPS up to its conformance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSps {
    /// `sps_seq_parameter_set_id` (0..=15).
    pub id: u32,
    /// Picture width after the conformance window, luma samples.
    pub width: u32,
    /// Picture height after the conformance window, luma samples.
    pub height: u32,
}

/// H.264 Table 7-1 and H.265 Table 7-1 NAL unit types used here.
const AVC_SPS: u8 = 7;
const AVC_PPS: u8 = 8;
const AVC_SPS_EXT: u8 = 13;
const HEVC_VPS: u8 = 32;
const HEVC_SPS: u8 = 33;
const HEVC_PPS: u8 = 34;
const HEVC_PREFIX_SEI: u8 = 39;
const HEVC_SUFFIX_SEI: u8 = 40;

/// Checks the configuration record of a video sample entry (`format` is `avc1`,
/// `avc3`, `hvc1` or `hev1`; other formats pass). For `avc1` and `hvc1` the record
/// must hold the parameter sets (§5.3.2, §8.3.2: "all parameter sets ... shall be
/// in the sample entry"); `avc3` and `hev1` may carry them in band instead.
pub(crate) fn check_config(format: FourCC, record: &[u8]) -> Result<(), ErrorKind> {
    match &format.0 {
        b"avc1" | b"avc3" => {
            let c = parse_avc_config(record)?;
            if format.0 == *b"avc1" && (c.sps.is_empty() || c.pps.is_empty()) {
                return Err(ErrorKind::Invalid(
                    "avc1: avcC must carry at least one SPS and one PPS",
                ));
            }
        }
        b"hvc1" | b"hev1" => {
            let c = parse_hevc_config(record)?;
            let has = |t: u8| c.arrays.iter().any(|(k, n)| *k == t && !n.is_empty());
            if format.0 == *b"hvc1" && !(has(HEVC_VPS) && has(HEVC_SPS) && has(HEVC_PPS)) {
                return Err(ErrorKind::Invalid(
                    "hvc1: hvcC must carry a VPS, an SPS and a PPS",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parses and checks an `avcC` body (ISO/IEC 14496-15 §5.3.3.1): version 1, a NAL
/// length size of 1, 2 or 4, every SPS (type 7, parsed by [`parse_avc_sps`]) and PPS
/// (type 8, naming an SPS of the record when it carries any) inside the record.
/// The High-profile extension that may follow is checked the same way; other
/// trailing bytes are ignored, as readers of Baseline and Main records do.
pub fn parse_avc_config(record: &[u8]) -> Result<AvcConfig<'_>, ErrorKind> {
    let mut r = Record { d: record, pos: 0 };
    if r.u8()? != 1 {
        // §5.3.3.2: "Incompatible changes to the record will be indicated by a
        // change of version number. Readers shall not attempt to decode this record
        // ... if the version number is unrecognised."
        return Err(ErrorKind::UnsupportedCodec(FourCC::new(b"avcC")));
    }
    let profile_idc = r.u8()?;
    let constraint_flags = r.u8()?;
    let level_idc = r.u8()?;
    let nal_length_size = length_size(r.u8()? & 3)?;
    let sps_count = r.u8()? & 0x1f;
    let mut sps = Vec::with_capacity(usize::from(sps_count));
    let mut first_sps = None;
    let mut sps_ids = 0u32; // bit i: an SPS with id i is present
    for _ in 0..sps_count {
        let nal = r.nal()?;
        let parsed = parse_avc_sps(nal)?;
        sps_ids |= 1 << parsed.id;
        first_sps.get_or_insert(parsed);
        sps.push(nal);
    }
    let pps_count = r.u8()?;
    let mut pps = Vec::with_capacity(usize::from(pps_count));
    for _ in 0..pps_count {
        let nal = r.nal()?;
        let parsed = parse_avc_pps(nal)?;
        if sps_count > 0 && sps_ids & (1 << parsed.sps_id) == 0 {
            return Err(ErrorKind::Invalid(
                "avcC: a PPS names an SPS the record lacks",
            ));
        }
        pps.push(nal);
    }
    if r.left() > 0 && !matches!(profile_idc, 66 | 77 | 88) {
        // §5.3.3.1: beyond Baseline, Main and Extended the record may go on with
        // chroma_format, the bit depths and SPS extensions (type 13). Bytes there
        // that are not one are what an SPS length that swallowed the PPS leaves.
        r.take(3)?;
        for _ in 0..r.u8()? {
            let nal = r.nal()?;
            if nal[0] & 0x1f != AVC_SPS_EXT {
                return Err(ErrorKind::Invalid(
                    "an SPS extension NAL unit is not of type 13",
                ));
            }
        }
    }
    Ok(AvcConfig {
        profile_idc,
        constraint_flags,
        level_idc,
        nal_length_size,
        sps,
        pps,
        first_sps,
    })
}

/// Parses an H.264 SPS NAL unit (header byte included) up to its cropping window
/// (H.264 §7.3.2.1.1) and computes the cropped picture size (§7.4.2.1.1).
pub fn parse_avc_sps(nal: &[u8]) -> Result<AvcSps, ErrorKind> {
    let rbsp = avc_rbsp(nal, AVC_SPS, "an SPS NAL unit is not of type 7")?;
    let mut b = Bits::new(&rbsp);
    let profile_idc = b.bits(8)? as u8;
    b.bits(8)?; // constraint_set flags, reserved_zero_2bits
    let level_idc = b.bits(8)? as u8;
    let id = b.ue_max(31, "SPS: seq_parameter_set_id over 31")?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue_max(3, "SPS: chroma_format_idc over 3")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = b.flag()?;
        }
        b.ue_max(6, "SPS: bit_depth_luma_minus8 over 6")?;
        b.ue_max(6, "SPS: bit_depth_chroma_minus8 over 6")?;
        b.flag()?; // qpprime_y_zero_transform_bypass_flag
        if b.flag()? {
            // seq_scaling_matrix_present_flag: 8 lists, 12 for 4:4:4 (§7.3.2.1.1.1).
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.flag()? {
                    scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue_max(12, "SPS: log2_max_frame_num_minus4 over 12")?;
    match b.ue_max(2, "SPS: pic_order_cnt_type over 2")? {
        0 => {
            b.ue_max(12, "SPS: log2_max_pic_order_cnt_lsb_minus4 over 12")?;
        }
        1 => {
            b.flag()?; // delta_pic_order_always_zero_flag
            b.se()?; // offset_for_non_ref_pic
            b.se()?; // offset_for_top_to_bottom_field
            let cycle = b.ue_max(255, "SPS: num_ref_frames_in_pic_order_cnt_cycle over 255")?;
            for _ in 0..cycle {
                b.se()?; // offset_for_ref_frame
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_map_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = b.flag()?;
    if !frame_mbs_only {
        b.flag()?; // mb_adaptive_frame_field_flag
    }
    b.flag()?; // direct_8x8_inference_flag
    let crop = if b.flag()? {
        [b.ue()?, b.ue()?, b.ue()?, b.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    // §7.4.2.1.1, (7-19) to (7-22): crop units from ChromaArrayType.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (unit_x, unit_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (false, 0) => (1, field_factor),
        (false, 1) => (2, 2 * field_factor),
        (false, 2) => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = picture_size(width_mbs * 16, unit_x * (crop[0] + crop[1]))?;
    let height = picture_size(
        field_factor * height_map_units * 16,
        unit_y * (crop[2] + crop[3]),
    )?;
    Ok(AvcSps {
        profile_idc,
        level_idc,
        id,
        width,
        height,
    })
}

/// Checks an H.264 PPS NAL unit (header byte included): its type and the two ids
/// that open it (H.264 §7.3.2.2).
pub fn parse_avc_pps(nal: &[u8]) -> Result<AvcPps, ErrorKind> {
    let rbsp = avc_rbsp(nal, AVC_PPS, "a PPS NAL unit is not of type 8")?;
    let mut b = Bits::new(&rbsp);
    let id = b.ue_max(255, "PPS: pic_parameter_set_id over 255")?;
    let sps_id = b.ue_max(31, "PPS: seq_parameter_set_id over 31")?;
    Ok(AvcPps { id, sps_id })
}

/// Parses and checks an `hvcC` body (ISO/IEC 14496-15 §8.3.3.1): version 1, a NAL
/// length size of 1, 2 or 4, arrays of VPS, SPS, PPS or SEI NAL units only, each NAL
/// unit inside the record and of its array's type, each SPS parsed by
/// [`parse_hevc_sps`]. Trailing bytes are allowed and not read.
pub fn parse_hevc_config(record: &[u8]) -> Result<HevcConfig<'_>, ErrorKind> {
    let mut r = Record { d: record, pos: 0 };
    if r.u8()? != 1 {
        return Err(ErrorKind::UnsupportedCodec(FourCC::new(b"hvcC")));
    }
    // Profile, tier, level and the stream's properties: 20 bytes the codecs string
    // reads (`codec`), then lengthSizeMinusOne in the low bits of byte 21.
    r.take(20)?;
    let nal_length_size = length_size(r.u8()? & 3)?;
    let count = r.u8()?;
    let mut arrays = Vec::with_capacity(usize::from(count));
    let mut first_sps = None;
    for _ in 0..count {
        // array_completeness, reserved, NAL_unit_type (6 bits).
        let kind = r.u8()? & 0x3f;
        if !matches!(
            kind,
            HEVC_VPS | HEVC_SPS | HEVC_PPS | HEVC_PREFIX_SEI | HEVC_SUFFIX_SEI
        ) {
            // §8.3.3.2: "restricted to take one of the values indicating a VPS, SPS,
            // PPS, prefix SEI, or suffix SEI NAL unit".
            return Err(ErrorKind::Invalid(
                "hvcC: an array of NAL units other than VPS, SPS, PPS or SEI",
            ));
        }
        let n = r.u16()?;
        // Each NAL unit takes at least its 2-byte length: a larger count is a lie.
        if usize::from(n) > r.left() / 2 {
            return Err(ErrorKind::Invalid("hvcC: numNalus larger than the record"));
        }
        let mut nals = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let nal = r.nal()?;
            if hevc_nal_type(nal)? != kind {
                return Err(ErrorKind::Invalid(
                    "hvcC: a NAL unit is not of its array's type",
                ));
            }
            if kind == HEVC_SPS {
                let parsed = parse_hevc_sps(nal)?;
                first_sps.get_or_insert(parsed);
            }
            nals.push(nal);
        }
        arrays.push((kind, nals));
    }
    Ok(HevcConfig {
        nal_length_size,
        arrays,
        first_sps,
    })
}

/// Parses an H.265 SPS NAL unit (2-byte header included) up to its conformance
/// window (H.265 §7.3.2.2.1) and computes the cropped picture size (§7.4.3.2.1).
pub fn parse_hevc_sps(nal: &[u8]) -> Result<HevcSps, ErrorKind> {
    read_hevc_sps(nal).map(|(sps, _)| sps)
}

/// What an `hvcC` needs of an H.265 SPS beyond [`HevcSps`]: `chroma_format_idc`,
/// `bit_depth_luma_minus8`, `bit_depth_chroma_minus8` (§7.3.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HevcSampleFormat {
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

fn read_hevc_sps(nal: &[u8]) -> Result<(HevcSps, HevcSampleFormat), ErrorKind> {
    if hevc_nal_type(nal)? != HEVC_SPS {
        return Err(ErrorKind::Invalid("an SPS NAL unit is not of type 33"));
    }
    let rbsp = unescape(&nal[2..]);
    let mut b = Bits::new(&rbsp);
    b.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = b.bits(3)?; // sps_max_sub_layers_minus1
    if sub_layers > 6 {
        return Err(ErrorKind::Invalid("SPS: sps_max_sub_layers_minus1 over 6"));
    }
    b.flag()?; // sps_temporal_id_nesting_flag
    // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3: 88 bits of general
    // profile, 8 of level, then per sub-layer what its flags say.
    b.skip(88 + 8)?;
    let mut present = [(false, false); 6];
    for p in present.iter_mut().take(sub_layers as usize) {
        *p = (b.flag()?, b.flag()?);
    }
    if sub_layers > 0 {
        b.skip(2 * (8 - sub_layers))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(sub_layers as usize) {
        b.skip(if profile { 88 } else { 0 } + if level { 8 } else { 0 })?;
    }
    let id = b.ue_max(15, "SPS: sps_seq_parameter_set_id over 15")?;
    let chroma_format_idc = b.ue_max(3, "SPS: chroma_format_idc over 3")?;
    let separate_colour_plane = chroma_format_idc == 3 && b.flag()?;
    let width = u64::from(b.ue()?);
    let height = u64::from(b.ue()?);
    let window = if b.flag()? {
        [b.ue()?, b.ue()?, b.ue()?, b.ue()?].map(u64::from)
    } else {
        [0; 4]
    };
    // Table 6-1: SubWidthC, SubHeightC (1, 1 when ChromaArrayType is 0).
    let (sub_w, sub_h) = match (separate_colour_plane, chroma_format_idc) {
        (false, 1) => (2, 2),
        (false, 2) => (2, 1),
        _ => (1, 1),
    };
    let sps = HevcSps {
        id,
        width: picture_size(width, sub_w * (window[0] + window[1]))?,
        height: picture_size(height, sub_h * (window[2] + window[3]))?,
    };
    let format = HevcSampleFormat {
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma_minus8: b.ue_max(8, "SPS: bit_depth_luma_minus8 over 8")? as u8,
        bit_depth_chroma_minus8: b.ue_max(8, "SPS: bit_depth_chroma_minus8 over 8")? as u8,
    };
    Ok((sps, format))
}

/// The record's 2-bit `lengthSizeMinusOne` as a size: "one of 0, 1, or 3
/// corresponding to a length encoded with 1, 2, or 4 bytes" (§5.3.3.2, §8.3.3.2).
fn length_size(minus_one: u8) -> Result<u8, ErrorKind> {
    match minus_one {
        0 | 1 | 3 => Ok(minus_one + 1),
        _ => Err(ErrorKind::Invalid("NAL length size of 3 bytes")),
    }
}

/// `coded - cropped` as a picture dimension: positive and within `u32`.
fn picture_size(coded: u64, cropped: u64) -> Result<u32, ErrorKind> {
    coded
        .checked_sub(cropped)
        .filter(|&v| v > 0)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(ErrorKind::Invalid(
            "SPS: the cropping window leaves no picture",
        ))
}

/// The RBSP of an H.264 NAL unit of type `want`: the header byte checked
/// (forbidden_zero_bit 0, nal_unit_type), emulation prevention removed.
fn avc_rbsp(nal: &[u8], want: u8, wrong: &'static str) -> Result<Vec<u8>, ErrorKind> {
    let &header = nal.first().ok_or(ErrorKind::Invalid("empty NAL unit"))?;
    if header & 0x80 != 0 {
        return Err(ErrorKind::Invalid("NAL unit with forbidden_zero_bit set"));
    }
    if header & 0x1f != want {
        return Err(ErrorKind::Invalid(wrong));
    }
    Ok(unescape(&nal[1..]))
}

/// The type of an H.265 NAL unit from its 2-byte header (H.265 §7.3.1.2).
fn hevc_nal_type(nal: &[u8]) -> Result<u8, ErrorKind> {
    match nal {
        [h, _, ..] if h & 0x80 == 0 => Ok((h >> 1) & 0x3f),
        [_, _, ..] => Err(ErrorKind::Invalid("NAL unit with forbidden_zero_bit set")),
        _ => Err(ErrorKind::Invalid("NAL unit shorter than its header")),
    }
}

/// H.264 §7.4.1 / H.265 §7.4.2: drops each `emulation_prevention_three_byte` (the
/// 0x03 of a 0x000003 sequence). The output is never longer than the input.
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// H.264 §7.3.2.1.1.1 `scaling_list`: only read, to reach the fields after it.
fn scaling_list(b: &mut Bits<'_>, size: usize) -> Result<(), ErrorKind> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(b.se()?);
            if !(-128..=127).contains(&delta) {
                return Err(ErrorKind::Invalid("SPS: delta_scale outside -128..127"));
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// A configuration record's fields, each read bounds-checked.
struct Record<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Record<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.d.len());
        let Some(end) = end else {
            return Err(ErrorKind::Truncated {
                needed: n as u64,
                available: self.left() as u64,
            });
        };
        let out = &self.d[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn left(&self) -> usize {
        self.d.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, ErrorKind> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ErrorKind> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A 16-bit length and that many bytes: one parameter set NAL unit.
    fn nal(&mut self) -> Result<&'a [u8], ErrorKind> {
        let len = usize::from(self.u16()?);
        if len == 0 {
            return Err(ErrorKind::Invalid("a parameter set NAL unit of length 0"));
        }
        if len > self.left() {
            return Err(ErrorKind::Invalid(
                "a parameter set NAL unit longer than the record",
            ));
        }
        self.take(len)
    }
}

/// MSB-first bit reader over an RBSP with exp-Golomb codes (H.264 §9.1).
struct Bits<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(d: &'a [u8]) -> Self {
        Bits { d, pos: 0 }
    }

    fn end() -> ErrorKind {
        ErrorKind::Invalid("parameter set ends inside a field")
    }

    fn flag(&mut self) -> Result<bool, ErrorKind> {
        let byte = *self.d.get(self.pos / 8).ok_or_else(Self::end)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` ≤ 32 bits as an unsigned number.
    fn bits(&mut self, n: u32) -> Result<u32, ErrorKind> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.flag()?);
        }
        Ok(v)
    }

    fn skip(&mut self, n: u32) -> Result<(), ErrorKind> {
        let end = self.pos + n as usize;
        if end > self.d.len() * 8 {
            return Err(Self::end());
        }
        self.pos = end;
        Ok(())
    }

    /// ue(v), §9.1: leading zeros, a 1, then as many bits. Values need at most 32
    /// bits here; a longer code is refused.
    fn ue(&mut self) -> Result<u32, ErrorKind> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err(ErrorKind::Invalid("exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(zeros)?;
        // 2^zeros - 1 + rest ≤ 2^32 - 2 for zeros ≤ 31.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn ue_max(&mut self, max: u32, over: &'static str) -> Result<u32, ErrorKind> {
        let v = self.ue()?;
        if v > max {
            return Err(ErrorKind::Invalid(over));
        }
        Ok(v)
    }

    /// se(v), §9.1.1: k ↦ (−1)^(k+1) ⌈k ÷ 2⌉.
    fn se(&mut self) -> Result<i32, ErrorKind> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests;

//! Decoder configuration records written from parameter sets a door gathered in band
//! (an MPEG-TS stream carries SPS and PPS NAL units before each keyframe, no record):
//! `avcC` (ISO/IEC 14496-15 §5.3.3.1) and `hvcC` (§8.3.3.1), always with 4-byte NAL
//! unit lengths. Each record is read back by `parse_avc_config` /
//! `parse_hevc_config` before it is returned, so a record built here is one an
//! uploaded init could carry.
//!
//! The `avcC` High-profile extension (chroma format and bit depths) is optional for
//! readers in practice and is not written; the `hvcC` fields that describe the
//! stream are taken from the first SPS (its `profile_tier_level`, chroma format and
//! bit depths).

use super::{
    HEVC_PPS, HEVC_SPS, HEVC_VPS, hevc_nal_type, parse_avc_config, parse_avc_pps, parse_avc_sps,
    parse_hevc_config, read_hevc_sps, unescape,
};
use crate::error::ErrorKind;

/// An `avcC` body from SPS (type 7) and PPS (type 8) NAL units, header bytes
/// included; at least one of each, at most 31 SPS and 255 PPS, each under 64 KiB.
pub fn build_avc_config(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Vec<u8>, ErrorKind> {
    let first = sps
        .first()
        .ok_or(ErrorKind::Invalid("avcC: no SPS to build from"))?;
    if pps.is_empty() {
        return Err(ErrorKind::Invalid("avcC: no PPS to build from"));
    }
    if sps.len() > 31 || pps.len() > 255 {
        return Err(ErrorKind::Invalid("avcC: too many parameter sets"));
    }
    for nal in sps {
        parse_avc_sps(nal)?;
    }
    for nal in pps {
        parse_avc_pps(nal)?;
    }
    let [_, profile, compat, level, ..] = **first else {
        return Err(ErrorKind::Invalid("SPS shorter than its profile and level"));
    };
    let mut out = Vec::with_capacity(7 + total_len(sps) + total_len(pps));
    // configurationVersion, AVCProfileIndication, profile_compatibility,
    // AVCLevelIndication, '111111' lengthSizeMinusOne = 3, '111' numOfSPS.
    out.extend_from_slice(&[1, profile, compat, level, 0xff, 0xe0 | sps.len() as u8]);
    put_nal_units(&mut out, sps)?;
    out.push(pps.len() as u8);
    put_nal_units(&mut out, pps)?;
    parse_avc_config(&out)?;
    Ok(out)
}

/// An `hvcC` body from VPS (type 32), SPS (33) and PPS (34) NAL units, 2-byte
/// headers included; at least one of each, each under 64 KiB.
pub fn build_hevc_config(
    vps: &[&[u8]],
    sps: &[&[u8]],
    pps: &[&[u8]],
) -> Result<Vec<u8>, ErrorKind> {
    let first = sps
        .first()
        .ok_or(ErrorKind::Invalid("hvcC: no SPS to build from"))?;
    if vps.is_empty() || pps.is_empty() {
        return Err(ErrorKind::Invalid(
            "hvcC: a VPS, an SPS and a PPS are needed",
        ));
    }
    for (list, kind) in [(vps, HEVC_VPS), (pps, HEVC_PPS), (sps, HEVC_SPS)] {
        if list.len() > 0xffff {
            return Err(ErrorKind::Invalid("hvcC: too many parameter sets"));
        }
        for nal in list {
            if hevc_nal_type(nal)? != kind {
                return Err(ErrorKind::Invalid(
                    "hvcC: a NAL unit is not of its array's type",
                ));
            }
        }
    }
    let (_, format) = read_hevc_sps(first)?;
    // §7.3.2.2.1: after the 2-byte header, one byte of sps_video_parameter_set_id,
    // sps_max_sub_layers_minus1 and sps_temporal_id_nesting_flag, then the 12 bytes
    // of general profile, tier and level (§7.3.3), byte-aligned.
    let rbsp = unescape(first.get(2..).unwrap_or_default());
    let (Some(&layers), Some(ptl)) = (rbsp.first(), rbsp.get(1..13)) else {
        return Err(ErrorKind::Invalid(
            "SPS shorter than its profile_tier_level",
        ));
    };
    let sub_layers_minus1 = (layers >> 1) & 7;
    let nested = layers & 1;
    let mut out = Vec::with_capacity(23 + 3 * 5 + total_len(vps) + total_len(sps) + total_len(pps));
    out.push(1); // configurationVersion
    out.extend_from_slice(ptl); // profile space..level_idc: 1 + 4 + 6 + 1 bytes
    out.extend_from_slice(&[
        0xf0,
        0x00, // '1111' min_spatial_segmentation_idc = 0
        0xfc, // '111111' parallelismType = 0 (unknown)
        0xfc | format.chroma_format_idc,
        0xf8 | format.bit_depth_luma_minus8,
        0xf8 | format.bit_depth_chroma_minus8,
        0x00,
        0x00, // avgFrameRate: unspecified
        // constantFrameRate 0, numTemporalLayers, temporalIdNested,
        // lengthSizeMinusOne = 3.
        ((sub_layers_minus1 + 1) << 3) | (nested << 2) | 3,
        3, // numOfArrays
    ]);
    for (list, kind) in [(vps, HEVC_VPS), (sps, HEVC_SPS), (pps, HEVC_PPS)] {
        out.push(0x80 | kind); // array_completeness = 1: all of them are here
        out.extend_from_slice(&(list.len() as u16).to_be_bytes());
        put_nal_units(&mut out, list)?;
    }
    parse_hevc_config(&out)?;
    Ok(out)
}

fn total_len(nals: &[&[u8]]) -> usize {
    nals.iter().map(|n| 2 + n.len()).sum()
}

/// Each NAL unit after its 16-bit length.
fn put_nal_units(out: &mut Vec<u8>, nals: &[&[u8]]) -> Result<(), ErrorKind> {
    for nal in nals {
        let len = u16::try_from(nal.len())
            .map_err(|_| ErrorKind::Invalid("a parameter set over 64 KiB"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    Ok(())
}

//! RFC 6381 `codecs` strings from sample entries and their configuration records, as
//! HLS `CODECS` attributes need them (RFC 8216 §4.3.4.2).
//!
//! Owns the bit layouts of the configuration records it reads: `avcC` (ISO/IEC
//! 14496-15 §5.3.3), `hvcC` (§8.3.3 and Annex E), `av1C` (AV1-ISOBMFF §2.3 and its
//! "Codecs Parameter String" section), `esds` (ISO/IEC 14496-1 §7.2.6 descriptors and
//! 14496-3 §1.6.2.1 `AudioSpecificConfig`). Walking the sample entry itself is `init`'s;
//! walking an `avcC`'s or `hvcC`'s parameter sets is `params`'.

use crate::error::ErrorKind;
use crate::model::FourCC;
use crate::params;
use std::fmt::Write as _;

/// What a configuration record told us: the codecs string, plus the audio rate and
/// channels where the record is more truthful than the 16-bit sample entry fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CodecInfo {
    pub(crate) codec: String,
    pub(crate) sample_rate: Option<u32>,
    pub(crate) channels: Option<u16>,
}

impl CodecInfo {
    fn codec(codec: String) -> Self {
        CodecInfo {
            codec,
            ..Default::default()
        }
    }
}

/// The configuration box a sample entry format carries, if it has one we read.
pub(crate) fn config_box(format: FourCC) -> Option<&'static [u8; 4]> {
    Some(match &format.0 {
        b"avc1" | b"avc3" => b"avcC",
        b"hvc1" | b"hev1" => b"hvcC",
        b"av01" => b"av1C",
        b"mp4a" => b"esds",
        b"Opus" => b"dOps",
        b"ac-3" => b"dac3",
        b"ec-3" => b"dec3",
        _ => return None,
    })
}

/// The codecs string for `format` given the body of its configuration box (`None` when
/// the entry has none). `Err` carries the reason as a static string. An `avcC` or
/// `hvcC` is first checked whole ([`params`]): a record that lies about its parameter
/// sets is refused here, for an uploaded init and a fragmenter's alike.
pub(crate) fn describe(format: FourCC, config: Option<&[u8]>) -> Result<CodecInfo, ErrorKind> {
    if let Some(c) = config {
        params::check_config(format, c)?;
    }
    let need = || ErrorKind::Missing(FourCC(*config_box(format).unwrap_or(b"    ")));
    match &format.0 {
        b"avc1" | b"avc3" => avc(format, config.ok_or_else(need)?),
        b"hvc1" | b"hev1" => hevc(format, config.ok_or_else(need)?),
        b"av01" => av1(config.ok_or_else(need)?),
        b"mp4a" => mp4a(config.ok_or_else(need)?),
        // RFC 6381 names for these carry no parameters (Opus in ISOBMFF §4.5; ETSI
        // TS 102 366 Annex F for AC-3 and E-AC-3).
        b"Opus" => Ok(opus(config)),
        b"ac-3" => Ok(CodecInfo::codec("ac-3".into())),
        b"ec-3" => Ok(CodecInfo::codec("ec-3".into())),
        _ => Err(ErrorKind::UnsupportedCodec(format)),
    }
}

fn short() -> ErrorKind {
    ErrorKind::Invalid("codec configuration record too short")
}

/// `avc1.PPCCLL`: profile_idc, constraint flags, level_idc from `avcC` bytes 1..4.
fn avc(format: FourCC, c: &[u8]) -> Result<CodecInfo, ErrorKind> {
    let [_, profile, compat, level, ..] = *c else {
        return Err(short());
    };
    Ok(CodecInfo::codec(format!(
        "{format}.{profile:02x}{compat:02x}{level:02x}"
    )))
}

/// ISO/IEC 14496-15 Annex E.3: `hvc1.[A-C]?profile.compat.Ttier-level(.constraint)*`.
fn hevc(format: FourCC, c: &[u8]) -> Result<CodecInfo, ErrorKind> {
    if c.len() < 13 {
        return Err(short());
    }
    let space = c[1] >> 6;
    let tier = if c[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = c[1] & 0x1f;
    let compat = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
    let constraints = &c[6..12];
    let level = c[12];
    let mut s = format!("{format}.");
    if space > 0 {
        s.push(char::from(b'A' + space - 1));
    }
    // "general_profile_compatibility_flags ... in reverse bit order", in hex with
    // leading zeros omitted.
    let _ = write!(s, "{profile}.{:X}.{tier}{level}", compat.reverse_bits());
    // "each of the 6 bytes of the constraint flags ... trailing bytes that are zero
    // may be omitted".
    let kept = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in &constraints[..kept] {
        let _ = write!(s, ".{b:X}");
    }
    Ok(CodecInfo::codec(s))
}

/// `av01.P.LLT.DD` (AV1-ISOBMFF "Codecs Parameter String"; the optional trailing
/// fields are left out, which the spec allows).
fn av1(c: &[u8]) -> Result<CodecInfo, ErrorKind> {
    let [marker, b1, b2, ..] = *c else {
        return Err(short());
    };
    if marker & 0x80 == 0 {
        return Err(ErrorKind::Invalid("av1C marker bit is 0"));
    }
    let profile = b1 >> 5;
    let level = b1 & 0x1f;
    let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
    let high_bitdepth = b2 & 0x40 != 0;
    let twelve_bit = b2 & 0x20 != 0;
    let depth = match (high_bitdepth, twelve_bit && profile == 2) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    Ok(CodecInfo::codec(format!(
        "av01.{profile}.{level:02}{tier}.{depth:02}"
    )))
}

/// `opus`; the channel count comes from `dOps` (Opus in ISOBMFF §4.3.2), whose
/// OutputChannelCount is byte 1. Opus always decodes at 48 kHz.
fn opus(config: Option<&[u8]>) -> CodecInfo {
    CodecInfo {
        codec: "opus".into(),
        sample_rate: Some(48_000),
        channels: config.and_then(|c| c.get(1)).map(|&n| u16::from(n)),
    }
}

/// `mp4a.OO[.A]`: objectTypeIndication in hex, then for MPEG-4 audio (0x40) the
/// AudioSpecificConfig audioObjectType in decimal (RFC 6381 §3.3).
fn mp4a(esds: &[u8]) -> Result<CodecInfo, ErrorKind> {
    // esds is a FullBox: version and flags come first.
    let mut d = Descriptors {
        d: esds.get(4..).ok_or_else(short)?,
    };
    let es = d.expect(0x03)?;
    let mut es = Descriptors { d: es };
    let flags = es.bytes(3)?[2];
    if flags & 0x80 != 0 {
        es.bytes(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let n = es.bytes(1)?[0];
        es.bytes(usize::from(n))?; // URL
    }
    if flags & 0x20 != 0 {
        es.bytes(2)?; // OCR_ES_Id
    }
    let dc = es.expect(0x04)?;
    let mut dc = Descriptors { d: dc };
    let fixed = dc.bytes(13)?;
    let oti = fixed[0];
    let mut info = CodecInfo::codec(format!("mp4a.{oti:02x}"));
    if oti == 0x40 {
        if let Ok(asc) = dc.expect(0x05) {
            let asc = audio_specific_config(asc)?;
            let _ = write!(info.codec, ".{}", asc.0);
            info.sample_rate = asc.1;
            info.channels = asc.2;
        }
    }
    Ok(info)
}

/// (audioObjectType, sampling frequency, channels) from 14496-3 §1.6.2.1.
fn audio_specific_config(c: &[u8]) -> Result<(u8, Option<u32>, Option<u16>), ErrorKind> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits = Bits { d: c, pos: 0 };
    let mut aot = bits.read(5)?;
    if aot == 31 {
        aot = 32 + bits.read(6)?;
    }
    let index = bits.read(4)?;
    let rate = if index == 0xf {
        Some(bits.read(24)?)
    } else {
        RATES.get(index as usize).copied()
    };
    let channel_config = bits.read(4)?;
    // Configurations 1-6 are that many channels; 7 is 7.1 (8); 0 means "in the PCE".
    let channels = match channel_config {
        1..=6 => Some(channel_config as u16),
        7 => Some(8),
        _ => None,
    };
    // aot fits: at most 32 + 63.
    Ok((aot as u8, rate, channels))
}

/// 14496-1 §8.3.3 descriptors: a tag byte, a length of 1-4 bytes of 7 bits each.
struct Descriptors<'a> {
    d: &'a [u8],
}

impl<'a> Descriptors<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        if n > self.d.len() {
            return Err(short());
        }
        let (head, tail) = self.d.split_at(n);
        self.d = tail;
        Ok(head)
    }

    /// The body of the next descriptor, which must carry `tag`.
    fn expect(&mut self, tag: u8) -> Result<&'a [u8], ErrorKind> {
        let t = self.bytes(1)?[0];
        if t != tag {
            return Err(ErrorKind::Invalid("unexpected esds descriptor tag"));
        }
        let mut len = 0usize;
        for _ in 0..4 {
            let b = self.bytes(1)?[0];
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                return self.bytes(len);
            }
        }
        Err(ErrorKind::Invalid(
            "esds descriptor length longer than 4 bytes",
        ))
    }
}

/// MSB-first bit reader.
struct Bits<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, ErrorKind> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.d.get(self.pos / 8).ok_or_else(short)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(format: &[u8; 4], config: &[u8]) -> String {
        describe(FourCC(*format), Some(config)).unwrap().codec
    }

    /// `tests/fixtures/h264_aac`'s avcC with its level (record byte 3, SPS byte 3)
    /// raised to 3.1: `describe` checks the parameter sets, so the records here are
    /// whole ones.
    fn avcc_64001f() -> Vec<u8> {
        let mut c = vec![
            0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9,
            0x41, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03,
            0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0xbc, 0xb0, 0xfd,
            0xf8, 0xf8, 0x00,
        ];
        c[3] = 0x1f;
        c[11] = 0x1f;
        c
    }

    /// `tests/fixtures/hevc`'s hvcC from byte 13 on (its VPS, SPS and PPS arrays)
    /// behind the 13 profile bytes `head` that the codecs string reads.
    fn hvcc_with(head: &[u8]) -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/hevc/init.mp4"
        );
        let init = std::fs::read(path).unwrap();
        let at = init.windows(4).position(|w| w == b"hvcC").unwrap();
        let size = u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize;
        let mut c = head.to_vec();
        c.extend_from_slice(&init[at + 4 + 13..at - 4 + size]);
        c
    }

    #[test]
    fn avc_string_is_profile_compat_level() {
        assert_eq!(s(b"avc1", &avcc_64001f()), "avc1.64001f");
        // avc3 may carry its parameter sets in band: none in the record.
        assert_eq!(
            s(b"avc3", &[1, 0x4d, 0x40, 0x1e, 0xff, 0xe0, 0]),
            "avc3.4d401e"
        );
    }

    #[test]
    fn hevc_string_follows_annex_e() {
        // Annex E.3's example: Main profile, compat flag 1 and 2, level 3.1, progressive
        // source and frame-only constraints set: "hvc1.1.6.L93.B0".
        let mut c = vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        assert_eq!(s(b"hvc1", &hvcc_with(&c)), "hvc1.1.6.L93.B0");
        // Main 10, high tier, profile space 1: "hev1.A2.4.H120.B0".
        c[1] = 0x40 | 0x20 | 2;
        c[2] = 0x20;
        c[12] = 120;
        assert_eq!(s(b"hev1", &hvcc_with(&c)), "hev1.A2.4.H120.B0");
    }

    #[test]
    fn av1_string() {
        // seq_profile 0, level 8, main tier, 8 bit.
        assert_eq!(s(b"av01", &[0x81, 0x08, 0x0c, 0]), "av01.0.08M.08");
        // profile 2, level 13, high tier, 12 bit.
        assert_eq!(
            s(b"av01", &[0x81, (2 << 5) | 13, 0x80 | 0x40 | 0x20, 0]),
            "av01.2.13H.12"
        );
    }

    #[test]
    fn mp4a_reads_object_type_and_audio_object_type() {
        // esds as ffmpeg writes it for AAC-LC 48 kHz stereo.
        let esds = [
            0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x22, 0x00, 0x02, 0x00, 0x04, 0x80, 0x80, 0x80,
            0x14, 0x40, 0x15, 0, 0, 0, 0, 1, 0xf4, 0, 0, 1, 0xf4, 0, 0x05, 0x80, 0x80, 0x80, 0x02,
            0x11, 0x90, 0x06, 0x80, 0x80, 0x80, 0x01, 0x02,
        ];
        let info = describe(FourCC(*b"mp4a"), Some(&esds)).unwrap();
        assert_eq!(info.codec, "mp4a.40.2");
        assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(2)));
    }

    #[test]
    fn unknown_format_and_short_records_are_errors() {
        assert_eq!(
            describe(FourCC(*b"vp09"), None),
            Err(ErrorKind::UnsupportedCodec(FourCC(*b"vp09")))
        );
        assert_eq!(
            describe(FourCC(*b"avc1"), None),
            Err(ErrorKind::Missing(FourCC(*b"avcC")))
        );
        assert!(describe(FourCC(*b"hvc1"), Some(&[1, 2, 3])).is_err());
        assert!(describe(FourCC(*b"mp4a"), Some(&[0, 0, 0, 0, 3, 0x80])).is_err());
    }
}

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// `h264_aac/init.mp4`'s `avcC` (ffmpeg, libx264 High, 320x180): one SPS of 26
/// bytes, one PPS of 4, the High-profile extension.
const AVCC: &str =
    "0164000dffe1001a6764000dacd941419f9f0110000003001000000303c0f142996001000468efbcb0fdf8f800";
/// Offsets in [`AVCC`]: lengthSizeMinusOne, numOfSequenceParameterSets, the SPS's
/// length, its header byte, numOfPictureParameterSets, the PPS's header byte.
const LEN_SIZE: usize = 4;
const SPS_COUNT: usize = 5;
const SPS_LEN: usize = 6;
const SPS_NAL: usize = 8;
const PPS_COUNT: usize = 34;
const PPS_NAL: usize = 37;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn avcc() -> Vec<u8> {
    let c = hex(AVCC);
    assert_eq!(c, fixture_box("h264_aac/init.mp4", b"avcC"));
    assert_eq!((c[SPS_NAL], c[PPS_COUNT], c[PPS_NAL]), (0x67, 1, 0x68));
    c
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The body of the first `kind` box in a fixture file, found by its type.
fn fixture_box(file: &str, kind: &[u8; 4]) -> Vec<u8> {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let at = bytes.windows(4).position(|w| w == kind).unwrap();
    let size = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) as usize;
    bytes[at + 4..at - 4 + size].to_vec()
}

fn invalid(r: Result<impl std::fmt::Debug, ErrorKind>) -> &'static str {
    match r {
        Err(ErrorKind::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn ffmpeg_avcc_is_read_whole() {
    let c = avcc();
    let r = parse_avc_config(&c).unwrap();
    assert_eq!(
        (r.profile_idc, r.constraint_flags, r.level_idc),
        (0x64, 0, 0x0d)
    );
    assert_eq!(r.nal_length_size, 4);
    assert_eq!((r.sps.len(), r.pps.len()), (1, 1));
    assert_eq!((r.sps[0].len(), r.pps[0].len()), (26, 4));
    let sps = r.first_sps.unwrap();
    assert_eq!((sps.profile_idc, sps.level_idc, sps.id), (100, 13, 0));
    assert_eq!(
        parse_avc_pps(r.pps[0]).unwrap(),
        AvcPps { id: 0, sps_id: 0 }
    );
    check_config(FourCC::new(b"avc1"), &c).unwrap();
}

/// The probe's case: an SPS length larger than what the box holds.
#[test]
fn avcc_with_a_lying_sps_length_is_refused() {
    for len in [27u16, 200, u16::MAX] {
        let mut c = avcc();
        c[SPS_LEN..SPS_LEN + 2].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            invalid(parse_avc_config(&c)),
            "a parameter set NAL unit longer than the record",
            "SPS length {len}"
        );
    }
    // One byte short: the SPS ends inside its fields or the PPS count is misread.
    let mut c = avcc();
    c[SPS_LEN + 1] = 25;
    assert!(parse_avc_config(&c).is_err());
    // Zero.
    let mut c = avcc();
    c[SPS_LEN + 1] = 0;
    assert_eq!(
        invalid(parse_avc_config(&c)),
        "a parameter set NAL unit of length 0"
    );
}

#[test]
fn avc1_without_an_sps_or_pps_is_refused_avc3_may_carry_them_in_band() {
    // numOfSequenceParameterSets 0 (reserved bits kept), then the PPS list only.
    let mut no_sps = avcc()[..SPS_COUNT + 1].to_vec();
    no_sps[SPS_COUNT] = 0xe0;
    no_sps.extend_from_slice(&[0]);
    let r = parse_avc_config(&no_sps).unwrap();
    assert!(r.sps.is_empty() && r.first_sps.is_none());
    assert!(invalid(check_config(FourCC::new(b"avc1"), &no_sps)).contains("one SPS"));
    check_config(FourCC::new(b"avc3"), &no_sps).unwrap();

    let no_pps = avcc()[..PPS_COUNT]
        .iter()
        .copied()
        .chain([0])
        .collect::<Vec<_>>();
    assert!(invalid(check_config(FourCC::new(b"avc1"), &no_pps)).contains("one PPS"));
    // The probe's shorter lie: the record ends where its PPS count should be.
    assert!(matches!(
        parse_avc_config(&avcc()[..PPS_COUNT]),
        Err(ErrorKind::Truncated { .. })
    ));
}

#[test]
fn parameter_sets_of_the_wrong_nal_type_are_refused() {
    // The SPS slot holding a PPS header (type 8), an IDR slice (5), a set
    // forbidden_zero_bit; the PPS slot holding an SPS header.
    for (at, byte, why) in [
        (SPS_NAL, 0x68, "an SPS NAL unit is not of type 7"),
        (SPS_NAL, 0x65, "an SPS NAL unit is not of type 7"),
        (SPS_NAL, 0xe7, "NAL unit with forbidden_zero_bit set"),
        (PPS_NAL, 0x67, "a PPS NAL unit is not of type 8"),
    ] {
        let mut c = avcc();
        c[at] = byte;
        assert_eq!(invalid(parse_avc_config(&c)), why, "byte {at} = {byte:#x}");
    }
}

#[test]
fn other_avcc_lies_are_refused() {
    // §5.3.3.2: an unknown configurationVersion is not ours to read (415).
    let mut c = avcc();
    c[0] = 2;
    assert_eq!(
        parse_avc_config(&c),
        Err(ErrorKind::UnsupportedCodec(FourCC::new(b"avcC")))
    );
    // lengthSizeMinusOne 2: a 3-byte length the spec does not allow.
    let mut c = avcc();
    c[LEN_SIZE] = 0xfe;
    assert_eq!(invalid(parse_avc_config(&c)), "NAL length size of 3 bytes");
    // A PPS naming SPS 1 where the record holds SPS 0 only: the PPS's RBSP opens
    // with ue(0)=1 then ue(0)=1; 0b1_010 makes seq_parameter_set_id 1.
    let mut c = avcc();
    c[PPS_NAL + 1] = 0b1010_0000 | (c[PPS_NAL + 1] & 0x0f);
    assert_eq!(
        invalid(parse_avc_config(&c)),
        "avcC: a PPS names an SPS the record lacks"
    );
    // Two SPS counted, one present.
    let mut c = avcc();
    c[SPS_COUNT] = 0xe2;
    assert!(parse_avc_config(&c).is_err());
    // Every proper prefix of the record is refused (none is a shorter valid record).
    let c = avcc();
    for end in 0..PPS_NAL + 4 {
        assert!(parse_avc_config(&c[..end]).is_err(), "prefix of {end}");
    }
}

#[test]
fn sps_parsing_covers_cropping_and_refuses_what_leaves_no_picture() {
    let c = avcc();
    let sps = &c[SPS_NAL..SPS_NAL + 26];
    assert_eq!(parse_avc_sps(sps).unwrap().width, 320);
    // Truncated inside its fields.
    assert_eq!(
        invalid(parse_avc_sps(&sps[..6])),
        "parameter set ends inside a field"
    );
    assert!(parse_avc_sps(&[]).is_err());
    // A made-up Baseline SPS: 1 macroblock wide and high, cropped by 8 columns on
    // each side (crop unit 2): nothing left.
    let mut b = BitWriter::default();
    b.bits(0x67, 8);
    b.bits(66, 8); // profile_idc Baseline: no chroma fields
    b.bits(0, 8);
    b.bits(30, 8);
    b.ue(0); // seq_parameter_set_id
    b.ue(0); // log2_max_frame_num_minus4
    b.ue(2); // pic_order_cnt_type
    b.ue(1); // max_num_ref_frames
    b.bits(0, 1);
    b.ue(0); // pic_width_in_mbs_minus1
    b.ue(0); // pic_height_in_map_units_minus1
    b.bits(1, 1); // frame_mbs_only_flag
    b.bits(1, 1); // direct_8x8_inference_flag
    b.bits(1, 1); // frame_cropping_flag
    let good = {
        let mut g = b.clone();
        for v in [1, 1, 0, 0] {
            g.ue(v);
        }
        g.bits(0, 1);
        g.finish()
    };
    let sps = parse_avc_sps(&good).unwrap();
    assert_eq!((sps.width, sps.height), (12, 16));
    for v in [4, 4, 0, 0] {
        b.ue(v);
    }
    b.bits(0, 1);
    assert_eq!(
        invalid(parse_avc_sps(&b.finish())),
        "SPS: the cropping window leaves no picture"
    );
}

#[test]
fn emulation_prevention_bytes_are_dropped() {
    assert_eq!(
        unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
        [0, 0, 1, 0, 0, 0, 0]
    );
    assert_eq!(unescape(&[0, 3, 0, 0, 0, 3]), [0, 3, 0, 0, 0]);
    // The fixture's SPS has one (`00 00 03 00 10`); its size depends on skipping it.
    assert!(AVCC.contains("0000030010"));
}

#[test]
fn exp_golomb_codes() {
    // §9.1 Table 9-2: 1 → 0, 010 → 1, 011 → 2, 00100 → 3; se: 1, -1, 2.
    let d = [0b1010_0110, 0b0100_0000];
    let mut b = Bits::new(&d);
    assert_eq!(
        (b.ue(), b.ue(), b.ue(), b.ue()),
        (Ok(0), Ok(1), Ok(2), Ok(3))
    );
    let mut b = Bits::new(&d[..1]);
    b.bits(1).unwrap();
    assert_eq!((b.se(), b.se()), (Ok(1), Ok(-1)));
    // 32 zeros: longer than any value read here.
    let mut b = Bits::new(&[0, 0, 0, 0, 0x80]);
    assert!(b.ue().is_err());
}

/// `hevc/init.mp4`'s `hvcC` (ffmpeg, libx265 Main, 320x180).
fn hvcc() -> Vec<u8> {
    fixture_box("hevc/init.mp4", b"hvcC")
}

/// Offsets of each array's header byte in `c`.
fn hvcc_arrays(c: &[u8]) -> Vec<usize> {
    let mut pos = 23;
    let mut out = Vec::new();
    for _ in 0..c[22] {
        out.push(pos);
        let n = u16::from_be_bytes([c[pos + 1], c[pos + 2]]);
        pos += 3;
        for _ in 0..n {
            pos += 2 + usize::from(u16::from_be_bytes([c[pos], c[pos + 1]]));
        }
    }
    out
}

#[test]
fn ffmpeg_hvcc_is_read_whole() {
    let c = hvcc();
    let r = parse_hevc_config(&c).unwrap();
    let kinds: Vec<u8> = r.arrays.iter().map(|(k, _)| *k).collect();
    // VPS, SPS, PPS and x265's prefix SEI (its version string).
    assert_eq!(kinds, [32, 33, 34, 39]);
    assert_eq!(r.nal_length_size, 4);
    let sps = r.first_sps.unwrap();
    assert_eq!((sps.id, sps.width, sps.height), (0, 320, 180));
    check_config(FourCC::new(b"hvc1"), &c).unwrap();
}

#[test]
fn hvcc_lies_are_refused() {
    let c = hvcc();
    let arrays = hvcc_arrays(&c);
    let sps_array = arrays[1];
    assert_eq!(c[sps_array] & 0x3f, 33);
    // The SPS's length past the end of the record.
    let mut bad = c.clone();
    bad[sps_array + 3..sps_array + 5].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        invalid(parse_hevc_config(&bad)),
        "a parameter set NAL unit longer than the record"
    );
    // An array declaring slice NAL units (type 1).
    let mut bad = c.clone();
    bad[sps_array] = (c[sps_array] & 0xc0) | 1;
    assert!(invalid(parse_hevc_config(&bad)).contains("other than VPS, SPS, PPS or SEI"));
    // The SPS array relabelled as a PPS array: its NAL unit's own type disagrees.
    let mut bad = c.clone();
    bad[sps_array] = (c[sps_array] & 0xc0) | 34;
    assert_eq!(
        invalid(parse_hevc_config(&bad)),
        "hvcC: a NAL unit is not of its array's type"
    );
    // numNalus far past what the record holds.
    let mut bad = c.clone();
    bad[sps_array + 1..sps_array + 3].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        invalid(parse_hevc_config(&bad)),
        "hvcC: numNalus larger than the record"
    );
    // Without its PPS array (numOfArrays 2: VPS and SPS), hvc1 is refused; hev1
    // may carry it in band.
    let mut two = c[..arrays[2]].to_vec();
    two[22] = 2;
    parse_hevc_config(&two).unwrap();
    assert!(invalid(check_config(FourCC::new(b"hvc1"), &two)).contains("a PPS"));
    check_config(FourCC::new(b"hev1"), &two).unwrap();
    // An unknown version; a 3-byte length size.
    let mut bad = c.clone();
    bad[0] = 0;
    assert_eq!(
        parse_hevc_config(&bad),
        Err(ErrorKind::UnsupportedCodec(FourCC::new(b"hvcC")))
    );
    let mut bad = c.clone();
    bad[21] = (c[21] & 0xfc) | 2;
    assert_eq!(
        invalid(parse_hevc_config(&bad)),
        "NAL length size of 3 bytes"
    );
    // Every prefix that cuts a NAL unit short is refused.
    for end in 0..arrays[3] {
        assert!(parse_hevc_config(&c[..end]).is_err(), "prefix of {end}");
    }
}

proptest! {
    /// No input panics any parser, and none allocates past its input.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_avc_config(&data);
        let _ = parse_avc_sps(&data);
        let _ = parse_avc_pps(&data);
        let _ = parse_hevc_config(&data);
        let _ = parse_hevc_sps(&data);
    }

    /// One byte of the ffmpeg records changed: never a panic, and a record that still
    /// parses keeps every NAL unit inside it.
    #[test]
    fn mutated_records_never_panic(at in 0usize..400, byte in any::<u8>()) {
        let mut c = avcc();
        let i = at % c.len();
        c[i] = byte;
        if let Ok(r) = parse_avc_config(&c) {
            let held: usize = r.sps.iter().chain(&r.pps).map(|n| n.len() + 2).sum();
            prop_assert!(held + 7 <= c.len());
        }
        let mut h = hvcc();
        let i = at % h.len();
        h[i] = byte;
        let _ = parse_hevc_config(&h);
    }
}

/// Writes H.264 syntax elements MSB first, for made-up parameter sets.
#[derive(Clone, Default)]
struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bits.push((v >> i) & 1 == 1);
        }
    }

    fn ue(&mut self, v: u32) {
        let code = u64::from(v) + 1;
        let len = 64 - code.leading_zeros();
        self.bits(0, len - 1);
        for i in (0..len).rev() {
            self.bits.push((code >> i) & 1 == 1);
        }
    }

    /// The bytes, with the RBSP stop bit and zero padding.
    fn finish(mut self) -> Vec<u8> {
        self.bits.push(true);
        while self.bits.len() % 8 != 0 {
            self.bits.push(false);
        }
        self.bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b)))
            .collect()
    }
}

/// ISO/IEC 14496-15 §5.3.3.1: rebuilt from ffmpeg's parameter sets, the `avcC` is
/// ffmpeg's up to the High-profile extension, which `build_avc_config` leaves out.
#[test]
fn avcc_is_rebuilt_from_its_parameter_sets() {
    let c = avcc();
    let r = parse_avc_config(&c).unwrap();
    let built = build_avc_config(&r.sps, &r.pps).unwrap();
    assert_eq!(built[..], c[..PPS_NAL + r.pps[0].len()]);
    assert_eq!(
        invalid(build_avc_config(&r.sps, &[])),
        "avcC: no PPS to build from"
    );
    assert_eq!(
        invalid(build_avc_config(&r.pps, &r.sps)),
        "an SPS NAL unit is not of type 7"
    );
}

/// §8.3.3.1: rebuilt from ffmpeg's VPS, SPS and PPS, the `hvcC` has ffmpeg's
/// profile, tier, level, chroma format, bit depths, temporal layers and length
/// size, and the same three arrays (ffmpeg's fourth, x265's SEI, is not carried).
#[test]
fn hvcc_is_rebuilt_from_its_parameter_sets() {
    let c = hvcc();
    let r = parse_hevc_config(&c).unwrap();
    let of = |t: u8| r.arrays.iter().find(|(k, _)| *k == t).unwrap().1.clone();
    let built = build_hevc_config(&of(32), &of(33), &of(34)).unwrap();
    // Bytes 1..13 profile/tier/level, 16..19 chroma and bit depths, 21 layers and
    // length size; min_spatial_segmentation and parallelism (13..16) are written
    // as unknown, avgFrameRate (19..21) as unspecified.
    assert_eq!(built[1..13], c[1..13]);
    assert_eq!(built[16..19], c[16..19]);
    assert_eq!(built[21], c[21]);
    let rebuilt = parse_hevc_config(&built).unwrap();
    assert_eq!(rebuilt.first_sps, r.first_sps);
    let kinds: Vec<u8> = rebuilt.arrays.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [32, 33, 34]);
    assert_eq!(
        invalid(build_hevc_config(&[], &of(33), &of(34))),
        "hvcC: a VPS, an SPS and a PPS are needed"
    );
}

//! `dvrclip_fmp4::params` on every ffmpeg fixture (tests/fixtures/README.md): each
//! SPS of an `avcC`/`hvcC` gives the picture size ffmpeg wrote in the sample entry
//! from the same SPS, and an init whose `avcC` lies is refused naming the box.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dvrclip_fmp4::params::{parse_avc_config, parse_hevc_config};
use dvrclip_fmp4::{ErrorKind, parse_init};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn every_fixture_sps_gives_the_size_ffmpeg_wrote() {
    // The sample entry's width and height are what ffmpeg wrote from the same SPS
    // (tests/fixtures/README.md lists the sizes): cropping included, 320x180 is 12
    // macroblock rows cropped by 12, 426x240 is 27 columns cropped by 6.
    let mut seen = 0;
    for init in [
        "h264_aac/init.mp4",
        "video_only/init.mp4",
        "negative_cto/init.mp4",
        "long_gop/init.mp4",
        "restart/a/init.mp4",
        "restart/b/init.mp4",
        "bench_720p/init.mp4",
        "ladder/media_1_144/init_2.mp4",
        "ladder/media_2_180/init_1.mp4",
        "ladder/media_3_240/init_0.mp4",
        "agroup/media_1_90/init_1.mp4",
        "agroup/media_2_144/init_0.mp4",
        "chunked/video/init-stream0.m4s",
        "hevc/init.mp4",
    ] {
        let bytes = std::fs::read(fixtures().join(init)).unwrap();
        let parsed = parse_init(Bytes::from(bytes)).unwrap();
        for t in &parsed.tracks {
            let Some(video) = t.entry.video else { continue };
            let (width, height) = match &t.entry.format.0 {
                b"avc1" | b"avc3" => {
                    let sps = parse_avc_config(&t.entry.config).unwrap().first_sps;
                    let sps = sps.unwrap();
                    (sps.width, sps.height)
                }
                b"hvc1" | b"hev1" => {
                    let sps = parse_hevc_config(&t.entry.config).unwrap().first_sps;
                    let sps = sps.unwrap();
                    (sps.width, sps.height)
                }
                _ => continue,
            };
            let entry = (u32::from(video.width), u32::from(video.height));
            assert_eq!((width, height), entry, "{init}");
            seen += 1;
        }
    }
    assert_eq!(seen, 14);
}

#[test]
fn an_init_with_a_lying_avcc_is_refused_with_the_box_path() {
    // The whole fixture init with its SPS length made to overrun the avcC box.
    let mut init = std::fs::read(fixtures().join("h264_aac/init.mp4")).unwrap();
    let at = init.windows(4).position(|w| w == b"avcC").unwrap() + 4;
    // avcC body: the first SPS's 16-bit length at +6, its header byte at +8.
    assert_eq!(init[at + 8], 0x67);
    init[at + 6..at + 8].copy_from_slice(&0x0100u16.to_be_bytes());
    let e = parse_init(Bytes::from(init)).unwrap_err();
    assert!(e.path.ends_with("avc1/avcC"), "{e}");
    assert_eq!(
        e.kind,
        ErrorKind::Invalid("a parameter set NAL unit longer than the record")
    );
}

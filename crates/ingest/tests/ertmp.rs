//! Enhanced RTMP (HEVC `hvc1`, `Opus`) through the RTMP door's media path with real
//! media. Debian's ffmpeg 5.1 cannot publish E-RTMP, so the test makes HEVC with
//! B-frames (libx265) and Opus (libopus) with ffmpeg into a fragmented MP4, reads its
//! samples with `dvrclip_fmp4`, writes them as the E-RTMP FLV tag bodies an encoder
//! sends (E-RTMP v2: `IsExHeader`, `SequenceStart` with the `hvcC` record or the
//! `OpusHead`, `CodedFrames` with a composition time), and feeds them to
//! [`Publish`] in decode order as a connection would. The clip cut from the engine is
//! then decoded by ffprobe and ffmpeg: every frame and audio packet comes out, with
//! presentation order intact.

#[path = "../../../tests/common/require.rs"]
mod require;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{ClipRequest, Engine, EngineConfig, ManualClock, StreamSettings, WallTime};
use dvrclip_fmp4::{InitSegment, parse_init, parse_segment};
use dvrclip_ingest::rtmp::{Publish, RENDITION};

const SECS: u32 = 6;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dvrclip-ertmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// ffmpeg's HEVC (B-frames, a keyframe a second) + Opus, as one fragmented MP4.
fn source(dir: &Path) -> Vec<u8> {
    let out = dir.join("source.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &SECS.to_string()])
        .args(["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"])
        .args([
            "-x265-params",
            "keyint=30:min-keyint=30:bframes=3:log-level=error",
        ])
        .args(["-c:a", "libopus", "-b:a", "64k"])
        .args([
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ])
        .arg(&out)
        .status()
        .expect("spawning ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    std::fs::read(out).unwrap()
}

/// The file's top-level boxes: the init (`ftyp` + `moov`) and each `moof` + `mdat`.
fn split(file: &[u8]) -> (Bytes, Vec<Bytes>) {
    let mut at = 0;
    let mut boxes = Vec::new();
    while at + 8 <= file.len() {
        let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        boxes.push((&file[at + 4..at + 8], at, at + size));
        at += size;
    }
    let moov_end = boxes.iter().find(|b| b.0 == b"moov").unwrap().2;
    let init = Bytes::copy_from_slice(&file[..moov_end]);
    let segments = boxes
        .iter()
        .filter(|b| b.0 == b"moof")
        .map(|moof| {
            let mdat = boxes.iter().find(|b| b.1 == moof.2).unwrap();
            Bytes::copy_from_slice(&file[moof.1..mdat.2])
        })
        .collect();
    (init, segments)
}

/// RFC 7845 §5.1's `OpusHead` from ISOBMFF's `dOps` payload (Opus in ISOBMFF §4.3.2):
/// the same fields, its 16- and 32-bit ones big-endian there and little-endian here.
fn opus_head(dops: &[u8]) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(dops[1]); // OutputChannelCount
    head.extend(u16::from_be_bytes([dops[2], dops[3]]).to_le_bytes()); // PreSkip
    head.extend(u32::from_be_bytes(dops[4..8].try_into().unwrap()).to_le_bytes());
    head.extend(i16::from_be_bytes([dops[8], dops[9]]).to_le_bytes()); // OutputGain
    head.push(dops[10]); // ChannelMappingFamily
    head.extend_from_slice(&dops[11..]);
    head
}

struct Message {
    ms: u32,
    video: bool,
    body: Bytes,
}

/// E-RTMP tag bodies of every sample, in decode order across the two tracks.
fn messages(init: &InitSegment, segments: &[Bytes]) -> (Vec<Message>, u64, u64) {
    let video = init.video_track().unwrap();
    let audio = init.audio_track().unwrap();
    assert_eq!(&video.entry.format.0, b"hvc1");
    assert_eq!(&audio.entry.format.0, b"Opus");
    let mut seq_video = vec![0x80 | (1 << 4)];
    seq_video.extend_from_slice(b"hvc1");
    seq_video.extend_from_slice(&video.entry.config);
    let mut seq_audio = vec![0x90];
    seq_audio.extend_from_slice(b"Opus");
    seq_audio.extend(opus_head(&audio.entry.config));
    let mut out = vec![
        Message {
            ms: 0,
            video: true,
            body: seq_video.into(),
        },
        Message {
            ms: 0,
            video: false,
            body: seq_audio.into(),
        },
    ];
    let (mut frames, mut packets) = (0, 0);
    for bytes in segments {
        let segment = parse_segment(bytes.clone(), init).unwrap();
        for track in &segment.tracks {
            let is_video = track.track_id == video.track_id;
            let timescale = if is_video {
                video.timescale
            } else {
                audio.timescale
            };
            let ms = |ticks: i64| (ticks * 1000 / i64::from(timescale)) as i32;
            let mut decode = track.base_decode_ticks;
            for s in &track.samples {
                let data = &segment.bytes[s.range()];
                let body = if is_video {
                    frames += 1;
                    let frame_type = if s.is_sync { 1 } else { 2 };
                    let mut b = vec![0x80 | (frame_type << 4) | 1];
                    b.extend_from_slice(b"hvc1");
                    let cts = ms(s.composition_offset.into());
                    b.extend_from_slice(&cts.to_be_bytes()[1..]);
                    b.extend_from_slice(data);
                    b
                } else {
                    packets += 1;
                    let mut b = vec![0x91];
                    b.extend_from_slice(b"Opus");
                    b.extend_from_slice(data);
                    b
                };
                out.push(Message {
                    ms: ms(decode as i64) as u32,
                    video: is_video,
                    body: body.into(),
                });
                decode += u64::from(s.duration);
            }
        }
    }
    out.sort_by_key(|m| m.ms);
    (out, frames, packets)
}

fn ffprobe_counts(file: &Path) -> (String, u64, String, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames,nb_read_packets",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let n = |r: &Vec<&str>, i: usize| r.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        rows[0][0].to_owned(),
        n(&rows[0], 1),
        rows[1][0].to_owned(),
        n(&rows[1], 2),
    )
}

#[test]
fn hevc_and_opus_over_enhanced_rtmp_make_a_playable_clip() {
    if !require::require_tool("ffmpeg") || !require::require_tool("ffprobe") {
        return;
    }
    let dir = temp_dir();
    let (init_bytes, segments) = split(&source(&dir));
    let init = parse_init(init_bytes).unwrap();
    let (messages, frames, packets) = messages(&init, &segments);
    assert_eq!(frames, u64::from(SECS) * 30);
    assert!(packets >= u64::from(SECS) * 50, "{packets} Opus packets");

    let t0 = WallTime::parse_program_date_time("2026-12-01T12:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::with_clock(EngineConfig::default(), clock.clone());
    let stream = engine
        .create_stream(StreamSettings::named("ertmp"))
        .unwrap()
        .id;
    let mut publish = Publish::new(stream);
    for m in &messages {
        let raw = 5_000 + m.ms;
        if m.video {
            publish.video(&engine, &m.body, raw).unwrap();
        } else {
            publish.audio(&engine, &m.body, raw).unwrap();
        }
    }
    publish.finish(&engine).unwrap();
    assert_eq!(publish.stats().dropped, 0);

    clock.advance_secs(60);
    let chunks = engine.rendition_chunks(stream, RENDITION).unwrap();
    let clip = engine
        .create_clip(
            stream,
            ClipRequest {
                duration_secs: u64::from(SECS + 2),
                start_unix_secs: Some(chunks[0].start_utc().unix_secs()),
                ..Default::default()
            },
        )
        .unwrap();
    let view = clip.view();
    let rendition = &view.renditions()[0];
    let mp4 = clip.mp4(&view, rendition).unwrap();
    let mut file = Vec::new();
    for piece in mp4.range(0..mp4.len()).unwrap() {
        file.extend_from_slice(&piece);
    }
    let path = dir.join("clip.mp4");
    std::fs::write(&path, &file).unwrap();

    let (vcodec, vframes, acodec, apackets) = ffprobe_counts(&path);
    assert_eq!((vcodec.as_str(), acodec.as_str()), ("hevc", "opus"));
    assert_eq!(vframes, frames, "every HEVC frame decodes");
    assert_eq!(apackets, packets, "every Opus packet is in the clip");
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

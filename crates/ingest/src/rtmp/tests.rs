//! The RTMP door without sockets: FLV tags through [`Publish`] into a real engine,
//! and hostile bytes through [`Connection`]. `tests/rtmp.rs` runs real ffmpeg.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Engine, StreamId, StreamSettings};

use super::*;

/// ffmpeg's avcC (320x180 H.264) from the fixtures.
fn avcc() -> Bytes {
    let init = dvrclip_fmp4::parse_init(Bytes::from_static(include_bytes!(
        "../../../../tests/fixtures/h264_aac/init.mp4"
    )))
    .unwrap();
    init.video_track().unwrap().entry.config.clone()
}

fn setup() -> (Arc<Engine>, StreamId) {
    let engine = Arc::new(Engine::default());
    let id = engine.create_stream(StreamSettings::named("t")).unwrap().id;
    (engine, id)
}

fn video_header() -> Bytes {
    let mut v = vec![0x17, 0, 0, 0, 0];
    v.extend_from_slice(&avcc());
    v.into()
}

/// A legacy AVC frame: one 4-byte-length NAL unit.
fn video_frame(key: bool, n: u32) -> Bytes {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend_from_slice(&[0, 0, 0, 5, if key { 0x65 } else { 0x41 }]);
    v.extend_from_slice(&n.to_be_bytes());
    v.into()
}

const AUDIO_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10]; // AAC LC 44.1 kHz stereo

fn audio_frame(n: u32) -> Bytes {
    let mut v = vec![0xaf, 1, 0x21];
    v.extend_from_slice(&n.to_be_bytes());
    v.into()
}

/// `secs` of 30 fps video (a keyframe every 2 s) and AAC from RTMP time `t0`.
fn publish(engine: &Engine, p: &mut Publish, t0: u32, secs: u32) {
    p.video(engine, &video_header(), t0).unwrap();
    p.audio(engine, &Bytes::from_static(AUDIO_HEADER), t0)
        .unwrap();
    let mut audio_ms = 0f64;
    for i in 0..secs * 30 {
        let ms = i * 1000 / 30;
        while audio_ms <= f64::from(ms) {
            let t = t0.wrapping_add(audio_ms as u32);
            p.audio(engine, &audio_frame(i), t).unwrap();
            audio_ms += 1024.0 * 1000.0 / 44100.0;
        }
        p.video(engine, &video_frame(i % 60 == 0, i), t0.wrapping_add(ms))
            .unwrap();
    }
}

#[test]
fn a_publish_becomes_chunks_and_a_reconnect_a_discontinuity() {
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    publish(&engine, &mut p, 0, 6);
    p.finish(&engine).unwrap();
    assert_eq!(p.stats().dropped, 0);
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!((&*r.name, r.chunks, r.ranges.len()), (RENDITION, 3, 1));
    // The same encoder reconnects and sends byte-identical media from time 0 again:
    // not a retry of the chunks held, a new discontinuity.
    let mut again = Publish::new(id);
    publish(&engine, &mut again, 0, 6);
    again.finish(&engine).unwrap();
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!((r.chunks, r.ranges.len()), (6, 2), "{r:?}");
}

#[test]
fn rtmp_timestamps_wrap() {
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    // 32-bit milliseconds wrap 2 s into the publish.
    publish(&engine, &mut p, u32::MAX - 2000, 6);
    p.finish(&engine).unwrap();
    assert_eq!(p.stats().dropped, 0);
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!((r.chunks, r.ranges.len()), (3, 1), "{r:?}");
}

#[test]
fn refused_media_stores_nothing() {
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    // A frame before its sequence header.
    assert!(matches!(
        p.video(&engine, &video_frame(true, 0), 0),
        Err(PublishError::NoSequenceHeader(_))
    ));
    // MP3, AV1 (E-RTMP), a bad AudioSpecificConfig.
    assert!(matches!(
        p.audio(&engine, &Bytes::from_static(&[0x2f, 0xff, 0xfb]), 0),
        Err(PublishError::Flv(_))
    ));
    let mut av1 = vec![0x90];
    av1.extend_from_slice(b"av01");
    assert!(p.video(&engine, &av1.into(), 0).is_err());
    assert!(matches!(
        p.audio(&engine, &Bytes::from_static(&[0xaf, 0, 0x7f]), 0),
        Err(PublishError::BadAudioConfig)
    ));
    // A sequence header that is not an avcC: refused when the fragmenter is built.
    p.video(
        &engine,
        &Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]),
        0,
    )
    .unwrap();
    assert!(p.video(&engine, &video_frame(true, 0), 0).is_err());
    assert!(
        engine
            .dvr(id)
            .unwrap()
            .renditions
            .iter()
            .all(|r| r.chunks == 0)
    );
}

#[test]
fn small_regressions_drop_until_a_keyframe() {
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    p.video(&engine, &video_header(), 0).unwrap();
    for (ms, key) in [
        (0, true),
        (33, false),
        (20, false),
        (66, false),
        (100, true),
    ] {
        p.video(&engine, &video_frame(key, ms), ms).unwrap();
    }
    // 20 goes back: dropped, and 66 (not a keyframe) after it.
    assert_eq!(p.stats().dropped, 2);
}

fn connection(limits: ConnectionLimits) -> (Connection, Arc<Engine>, StreamId) {
    let (engine, id) = setup();
    let c = Connection::new(engine.clone(), Arc::new(Publishers::default()), limits);
    (c, engine, id)
}

/// A plain handshake: C0+C1, then C2 echoing S1.
fn handshake(c: &mut Connection) {
    let mut out = Vec::new();
    let mut c0c1 = vec![3u8];
    c0c1.resize(1537, 0);
    c.feed(&c0c1, &mut out).unwrap();
    assert!(out.len() >= 1537, "S0+S1+S2");
    let c2 = out[1..1537].to_vec();
    c.feed(&c2, &mut out).unwrap();
}

#[test]
fn bad_handshakes_and_floods_close() {
    let (mut c, ..) = connection(ConnectionLimits::default());
    let mut out = Vec::new();
    // RTMP version 3 is the only one (RTMP 1.0 §5.2.2).
    assert!(matches!(
        c.feed(b"GET / HTTP/1.1\r\n\r\n", &mut out),
        Err(RtmpError::Handshake(_))
    ));
    let (mut c, ..) = connection(ConnectionLimits {
        max_bytes_before_publish: 8192,
        ..ConnectionLimits::default()
    });
    handshake(&mut c);
    // Padding chunks on a stream (Acknowledgement-sized garbage is still counted).
    let r = c.feed(&[0u8; 8192], &mut out);
    assert!(r.is_err(), "{r:?}");
}

/// One message of `len` bytes on chunk stream 3 at the default 128-byte chunk size,
/// of which only `send` bytes are written.
fn big_message(len: u32, send: usize) -> Vec<u8> {
    let l = len.to_be_bytes();
    let mut v = vec![0x03, 0, 0, 0, l[1], l[2], l[3], 0x09, 1, 0, 0, 0];
    let mut sent = 0;
    while sent < send {
        if sent > 0 {
            v.push(0xc3);
        }
        let n = 128.min(send - sent);
        v.extend(std::iter::repeat_n(0x17u8, n));
        sent += n;
    }
    v
}

#[test]
fn a_message_over_the_cap_closes() {
    let limits = ConnectionLimits {
        max_bytes_before_publish: 1 << 30,
        max_message_bytes: 64 << 10,
    };
    let (mut c, ..) = connection(limits);
    handshake(&mut c);
    let mut out = Vec::new();
    // A 16 MiB message (the 24-bit maximum) as the peer claims it: after 64 KiB
    // without a complete message, the connection closes.
    let bytes = big_message(0xff_ffff, 100 << 10);
    let r = bytes
        .chunks(4096)
        .try_for_each(|piece| c.feed(piece, &mut out));
    assert!(matches!(r, Err(RtmpError::MessageTooLarge(_))), "{r:?}");
    assert!(c.held_bytes() <= 2 * (64 << 10) + 8192);
}

#[test]
fn a_panic_in_the_chunk_parser_closes() {
    let (mut c, ..) = connection(ConnectionLimits::default());
    handshake(&mut c);
    let mut out = Vec::new();
    // A message of 1000 bytes begun, then a new type-0 header of 5 bytes: rml_rtmp
    // computes `5 - 128` (deserializer.rs `get_message_data`).
    let mut bytes = big_message(1000, 128);
    bytes.extend([0x02, 0, 0, 0, 0, 0, 5, 0x14, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    let r = c.feed(&bytes, &mut out);
    assert!(matches!(r, Err(RtmpError::ParserPanicked)), "{r:?}");
}

#[test]
fn one_publisher_per_stream() {
    let publishers = Arc::new(Publishers::default());
    let id = StreamId(7);
    let lease = publishers.claim(id).unwrap();
    assert!(publishers.is_publishing(id));
    assert!(publishers.claim(id).is_none());
    drop(lease);
    assert!(!publishers.is_publishing(id));
    assert!(publishers.claim(id).is_some());
}

#[tokio::test]
async fn a_silent_connection_times_out() {
    let (engine, _) = setup();
    let door = RtmpDoor::new(
        engine.clone(),
        RtmpLimits {
            publish_deadline: std::time::Duration::from_millis(200),
            ..RtmpLimits::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let task = tokio::spawn(door.clone().serve(listener, std::future::pending()));
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    // The server closes it: read returns 0 within the deadline and some slack.
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let counted = async {
        while door
            .counters
            .timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), counted)
        .await
        .unwrap();
    // Its memory reservation is returned.
    assert_eq!(engine.memory().reserved_bytes, 0);
    task.abort();
}

/// Enhanced RTMP: HEVC (`hvc1`, ffmpeg's hvcC from the fixtures) and Opus (an
/// RFC 7845 `OpusHead`) become an `hvc1` + `Opus` init and chunks.
#[test]
fn enhanced_rtmp_hevc_and_opus() {
    let init = dvrclip_fmp4::parse_init(Bytes::from_static(include_bytes!(
        "../../../../tests/fixtures/hevc/init.mp4"
    )))
    .unwrap();
    let hvcc = init.video_track().unwrap().entry.config.clone();
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    // [IsExHeader | FrameType 1 | PacketType 0 (SequenceStart)] "hvc1" hvcC.
    let mut head = vec![0x80 | 0x10];
    head.extend_from_slice(b"hvc1");
    head.extend_from_slice(&hvcc);
    p.video(&engine, &head.into(), 0).unwrap();
    // [SoundFormat 9 | AudioPacketType 0] "Opus" OpusHead: 2 channels, pre-skip 312.
    let mut opus = vec![0x90];
    opus.extend_from_slice(b"Opus");
    opus.extend_from_slice(b"OpusHead");
    opus.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
    p.audio(&engine, &opus.into(), 0).unwrap();
    for i in 0u32..150 {
        let ms = i * 1000 / 30;
        // CodedFrames (1) with an SI24 composition time, or CodedFramesX (3).
        let key = i % 60 == 0;
        let mut v = vec![0x80 | if key { 0x10 } else { 0x20 } | if key { 1 } else { 3 }];
        v.extend_from_slice(b"hvc1");
        if key {
            v.extend_from_slice(&[0, 0, 0]);
        }
        v.extend_from_slice(&[0, 0, 0, 3, if key { 0x26 } else { 0x02 }, 1, 2]);
        p.video(&engine, &v.into(), ms).unwrap();
        for a in 0..2 {
            let mut f = vec![0x91];
            f.extend_from_slice(b"Opus");
            f.extend_from_slice(&[0xfc, i as u8, a]);
            p.audio(&engine, &f.into(), ms + a as u32 * 17).unwrap();
        }
    }
    p.finish(&engine).unwrap();
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!(r.chunks, 3, "{r:?}");
    let chunks = engine.rendition_chunks(id, RENDITION).unwrap();
    let init = engine
        .discontinuity_init(id, RENDITION, chunks[0].discontinuity())
        .unwrap()
        .unwrap();
    let formats: Vec<_> = init.tracks.iter().map(|t| t.entry.format).collect();
    assert_eq!(formats.len(), 2);
    assert_eq!(&formats[0].0, b"hvc1");
    assert_eq!(&formats[1].0, b"Opus");
}

/// An encoder that resets its clock mid-publish (time back by more than a second at a
/// keyframe): a new epoch, so a new discontinuity, nothing dropped after it.
#[test]
fn a_clock_reset_opens_a_discontinuity() {
    let (engine, id) = setup();
    let mut p = Publish::new(id);
    publish(&engine, &mut p, 50_000, 4);
    publish(&engine, &mut p, 0, 4);
    p.finish(&engine).unwrap();
    let r = &engine.dvr(id).unwrap().renditions[0];
    assert_eq!((r.chunks, r.ranges.len()), (4, 2), "{r:?}");
    assert_eq!(p.stats().epochs, 2);
}

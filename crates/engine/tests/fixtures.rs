//! The engine on real ffmpeg output (`tests/fixtures/`, see its README for the
//! commands): segments parsed by `dvrclip_fmp4`, wall clock from the playlists'
//! `EXT-X-PROGRAM-DATE-TIME`, cut as a server would cut them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{
    ClipRequest, ClipState, Engine, EngineConfig, ManualClock, StreamId, StreamSettings, WallTime,
};
use dvrclip_fmp4::progressive::{Mp4Builder, Options, VirtualMp4};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn read(p: &Path) -> Bytes {
    match std::fs::read(p) {
        Ok(b) => Bytes::from(b),
        Err(e) => panic!("{}: {e}", p.display()),
    }
}

/// The playlist's init name and its segments with their dates.
fn playlist(d: &Path) -> (String, Vec<(String, Option<WallTime>)>) {
    let text = String::from_utf8_lossy(&read(&d.join("index.m3u8"))).into_owned();
    let mut init = String::new();
    let mut segs = Vec::new();
    let mut date = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = rest.trim_end_matches('"').to_string();
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = WallTime::parse_program_date_time(rest);
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            segs.push((line.trim().to_string(), date.take()));
        }
    }
    (init, segs)
}

struct Env {
    clock: Arc<ManualClock>,
    engine: Engine,
    s: StreamId,
}

fn env(at: &str) -> Env {
    env_with(at, EngineConfig::default())
}

fn env_with(at: &str, config: EngineConfig) -> Env {
    let t = WallTime::parse_program_date_time(at).unwrap_or_default();
    let clock = Arc::new(ManualClock::new(t));
    let engine = Engine::with_clock(config, clock.clone());
    let s = match engine.create_stream(StreamSettings::named("fixture")) {
        Ok(i) => i.id,
        Err(e) => panic!("{e}"),
    };
    Env { clock, engine, s }
}

/// Uploads a fixture rendition like ffmpeg does: init, then each segment followed by
/// the playlist carrying its date. Returns the segment names.
fn upload(e: &Env, rendition: &str, rel: &str, with_dates: bool) -> Vec<String> {
    let d = dir(rel);
    let (init_name, segs) = playlist(&d);
    let init = match dvrclip_fmp4::parse_init(read(&d.join(&init_name))) {
        Ok(i) => i,
        Err(err) => panic!("{rel}/{init_name}: {err}"),
    };
    if let Err(err) = e.engine.push_init(e.s, rendition, init.clone()) {
        panic!("{err}");
    }
    let mut names = Vec::new();
    for (name, date) in segs {
        let seg = match dvrclip_fmp4::parse_segment(read(&d.join(&name)), &init) {
            Ok(s) => s,
            Err(err) => panic!("{rel}/{name}: {err}"),
        };
        e.clock.advance_secs(2);
        if let Err(err) = e.engine.push_segment(e.s, rendition, Some(&name), seg) {
            panic!("{rel}/{name}: {err}");
        }
        if let (Some(date), true) = (date, with_dates) {
            if let Err(err) = e.engine.set_segment_date(e.s, rendition, &name, date) {
                panic!("{err}");
            }
        }
        names.push(name);
    }
    names
}

#[test]
fn muxed_h264_aac_takes_the_playlist_dates() {
    let e = env("2026-11-25T05:59:40Z");
    upload(&e, "media_0", "h264_aac", true);
    let chunks = e
        .engine
        .rendition_chunks(e.s, "media_0")
        .unwrap_or_default();
    assert_eq!(chunks.len(), 2);
    let (_, segs) = playlist(&dir("h264_aac"));
    for (c, (name, date)) in chunks.iter().zip(&segs) {
        assert_eq!(c.name(), Some(name.as_str()));
        assert_eq!(
            Some(c.start_utc()),
            *date,
            "EXT-X-PROGRAM-DATE-TIME anchors {name}"
        );
        assert!(c.is_keyframe());
        assert!((c.duration_secs() - 2.0).abs() < 1e-6);
        assert_eq!(c.segment().tracks.len(), 2, "video and audio muxed");
        assert_eq!(
            c.timescale(),
            c.init().video_track().map_or(0, |t| t.timescale)
        );
    }
    // A retry of a segment already held changes nothing.
    let d = dir("h264_aac");
    let init = dvrclip_fmp4::parse_init(read(&d.join("init.mp4")));
    let seg = init.and_then(|i| dvrclip_fmp4::parse_segment(read(&d.join("seg_001.m4s")), &i));
    if let Ok(seg) = seg {
        let out = e
            .engine
            .push_segment(e.s, "media_0", Some("seg_001.m4s"), seg);
        assert_eq!(out, Ok(dvrclip_engine::PushOutcome::Duplicate));
    }

    // [05:59:23, 05:59:26): starts 27 ms before the DVR (its edge bounds the clip)
    // and ends inside the second chunk.
    let start = chunks[0].start_utc().add_micros(500_000);
    let req = ClipRequest {
        duration_secs: 3,
        start_unix_secs: Some(start.unix_secs()),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    let v = clip.view();
    assert_eq!(v.state(), ClipState::Complete);
    let r = v.reference().map(|r| r.chunks().len());
    assert_eq!(r, Some(2));
    assert_eq!(v.actual_start(), Some(chunks[0].start_utc()));
}

#[test]
fn long_gop_widens_back_to_the_keyframe_chunk() {
    let e = env("2026-11-25T05:59:40Z");
    upload(&e, "v", "long_gop", true);
    let chunks = e.engine.rendition_chunks(e.s, "v").unwrap_or_default();
    assert_eq!(chunks.len(), 6);
    let kf: Vec<bool> = chunks.iter().map(|c| c.is_keyframe()).collect();
    // README: "4 of 6 segments do not start on a keyframe" (-g 120 at 30 fps: 4 s GOPs).
    assert_eq!(kf.iter().filter(|k| !**k).count(), 4);
    assert!(kf[0]);
    // Start inside the last non-keyframe chunk before the second keyframe chunk.
    let second_kf = kf.iter().skip(1).position(|k| *k).map_or(0, |p| p + 1);
    let inside = &chunks[second_kf - 1];
    let start = inside.start_utc().add_micros(inside.duration_micros() / 2);
    // A request of whole seconds: floor the start.
    let start_secs = start.unix_secs();
    let req = ClipRequest {
        duration_secs: 1,
        start_unix_secs: Some(start_secs),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    let v = clip.view();
    let r = v
        .reference()
        .map(|r| r.chunks().to_vec())
        .unwrap_or_default();
    assert!(r[0].is_keyframe());
    assert_eq!(r[0].seq(), 0, "widened back to the GOP's keyframe chunk");
    assert!(v.lead_in_micros() > 0);
    assert!(
        r.iter()
            .skip(1)
            .all(|c| !c.is_keyframe() || c.start_utc() > WallTime::from_unix_secs(start_secs))
    );
}

#[test]
fn encoder_restart_keeps_both_runs_apart() {
    let e = env("2026-11-25T05:59:40Z");
    upload(&e, "v", "restart/a", true);
    e.clock.advance_secs(3);
    upload(&e, "v", "restart/b", true);
    let chunks = e.engine.rendition_chunks(e.s, "v").unwrap_or_default();
    let discs: Vec<u64> = chunks.iter().map(|c| c.discontinuity()).collect();
    assert_eq!(discs, [0, 0, 1, 1]);
    assert!(
        !Arc::ptr_eq(chunks[1].init(), chunks[2].init()),
        "each run keeps its own init"
    );
    let heights: Vec<u16> = chunks
        .iter()
        .filter_map(|c| c.init().video_track().and_then(|t| t.entry.video))
        .map(|v| v.height)
        .collect();
    assert_eq!(heights, [180, 180, 144, 144]);
    // b's playlist dates overlap a's (the runs were made side by side): b is clamped to
    // start where a ends, so nothing stored is overwritten or interleaved.
    assert_eq!(chunks[2].start_utc(), chunks[1].end_utc());
    for w in chunks.windows(2) {
        assert!(w[0].start_utc() < w[1].start_utc());
    }
    let dvr = e.engine.dvr(e.s).ok();
    assert_eq!(dvr.map(|d| d.renditions[0].discontinuities.len()), Some(2));

    let start = chunks[0].start_utc();
    let req = ClipRequest {
        duration_secs: 8,
        start_unix_secs: Some(start.unix_secs()),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    let v = clip.view();
    let Some(r) = v.reference() else {
        panic!("no reference")
    };
    assert_eq!(r.chunks().len(), 4);
    let markers: Vec<bool> = (0..4).map(|i| r.discontinuity_before(i)).collect();
    assert_eq!(markers, [false, false, true, false]);
    let list = r.to_segment_list();
    assert!(Arc::ptr_eq(&list[2].0, chunks[2].init()));

    // The clip's MP4, built from the tables summarised at ingest, is byte for byte
    // the one the builder writes walking every sample (across the restart too).
    let ours = match clip.mp4(&v, r) {
        Ok(f) => f,
        Err(err) => panic!("{err}"),
    };
    let mut walked = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim: None,
    });
    for (init, segment) in r.segments() {
        if let Err(err) = walked.push(init, segment) {
            panic!("{err}");
        }
    }
    let walked = match walked.build() {
        Ok(f) => f,
        Err(err) => panic!("{err}"),
    };
    let bytes = |f: &VirtualMp4| -> Vec<u8> {
        let pieces = f.range(0..f.len()).map(Iterator::collect::<Vec<_>>);
        pieces.unwrap_or_default().concat()
    };
    assert_eq!(ours.etag(), walked.etag());
    assert!(bytes(&ours) == bytes(&walked), "the two MP4s differ");
}

#[test]
fn ladder_renditions_cut_at_the_same_boundaries() {
    let e = env("2026-11-25T05:59:40Z");
    // ffmpeg uploads the renditions interleaved; per rendition order is what matters.
    for (name, rel) in [
        ("media_1_144", "ladder/media_1_144"),
        ("media_3_240", "ladder/media_3_240"),
        ("media_2_180", "ladder/media_2_180"),
    ] {
        e.clock.advance_secs(-8);
        upload(&e, name, rel, true);
    }
    let info = match e.engine.stream(e.s) {
        Ok(i) => i,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        (info.video_width, info.video_height),
        (Some(426), Some(240))
    );
    assert!(info.live);
    let top = e
        .engine
        .rendition_chunks(e.s, "media_3_240")
        .unwrap_or_default();
    let start = top[1].start_utc().add_micros(300_000);
    let req = ClipRequest {
        duration_secs: 3,
        start_unix_secs: Some(start.unix_secs()),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(clip.reference_rendition(), "media_3_240");
    assert_eq!(
        clip.renditions(),
        ["media_1_144", "media_3_240", "media_2_180"]
    );
    let v = clip.view();
    let bounds: Vec<_> = v
        .renditions()
        .iter()
        .map(|r| {
            (
                r.chunks()
                    .iter()
                    .map(|c| c.name().unwrap_or("").to_string())
                    .collect::<Vec<_>>(),
                r.start_utc(),
            )
        })
        .collect();
    for b in &bounds {
        assert_eq!(
            b, &bounds[1],
            "every rendition takes the reference's segments"
        );
    }
    assert!(!bounds[1].0.is_empty());
}

#[test]
fn audio_group_follows_the_video_reference() {
    let e = env("2026-11-25T06:11:30Z");
    for (name, rel) in [
        ("media_2_144", "agroup/media_2_144"),
        ("media_1_90", "agroup/media_1_90"),
        ("audio", "agroup/audio"),
    ] {
        e.clock.advance_secs(-6);
        upload(&e, name, rel, true);
    }
    let audio = e.engine.rendition_chunks(e.s, "audio").unwrap_or_default();
    // AAC frames do not land on 2 s: the audio segments run 2.005 s, the last one short.
    assert!(
        audio.iter().all(|c| c.is_keyframe()),
        "audio-only chunks are independent"
    );
    let top = e
        .engine
        .rendition_chunks(e.s, "media_2_144")
        .unwrap_or_default();
    let req = ClipRequest {
        duration_secs: 1,
        start_unix_secs: Some(top[1].start_utc().unix_secs()),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(clip.reference_rendition(), "media_2_144");
    let v = clip.view();
    let Some(a) = v.rendition("audio") else {
        panic!("no audio rendition")
    };
    assert!(!a.chunks().is_empty());
    let (Some(a0), Some(r0)) = (a.start_utc(), v.actual_start()) else {
        panic!("empty")
    };
    assert!(a0.micros_since(r0).abs() <= dvrclip_engine::FOLLOW_TOLERANCE_MICROS);
    assert!(
        a.end_utc()
            >= v.actual_end()
                .map(|t| t.add_micros(-dvrclip_engine::FOLLOW_TOLERANCE_MICROS))
    );
}

#[test]
fn chunked_cmaf_segments_are_one_chunk_each() {
    let e = env("2026-11-25T06:09:20Z");
    upload(&e, "video", "chunked/video", true);
    let chunks = e.engine.rendition_chunks(e.s, "video").unwrap_or_default();
    assert_eq!(chunks.len(), 2);
    for c in &chunks {
        // Four 0.5 s moof+mdat pairs, one chunk of 2 s.
        assert_eq!(c.segment().mdat_ranges.len(), 4);
        assert!((c.duration_secs() - 2.0).abs() < 1e-6);
    }
    assert_eq!(
        chunks[1].start_utc().micros_since(chunks[0].start_utc()),
        2_000_000
    );
}

/// The rings' MP4 header index forms on real encoder output: ffmpeg's segments of a
/// muxed H.264 + AAC rendition continue each other on both tracks, so consecutive
/// chunks make blocks (here of 2) and a clip over them takes the blocks whole: the
/// same file as the chunks pushed one by one, made of fewer header pieces. (Blocks
/// need every track to continue exactly; if an encoder's audio did not, no block
/// would form and every header would be built chunk by chunk.)
#[test]
fn real_segments_form_header_index_blocks() {
    let config = EngineConfig {
        mp4_index_block_chunks: 2,
        ..EngineConfig::default()
    };
    let e = env_with("2026-11-25T05:59:40Z", config);
    upload(&e, "media_1_144", "ladder/media_1_144", false);
    let chunks = e
        .engine
        .rendition_chunks(e.s, "media_1_144")
        .unwrap_or_default();
    assert_eq!(chunks.len(), 4);
    let req = ClipRequest {
        duration_secs: 8,
        start_unix_secs: Some(chunks[0].start_utc().unix_secs()),
        ..Default::default()
    };
    let clip = match e.engine.create_clip(e.s, req) {
        Ok(c) => c,
        Err(err) => panic!("{err}"),
    };
    let v = clip.view();
    let r = v.reference().expect("a reference rendition");
    assert_eq!(r.chunks().len(), 4);
    let mut one_by_one = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim: None,
    });
    for c in r.chunks() {
        if let Err(err) = one_by_one.push_prepared(c.init(), c.segment(), c.tables()) {
            panic!("{err}");
        }
    }
    let reference = one_by_one.build().unwrap_or_else(|err| panic!("{err}"));
    let indexed = clip.mp4(&v, r).unwrap_or_else(|err| panic!("{err}"));
    let whole = |f: &VirtualMp4| -> Vec<u8> {
        let pieces = f.range(0..f.len()).expect("the whole file");
        pieces.flat_map(|p| p.to_vec()).collect()
    };
    assert!(whole(&indexed) == whole(&reference), "the same bytes");
    assert!(
        indexed.header_pieces() < reference.header_pieces(),
        "{} vs {} pieces: no block formed on real segments",
        indexed.header_pieces(),
        reference.header_pieces()
    );
}

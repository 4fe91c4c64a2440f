//! Clip playlists proved on real encoder output: segments from `tests/fixtures/` (made
//! by ffmpeg, see its README.md) are pushed into an [`Engine`] on a [`ManualClock`], a
//! clip is cut, and its playlists are compared byte for byte with `tests/golden/`,
//! read back with m3u8-rs (an independent parser), checked against RFC 8216, and
//! served from files and decoded by ffmpeg. A proptest runs the same RFC checks over
//! synthetic streams with random segment lengths, keyframes and restarts.
//!
//! `UPDATE_GOLDEN=1 cargo test -p dvrclip-hls --test playlists` rewrites the goldens;
//! without it any difference fails. `tests/golden/README.md` says what each proves.
//! Without ffmpeg the decoding tests fail under CI and are skipped elsewhere
//! (`tests/common/require.rs`).

#[path = "../../../tests/common/require.rs"]
mod require;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dvrclip_engine::{
    Clip, ClipRendition, ClipRequest, ClipView, Engine, EngineConfig, InitSegment, ManualClock,
    MediaSegment, StreamId, StreamPatch, StreamSettings, WallTime,
};
use dvrclip_fmp4::synthetic::{self, FRAME_TICKS, VIDEO_TIMESCALE as TIMESCALE};
use dvrclip_fmp4::{parse_init, parse_segment};
use dvrclip_hls::ingest::{IngestPlaylist, parse_ingest_playlist};
use dvrclip_hls::{
    MediaFile, PlaylistKind, live_master_playlist, live_media_playlist, master_playlist, media_dir,
    media_playlist,
};
use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaPlaylist, MediaPlaylistType, Playlist};
use proptest::prelude::*;

/// A fixed clip id, so URIs in the goldens do not change (real ids are random).
const CLIP: &str = "5f0c2a9e7d3b41c8a6e2f4b1d9c07e35";

/// 2026-11-25T06:00:00Z: where arrival-anchored scenarios start their clock.
const T0_SECS: i64 = 1_795_586_400;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One uploaded segment of a fixture, with what ffmpeg's playlist said about it.
struct Upload {
    name: String,
    segment: MediaSegment,
    extinf_secs: f64,
    date: WallTime,
}

/// One fixture rendition: its init and segments in playlist order.
struct Fixture {
    init: InitSegment,
    uploads: Vec<Upload>,
}

/// Loads `tests/fixtures/{dir}`, reading ffmpeg's `index.m3u8` with our own ingest
/// scanner (the path an uploaded playlist takes).
fn load(dir: &str) -> Fixture {
    let dir = fixtures().join(dir);
    let text = read(&dir.join("index.m3u8"));
    let map = std::str::from_utf8(&text)
        .expect("utf-8 playlist")
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .expect("EXT-X-MAP")
        .to_owned();
    let init = parse_init(read(&dir.join(&map)).into()).expect("fixture init parses");
    let Ok(IngestPlaylist::Media(list)) = parse_ingest_playlist(&text) else {
        panic!("{}: not a media playlist", dir.display())
    };
    let uploads = list
        .into_iter()
        .map(|s| Upload {
            segment: parse_segment(read(&dir.join(&s.uri)).into(), &init)
                .unwrap_or_else(|e| panic!("{}: {e}", s.uri)),
            extinf_secs: s.duration_secs,
            date: s.program_date_time.expect("ffmpeg dates every segment"),
            name: s.file_name,
        })
        .collect();
    Fixture { init, uploads }
}

/// An engine on a manual clock with one stream.
struct Live {
    clock: Arc<ManualClock>,
    engine: Engine,
    stream: StreamId,
}

impl Live {
    fn new(start: WallTime) -> Self {
        let clock = Arc::new(ManualClock::new(start));
        let engine = Engine::with_clock(EngineConfig::default(), clock.clone());
        let stream = engine
            .create_stream(StreamSettings::named("golden"))
            .expect("create_stream")
            .id;
        Live {
            clock,
            engine,
            stream,
        }
    }

    fn init(&self, rendition: &str, f: &Fixture) {
        self.engine
            .push_init(self.stream, rendition, f.init.clone())
            .expect("push_init");
    }

    /// Uploads segment `i` at the current clock.
    fn push(&self, rendition: &str, f: &Fixture, i: usize) {
        let u = &f.uploads[i];
        self.engine
            .push_segment(self.stream, rendition, Some(&u.name), u.segment.clone())
            .unwrap_or_else(|e| panic!("{rendition}/{}: {e}", u.name));
    }

    /// Uploads segment `i` when it ends by its playlist date, then its playlist, whose
    /// `EXT-X-PROGRAM-DATE-TIME` anchors the chunk (as ingest does).
    fn push_dated(&self, rendition: &str, f: &Fixture, i: usize) {
        let u = &f.uploads[i];
        let arrival = u.date.add_micros((u.extinf_secs * 1e6) as i64);
        self.clock.set(arrival.max(self.engine.now()));
        self.push(rendition, f, i);
        self.engine
            .set_segment_date(self.stream, rendition, &u.name, u.date)
            .expect("set_segment_date");
    }

    /// Feeds every segment of a ladder by its dates, segment by segment across
    /// renditions, as one encoder uploads them.
    fn feed_dated(&self, ladder: &[(&str, &Fixture)]) {
        for (name, f) in ladder {
            self.init(name, f);
        }
        let n = ladder
            .iter()
            .map(|(_, f)| f.uploads.len())
            .max()
            .unwrap_or(0);
        for i in 0..n {
            for (name, f) in ladder.iter().filter(|(_, f)| i < f.uploads.len()) {
                self.push_dated(name, f, i);
            }
        }
    }

    fn clip(&self, start: WallTime, duration_secs: u64) -> Clip {
        self.engine
            .create_clip(
                self.stream,
                ClipRequest {
                    duration_secs,
                    start_unix_secs: Some(start.unix_secs()),
                    ..Default::default()
                },
            )
            .expect("create_clip")
    }
}

/// `floor(t) + secs`: a whole second, as clip requests speak.
fn whole_secs_after(t: WallTime, secs: i64) -> WallTime {
    WallTime::from_unix_secs(t.unix_secs() + secs)
}

// ----- goldens -----

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `text` with `tests/golden/{name}` byte for byte (`UPDATE_GOLDEN=1` writes it).
fn golden(name: &str, text: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (UPDATE_GOLDEN=1 cargo test -p dvrclip-hls --test playlists writes it)",
            path.display()
        )
    });
    assert!(
        want == text.as_bytes(),
        "{name} differs from its golden\n--- golden\n{}--- rendered\n{text}",
        String::from_utf8_lossy(&want)
    );
}

fn media_uri(rendition: &str) -> String {
    format!("rec_{CLIP}_{rendition}.m3u8")
}

// ----- RFC 8216 checks, through m3u8-rs -----

fn parse_media(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(p)) => p,
        Ok(Playlist::MasterPlaylist(_)) => panic!("a master playlist where a media one was due"),
        Err(e) => panic!("m3u8-rs refuses it: {e:?}\n{text}"),
    }
}

fn parse_master(text: &str) -> MasterPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MasterPlaylist(p)) => p,
        Ok(Playlist::MediaPlaylist(_)) => panic!("a media playlist where a master one was due"),
        Err(e) => panic!("m3u8-rs refuses it: {e:?}\n{text}"),
    }
}

fn all_keyframes(r: &ClipRendition) -> bool {
    r.chunks().iter().all(|c| c.is_keyframe())
}

/// Renders a rendition's media playlist and checks it, read back with m3u8-rs,
/// against the clip's chunks.
fn check_media(r: &ClipRendition, kind: PlaylistKind) -> String {
    let text = media_playlist(CLIP, r, kind);
    let pl = parse_media(&text);
    let dir = media_dir(CLIP, r.name());
    let chunks = r.chunks();
    assert_eq!(pl.version, Some(7));
    assert_eq!(pl.segments.len(), chunks.len(), "{text}");
    // A complete clip is VOD with EXT-X-ENDLIST; a recording one EVENT without it.
    let (ty, end) = match kind {
        PlaylistKind::Vod => (MediaPlaylistType::Vod, true),
        PlaylistKind::Event => (MediaPlaylistType::Event, false),
    };
    assert_eq!((pl.playlist_type, pl.end_list), (Some(ty), end));
    // §4.3.5.1: "EXT-X-INDEPENDENT-SEGMENTS ... indicates that all media samples in a
    // Media Segment can be decoded without information from other segments."
    assert_eq!(pl.independent_segments, all_keyframes(r), "{text}");
    let mut init = 0;
    for (i, (s, c)) in pl.segments.iter().zip(chunks).enumerate() {
        // §4.3.3.1: "The EXTINF duration of each Media Segment in the Playlist file, when
        // rounded to the nearest integer, MUST be less than or equal to the target
        // duration".
        assert!(
            (f64::from(s.duration).round() as u64) <= pl.target_duration,
            "{i}: {} > {}",
            s.duration,
            pl.target_duration
        );
        assert!((f64::from(s.duration) - c.duration_secs()).abs() < 1e-5);
        assert_eq!(s.uri, format!("{dir}/seg_{i}.m4s"));
        // §4.3.2.3: "The EXT-X-DISCONTINUITY tag MUST be present if there is a change in
        // any of the following characteristics: ... timestamp sequence"; the chunk's
        // discontinuity (or init) says so.
        let prev = i.checked_sub(1).map(|p| &chunks[p]);
        let new_init = prev.is_some_and(|p| !Arc::ptr_eq(p.init(), c.init()));
        let restart = prev.is_some_and(|p| p.discontinuity() != c.discontinuity()) || new_init;
        assert_eq!(s.discontinuity, restart, "segment {i}");
        init += usize::from(new_init);
        if i == 0 || restart {
            // §4.3.2.5: the EXT-X-MAP "applies to every Media Segment that appears after
            // it in the Playlist until the next EXT-X-MAP tag".
            let map = s.map.as_ref().expect("EXT-X-MAP");
            assert_eq!(map.uri, format!("{dir}/init_{init}.mp4"));
            // §4.3.2.6: EXT-X-PROGRAM-DATE-TIME "associates the first sample of a Media
            // Segment with an absolute date and/or time".
            let date = s.program_date_time.expect("EXT-X-PROGRAM-DATE-TIME");
            assert_eq!(
                date.timestamp_millis(),
                c.start_utc().unix_micros().div_euclid(1000)
            );
        } else {
            assert!(s.map.is_none() && s.program_date_time.is_none(), "{i}");
        }
    }
    text
}

/// Renders the master playlist and checks it, read back with m3u8-rs.
fn check_master(view: &ClipView) -> (String, MasterPlaylist) {
    let text = master_playlist(CLIP, view);
    let pl = parse_master(&text);
    let present: Vec<&ClipRendition> = view
        .renditions()
        .iter()
        .filter(|r| !r.chunks().is_empty())
        .collect();
    assert_eq!(pl.version, Some(7));
    assert_eq!(
        pl.independent_segments,
        present.iter().all(|r| all_keyframes(r)),
        "{text}"
    );
    assert!(!pl.variants.is_empty());
    for v in &pl.variants {
        let r = present
            .iter()
            .find(|r| media_uri(r.name()) == v.uri)
            .unwrap_or_else(|| panic!("{} names no rendition of the clip", v.uri));
        // §4.3.4.2: "Every EXT-X-STREAM-INF tag MUST include the BANDWIDTH attribute";
        // "SHOULD include a CODECS attribute"; RESOLUTION "is recommended if the Variant
        // Stream includes video" (ref/api.md "Public clip links" wants all three on every variant).
        assert!(v.bandwidth >= r.peak_bandwidth_bps() && v.bandwidth > 0);
        let avg = v.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(avg <= v.bandwidth && avg >= r.average_bandwidth_bps());
        let codecs = v.codecs.as_deref().expect("CODECS");
        for c in r.chunks() {
            for t in &c.init().tracks {
                assert!(codecs.split(',').any(|x| x == t.entry.codec), "{codecs}");
            }
        }
        // The largest picture of the variant's inits (a restart may change the size).
        let largest = r
            .chunks()
            .iter()
            .filter_map(|c| c.init().video_track()?.entry.video)
            .map(|v| (u64::from(v.width), u64::from(v.height)))
            .max_by_key(|(w, h)| w * h);
        if let Some(size) = largest {
            let res = v.resolution.expect("RESOLUTION");
            assert_eq!((res.width, res.height), size);
            assert!(
                v.frame_rate.is_some_and(|f| (f - 30.0).abs() < 0.01),
                "{v:?}"
            );
        }
    }
    // Variants highest first.
    let heights: Vec<u64> = pl
        .variants
        .iter()
        .map(|v| v.resolution.map_or(0, |r| r.height))
        .collect();
    assert!(heights.windows(2).all(|w| w[0] >= w[1]), "{heights:?}");
    (text, pl)
}

// ----- the clips -----

const LADDER: [&str; 3] = ["media_3_240", "media_2_180", "media_1_144"];

fn ladder() -> Vec<(&'static str, Fixture)> {
    LADDER
        .iter()
        .map(|r| (*r, load(&format!("ladder/{r}"))))
        .collect()
}

/// The plain clip: the 3-rendition ladder anchored by its playlist dates, cut in the
/// middle: `[floor(d0) + 3 s, + 4 s)` falls in segments 1..=3 whatever `d0`'s fraction.
fn plain_clip() -> (Live, Clip, Vec<(&'static str, Fixture)>) {
    let ladder = ladder();
    let d0 = ladder[0].1.uploads[0].date;
    let live = Live::new(d0);
    let refs: Vec<(&str, &Fixture)> = ladder.iter().map(|(n, f)| (*n, f)).collect();
    live.feed_dated(&refs);
    let clip = live.clip(whole_secs_after(d0, 3), 4);
    (live, clip, ladder)
}

#[test]
fn plain_ladder_clip() {
    let (_live, clip, ladder) = plain_clip();
    let view = clip.view();
    assert!(view.is_complete());
    for r in view.renditions() {
        assert_eq!(r.chunks().len(), 3, "{}", r.name());
        // The anchor is ffmpeg's own EXT-X-PROGRAM-DATE-TIME for segment 1, so the
        // rendered date is ffmpeg's to the millisecond (an independent oracle).
        let fixture = &ladder
            .iter()
            .find(|(n, _)| *n == r.name())
            .expect("rendition")
            .1;
        assert_eq!(r.start_utc(), Some(fixture.uploads[1].date));
        for (c, u) in r.chunks().iter().zip(&fixture.uploads[1..]) {
            assert_eq!(c.name(), Some(u.name.as_str()));
            assert!((c.duration_secs() - u.extinf_secs).abs() < 1e-3);
        }
    }
    let (master, pl) = check_master(&view);
    assert_eq!(pl.variants.len(), 3);
    assert!(pl.alternatives.is_empty());
    golden("plain_master.m3u8", &master);
    let media = check_media(&view.renditions()[0], PlaylistKind::of(&view));
    golden("plain_media_3_240.m3u8", &media);
    for r in &view.renditions()[1..] {
        check_media(r, PlaylistKind::Vod);
    }
}

#[test]
fn long_gop_clip_is_not_independent() {
    let f = load("long_gop");
    let d0 = f.uploads[0].date;
    let live = Live::new(d0);
    live.feed_dated(&[("media_0", &f)]);
    // From inside segment 2 or 3 (no keyframe) for 2 s: widened back to segment 0.
    let clip = live.clip(whole_secs_after(d0, 3), 2);
    let view = clip.view();
    let r = &view.renditions()[0];
    assert_eq!(r.chunks()[0].name(), Some(f.uploads[0].name.as_str()));
    assert!(r.chunks()[0].is_keyframe());
    assert!(
        !all_keyframes(r),
        "the fixture's point: segments start mid-GOP"
    );
    let (master, _) = check_master(&view);
    assert!(!master.contains("INDEPENDENT-SEGMENTS"));
    golden("long_gop_master.m3u8", &master);
    let media = check_media(r, PlaylistKind::Vod);
    assert!(!media.contains("INDEPENDENT-SEGMENTS"));
    golden("long_gop_media_0.m3u8", &media);
    // Starting on the GOP's keyframe, mid-GOP segments included, it all decodes.
    ffmpeg_decodes(&serve_from_files("long_gop", &view));
}

/// `restart/a` then `restart/b` (new init, media time back to 0) in one rendition,
/// anchored by arrival: a's chunks at T0+2 s and T0+4 s, b's after a 2 s outage.
fn restart_clip() -> (Live, Clip) {
    let (a, b) = (load("restart/a"), load("restart/b"));
    let live = Live::new(WallTime::from_unix_secs(T0_SECS));
    live.init("media_0", &a);
    for i in 0..a.uploads.len() {
        live.clock.advance_secs(2);
        live.push("media_0", &a, i);
    }
    live.clock.advance_secs(4);
    live.init("media_0", &b);
    for i in 0..b.uploads.len() {
        if i > 0 {
            live.clock.advance_secs(2);
        }
        live.push("media_0", &b, i);
    }
    let clip = live.clip(WallTime::from_unix_secs(T0_SECS + 2), 10);
    (live, clip)
}

#[test]
fn clip_across_an_encoder_restart() {
    let (_live, clip) = restart_clip();
    let view = clip.view();
    assert!(view.is_complete());
    let r = &view.renditions()[0];
    assert_eq!(r.chunks().len(), 4);
    let media = check_media(r, PlaylistKind::Vod);
    let pl = parse_media(&media);
    let flags: Vec<bool> = pl.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(flags, [false, false, true, false]);
    let maps: Vec<&str> = pl
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
        .collect();
    let dir = media_dir(CLIP, "media_0");
    assert_eq!(
        maps,
        [format!("{dir}/init_0.mp4"), format!("{dir}/init_1.mp4")]
    );
    let dates: Vec<i64> = pl
        .segments
        .iter()
        .filter_map(|s| s.program_date_time.map(|d| d.timestamp()))
        .collect();
    assert_eq!(dates, [T0_SECS + 2, T0_SECS + 8]);
    // Two inits served, a third does not exist.
    assert!(MediaFile::Init(1).resolve(r).is_some() && MediaFile::Init(2).resolve(r).is_none());
    golden("restart_media_0.m3u8", &media);
    let (master, _) = check_master(&view);
    golden("restart_master.m3u8", &master);
}

#[test]
fn live_window_across_an_encoder_restart() {
    let (live, _clip) = restart_clip();
    let renditions = live.engine.live_renditions(live.stream).expect("stream");
    let master = live_master_playlist(&renditions);
    let m = parse_master(&master);
    assert_eq!(m.variants.len(), 1);
    assert_eq!(m.variants[0].uri, "media_0.m3u8");
    let media = live_media_playlist(&renditions[0]);
    let pl = parse_media(&media);
    // Live: no type, no end; numbered by the ring's seq and discontinuity.
    assert_eq!((pl.playlist_type, pl.end_list), (None, false));
    assert_eq!((pl.media_sequence, pl.discontinuity_sequence), (0, 0));
    let chunks = renditions[0].chunks();
    let uris: Vec<String> = pl.segments.iter().map(|s| s.uri.clone()).collect();
    let want: Vec<String> = chunks
        .iter()
        .map(|c| format!("media_0/{}.m4s", c.seq()))
        .collect();
    assert_eq!(uris, want);
    let maps: Vec<&str> = pl
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
        .collect();
    assert_eq!(maps, ["media_0/init_0.mp4", "media_0/init_1.mp4"]);
    assert_eq!(pl.segments.iter().filter(|s| s.discontinuity).count(), 1);
    golden("live_restart_media_0.m3u8", &media);
    golden("live_restart_master.m3u8", &master);
}

#[test]
fn live_window_slides_with_its_sequence_numbers() {
    // A 30 s window of 2 s chunks; a restart half-way; 60 chunks in all.
    let live = Live::new(WallTime::from_unix_secs(T0_SECS));
    let patch = StreamPatch {
        dvr_duration_secs: Some(30),
        ..Default::default()
    };
    live.engine
        .update_stream(live.stream, patch)
        .expect("patch");
    let mut ticks = 0u64;
    for k in 0..60u64 {
        if k % 30 == 0 {
            live.engine
                .push_init(live.stream, "v", synthetic_init(k as u8))
                .expect("init");
            ticks = 0;
        }
        live.clock.advance_secs(2);
        let seg = synthetic_segment(ticks, 60, true);
        live.engine
            .push_segment(live.stream, "v", None, seg)
            .expect("push");
        ticks += u64::from(60 * FRAME_TICKS);
        let renditions = live.engine.live_renditions(live.stream).expect("stream");
        let pl = parse_media(&live_media_playlist(&renditions[0]));
        let chunks = renditions[0].chunks();
        let (first, last) = (&chunks[0], &chunks[chunks.len() - 1]);
        assert_eq!(last.seq(), k);
        assert!(
            chunks.len() <= 16,
            "the window holds 30 s: {}",
            chunks.len()
        );
        assert_eq!(pl.media_sequence, first.seq());
        assert_eq!(pl.discontinuity_sequence, first.discontinuity());
        // Each restart still in the window is tagged; none that slid out is.
        let tags = pl.segments.iter().filter(|s| s.discontinuity).count() as u64;
        assert_eq!(tags, last.discontinuity() - first.discontinuity());
        assert_eq!(pl.segments.len(), chunks.len());
    }
}

#[test]
fn recording_clip_grows_then_ends() {
    let ladder = ladder();
    let live = Live::new(WallTime::from_unix_secs(T0_SECS));
    for (name, f) in &ladder {
        live.init(name, f);
    }
    let push_all = |i: usize| {
        live.clock.advance_secs(2);
        for (name, f) in &ladder {
            live.push(name, f, i);
        }
    };
    push_all(0);
    // `start` = now: recording until T0 + 8 s.
    let clip = live.clip(live.engine.now(), 6);
    push_all(1);
    let before = clip.view();
    assert!(!before.is_complete());
    assert_eq!(PlaylistKind::of(&before), PlaylistKind::Event);
    let r = &before.renditions()[0];
    assert_eq!(r.chunks().len(), 2);
    let event = check_media(r, PlaylistKind::Event);
    golden("recording_event_media_3_240.m3u8", &event);

    push_all(2);
    push_all(3);
    let after = clip.view();
    assert!(after.is_complete());
    let r = &after.renditions()[0];
    assert_eq!(r.chunks().len(), 3);
    let vod = check_media(r, PlaylistKind::of(&after));
    golden("recording_vod_media_3_240.m3u8", &vod);
    // §4.3.3.5: "If the EXT-X-PLAYLIST-TYPE value is EVENT, Media Segments can only be
    // added to the end of the Media Playlist": what a player read while recording is,
    // up to the playlist type, a prefix of the final playlist.
    let grown = event.replace("PLAYLIST-TYPE:EVENT", "PLAYLIST-TYPE:VOD");
    assert!(vod.starts_with(&grown), "{grown}\n---\n{vod}");
    check_master(&after);
}

const AGROUP: [&str; 3] = ["media_2_144", "media_1_90", "audio"];

/// Two video-only renditions and an audio-only one, anchored by their playlist dates.
fn agroup_clip() -> (Live, Clip) {
    let fixtures: Vec<(&str, Fixture)> = AGROUP
        .iter()
        .map(|r| (*r, load(&format!("agroup/{r}"))))
        .collect();
    let d0 = fixtures[0].1.uploads[0].date;
    let live = Live::new(d0);
    let refs: Vec<(&str, &Fixture)> = fixtures.iter().map(|(n, f)| (*n, f)).collect();
    live.feed_dated(&refs);
    let clip = live.clip(whole_secs_after(d0, 0), 4);
    (live, clip)
}

#[test]
fn audio_group_ladder() {
    let (_live, clip) = agroup_clip();
    let view = clip.view();
    assert!(view.is_complete());
    for r in view.renditions() {
        assert_eq!(r.chunks().len(), 2, "{}", r.name());
    }
    let (master, pl) = check_master(&view);
    // §4.3.4.2.1: "AUDIO ... MUST match the value of the GROUP-ID attribute of an
    // EXT-X-MEDIA tag elsewhere in the Master Playlist whose TYPE attribute is AUDIO."
    assert_eq!(pl.alternatives.len(), 1);
    let alt = &pl.alternatives[0];
    assert_eq!(alt.media_type, AlternativeMediaType::Audio);
    assert_eq!(alt.uri.as_deref(), Some(media_uri("audio").as_str()));
    assert!(alt.default && alt.autoselect);
    let uris: Vec<&str> = pl.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, [media_uri("media_2_144"), media_uri("media_1_90")]);
    let audio = view.rendition("audio").expect("audio rendition");
    for v in &pl.variants {
        assert_eq!(v.audio.as_deref(), Some(alt.group_id.as_str()));
        assert!(
            v.codecs
                .as_deref()
                .is_some_and(|c| c.ends_with(",mp4a.40.2"))
        );
        // BANDWIDTH counts the audio a player fetches alongside (§4.3.4.2).
        let video = view
            .renditions()
            .iter()
            .find(|r| media_uri(r.name()) == v.uri)
            .expect("variant rendition");
        assert_eq!(
            v.bandwidth,
            video.peak_bandwidth_bps() + audio.peak_bandwidth_bps()
        );
        assert_eq!(
            v.average_bandwidth,
            Some(video.average_bandwidth_bps() + audio.average_bandwidth_bps())
        );
    }
    golden("agroup_master.m3u8", &master);
    let media = check_media(audio, PlaylistKind::Vod);
    golden("agroup_audio.m3u8", &media);
    for r in &view.renditions()[..2] {
        check_media(r, PlaylistKind::Vod);
    }
}

/// Every golden reads back with m3u8-rs as the kind its name says.
#[test]
fn every_golden_parses_back() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "m3u8"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for p in names {
        let text = String::from_utf8(read(&p)).expect("utf-8");
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.contains("master") {
            parse_master(&text);
        } else {
            let pl = parse_media(&text);
            assert!(!pl.segments.is_empty(), "{name}");
            let growing = name.contains("event") || name.starts_with("live");
            assert_eq!(pl.end_list, !growing, "{name}");
        }
    }
}

// ----- served from files, decoded by ffmpeg -----

/// Writes the clip's playlists and media files with the layout the playlists name,
/// under a fresh directory of Cargo's test temp dir. Returns the master's path.
fn serve_from_files(name: &str, view: &ClipView) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hls_{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let write = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    let kind = PlaylistKind::of(view);
    write("master.m3u8", master_playlist(CLIP, view).as_bytes());
    for r in view.renditions().iter().filter(|r| !r.chunks().is_empty()) {
        write(
            &media_uri(r.name()),
            media_playlist(CLIP, r, kind).as_bytes(),
        );
        let dir = media_dir(CLIP, r.name());
        let files = (0..r.chunks().len())
            .map(|i| format!("seg_{i}.m4s"))
            .chain((0..).map(|n| format!("init_{n}.mp4")));
        for file in files {
            // The server's path: a file name parsed, then resolved in the rendition.
            let parsed = MediaFile::parse(&file).expect("a name the playlists use");
            let Some(bytes) = parsed.resolve(r) else {
                assert!(matches!(parsed, MediaFile::Init(n) if n > 0), "{file}");
                break;
            };
            write(&format!("{dir}/{file}"), &bytes);
        }
    }
    root.join("master.m3u8")
}

/// `ffmpeg -v error -i {input} -map 0 -f null -`; `None` when ffmpeg is not installed
/// and the test may skip ([`require::require`]: under CI it fails instead).
fn ffmpeg_null(input: &Path) -> Option<std::process::Output> {
    if !require::require_tool("ffmpeg") {
        return None;
    }
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(input)
        .args(["-map", "0", "-f", "null", "-"])
        .output();
    Some(out.unwrap_or_else(|e| panic!("ffmpeg: {e}")))
}

/// ffmpeg decodes `input` to the end: exit 0 and not one error printed.
fn ffmpeg_decodes(input: &Path) {
    let Some(out) = ffmpeg_null(input) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg on {}: {}\n{stderr}",
        input.display(),
        out.status
    );
}

#[test]
fn ffmpeg_decodes_the_plain_clip() {
    let (_live, clip, _) = plain_clip();
    ffmpeg_decodes(&serve_from_files("plain", &clip.view()));
}

/// ffmpeg 5.1's HLS demuxer feeds a new `EXT-X-MAP` to the mov demuxer it already
/// opened, which skips a second `moov` ("Found duplicated MOOV Atom"): frames after
/// the restart then decode with the first init's SPS/PPS and fail. ffmpeg's own
/// `restart/a` + `restart/b` files behind a hand-written playlist fail the same way,
/// so the whole clip is only required to be read to the end, and each discontinuity,
/// assembled as a player does after its `EXT-X-MAP` (that init, then the segments the
/// playlist lists under it), must decode with no error.
#[test]
fn ffmpeg_decodes_the_restart_clip() {
    let (_live, clip) = restart_clip();
    let view = clip.view();
    let master = serve_from_files("restart", &view);
    let Some(out) = ffmpeg_null(&master) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = master.parent().expect("served dir");
    let text = media_playlist(CLIP, &view.renditions()[0], PlaylistKind::Vod);
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for s in parse_media(&text).segments {
        if let Some(map) = &s.map {
            parts.push(read(&root.join(&map.uri)));
        }
        let part = parts.last_mut().expect("the first segment has a map");
        part.extend(read(&root.join(&s.uri)));
    }
    assert_eq!(parts.len(), 2);
    for (n, bytes) in parts.iter().enumerate() {
        let path = root.join(format!("discontinuity_{n}.mp4"));
        std::fs::write(&path, bytes).expect("write");
        ffmpeg_decodes(&path);
    }
}

#[test]
fn ffmpeg_decodes_the_audio_group_clip() {
    let (_live, clip) = agroup_clip();
    ffmpeg_decodes(&serve_from_files("agroup", &clip.view()));
}

// ----- properties over synthetic streams -----

/// A one-track H.264 init; `tag` makes each encoder run's init distinct.
fn synthetic_init(tag: u8) -> InitSegment {
    synthetic::video_init(vec![tag; 8].into(), 640, 360)
}

fn synthetic_segment(start_ticks: u64, frames: u32, keyframe: bool) -> MediaSegment {
    synthetic::video_segment(
        vec![0; frames as usize * 10].into(),
        start_ticks,
        frames,
        keyframe,
    )
}

/// What happened before an upload.
#[derive(Clone, Copy, Debug)]
enum Before {
    Nothing,
    /// The encoder restarted with new settings: a new init, media time from 0.
    NewInit,
    /// Run again with the same settings: the same init, media time from 0.
    SameInit,
    /// Media time jumped 400 s ahead (longer than the engine extrapolates across).
    Jump,
}

/// Uploads: length in frames, whether it starts on a keyframe, what came before it.
fn uploads() -> impl Strategy<Value = Vec<(u32, bool, Before)>> {
    let before = prop_oneof![
        16 => Just(Before::Nothing),
        1 => Just(Before::NewInit),
        1 => Just(Before::SameInit),
        1 => Just(Before::Jump),
    ];
    prop::collection::vec((15u32..=150, any::<bool>(), before), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the segment lengths, keyframes and restarts, the clip's playlists pass
    /// every check of `check_media`/`check_master` (TARGETDURATION, INDEPENDENT-SEGMENTS
    /// only when every segment starts on a keyframe, a DISCONTINUITY + MAP + date at
    /// each restart, exact EXTINF), as m3u8-rs reads them.
    #[test]
    fn any_stream_renders_valid_playlists(mut ups in uploads()) {
        ups[0] = (ups[0].0, true, Before::Nothing);
        let live = Live::new(WallTime::from_unix_secs(T0_SECS));
        let mut tag = 0u8;
        live.engine.push_init(live.stream, "v", synthetic_init(tag)).expect("init");
        let mut ticks = 0u64;
        let mut total_secs = 0i64;
        for (k, (frames, keyframe, before)) in ups.into_iter().enumerate() {
            match before {
                Before::Nothing => {}
                Before::NewInit => {
                    tag += 1;
                    live.engine.push_init(live.stream, "v", synthetic_init(tag)).expect("init");
                    ticks = 0;
                }
                Before::SameInit => ticks = 0,
                Before::Jump => ticks += 400 * u64::from(TIMESCALE),
            }
            let micros = i64::from(frames) * 1_000_000 / 30;
            live.clock.advance_micros(micros);
            total_secs += micros / 1_000_000 + 1;
            // Distinct bytes per upload, so a restart at the same media time is not
            // taken for a retry.
            let mut seg = synthetic_segment(ticks, frames, keyframe);
            seg.bytes = vec![k as u8; seg.bytes.len()].into();
            live.engine.push_segment(live.stream, "v", None, seg).expect("push");
            ticks += u64::from(frames * FRAME_TICKS);
        }
        // Well past the clip's end and the recording wait: the clip is complete.
        let duration = 2 * total_secs as u64 + 10;
        live.clock.set(WallTime::from_unix_secs(T0_SECS + duration as i64 + 60));
        let clip = live.clip(WallTime::from_unix_secs(T0_SECS), duration);
        let view = clip.view();
        prop_assert!(view.is_complete());
        let r = &view.renditions()[0];
        prop_assert!(!r.chunks().is_empty());
        check_media(r, PlaylistKind::Vod);
        check_master(&view);
    }
}

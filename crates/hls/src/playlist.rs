//! Master and media playlists of a clip (RFC 8216 §4.3.3–4.3.4); `live`
//! renders a stream's live window with the same writers.
//!
//! A small writer of our own instead of m3u8-rs's: it formats straight into one
//! `String` with no intermediate structs (a 4 h clip has 7,200 segments per rendition,
//! rendered again for every new view of a recording clip; the server keeps each text
//! and shares it between polls), and it needs no chrono for
//! `EXT-X-PROGRAM-DATE-TIME`. m3u8-rs stays as the independent parser our tests read
//! every rendered playlist back with.
//!
//! URIs are relative to the playlist and name nothing but the clip and a position in
//! it: `{dir}/init_{n}.mp4` for the n-th init of the clip, `{dir}/seg_{i}.m4s` for its
//! i-th chunk, where `dir` is `rec_{clip}_{rendition}`. A recording clip only appends,
//! so both stay stable for the clip's life.

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Chunk, ClipRendition, ClipView};
use dvrclip_fmp4::{InitSegment, TrackKind, VideoInfo};

use crate::names::LiveFile;
pub use crate::names::MediaFile;

/// Whether the clip may still grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// Complete: `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`.
    Vod,
    /// Recording: `EXT-X-PLAYLIST-TYPE:EVENT`, no end tag yet (RFC 8216 §4.3.3.5).
    Event,
}

impl PlaylistKind {
    /// The kind a clip view's playlists take.
    pub fn of(view: &ClipView) -> Self {
        if view.is_complete() {
            PlaylistKind::Vod
        } else {
            PlaylistKind::Event
        }
    }
}

/// The relative directory of a rendition's init and media segments.
pub fn media_dir(clip_id: &str, rendition: &str) -> String {
    format!("rec_{clip_id}_{rendition}")
}

impl MediaFile {
    /// The bytes this file serves from a rendition of a clip, if it exists.
    pub fn resolve(self, rendition: &ClipRendition) -> Option<Bytes> {
        match self {
            MediaFile::Segment(i) => rendition.chunks().get(i).map(|c| c.bytes().clone()),
            MediaFile::Init(n) => distinct_inits(rendition.chunks())
                .nth(n)
                .map(|init| init.bytes.clone()),
        }
    }
}

/// The init segments of a rendition's chunks in clip order: a new entry whenever the
/// init changes (an encoder restart). `init_{n}.mp4` serves entry n.
fn distinct_inits(chunks: &[Arc<Chunk>]) -> impl Iterator<Item = &Arc<InitSegment>> {
    chunks
        .iter()
        .enumerate()
        .filter(|(i, c)| *i == 0 || !Arc::ptr_eq(chunks[i - 1].init(), c.init()))
        .map(|(_, c)| c.init())
}

/// Renders a rendition's media playlist (RFC 8216 §4.3.3).
pub fn media_playlist(clip_id: &str, rendition: &ClipRendition, kind: PlaylistKind) -> String {
    render_media(
        &media_dir(clip_id, rendition.name()),
        rendition,
        Numbering::Clip(kind),
    )
}

/// How a media playlist numbers its segments and inits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numbering {
    /// A clip's: positions in the clip (`seg_{i}`, `init_{n}`), from media sequence 0.
    Clip(PlaylistKind),
    /// A live DVR window's: the ring's chunk `seq` and discontinuity number, which
    /// stay with a chunk while the window slides (RFC 8216 §6.2.2).
    Live,
}

/// The media playlist of `rendition`, its files under `dir`.
pub(crate) fn render_media(dir: &str, rendition: &ClipRendition, numbering: Numbering) -> String {
    let chunks = rendition.chunks();
    let mut out = String::with_capacity(256 + chunks.len() * 96);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    // EXTINF rounded to the nearest integer must not exceed it (§4.3.3.1); we round up.
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        rendition.target_duration_secs()
    );
    match numbering {
        Numbering::Clip(kind) => {
            out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
            out.push_str(match kind {
                PlaylistKind::Vod => "#EXT-X-PLAYLIST-TYPE:VOD\n",
                PlaylistKind::Event => "#EXT-X-PLAYLIST-TYPE:EVENT\n",
            });
        }
        Numbering::Live => {
            let first = chunks.first();
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                first.map_or(0, |c| c.seq()),
                first.map_or(0, |c| c.discontinuity())
            );
        }
    }
    if !chunks.is_empty() && chunks.iter().all(|c| c.is_keyframe()) {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    // A clip counts its inits and chunks from 0; a live window uses the ring's
    // discontinuity and chunk numbers.
    let mut init_index = 0usize;
    for (i, c) in chunks.iter().enumerate() {
        let new_init = i > 0 && !Arc::ptr_eq(chunks[i - 1].init(), c.init());
        let restart = i > 0 && (new_init || rendition.discontinuity_before(i));
        if restart {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if new_init {
            init_index += 1;
        }
        // The names the parsers read back (`MediaFile`, `LiveFile`), written by them.
        let (init, seg): (&dyn std::fmt::Display, &dyn std::fmt::Display) = match numbering {
            Numbering::Clip(_) => (&MediaFile::Init(init_index), &MediaFile::Segment(i)),
            Numbering::Live => (
                &LiveFile::Init(c.discontinuity()),
                &LiveFile::Segment(c.seq()),
            ),
        };
        if i == 0 || restart {
            // Repeating the map after a discontinuity keeps players that reset their
            // decoder on the tag from losing it (§4.3.2.5); the date re-anchors the
            // timeline, since encoder clocks drift from media time (§4.3.2.6).
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{dir}/{init}\"");
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                c.start_utc().to_rfc3339_millis()
            );
        }
        let _ = writeln!(out, "#EXTINF:{:.6},\n{dir}/{seg}", c.duration_secs());
    }
    if numbering == Numbering::Clip(PlaylistKind::Vod) {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Video frames per second measured from the chunks' video samples, each chunk read
/// through its own init (a restart may change the track id or timescale). A chunk's
/// duration is its video track's, the engine's reference track, so no sample table is
/// summed: a 4 h clip at 30 fps holds 432,000 frames per rendition.
fn frame_rate(chunks: &[Arc<Chunk>]) -> Option<f64> {
    let (mut frames, mut secs) = (0u64, 0f64);
    for c in chunks {
        let Some(track) = c.init().video_track() else {
            continue;
        };
        if let Some(t) = c.segment().track(track.track_id) {
            frames += t.samples.len() as u64;
            secs += c.duration_secs();
        }
    }
    (secs > 0.0).then(|| frames as f64 / secs)
}

/// Every codec of `kinds` in the renditions' inits, each once, by kind then in clip
/// order: CODECS
/// names every "media sample type that is present in one or more Media Segments"
/// (§4.3.4.2), so an encoder restart's new init adds its own.
fn codecs<'a>(
    renditions: impl IntoIterator<Item = &'a ClipRendition>,
    kinds: &[TrackKind],
) -> Vec<String> {
    let renditions: Vec<&ClipRendition> = renditions.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    for kind in kinds {
        for init in renditions.iter().flat_map(|r| inits_of(r)) {
            for t in init.tracks.iter().filter(|t| t.kind == *kind) {
                if !out.contains(&t.entry.codec) {
                    out.push(t.entry.codec.clone());
                }
            }
        }
    }
    out
}

/// The largest video size among the rendition's inits: RESOLUTION is "the optimal
/// pixel resolution at which to display all the video in the Variant Stream" (§4.3.4.2).
fn resolution(r: &ClipRendition) -> Option<VideoInfo> {
    inits_of(r)
        .filter_map(|init| init.video_track()?.entry.video)
        .max_by_key(|v| u32::from(v.width) * u32::from(v.height))
}

/// The inits a rendition's segments use; before a recording clip holds any chunk of
/// it, the init the rendition had when the clip was cut.
fn inits_of(r: &ClipRendition) -> impl Iterator<Item = &Arc<InitSegment>> {
    let before_any = r.chunks().is_empty().then(|| r.expected_init()).flatten();
    distinct_inits(r.chunks()).chain(before_any)
}

/// Peak and average bit rates: measured on the clip's chunks, or the rendition's
/// recent rate when the clip was cut while it holds none yet.
fn bandwidth(r: &ClipRendition) -> (u64, u64) {
    if r.chunks().is_empty() {
        (r.expected_bandwidth_bps(), r.expected_bandwidth_bps())
    } else {
        (r.peak_bandwidth_bps(), r.average_bandwidth_bps())
    }
}

/// Renders the master playlist over every rendition of the clip (RFC 8216 §4.3.4),
/// from its creation: a player loads the master once, so a recording clip announces
/// renditions it holds no chunk of yet from their init and bitrate at the cut.
/// Video renditions become `EXT-X-STREAM-INF` variants, highest first; audio-only
/// renditions become an `EXT-X-MEDIA` audio group the variants reference (ffmpeg's
/// `agroup` layout), or the variants themselves when the clip has no video.
pub fn master_playlist(clip_id: &str, view: &ClipView) -> String {
    render_master(view.renditions(), |name| {
        format!("rec_{clip_id}_{name}.m3u8")
    })
}

/// The master playlist over `renditions`, each media playlist at `uri(name)`.
pub(crate) fn render_master(renditions: &[ClipRendition], uri: impl Fn(&str) -> String) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let present: Vec<(&ClipRendition, &Arc<InitSegment>)> = renditions
        .iter()
        .filter_map(|r| Some((r, r.expected_init()?)))
        .collect();
    let any_chunk = present.iter().any(|(r, _)| !r.chunks().is_empty());
    let independent = present
        .iter()
        .all(|(r, _)| r.chunks().iter().all(|c| c.is_keyframe()));
    if any_chunk && independent {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let (mut video, audio): (Vec<_>, Vec<_>) = present
        .iter()
        .partition(|(_, init)| init.video_track().is_some());
    video.sort_by_cached_key(|(r, _)| std::cmp::Reverse(resolution(r).map_or(0, |v| v.height)));
    // What a variant adds for the audio group a player fetches alongside it: its
    // codecs and the group's largest peak and average rates.
    let audio_group = (!video.is_empty() && !audio.is_empty()).then(|| {
        let peak = audio.iter().map(|(r, _)| bandwidth(r).0).max();
        let avg = audio.iter().map(|(r, _)| bandwidth(r).1).max();
        let codecs = codecs(audio.iter().map(|(r, _)| *r), &[TrackKind::Audio]);
        (codecs, peak.unwrap_or(0), avg.unwrap_or(0))
    });
    if audio_group.is_some() {
        for (i, (r, _)) in audio.iter().enumerate() {
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{}\",DEFAULT={},AUTOSELECT=YES,URI=\"{}\"",
                r.name(),
                if i == 0 { "YES" } else { "NO" },
                uri(r.name()),
            );
        }
    }
    let variants = if video.is_empty() { &audio } else { &video };
    for (r, _) in variants {
        let mut codec_list = codecs([*r], &[TrackKind::Video, TrackKind::Audio]);
        // BANDWIDTH covers every rendition a player fetches at once (§4.3.4.2).
        let (mut peak, mut avg) = bandwidth(r);
        if let Some((audio_codecs, audio_peak, audio_avg)) = &audio_group {
            for c in audio_codecs {
                if !codec_list.contains(c) {
                    codec_list.push(c.clone());
                }
            }
            peak += audio_peak;
            avg += audio_avg;
        }
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            peak.max(1),
            avg.max(1),
            codec_list.join(",")
        );
        if let Some(v) = resolution(r) {
            let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
        }
        if let Some(fps) = frame_rate(r.chunks()) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if audio_group.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, "\n{}", uri(r.name()));
    }
    out
}

//! Embedding the dvrclip engine in a media server with no HTTP at all: parse the
//! three renditions of `tests/fixtures/ladder/` (what `ffmpeg -f hls
//! -hls_segment_type fmp4 -var_stream_map …` writes), push them as an encoder would
//! upload them, then cut a clip and print what an HLS or MP4 writer would serve.
//!
//! ```text
//! cargo run --example embed [LADDER_DIR]
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dvrclip::engine::{ClipRequest, Engine, EngineConfig, ManualClock, StreamSettings, WallTime};

/// A media playlist as the example needs it: the init's name and `(segment, date)`.
type Playlist = (String, Vec<(String, Option<WallTime>)>);

/// One rendition folder's playlist.
fn read_playlist(dir: &Path) -> Result<Playlist, Box<dyn Error>> {
    let text = std::fs::read_to_string(dir.join("index.m3u8"))?;
    let (mut init, mut segs, mut date) = (String::new(), Vec::new(), None);
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = uri.trim_end_matches('"').to_string();
        } else if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            // ffmpeg writes `2026-11-25T04:16:24.534+0000`: ISO 8601, not RFC 3339.
            date = WallTime::parse_program_date_time(d);
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            segs.push((line.trim().to_string(), date.take()));
        }
    }
    Ok((init, segs))
}

fn main() -> Result<(), Box<dyn Error>> {
    let ladder: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ladder"));

    // A manual clock placed just after the fixtures were made, so the example cuts the
    // same clip every run; a server passes nothing and gets the system clock.
    let start = WallTime::parse_program_date_time("2026-11-25T05:59:30Z").ok_or("bad date")?;
    let clock = Arc::new(ManualClock::new(start));
    let engine = Engine::with_clock(EngineConfig::default(), clock.clone());
    let stream = engine.create_stream(StreamSettings::named("ladder"))?.id;

    let mut names: Vec<_> = std::fs::read_dir(&ladder)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("index.m3u8").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (_, first) = read_playlist(&ladder.join(&names[0]))?;

    // Upload in the order ffmpeg does: every rendition's segment k, then its playlist
    // (whose EXT-X-PROGRAM-DATE-TIME arrives after the segment it dates).
    let mut inits = Vec::new();
    for name in &names {
        let (init_name, _) = read_playlist(&ladder.join(name))?;
        let init = dvrclip::fmp4::parse_init(Bytes::from(std::fs::read(
            ladder.join(name).join(init_name),
        )?))?;
        engine.push_init(stream, name, init.clone())?;
        inits.push(init);
    }
    for k in 0..first.len() {
        clock.advance_secs(2);
        for (name, init) in names.iter().zip(&inits) {
            let (_, segs) = read_playlist(&ladder.join(name))?;
            let Some((file, date)) = segs.get(k) else {
                continue;
            };
            let bytes = Bytes::from(std::fs::read(ladder.join(name).join(file))?);
            let segment = dvrclip::fmp4::parse_segment(bytes, init)?;
            engine.push_segment(stream, name, Some(file), segment)?;
            if let Some(date) = date {
                engine.set_segment_date(stream, name, file, *date)?;
            }
        }
    }

    let info = engine.stream(stream)?;
    println!(
        "stream {} {:?}: renditions {:?}, top {}x{}",
        info.id,
        info.name,
        info.renditions,
        info.video_width.unwrap_or(0),
        info.video_height.unwrap_or(0)
    );
    for r in engine.dvr(stream)?.renditions {
        let span: Vec<_> = r
            .ranges
            .iter()
            .map(|g| format!("{} .. {}", g.start_utc, g.end_utc))
            .collect();
        println!(
            "  DVR {:<12} {} chunks, {} bytes, {:?}",
            r.name, r.chunks, r.bytes, span
        );
    }

    // Clip 3 s from one second into the second segment: keyframe-aligned outward.
    let top = engine.rendition_chunks(stream, &info.renditions[0])?;
    let start_utc = top[1].start_utc().add_micros(1_000_000);
    let clip = engine.create_clip(
        stream,
        ClipRequest {
            duration_secs: 3,
            start_unix_secs: Some(start_utc.unix_secs()),
            precise: true,
            ..Default::default()
        },
    )?;
    let view = clip.view();
    println!(
        "clip {} ({:?}): requested {} +{} s, actual {} +{:.3} s, lead-in {} ms, expires {}",
        clip.id(),
        view.state(),
        clip.start_utc(),
        clip.duration_secs(),
        view.actual_start()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        clip.actual_duration_secs(),
        view.lead_in_micros() / 1000,
        clip.expiration_utc(),
    );
    for r in view.renditions() {
        let marker = if r.name() == clip.reference_rendition() {
            " (reference, default MP4)"
        } else {
            ""
        };
        println!(
            "  {}{marker}: {} bps peak",
            r.name(),
            r.peak_bandwidth_bps()
        );
        for (i, c) in r.chunks().iter().enumerate() {
            println!(
                "    {}{} {:.3} s at {} ({} bytes, keyframe {})",
                if r.discontinuity_before(i) {
                    "[discontinuity] "
                } else {
                    ""
                },
                c.name().unwrap_or("?"),
                c.duration_secs(),
                c.start_utc(),
                c.bytes().len(),
                c.is_keyframe()
            );
        }
        // What a progressive MP4 writer takes: (init, parsed segment) in order.
        let samples: usize = r
            .segments()
            .map(|(_, s)| s.tracks.iter().map(|t| t.samples.len()).sum::<usize>())
            .sum();
        println!("    {} samples for the MP4 writer", samples);
    }
    let m = engine.memory();
    println!(
        "memory: {} bytes held, {} by clips, budget {}",
        m.total_bytes, m.clip_bytes, m.budget_bytes
    );
    Ok(())
}

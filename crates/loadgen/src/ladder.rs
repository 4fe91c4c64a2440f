//! A recorded ladder replayed as an endless live one: the fixture's segments in a
//! loop, each pass re-stamped so media time keeps growing.
//!
//! A ladder directory is what ffmpeg's HLS muxer writes with `-var_stream_map`
//! (`tests/fixtures/ladder/`, `/work/shared/tools/gen_ladder.sh`): a `master.m3u8`
//! naming `{rendition}/index.m3u8`, each media playlist naming its `EXT-X-MAP` init
//! and its segments. Every segment is parsed once with `dvrclip_fmp4` (which also
//! finds its `tfdt` fields); segment `k` of the live stream is fixture segment
//! `k % n` with each track's `tfdt` moved on by `k / n` times that track's length in
//! the fixture, so consecutive passes join without a gap or an overlap.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dvrclip_fmp4::{DecodeTimeField, decode_time_fields, parse_init, parse_segment};

use crate::error::Error;

/// One rendition of the ladder.
#[derive(Debug)]
pub(crate) struct Rendition {
    /// Its directory name, the rendition of the ingest URL.
    pub(crate) name: String,
    /// The init segment's file name (from `EXT-X-MAP`).
    pub(crate) init_name: String,
    /// The init segment.
    pub(crate) init: Bytes,
    segments: Vec<FixtureSegment>,
    /// Per track id: ticks one pass of the fixture spans.
    pass_ticks: Vec<(u32, u64)>,
}

#[derive(Debug)]
struct FixtureSegment {
    bytes: Bytes,
    decode_times: Vec<DecodeTimeField>,
}

/// Every rendition, cut at the same boundaries.
#[derive(Debug)]
pub(crate) struct Ladder {
    pub(crate) renditions: Vec<Rendition>,
    /// Seconds of each fixture segment (of the first rendition's first track).
    pub(crate) durations_secs: Vec<f64>,
}

impl Ladder {
    /// Reads and parses the ladder in `dir`.
    pub(crate) fn load(dir: &Path) -> Result<Ladder, Error> {
        let master = read_text(&dir.join("master.m3u8"))?;
        let mut renditions = Vec::new();
        let mut durations_secs = Vec::new();
        for uri in uris(&master) {
            let Some((name, playlist)) = uri.split_once('/') else {
                return Err(Error::Ladder(format!(
                    "{uri}: not {{rendition}}/index.m3u8"
                )));
            };
            let rdir = dir.join(name);
            let (r, secs) = load_rendition(name, &rdir, playlist)?;
            if durations_secs.is_empty() {
                durations_secs = secs;
            }
            renditions.push(r);
        }
        if renditions.is_empty() || durations_secs.is_empty() {
            return Err(Error::Ladder(format!("{}: no rendition", dir.display())));
        }
        Ok(Ladder {
            renditions,
            durations_secs,
        })
    }

    /// Fixture segments per pass.
    pub(crate) fn pass_len(&self) -> usize {
        self.durations_secs.len()
    }

    /// `EXT-X-TARGETDURATION`: the longest segment rounded to the nearest second
    /// (RFC 8216 §4.3.3.1 bounds each `EXTINF` rounded that way).
    pub(crate) fn target_duration_secs(&self) -> u64 {
        self.durations_secs
            .iter()
            .fold(0.0f64, |a, &b| a.max(b))
            .round()
            .max(1.0) as u64
    }

    /// Seconds of live segment `k`.
    pub(crate) fn duration_secs(&self, k: u64) -> f64 {
        let i = (k % self.pass_len() as u64) as usize;
        self.durations_secs.get(i).copied().unwrap_or(0.0)
    }
}

impl Rendition {
    /// Live segment `k`: fixture segment `k % n`, its decode times moved on by
    /// `k / n` passes.
    pub(crate) fn segment(&self, k: u64) -> Result<Vec<u8>, Error> {
        let n = self.segments.len() as u64;
        let pass = k / n;
        let seg = self
            .segments
            .get((k % n) as usize)
            .ok_or_else(|| Error::Ladder("empty rendition".into()))?;
        let mut bytes = seg.bytes.to_vec();
        for f in &seg.decode_times {
            let per_pass = self
                .pass_ticks
                .iter()
                .find(|(t, _)| *t == f.track_id)
                .map_or(0, |(_, ticks)| *ticks);
            let ticks = f.ticks + pass * per_pass;
            dvrclip_fmp4::write_decode_time(&mut bytes, f, ticks)?;
        }
        Ok(bytes)
    }
}

fn load_rendition(name: &str, dir: &Path, playlist: &str) -> Result<(Rendition, Vec<f64>), Error> {
    let text = read_text(&dir.join(playlist))?;
    let init_name = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| Error::Ladder(format!("{name}: no EXT-X-MAP")))?
        .to_owned();
    let init = Bytes::from(read(&dir.join(&init_name))?);
    let parsed_init = parse_init(init.clone())?;
    let mut segments = Vec::new();
    let mut durations_secs = Vec::new();
    // Per track: the first segment's tfdt and the last one's end.
    let mut spans: Vec<(u32, u64, u64)> = Vec::new();
    for file in uris(&text) {
        let bytes = Bytes::from(read(&dir.join(file))?);
        let parsed = parse_segment(bytes.clone(), &parsed_init)?;
        let decode_times = decode_time_fields(&bytes)?;
        if let Some(first) = parsed.tracks.first() {
            let timescale = parsed_init
                .track(first.track_id)
                .map_or(1, |t| t.timescale.max(1));
            durations_secs.push(first.duration_ticks() as f64 / f64::from(timescale));
        }
        for t in &parsed.tracks {
            match spans.iter_mut().find(|(id, _, _)| *id == t.track_id) {
                Some(span) => span.2 = t.end_decode_ticks(),
                None => spans.push((t.track_id, t.base_decode_ticks, t.end_decode_ticks())),
            }
        }
        segments.push(FixtureSegment {
            bytes,
            decode_times,
        });
    }
    if segments.is_empty() {
        return Err(Error::Ladder(format!("{name}: no segment")));
    }
    let pass_ticks = spans
        .into_iter()
        .map(|(id, first, end)| (id, end.saturating_sub(first)))
        .collect();
    Ok((
        Rendition {
            name: name.to_owned(),
            init_name,
            init,
            segments,
            pass_ticks,
        },
        durations_secs,
    ))
}

/// The URI lines of a playlist.
fn uris(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Io(PathBuf::from(path), e))
}

fn read_text(path: &Path) -> Result<String, Error> {
    String::from_utf8(read(path)?)
        .map_err(|_| Error::Ladder(format!("{}: not UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Ladder {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ladder");
        Ladder::load(&dir).unwrap()
    }

    #[test]
    fn passes_join_without_gap_or_overlap() {
        let l = ladder();
        assert_eq!(l.renditions.len(), 3);
        let n = l.pass_len() as u64;
        for r in &l.renditions {
            let init = parse_init(r.init.clone()).unwrap();
            // The last segment of pass 0 ends where the first of pass 1 starts.
            let last = parse_segment(r.segment(n - 1).unwrap().into(), &init).unwrap();
            let next = parse_segment(r.segment(n).unwrap().into(), &init).unwrap();
            for t in &next.tracks {
                let before = last.track(t.track_id).unwrap();
                assert_eq!(t.base_decode_ticks, before.end_decode_ticks(), "{}", r.name);
            }
            // Only the decode times change.
            let a = r.segment(1).unwrap();
            let b = r.segment(n + 1).unwrap();
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() <= 16);
        }
    }
}

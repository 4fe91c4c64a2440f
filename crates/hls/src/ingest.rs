//! Reading the playlists an encoder uploads (RFC 8216 §4), for one thing only: the
//! `EXT-X-PROGRAM-DATE-TIME` of each segment, the wall clock the engine anchors on.
//!
//! A hand-written line scanner rather than m3u8-rs: ffmpeg writes the date as
//! `2026-11-25T04:16:24.534+0000`, which m3u8-rs does not accept as a date and files
//! under unknown tags, and this scanner needs nothing else from the playlist. Each
//! date applies to the next URI line only (RFC 8216 §4.3.2.6), never extrapolated.

use dvrclip_engine::WallTime;

/// One `#EXTINF` entry of an uploaded media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSegment {
    /// The URI line as written (usually a bare file name).
    pub uri: String,
    /// The last path component of the URI, without query: what the engine knows it by.
    pub file_name: String,
    /// `#EXTINF` duration, seconds.
    pub duration_secs: f64,
    /// Its `EXT-X-PROGRAM-DATE-TIME`, when the playlist gives one.
    pub program_date_time: Option<WallTime>,
}

/// What an uploaded playlist is.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestPlaylist {
    /// Lists variant streams; nothing to anchor.
    Master,
    /// Lists segments.
    Media(Vec<IngestSegment>),
}

/// Why an uploaded playlist was refused (400 at the ingest endpoint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestPlaylistError {
    /// Not UTF-8.
    #[error("playlist is not UTF-8")]
    NotUtf8,
    /// First line is not `#EXTM3U` (RFC 8216 §4.3.1.1).
    #[error("playlist does not start with #EXTM3U")]
    NoHeader,
    /// A tag's value could not be read.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Parses an uploaded playlist.
pub fn parse_ingest_playlist(body: &[u8]) -> Result<IngestPlaylist, IngestPlaylistError> {
    let text = std::str::from_utf8(body).map_err(|_| IngestPlaylistError::NotUtf8)?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    match lines.next() {
        Some((_, first)) if first.trim_start_matches('\u{feff}') == "#EXTM3U" => {}
        _ => return Err(IngestPlaylistError::NoHeader),
    }
    let mut segments = Vec::new();
    let mut pending_date = None;
    let mut pending_duration = None;
    for (line, l) in lines {
        let bad = |reason| IngestPlaylistError::BadLine { line, reason };
        if l.is_empty() {
            continue;
        }
        if l.starts_with("#EXT-X-STREAM-INF") || l.starts_with("#EXT-X-MEDIA:") {
            return Ok(IngestPlaylist::Master);
        }
        if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pending_date = Some(
                WallTime::parse_program_date_time(v)
                    .ok_or_else(|| bad("bad EXT-X-PROGRAM-DATE-TIME"))?,
            );
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            let secs = v.split(',').next().unwrap_or("").trim();
            let d: f64 = secs.parse().map_err(|_| bad("bad EXTINF duration"))?;
            if !d.is_finite() || d < 0.0 {
                return Err(bad("bad EXTINF duration"));
            }
            pending_duration = Some(d);
        } else if !l.starts_with('#') {
            let Some(duration_secs) = pending_duration.take() else {
                return Err(bad("URI without EXTINF"));
            };
            let path = l.split(['?', '#']).next().unwrap_or(l);
            let file_name = path.rsplit('/').next().unwrap_or(path).to_owned();
            segments.push(IngestSegment {
                uri: l.to_owned(),
                file_name,
                duration_secs,
                program_date_time: pending_date.take(),
            });
        }
    }
    Ok(IngestPlaylist::Media(segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_live_playlist() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:16:24.534+0000\n\
            #EXTINF:2.000000,\nseg_00003.m4s\n#EXTINF:2.000000,\nseg_00004.m4s\n";
        let IngestPlaylist::Media(segs) = parse_ingest_playlist(text.as_bytes()).unwrap() else {
            panic!("media playlist expected")
        };
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].file_name, "seg_00003.m4s");
        assert_eq!(
            segs[0].program_date_time,
            Some(WallTime::from_unix_micros(1_795_580_184_534_000))
        );
        // The date applies to the next segment only: the engine anchors on real dates.
        assert_eq!(segs[1].program_date_time, None);
        assert_eq!(segs[1].duration_secs, 2.0);
    }

    #[test]
    fn master_playlist() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nmedia_1/index.m3u8\n";
        assert_eq!(
            parse_ingest_playlist(text.as_bytes()),
            Ok(IngestPlaylist::Master)
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            parse_ingest_playlist(b"\xff\xfe"),
            Err(IngestPlaylistError::NotUtf8)
        );
        assert_eq!(
            parse_ingest_playlist(b"hello"),
            Err(IngestPlaylistError::NoHeader)
        );
        assert!(parse_ingest_playlist(b"#EXTM3U\n#EXTINF:abc,\nx.m4s\n").is_err());
        assert!(parse_ingest_playlist(b"#EXTM3U\n#EXTINF:NaN,\nx.m4s\n").is_err());
        assert!(parse_ingest_playlist(b"#EXTM3U\nx.m4s\n").is_err());
        assert!(parse_ingest_playlist(b"#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n").is_err());
    }
}

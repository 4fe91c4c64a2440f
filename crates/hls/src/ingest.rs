//! Reading the playlists an encoder uploads or an origin serves (RFC 8216 §4): for an
//! upload, the `EXT-X-PROGRAM-DATE-TIME` of each segment, the wall clock the engine
//! anchors on ([`parse_ingest_playlist`]); for a pull, also what §6.3 needs to follow a
//! live playlist ([`parse_playlist`]): the variants of a master, and a media
//! playlist's target duration, media and discontinuity sequence numbers, `EXT-X-MAP`,
//! discontinuities and `EXT-X-ENDLIST`. LL-HLS tags (`EXT-X-PART`, hints) are ignored.
//!
//! A hand-written line scanner rather than m3u8-rs: ffmpeg writes the date as
//! `2026-11-25T04:16:24.534+0000`, which m3u8-rs does not accept as a date and files
//! under unknown tags, and this scanner needs nothing else from the playlist. Each
//! date applies to the next URI line only (RFC 8216 §4.3.2.6), never extrapolated.

use dvrclip_engine::WallTime;

/// One `#EXTINF` entry of a media playlist.
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
    /// Its media sequence number (RFC 8216 §6.3.5: `EXT-X-MEDIA-SEQUENCE` plus its
    /// index), saturating.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY` before it (§4.3.2.3).
    pub discontinuity: bool,
    /// The URI of the `EXT-X-MAP` in effect for it (§4.3.2.5), as written.
    pub map_uri: Option<String>,
}

/// What an uploaded playlist is.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestPlaylist {
    /// Lists variant streams; nothing to anchor.
    Master,
    /// Lists segments.
    Media(Vec<IngestSegment>),
}

/// A playlist with what a client following it needs (RFC 8216 §6.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A master playlist: the URIs of its variant streams (`EXT-X-STREAM-INF`) and of
    /// its renditions that name one (`EXT-X-MEDIA` with `URI`), as written, in order.
    Master(Vec<String>),
    /// A media playlist.
    Media(MediaPlaylist),
}

/// A media playlist (RFC 8216 §4.3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`, seconds (§4.3.3.1); `None` when absent.
    pub target_duration_secs: Option<u64>,
    /// `EXT-X-MEDIA-SEQUENCE` (§4.3.3.2), 0 when absent.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (§4.3.3.3), 0 when absent.
    pub discontinuity_sequence: u64,
    /// `EXT-X-ENDLIST` (§4.3.3.4): no segment will be added.
    pub end_list: bool,
    /// The segments, in order.
    pub segments: Vec<IngestSegment>,
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
    Ok(match parse_playlist(body)? {
        Playlist::Master(_) => IngestPlaylist::Master,
        Playlist::Media(m) => IngestPlaylist::Media(m.segments),
    })
}

/// Parses a master or media playlist. Allocation is bounded by the input's length.
pub fn parse_playlist(body: &[u8]) -> Result<Playlist, IngestPlaylistError> {
    let text = std::str::from_utf8(body).map_err(|_| IngestPlaylistError::NotUtf8)?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    match lines.next() {
        Some((_, first)) if first.trim_start_matches('\u{feff}') == "#EXTM3U" => {}
        _ => return Err(IngestPlaylistError::NoHeader),
    }
    let mut media = MediaPlaylist {
        target_duration_secs: None,
        media_sequence: 0,
        discontinuity_sequence: 0,
        end_list: false,
        segments: Vec::new(),
    };
    let mut pending_date = None;
    let mut pending_duration = None;
    let mut pending_discontinuity = false;
    let mut map_uri: Option<String> = None;
    while let Some((line, l)) = lines.next() {
        let bad = |reason| IngestPlaylistError::BadLine { line, reason };
        if l.is_empty() {
            continue;
        }
        if l.starts_with("#EXT-X-STREAM-INF") || l.starts_with("#EXT-X-MEDIA:") {
            return Ok(Playlist::Master(master_uris((line, l), lines)));
        }
        let number = |v: &str, reason| v.trim().parse::<u64>().map_err(|_| bad(reason));
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
        } else if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
            media.target_duration_secs = Some(number(v, "bad EXT-X-TARGETDURATION")?);
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media.media_sequence = number(v, "bad EXT-X-MEDIA-SEQUENCE")?;
        } else if let Some(v) = l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            media.discontinuity_sequence = number(v, "bad EXT-X-DISCONTINUITY-SEQUENCE")?;
        } else if l == "#EXT-X-DISCONTINUITY" {
            pending_discontinuity = true;
        } else if l == "#EXT-X-ENDLIST" {
            media.end_list = true;
        } else if let Some(v) = l.strip_prefix("#EXT-X-MAP:") {
            map_uri = Some(quoted_attribute(v, "URI").ok_or_else(|| bad("EXT-X-MAP without URI"))?);
        } else if !l.starts_with('#') {
            let Some(duration_secs) = pending_duration.take() else {
                return Err(bad("URI without EXTINF"));
            };
            let path = l.split(['?', '#']).next().unwrap_or(l);
            let file_name = path.rsplit('/').next().unwrap_or(path).to_owned();
            media.segments.push(IngestSegment {
                uri: l.to_owned(),
                file_name,
                duration_secs,
                program_date_time: pending_date.take(),
                media_sequence: 0, // numbered below, once the tag is known

                discontinuity: std::mem::take(&mut pending_discontinuity),
                map_uri: map_uri.clone(),
            });
        }
    }
    // §6.3.5: "the Media Sequence Number of the first segment … plus the position".
    for (i, s) in media.segments.iter_mut().enumerate() {
        s.media_sequence = media.media_sequence.saturating_add(i as u64);
    }
    Ok(Playlist::Media(media))
}

/// The rest of a master playlist from its first variant tag `first`: each
/// `EXT-X-STREAM-INF`'s next URI line (§4.3.4.2) and each `EXT-X-MEDIA`'s `URI`.
fn master_uris<'a>(
    first: (usize, &'a str),
    rest: impl Iterator<Item = (usize, &'a str)>,
) -> Vec<String> {
    let mut uris = Vec::new();
    let mut want_uri = false;
    for (_, l) in std::iter::once(first).chain(rest) {
        if l.is_empty() {
            continue;
        }
        if l.starts_with("#EXT-X-STREAM-INF") {
            want_uri = true;
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA:") {
            uris.extend(quoted_attribute(v, "URI"));
        } else if !l.starts_with('#') && std::mem::take(&mut want_uri) {
            uris.push(l.to_owned());
        }
    }
    uris
}

/// The value of `NAME="…"` in an attribute list (RFC 8216 §4.2).
fn quoted_attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    loop {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        if let Some(v) = after.strip_prefix('"') {
            let (value, tail) = v.split_once('"')?;
            if key == name {
                return Some(value.to_owned());
            }
            rest = tail.trim_start_matches(',');
        } else {
            let (_, tail) = after.split_once(',').unwrap_or((after, ""));
            if tail.is_empty() {
                return None;
            }
            rest = tail;
        }
    }
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
    fn live_media_playlist_for_a_pull() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:41\n\
            #EXT-X-DISCONTINUITY-SEQUENCE:2\n#EXT-X-MAP:URI=\"init_0.mp4\",BYTERANGE=\"1@0\"\n\
            #EXTINF:2.0,\nseg_41.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"p.m4s\"\n\
            #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_1.mp4\"\n#EXTINF:2.0,\nseg_42.m4s?x=1\n\
            #EXT-X-ENDLIST\n";
        let Playlist::Media(m) = parse_playlist(text.as_bytes()).unwrap() else {
            panic!("media playlist expected")
        };
        assert_eq!(
            (
                m.target_duration_secs,
                m.media_sequence,
                m.discontinuity_sequence,
                m.end_list
            ),
            (Some(4), 41, 2, true)
        );
        let seqs: Vec<_> = m
            .segments
            .iter()
            .map(|s| (s.media_sequence, s.discontinuity))
            .collect();
        assert_eq!(seqs, [(41, false), (42, true)]);
        assert_eq!(m.segments[0].map_uri.as_deref(), Some("init_0.mp4"));
        assert_eq!(m.segments[1].map_uri.as_deref(), Some("init_1.mp4"));
        assert_eq!(m.segments[1].file_name, "seg_42.m4s");
    }

    #[test]
    fn master_variants() {
        // What ffmpeg -f hls -master_pl_name writes for two variants.
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=1170400,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\"\n\
            v0/index.m3u8\n\n#EXT-X-STREAM-INF:BANDWIDTH=330000\nv1/index.m3u8\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n";
        assert_eq!(
            parse_playlist(text.as_bytes()),
            Ok(Playlist::Master(vec![
                "v0/index.m3u8".into(),
                "v1/index.m3u8".into(),
                "audio/en.m3u8".into()
            ]))
        );
        assert_eq!(
            quoted_attribute("A=1,URI=\"x,y\"", "URI").as_deref(),
            Some("x,y")
        );
        assert_eq!(quoted_attribute("A=1,B=2", "URI"), None);
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

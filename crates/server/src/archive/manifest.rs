//! What an archived clip is: its manifest (`clips/{stream}/{clip}/manifest.json`),
//! the object keys beside it, and the answer to "which stored bytes does this public
//! link serve" ([`Manifest::file`]).
//!
//! The manifest is written last, after every object it names, so its presence means
//! the clip is whole; it carries what the links need to answer without reading any
//! object first: sizes, ETags (the very ones the recording node served), the
//! expiration, and where each HLS init and segment lies in its rendition's one
//! segments file. Pure data: no I/O.

use std::ops::Range;

use dvrclip_engine::{ClipId, StreamId, WallTime};
use dvrclip_hls::MediaFile;
use serde::{Deserialize, Serialize};

/// Version of the manifest layout; a newer one is still read (unknown fields are
/// ignored).
pub const FORMAT_VERSION: u32 = 1;

/// The folder of one clip's objects.
pub fn clip_prefix(stream: StreamId, clip: ClipId) -> String {
    format!("clips/{}/{clip}", stream.0)
}

/// The key of a clip's manifest.
pub fn manifest_key(stream: StreamId, clip: ClipId) -> String {
    format!("{}/manifest.json", clip_prefix(stream, clip))
}

/// The key of a rendition's progressive MP4 (`name` a rendition).
pub fn mp4_key(stream: StreamId, clip: ClipId, rendition: &str) -> String {
    format!("{}/{rendition}.mp4", clip_prefix(stream, clip))
}

/// The key of a rendition's inits and segments, one after another.
pub fn segments_key(stream: StreamId, clip: ClipId, rendition: &str) -> String {
    format!("{}/{rendition}.m4s", clip_prefix(stream, clip))
}

/// The key of a playlist (`name`: `master` or a rendition).
pub fn playlist_key(stream: StreamId, clip: ClipId, name: &str) -> String {
    format!("{}/{name}.m3u8", clip_prefix(stream, clip))
}

/// One stored object: its size and the strong ETag the recording node served it
/// with (quoted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Bytes.
    pub size: u64,
    /// Strong entity-tag, quoted.
    pub etag: String,
    /// Its `Content-Type` as served, when it is not the kind's plain one (an MP4's
    /// names its codecs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A playlist as served: `master` or a rendition's media playlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlaylist {
    /// `master` or the rendition's name.
    pub name: String,
    /// The text's size and ETag.
    #[serde(flatten)]
    pub object: StoredObject,
}

/// One rendition of an archived clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedRendition {
    /// The rendition's name.
    pub name: String,
    /// Its progressive MP4, when the rendition holds media.
    pub mp4: Option<StoredObject>,
    /// Size of its segments file.
    pub segments_size: u64,
    /// `[start, end)` of each distinct init in the segments file (`init_{n}.mp4`).
    pub inits: Vec<(u64, u64)>,
    /// `[start, end)` of each chunk in the segments file (`seg_{i}.m4s`).
    pub segments: Vec<(u64, u64)>,
}

/// A whole archived clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The stream it was cut from.
    pub stream_id: u64,
    /// The clip's id (32 hex characters).
    pub clip_id: String,
    /// When every link answers 404 and the sweep removes it, Unix microseconds.
    pub expiration_unix_micros: i64,
    /// The same, RFC 3339, for people.
    pub expiration: String,
    /// The rendition `master.mp4` serves (the highest).
    pub reference: Option<String>,
    /// The playlists, master first.
    pub playlists: Vec<StoredPlaylist>,
    /// Every rendition.
    pub renditions: Vec<ArchivedRendition>,
    /// Bytes of every object it names (the manifest not included).
    pub total_bytes: u64,
}

/// What a public link of an archived clip serves: a range of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    /// The object.
    pub key: String,
    /// The bytes of it the link serves.
    pub range: Range<u64>,
    /// Its strong ETag as the recording node served it; `None` for an init or a
    /// segment, which were served without one.
    pub etag: Option<String>,
    /// Its `Content-Type` as served, when recorded.
    pub content_type: Option<String>,
}

/// A public link of a clip, as the archive answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipFile<'a> {
    /// `rec_{clip}_{name}.m3u8`: `master` or a rendition's media playlist.
    Playlist(&'a str),
    /// `rec_{clip}_{name}.mp4`: `master` (the reference) or a rendition.
    Mp4(&'a str),
    /// `rec_{clip}_{rendition}/{file}`: an init or a segment.
    Media(&'a str, MediaFile),
}

impl Manifest {
    /// Reads a manifest as stored (any bytes: the store is another system; a
    /// manifest that parses may still name ranges outside its objects, which
    /// [`Manifest::file`] refuses).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The expiration as a wall time.
    pub fn expiration_utc(&self) -> WallTime {
        WallTime::from_unix_micros(self.expiration_unix_micros)
    }

    /// Whether every link answers 404 at `now`.
    pub fn is_expired(&self, now: WallTime) -> bool {
        now >= self.expiration_utc()
    }

    /// Whether it describes clip `clip` of `stream` (a manifest found under a key is
    /// checked against the key, so a misplaced object serves nothing).
    pub fn is_of(&self, stream: StreamId, clip: ClipId) -> bool {
        self.stream_id == stream.0 && self.clip_id == clip.to_string()
    }

    /// The stored bytes `file` serves, `None` when the clip has no such file.
    pub fn file(&self, stream: StreamId, clip: ClipId, file: ClipFile<'_>) -> Option<ArchivedFile> {
        match file {
            ClipFile::Playlist(name) => {
                let p = self.playlists.iter().find(|p| p.name == name)?;
                Some(ArchivedFile {
                    key: playlist_key(stream, clip, name),
                    range: 0..p.object.size,
                    etag: Some(p.object.etag.clone()),
                    content_type: p.object.content_type.clone(),
                })
            }
            ClipFile::Mp4(name) => {
                let name = if name == "master" {
                    self.reference.as_deref()?
                } else {
                    name
                };
                let mp4 = self.rendition(name)?.mp4.as_ref()?;
                Some(ArchivedFile {
                    key: mp4_key(stream, clip, name),
                    range: 0..mp4.size,
                    etag: Some(mp4.etag.clone()),
                    content_type: mp4.content_type.clone(),
                })
            }
            ClipFile::Media(name, media) => {
                let r = self.rendition(name)?;
                let (start, end) = match media {
                    MediaFile::Init(n) => *r.inits.get(n)?,
                    MediaFile::Segment(i) => *r.segments.get(i)?,
                };
                (start <= end && end <= r.segments_size).then(|| ArchivedFile {
                    key: segments_key(stream, clip, name),
                    range: start..end,
                    etag: None,
                    content_type: None,
                })
            }
        }
    }

    fn rendition(&self, name: &str) -> Option<&ArchivedRendition> {
        self.renditions.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            stream_id: 7,
            clip_id: "00112233445566778899aabbccddeeff".into(),
            expiration_unix_micros: 2_000_000,
            expiration: "1970-01-01T00:00:02.000Z".into(),
            reference: Some("hi".into()),
            playlists: vec![StoredPlaylist {
                name: "master".into(),
                object: StoredObject {
                    size: 10,
                    etag: "\"m\"".into(),
                    content_type: None,
                },
            }],
            renditions: vec![ArchivedRendition {
                name: "hi".into(),
                mp4: Some(StoredObject {
                    size: 100,
                    etag: "\"e\"".into(),
                    content_type: Some("video/mp4; codecs=\"avc1.640015\"".into()),
                }),
                segments_size: 50,
                inits: vec![(0, 10)],
                segments: vec![(10, 30), (30, 60)],
            }],
            total_bytes: 160,
        }
    }

    #[test]
    fn links_name_their_bytes() {
        let m = manifest();
        let clip = ClipId::parse(&m.clip_id).unwrap();
        let s = StreamId(7);
        assert!(m.is_of(s, clip));
        assert!(!m.is_of(StreamId(8), clip));
        let mp4 = m.file(s, clip, ClipFile::Mp4("master")).unwrap();
        assert_eq!(mp4.key, format!("clips/7/{clip}/hi.mp4"));
        assert_eq!((mp4.range, mp4.etag.as_deref()), (0..100, Some("\"e\"")));
        let seg = m
            .file(s, clip, ClipFile::Media("hi", MediaFile::Segment(0)))
            .unwrap();
        assert_eq!((seg.key.ends_with("/hi.m4s"), seg.range), (true, 10..30));
        // Past the file's end (a hostile manifest): nothing.
        assert_eq!(
            m.file(s, clip, ClipFile::Media("hi", MediaFile::Segment(1))),
            None
        );
        assert_eq!(m.file(s, clip, ClipFile::Playlist("lo")), None);
        assert_eq!(m.file(s, clip, ClipFile::Mp4("lo")), None);
        assert!(!m.is_expired(WallTime::from_unix_micros(1_999_999)));
        assert!(m.is_expired(WallTime::from_unix_micros(2_000_000)));
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
    }
}

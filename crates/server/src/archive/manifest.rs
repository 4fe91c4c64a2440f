//! What an archived clip is: its manifest (`clips/{stream}/{clip}/manifest.json`),
//! the object keys beside it, and the answer to "which stored bytes does this public
//! link serve" ([`Manifest::file`]).
//!
//! The manifest is written last, after every object it names, so its presence means
//! the clip is whole; it carries what the links need to answer without reading any
//! object first: sizes, ETags (the very ones the recording node served), the
//! expiration, where each HLS init and segment lies in its rendition's one segments
//! file, and (format 2) where each stretch of its MP4 lies ([`Mp4Layout`]: the head
//! object, or the segments file). A format 1 manifest names a whole `{rendition}.mp4`
//! instead, and is still served. Pure data: no I/O.

use std::ops::Range;

use dvrclip_engine::{ClipId, StreamId, WallTime};
use dvrclip_hls::MediaFile;
use serde::{Deserialize, Serialize};

use super::layout::Mp4Layout;

/// Version of the manifest layout; a newer one is still read (unknown fields are
/// ignored). 1: each MP4 stored whole (`{rendition}.mp4`); 2: each MP4 as its head
/// object (`{rendition}.head`) and stretches of the segments file
/// ([`ArchivedRendition::mp4_layout`]).
pub const FORMAT_VERSION: u32 = 2;

/// The folder of one clip's objects.
pub fn clip_prefix(stream: StreamId, clip: ClipId) -> String {
    format!("clips/{}/{clip}", stream.0)
}

/// The key of a clip's manifest.
pub fn manifest_key(stream: StreamId, clip: ClipId) -> String {
    format!("{}/manifest.json", clip_prefix(stream, clip))
}

/// The key of a rendition's progressive MP4 stored whole (format 1; `name` a
/// rendition).
pub fn mp4_key(stream: StreamId, clip: ClipId, rendition: &str) -> String {
    format!("{}/{rendition}.mp4", clip_prefix(stream, clip))
}

/// The key of the bytes of a rendition's progressive MP4 that its segments file
/// does not hold: its header, and any body bytes of the writer's own (format 2).
pub fn head_key(stream: StreamId, clip: ClipId, rendition: &str) -> String {
    format!("{}/{rendition}.head", clip_prefix(stream, clip))
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
    /// Its progressive MP4 as its link serves it (size, ETag, type), when the
    /// rendition holds media.
    pub mp4: Option<StoredObject>,
    /// Where that MP4's bytes lie (format 2): its head object and stretches of the
    /// segments file. `None` (format 1): it is stored whole, `{rendition}.mp4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp4_layout: Option<Mp4Layout>,
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

/// What a public link of an archived clip serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    /// Where its bytes are.
    pub bytes: StoredBytes,
    /// Its strong ETag as the recording node served it; `None` for an init or a
    /// segment, which were served without one.
    pub etag: Option<String>,
    /// Its `Content-Type` as served, when recorded.
    pub content_type: Option<String>,
}

/// Where the bytes of an archived file are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBytes {
    /// A range of one object: a playlist, an init, a segment, a format 1 MP4.
    Range {
        /// The object.
        key: String,
        /// The bytes of it the link serves.
        range: Range<u64>,
    },
    /// A format 2 MP4: its head object and stretches of its segments file, as
    /// `layout` says (checked against the objects' sizes the manifest states).
    Split {
        /// The head object.
        head_key: String,
        /// The segments file.
        segments_key: String,
        /// Which bytes lie where.
        layout: Mp4Layout,
    },
}

impl StoredBytes {
    /// The file's length, bytes.
    pub fn len(&self) -> u64 {
        match self {
            StoredBytes::Range { range, .. } => range.end - range.start,
            StoredBytes::Split { layout, .. } => layout.len(),
        }
    }

    /// Whether the file has no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ArchivedFile {
    /// Its length, bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len()
    }

    /// Whether it has no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    /// Reads a manifest as stored (any bytes: the store is another system; an MP4
    /// layout that is out of order or overflows refuses the whole manifest; one that
    /// parses may still name ranges outside its objects, which [`Manifest::file`]
    /// refuses).
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
                    bytes: StoredBytes::Range {
                        key: playlist_key(stream, clip, name),
                        range: 0..p.object.size,
                    },
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
                let r = self.rendition(name)?;
                let mp4 = r.mp4.as_ref()?;
                let bytes = match &r.mp4_layout {
                    None => StoredBytes::Range {
                        key: mp4_key(stream, clip, name),
                        range: 0..mp4.size,
                    },
                    // Served only when it is the MP4's whole length and every span
                    // lies inside the segments file.
                    Some(layout) => {
                        let fits =
                            layout.len() == mp4.size && layout.segments_end() <= r.segments_size;
                        fits.then(|| StoredBytes::Split {
                            head_key: head_key(stream, clip, name),
                            segments_key: segments_key(stream, clip, name),
                            layout: layout.clone(),
                        })?
                    }
                };
                Some(ArchivedFile {
                    bytes,
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
                    bytes: StoredBytes::Range {
                        key: segments_key(stream, clip, name),
                        range: start..end,
                    },
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
                mp4_layout: None,
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
        let whole = StoredBytes::Range {
            key: format!("clips/7/{clip}/hi.mp4"),
            range: 0..100,
        };
        assert_eq!((mp4.bytes, mp4.etag.as_deref()), (whole, Some("\"e\"")));
        let seg = m
            .file(s, clip, ClipFile::Media("hi", MediaFile::Segment(0)))
            .unwrap();
        let range = StoredBytes::Range {
            key: format!("clips/7/{clip}/hi.m4s"),
            range: 10..30,
        };
        assert_eq!((seg.len(), seg.bytes), (20, range));
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

    #[test]
    fn a_format_2_mp4_is_its_head_and_spans_of_the_segments_file() {
        let mut m = manifest();
        let clip = ClipId::parse(&m.clip_id).unwrap();
        let s = StreamId(7);
        let layout = |text: &str| Some(serde_json::from_str::<Mp4Layout>(text).unwrap());
        // 60 bytes of head, spans of 20 and 20: 100 bytes, inside the 50 of the file.
        m.renditions[0].mp4_layout = layout(r#"{"head_size":60,"spans":[[50,10,20],[70,30,20]]}"#);
        let mp4 = m.file(s, clip, ClipFile::Mp4("hi")).unwrap();
        let StoredBytes::Split {
            head_key,
            segments_key,
            layout: got,
        } = &mp4.bytes
        else {
            panic!("{mp4:?}")
        };
        assert_eq!(head_key, &format!("clips/7/{clip}/hi.head"));
        assert_eq!(segments_key, &format!("clips/7/{clip}/hi.m4s"));
        assert_eq!((got.len(), mp4.len(), got.spans().len()), (100, 100, 2));
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            text.contains(r#""spans":[[50,10,20],[70,30,20]]"#),
            "{text}"
        );
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        // A hostile layout names nothing: past the segments file, or not the MP4's
        // length; one out of order refuses the manifest.
        m.renditions[0].mp4_layout = layout(r#"{"head_size":60,"spans":[[50,40,20],[70,30,20]]}"#);
        assert_eq!(m.file(s, clip, ClipFile::Mp4("hi")), None);
        m.renditions[0].mp4_layout = layout(r#"{"head_size":61,"spans":[[50,10,20],[70,30,20]]}"#);
        assert_eq!(m.file(s, clip, ClipFile::Mp4("hi")), None);
        let text = serde_json::to_string(&m)
            .unwrap()
            .replace("[70,30,20]", "[60,30,20]");
        assert!(Manifest::parse(text.as_bytes()).is_err());
    }

    /// A manifest as format 1 wrote it (no layout): its MP4 is the whole object.
    #[test]
    fn a_format_1_manifest_is_still_served() {
        let text = r#"{"format_version":1,"stream_id":7,
            "clip_id":"00112233445566778899aabbccddeeff",
            "expiration_unix_micros":2000000,"expiration":"1970-01-01T00:00:02.000Z",
            "reference":"hi","playlists":[{"name":"master","size":10,"etag":"\"m\""}],
            "renditions":[{"name":"hi",
                "mp4":{"size":100,"etag":"\"e\"","content_type":"video/mp4"},
                "segments_size":50,"inits":[[0,10]],"segments":[[10,30],[30,50]]}],
            "total_bytes":160}"#;
        let m = Manifest::parse(text.as_bytes()).unwrap();
        let clip = ClipId::parse(&m.clip_id).unwrap();
        let mp4 = m.file(StreamId(7), clip, ClipFile::Mp4("master")).unwrap();
        let whole = StoredBytes::Range {
            key: format!("clips/7/{clip}/hi.mp4"),
            range: 0..100,
        };
        assert_eq!(mp4.bytes, whole);
    }
}

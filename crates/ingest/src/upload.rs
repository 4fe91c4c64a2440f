//! Named-file uploads (the contract's ingest section, `ref/api.md` "Ingest"): what
//! `ffmpeg -f hls -hls_segment_type fmp4 -method PUT` and packagers upload to
//! `{base}/ingest/{key}/{rendition}/{file}`.
//!
//! An upload is resolved first ([`Upload::resolve`]: the key to its stream, the
//! names checked, the file's kind from its extension), so a transport can pick the
//! body's size limit and refuse before reading a byte; then its complete bytes are
//! stored ([`Upload::store`]). The engine parses a segment against its own ring's
//! init, so a refused file leaves the ring exactly as it was.
//!
//! A playlist carries nothing but dates: each `EXT-X-PROGRAM-DATE-TIME` re-anchors
//! the segment it names, if that segment is a sibling upload of the same rendition.

use bytes::Bytes;
use dvrclip_engine::{Engine, PushOutcome, StreamId, is_safe_name};
use dvrclip_hls::ingest::{IngestPlaylist, IngestPlaylistError, parse_ingest_playlist};

/// What an uploaded file is, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `.m3u8`: a master or media playlist.
    Playlist,
    /// An init segment: `.mp4` (ffmpeg's `init.mp4`) or `.cmfi` (ISO/IEC 23000-19
    /// §7.3.2 CMAF header).
    Init,
    /// A media segment: `.m4s`, `.cmfv`, `.cmfa`, `.cmft`, `.m4v`, `.m4a`.
    Segment,
}

impl FileKind {
    /// The kind of `file`, by its extension (case-insensitive).
    pub fn of(file: &str) -> Option<FileKind> {
        let ext = file.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "m3u8" => Some(FileKind::Playlist),
            "mp4" | "cmfi" => Some(FileKind::Init),
            "m4s" | "cmfv" | "cmfa" | "cmft" | "m4v" | "m4a" => Some(FileKind::Segment),
            _ => None,
        }
    }
}

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// No stream has this ingest key (HTTP 403).
    #[error("unknown ingest key")]
    UnknownKey,
    /// A rendition or file name outside the safe charset (HTTP 400).
    #[error("rendition and file names must be [A-Za-z0-9._-], not starting with '.'")]
    BadName,
    /// `master` names a clip's master links, so a rendition of that name could never
    /// be reached (HTTP 400).
    #[error("\"master\" is reserved for a clip's master links; name the rendition otherwise")]
    ReservedName,
    /// An extension that is none of the [`FileKind`]s (HTTP 400).
    #[error("unsupported file type {0:?}: expected .m3u8, .mp4/.cmfi or .m4s")]
    UnsupportedType(String),
    /// A media file not under a rendition (HTTP 400).
    #[error("media files belong under a rendition: /ingest/{{key}}/{{rendition}}/{{file}}")]
    NotUnderRendition,
    /// The playlist does not parse (HTTP 400).
    #[error(transparent)]
    Playlist(#[from] IngestPlaylistError),
    /// The engine refused the media (status by its variant).
    #[error(transparent)]
    Engine(#[from] dvrclip_engine::Error),
}

/// What storing an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Something new was stored (HTTP 201).
    Created,
    /// Nothing changed: a retry, a known init, or a playlist (HTTP 200).
    Unchanged,
}

/// One upload, resolved: the stream its key names and what the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload<'a> {
    /// The stream the ingest key names.
    pub stream: StreamId,
    /// The rendition; `None` for a stream-level file (the master playlist).
    pub rendition: Option<&'a str>,
    /// The file name.
    pub file: &'a str,
    /// What the file is.
    pub kind: FileKind,
}

impl<'a> Upload<'a> {
    /// Resolves `key` (compared in constant time) and checks the names, before any
    /// byte of the body is read.
    pub fn resolve(
        engine: &Engine,
        key: &str,
        rendition: Option<&'a str>,
        file: &'a str,
    ) -> Result<Upload<'a>, UploadError> {
        let stream = is_safe_name(key)
            .then(|| engine.stream_by_ingest_key(key))
            .flatten()
            .ok_or(UploadError::UnknownKey)?;
        if rendition.is_some_and(|r| !is_safe_name(r)) || !is_safe_name(file) {
            return Err(UploadError::BadName);
        }
        if rendition == Some("master") {
            return Err(UploadError::ReservedName);
        }
        let kind = FileKind::of(file).ok_or_else(|| UploadError::UnsupportedType(file.into()))?;
        if rendition.is_none() && kind != FileKind::Playlist {
            return Err(UploadError::NotUnderRendition);
        }
        Ok(Upload {
            stream,
            rendition,
            file,
            kind,
        })
    }

    /// Stores the complete file. Media bytes are kept as they are (the engine's
    /// chunks point into `bytes`).
    pub fn store(&self, engine: &Engine, bytes: Bytes) -> Result<Stored, UploadError> {
        let Some(rendition) = self.rendition else {
            // A master playlist: nothing in it is needed, but it must be a playlist.
            parse_ingest_playlist(&bytes)?;
            return Ok(Stored::Unchanged);
        };
        let outcome = match self.kind {
            FileKind::Init => engine.push_init_bytes(self.stream, rendition, bytes)?,
            FileKind::Segment => {
                engine.push_segment_bytes(self.stream, rendition, Some(self.file), bytes)?
            }
            FileKind::Playlist => {
                self.apply_dates(engine, rendition, &bytes)?;
                return Ok(Stored::Unchanged);
            }
        };
        Ok(match outcome {
            PushOutcome::Stored { .. } | PushOutcome::NewInit => Stored::Created,
            _ => Stored::Unchanged,
        })
    }

    fn apply_dates(
        &self,
        engine: &Engine,
        rendition: &str,
        bytes: &[u8],
    ) -> Result<(), UploadError> {
        let IngestPlaylist::Media(segments) = parse_ingest_playlist(bytes)? else {
            return Ok(());
        };
        for s in segments {
            let (Some(utc), Some(name)) = (s.program_date_time, sibling_name(&s.uri)) else {
                continue;
            };
            // A playlist may list segments already out of the DVR, or arrive before
            // the init: neither is an error of the upload.
            let _ = engine.set_segment_date(self.stream, rendition, name, utc);
        }
        Ok(())
    }
}

/// The file a playlist URI names when it is a sibling of the playlist (a bare safe
/// name, query and fragment aside): the only URIs that can name this rendition's
/// uploads. `../seg.m4s`, `/x/seg.m4s` or `http://host/seg.m4s` resolve elsewhere
/// (RFC 3986 §5.2), so their date must not move the chunk uploaded here as `seg.m4s`.
fn sibling_name(uri: &str) -> Option<&str> {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    is_safe_name(path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sibling_uris_name_an_upload() {
        assert_eq!(sibling_name("seg_00003.m4s"), Some("seg_00003.m4s"));
        assert_eq!(sibling_name("seg_3.m4s?token=a/b#x"), Some("seg_3.m4s"));
        // Found by tests/bad_input.rs: these re-dated this rendition's `seg_000.m4s`.
        for uri in [
            "../seg_000.m4s",
            "../other/seg_000.m4s",
            "/ingest/k/v/seg_000.m4s",
            "http://evil.example/seg_000.m4s",
            "..%2Fseg_000.m4s",
            ".seg_000.m4s",
            "",
        ] {
            assert_eq!(sibling_name(uri), None, "{uri}");
        }
    }

    #[test]
    fn kinds_by_extension() {
        assert_eq!(FileKind::of("init.mp4"), Some(FileKind::Init));
        assert_eq!(FileKind::of("x.CMFI"), Some(FileKind::Init));
        assert_eq!(FileKind::of("seg_1.m4s"), Some(FileKind::Segment));
        assert_eq!(FileKind::of("index.m3u8"), Some(FileKind::Playlist));
        assert_eq!(FileKind::of("seg.ts"), None);
        assert_eq!(FileKind::of("noext"), None);
    }

    #[test]
    fn resolve_refuses_before_any_byte() {
        let engine = Engine::default();
        let key = engine
            .create_stream(dvrclip_engine::StreamSettings::named("s"))
            .unwrap()
            .ingest_key;
        let ok = Upload::resolve(&engine, &key, Some("v"), "seg_1.m4s").unwrap();
        assert_eq!(ok.kind, FileKind::Segment);
        let err = |r, f| Upload::resolve(&engine, &key, r, f).unwrap_err();
        assert_eq!(
            Upload::resolve(&engine, "nope", Some("v"), "a.m4s").unwrap_err(),
            UploadError::UnknownKey
        );
        assert_eq!(err(Some("../v"), "a.m4s"), UploadError::BadName);
        assert_eq!(err(Some("master"), "a.m4s"), UploadError::ReservedName);
        assert_eq!(
            err(Some("v"), "a.ts"),
            UploadError::UnsupportedType("a.ts".into())
        );
        assert_eq!(err(None, "init.mp4"), UploadError::NotUnderRendition);
        assert_eq!(
            Upload::resolve(&engine, &key, None, "master.m3u8")
                .unwrap()
                .kind,
            FileKind::Playlist
        );
    }
}

//! HTTP ingest (DESIGN §7): what `ffmpeg -f hls -hls_segment_type fmp4 -method PUT`
//! and packagers upload to `{base}/ingest/{key}/{rendition}/{file}`.
//!
//! A body is read whole under its kind's limit, parsed, and only then handed to the
//! engine, so a refused or aborted upload leaves the ring exactly as it was. Status
//! codes follow the DASH-IF Live Media Ingest spec: 403 wrong key, 412 no or
//! mismatched init, 415 unsupported codec, 413 too large, 400 anything malformed.
//! A DELETE removes nothing: the DVR window alone decides what falls off.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{PushOutcome, StreamId};
use dvrclip_hls::ingest::{IngestPlaylist, parse_ingest_playlist};
use http::StatusCode;
use http::request::Parts;
use hyper::body::Incoming;

use crate::app::{App, HttpResponse, full};
use crate::error::ApiError;
use crate::routes::is_safe_name;

/// What an uploaded file is, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Playlist,
    Init,
    Segment,
}

fn kind_of(file: &str) -> Option<FileKind> {
    let ext = file.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "m3u8" => Some(FileKind::Playlist),
        // CMAF header files (ISO/IEC 23000-19 §7.3.2): `.mp4` (ffmpeg's init.mp4), `.cmfi`.
        "mp4" | "cmfi" => Some(FileKind::Init),
        "m4s" | "cmfv" | "cmfa" | "cmft" | "m4v" | "m4a" => Some(FileKind::Segment),
        _ => None,
    }
}

/// The declared `Content-Length`, if any; a malformed one is a 400.
pub fn content_length(parts: &Parts) -> Result<Option<u64>, ApiError> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad("malformed Content-Length"))
        })
        .transpose()
}

fn resolve(
    app: &App,
    key: &str,
    rendition: Option<&str>,
    file: &str,
) -> Result<(StreamId, FileKind), ApiError> {
    let stream = is_safe_name(key)
        .then(|| app.engine.stream_by_ingest_key(key))
        .flatten()
        .ok_or_else(|| ApiError::Forbidden("unknown ingest key".into()))?;
    if rendition.is_some_and(|r| !is_safe_name(r)) || !is_safe_name(file) {
        return Err(ApiError::bad(
            "rendition and file names must be [A-Za-z0-9._-], not starting with '.'",
        ));
    }
    // `rec_{clip}_master.*` are a clip's master links (DESIGN §6): a rendition of
    // that name could never be reached.
    if rendition == Some("master") {
        return Err(ApiError::bad(
            "\"master\" is reserved for a clip's master links; name the rendition otherwise",
        ));
    }
    let kind = kind_of(file).ok_or_else(|| {
        ApiError::bad(format!(
            "unsupported file type {file:?}: expected .m3u8, .mp4/.cmfi or .m4s"
        ))
    })?;
    if rendition.is_none() && kind != FileKind::Playlist {
        return Err(ApiError::bad(
            "media files belong under a rendition: /ingest/{key}/{rendition}/{file}",
        ));
    }
    Ok((stream, kind))
}

/// Handles one ingest request.
pub async fn handle(
    app: &Arc<App>,
    key: &str,
    rendition: Option<&str>,
    file: &str,
    delete: bool,
    parts: &Parts,
    body: Incoming,
) -> Result<HttpResponse, ApiError> {
    let (_, kind) = resolve(app, key, rendition, file)?;
    if delete {
        return Ok(full(StatusCode::NO_CONTENT, "text/plain", Bytes::new()));
    }
    let limits = &app.config.limits;
    let limit = match kind {
        FileKind::Segment => limits.segment_bytes,
        FileKind::Init | FileKind::Playlist => limits.small_file_bytes,
    };
    let bytes = crate::body::read_limited(
        body,
        content_length(parts)?,
        limit,
        &app.bodies,
        limits.body_idle,
        limits.upload_deadline,
    )
    .await?;
    let bytes = crate::payload::keep(bytes);
    let len = bytes.len();
    let status = store(app, key, rendition, file, bytes)?;
    app.metrics.record_ingest(len);
    Ok(full(status, "text/plain", Bytes::new()))
}

/// Parses and stores one complete upload; `201 Created` when something new was
/// stored, `200 OK` for a retry of what is already held.
pub fn store(
    app: &App,
    key: &str,
    rendition: Option<&str>,
    file: &str,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    let (stream, kind) = resolve(app, key, rendition, file)?;
    let engine = &app.engine;
    let Some(rendition) = rendition else {
        // A master playlist: nothing in it is needed, but it must be a playlist.
        parse_ingest_playlist(&bytes).map_err(|e| ApiError::bad(e.to_string()))?;
        return Ok(StatusCode::OK);
    };
    match kind {
        FileKind::Init => {
            let init = dvrclip_fmp4::parse_init(bytes)?;
            let outcome = engine.push_init(stream, rendition, init)?;
            Ok(created_or_ok(outcome))
        }
        FileKind::Segment => {
            let init = engine
                .renditions(stream)?
                .into_iter()
                .find(|r| r.name == rendition)
                .and_then(|r| r.init)
                .ok_or_else(|| {
                    ApiError::PreconditionFailed(format!(
                        "rendition {rendition:?} has no init segment yet; upload it first"
                    ))
                })?;
            let segment = dvrclip_fmp4::parse_segment(bytes, &init)?;
            let outcome = engine.push_segment(stream, rendition, Some(file), segment)?;
            Ok(created_or_ok(outcome))
        }
        FileKind::Playlist => {
            let playlist =
                parse_ingest_playlist(&bytes).map_err(|e| ApiError::bad(e.to_string()))?;
            if let IngestPlaylist::Media(segments) = playlist {
                for s in segments {
                    let Some(utc) = s.program_date_time else {
                        continue;
                    };
                    let Some(name) = sibling_name(&s.uri) else {
                        continue;
                    };
                    // A playlist may list segments already out of the DVR, or arrive
                    // before the init: neither is an error of the upload.
                    let _ = engine.set_segment_date(stream, rendition, name, utc);
                }
            }
            Ok(StatusCode::OK)
        }
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

fn created_or_ok(outcome: PushOutcome) -> StatusCode {
    match outcome {
        PushOutcome::Stored { .. } | PushOutcome::NewInit => StatusCode::CREATED,
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::sibling_name;

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
}

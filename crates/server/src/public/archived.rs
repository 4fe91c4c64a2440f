//! A clip's public links answered from the clip archive when this node does not hold
//! the clip (`design/cluster.md` "Clip archive"): the manifest found by
//! [`ClipArchive::lookup`] names the object and range each link serves, and the bytes
//! stream from the store by ranged reads, never whole.
//!
//! Each answer is the one the recording node gave: the MP4 and the playlists as
//! [`entity::Entity`]s with the ETag it served (so `Range`/206, `If-None-Match`/304
//! and `If-Range` behave the same), inits and segments as plain 200s, and the same
//! `Cache-Control` (media until the expiration, a complete clip's playlists at most
//! 60 s). An MP4 stored once (format 2) streams from its head object and the
//! segments file ([`super::split_body`]); one stored whole (format 1), from its
//! object. 404 for a clip the archive does not hold or that has expired; 503 when
//! the store fails.

use std::ops::Range;

use http::Response;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http_body_util::BodyExt;

use super::split_body::SplitMp4;
use super::store_body::StoreBody;
use super::{HLS_TYPE, cache_for};
use crate::app::App;
use crate::archive::{ArchivedFile, ClipArchive, ClipFile, StoredBytes};
use crate::error::ApiError;
use crate::http::entity::{self, Entity};
use crate::http::{HttpBody, HttpResponse};
use dvrclip_engine::{ClipId, StreamId};

/// Longest a complete clip's playlist may be cached, seconds (as the live link).
const PLAYLIST_MAX_AGE_SECS: u64 = 60;

/// Answers `file` of clip `clip` of `stream` from the archive; `local` is the
/// answer of this node's own clips (a 404, or a 410 for a clip whose media a restart
/// lost), returned when the archive does not hold the clip or there is none.
pub async fn serve(
    app: &App,
    stream: StreamId,
    clip: ClipId,
    file: ClipFile<'_>,
    parts: &Parts,
    local: ApiError,
) -> Result<HttpResponse, ApiError> {
    let Some(archive) = &app.archive else {
        return Err(local);
    };
    let now = app.engine.now();
    let manifest = archive
        .lookup(stream, clip, now)
        .await
        .map_err(|e| ApiError::Unavailable(format!("clip archive: {e}")))?
        .ok_or(local)?;
    let found = manifest
        .file(stream, clip, file)
        .ok_or_else(|| ApiError::NotFound("no such file in this clip".into()))?;
    let micros = manifest.expiration_utc().micros_since(now);
    let secs_left = u64::try_from(micros / 1_000_000).unwrap_or(0);
    let ArchivedFile {
        bytes,
        etag,
        content_type: recorded_type,
    } = found;
    let Some(etag) = etag else {
        // An init or a segment: 200 with its bytes, as the recording node sent it.
        let StoredBytes::Range { key, range } = bytes else {
            return Err(ApiError::NotFound("no such file in this clip".into()));
        };
        let content_type = match file {
            ClipFile::Media(_, dvrclip_hls::MediaFile::Init(_)) => "video/mp4",
            _ => "video/iso.segment",
        };
        let len = range.end - range.start;
        // HEAD: the same headers, no read of the store.
        let body = if parts.method == http::Method::HEAD {
            http_body_util::Empty::new().boxed()
        } else {
            body_of(archive, &key, range).await?
        };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        cache_for(&mut resp, secs_left, true);
        return Ok(resp);
    };
    let (content_type, max_age) = match file {
        ClipFile::Playlist(_) => (HLS_TYPE, secs_left.min(PLAYLIST_MAX_AGE_SECS)),
        _ => ("video/mp4", secs_left),
    };
    let object = ArchivedObject {
        archive,
        bytes,
        etag,
        content_type: recorded_type.unwrap_or_else(|| content_type.to_owned()),
    };
    let mut resp = entity::respond(&parts.method, &parts.headers, &object).await?;
    cache_for(&mut resp, max_age, false);
    Ok(resp)
}

/// A body streaming bytes `range` of object `key`.
async fn body_of(
    archive: &ClipArchive,
    key: &str,
    range: Range<u64>,
) -> Result<HttpBody, ApiError> {
    let len = range.end - range.start;
    if len == 0 {
        return Ok(http_body_util::Empty::new().boxed());
    }
    let stream = archive
        .store()
        .get_range(key, range)
        .await
        .map_err(store_error)?;
    Ok(StoreBody::new(stream, len).boxed())
}

/// A store's failure as the link answers it: 404 for a missing object, else 503.
fn store_error(e: crate::vod::StoreError) -> ApiError {
    if e.is_not_found() {
        ApiError::NotFound(format!("archived clip: {e}"))
    } else {
        ApiError::Unavailable(format!("clip archive: {e}"))
    }
}

/// One archived file with the ETag it was served with: a range of an object, or an
/// MP4 stored once.
struct ArchivedObject<'a> {
    archive: &'a ClipArchive,
    bytes: StoredBytes,
    etag: String,
    content_type: String,
}

impl Entity for ArchivedObject<'_> {
    type Error = ApiError;

    fn len(&self) -> u64 {
        self.bytes.len()
    }

    fn etag(&self) -> &str {
        &self.etag
    }

    fn content_type(&self) -> &str {
        &self.content_type
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, ApiError> {
        match &self.bytes {
            StoredBytes::Range { key, range: r } => {
                let base = r.start;
                body_of(self.archive, key, base + range.start..base + range.end).await
            }
            StoredBytes::Split {
                head_key,
                segments_key,
                layout,
            } => {
                let store = self.archive.store();
                let mp4 = SplitMp4::new(store, head_key, segments_key, layout.clone());
                mp4.body(range).await.map_err(store_error)
            }
        }
    }
}

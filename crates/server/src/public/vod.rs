//! A stored video's public files (`/vod/{id}.mp4`, `.m3u8`, `.m4s`): the MP4 and
//! the HLS form's one fMP4 file are [`Entity`]s read from the store by range (RFC
//! 9110 §13–14, as a clip's MP4 is served); the playlist is read whole.
//!
//! Only a `ready` video's media is served: a `pending` one answers 425 like a
//! recording clip, an `error` one 404 with its reason. A video's bytes never change
//! (its keys are never rewritten), so every answer may be cached for a day.

use std::ops::Range;

use http::request::Parts;
use http_body_util::BodyExt;

use super::store_body::StoreBody;
use super::{HLS_TYPE, cache};
use crate::error::ApiError;
use crate::http::entity::{self, Entity};
use crate::http::{HttpBody, HttpResponse, full};
use crate::route::VodFile;
use crate::vod::{StoreError, VideoRecord, VideoStatus, Vod};

/// `GET|HEAD /vod/{id}.mp4|.m3u8|.m4s`.
pub async fn file(
    vod: &Vod,
    id: u64,
    file: VodFile,
    parts: &Parts,
) -> Result<HttpResponse, ApiError> {
    let rec = ready(vod, id)?;
    let missing = |what| ApiError::NotFound(format!("video {id} has no {what}"));
    let stored = match file {
        VodFile::Playlist => {
            let key = rec.hls_key.ok_or_else(|| missing("HLS form"))?;
            let text = vod
                .store()
                .get(&key)
                .await
                .map_err(|e| store_error(id, e))?;
            let mut resp = full(http::StatusCode::OK, HLS_TYPE, text);
            cache(&mut resp, "public, max-age=86400");
            return Ok(resp);
        }
        VodFile::Mp4 => match (rec.media_key, rec.size, rec.etag) {
            (Some(key), Some(len), Some(etag)) => StoredFile {
                vod,
                id,
                key,
                len,
                etag,
            },
            _ => return Err(missing("MP4")),
        },
        VodFile::HlsMedia => match (rec.hls_media_key, rec.hls_media_size, rec.etag) {
            // Another representation of the same clip: its own strong tag.
            (Some(key), Some(len), Some(etag)) => StoredFile {
                vod,
                id,
                key,
                len,
                etag: format!("\"{}-hls\"", etag.trim_matches('"')),
            },
            _ => return Err(missing("HLS form")),
        },
    };
    let mut resp = entity::respond(&parts.method, &parts.headers, &stored).await?;
    cache(&mut resp, "public, max-age=86400");
    Ok(resp)
}

/// One stored object of a video.
struct StoredFile<'a> {
    vod: &'a Vod,
    id: u64,
    key: String,
    len: u64,
    etag: String,
}

impl Entity for StoredFile<'_> {
    type Error = ApiError;

    fn len(&self) -> u64 {
        self.len
    }

    fn etag(&self) -> &str {
        &self.etag
    }

    fn content_type(&self) -> &str {
        "video/mp4"
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, ApiError> {
        let len = range.end - range.start;
        let stream = self
            .vod
            .store()
            .get_range(&self.key, range)
            .await
            .map_err(|e| store_error(self.id, e))?;
        Ok(StoreBody::new(stream, len).boxed())
    }
}

/// The record of a video whose media may be served.
fn ready(vod: &Vod, id: u64) -> Result<VideoRecord, ApiError> {
    let rec = vod
        .video(id)
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))?;
    match rec.status {
        VideoStatus::Ready => Ok(rec),
        VideoStatus::Pending => Err(ApiError::TooEarly(format!(
            "video {id} is not written yet (its clip may still be recording)"
        ))),
        VideoStatus::Error => {
            let why = rec.error.unwrap_or_else(|| "no media".into());
            Err(ApiError::NotFound(format!("video {id} failed: {why}")))
        }
    }
}

fn store_error(id: u64, e: StoreError) -> ApiError {
    if e.is_not_found() {
        ApiError::NotFound(format!("video {id}: its media is gone from the store"))
    } else {
        ApiError::Unavailable(format!("video {id}: {e}"))
    }
}

//! The VOD's HTTP answers: `GET /streaming/videos/{id}` (the Video object) and
//! `GET|HEAD /vod/{id}.mp4` (the stored MP4 with Range and ETag, RFC 9110 §13–14,
//! decided by [`crate::ranged::decide`] and streamed from the store).
//!
//! `GET|HEAD /vod/{id}.m3u8` and `/vod/{id}.m4s` are its HLS form ([`super::hls`]).
//!
//! Only a `ready` video's media is served: a `pending` one answers 425 like a
//! recording clip, an `error` one 404 with its reason.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;

use super::store::ByteStream;
use super::{VideoStatus, Vod};
use crate::app::{HttpBody, HttpResponse};
use crate::error::ApiError;

/// `GET /streaming/videos/{id}`.
pub fn video(vod: &Vod, id: u64) -> Result<serde_json::Value, ApiError> {
    vod.video_json(id)
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))
}

/// `GET|HEAD /vod/{id}.mp4`.
pub async fn mp4(vod: &Vod, id: u64, parts: &Parts) -> Result<HttpResponse, ApiError> {
    let rec = ready(vod, id)?;
    match (rec.media_key, rec.size, rec.etag) {
        (Some(key), Some(size), Some(etag)) => {
            ranged(vod, id, parts, &key, size, &etag, "video/mp4").await
        }
        _ => Err(ApiError::NotFound(format!("video {id} has no MP4"))),
    }
}

/// `GET|HEAD /vod/{id}.m4s`: the single fMP4 file of the HLS playlist.
pub async fn hls_media(vod: &Vod, id: u64, parts: &Parts) -> Result<HttpResponse, ApiError> {
    let rec = ready(vod, id)?;
    match (rec.hls_media_key, rec.hls_media_size, rec.etag) {
        (Some(key), Some(size), Some(etag)) => {
            // Another representation of the same clip: its own strong tag.
            let etag = format!("\"{}-hls\"", etag.trim_matches('"'));
            ranged(vod, id, parts, &key, size, &etag, "video/mp4").await
        }
        _ => Err(ApiError::NotFound(format!("video {id} has no HLS form"))),
    }
}

/// `GET|HEAD /vod/{id}.m3u8`.
pub async fn playlist(vod: &Vod, id: u64, parts: &Parts) -> Result<HttpResponse, ApiError> {
    let rec = ready(vod, id)?;
    let key = rec
        .hls_key
        .ok_or_else(|| ApiError::NotFound(format!("video {id} has no HLS form")))?;
    let text = vod
        .store()
        .get(&key)
        .await
        .map_err(|e| store_error(id, e))?;
    let len = text.len() as u64;
    let body = if parts.method == http::Method::HEAD {
        Bytes::new()
    } else {
        text
    };
    let mut resp = crate::app::full(http::StatusCode::OK, "application/vnd.apple.mpegurl", body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(resp)
}

/// The record of a video whose media may be served.
fn ready(vod: &Vod, id: u64) -> Result<super::VideoRecord, ApiError> {
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

fn store_error(id: u64, e: super::StoreError) -> ApiError {
    if e.is_not_found() {
        ApiError::NotFound(format!("video {id}: its media is gone from the store"))
    } else {
        ApiError::Unavailable(format!("video {id}: {e}"))
    }
}

/// An object served with Range and conditional requests ([`crate::ranged::decide`]).
async fn ranged(
    vod: &Vod,
    id: u64,
    parts: &Parts,
    key: &str,
    size: u64,
    etag: &str,
    content_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    let d = crate::ranged::decide(&parts.method, &parts.headers, size, etag);
    let mut headers = d.headers;
    if matches!(
        d.status,
        http::StatusCode::OK | http::StatusCode::PARTIAL_CONTENT
    ) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    // A video's bytes never change: its keys are never rewritten.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    let body: HttpBody = match d.body {
        Some(r) if r.start < r.end => {
            let len = r.end - r.start;
            let stream = vod
                .store()
                .get_range(key, r)
                .await
                .map_err(|e| store_error(id, e))?;
            StoreBody::new(stream, len).boxed()
        }
        _ => StoreBody::empty().boxed(),
    };
    let mut resp = http::Response::new(body);
    *resp.status_mut() = d.status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// A response body streaming an object from the store. A read failing midway ends
/// the body early: the client sees fewer bytes than `Content-Length` and hyper
/// closes the connection, the HTTP/1.1 way to say the response is incomplete.
struct StoreBody {
    // `Mutex` only to make the `Send`-only stream `Sync` as `BoxBody` wants; the
    // body is polled through `&mut`, so it is never locked.
    stream: Option<Mutex<ByteStream>>,
    remaining: u64,
}

impl StoreBody {
    fn new(stream: ByteStream, len: u64) -> Self {
        StoreBody {
            stream: Some(Mutex::new(stream)),
            remaining: len,
        }
    }

    fn empty() -> Self {
        StoreBody {
            stream: None,
            remaining: 0,
        }
    }
}

impl Body for StoreBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(stream.get_mut()).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                this.remaining = this.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::error!(error = %e, "VOD read failed mid-response");
                this.stream = None;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                this.stream = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

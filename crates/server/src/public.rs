//! Public clip links (DESIGN §6), no auth: the clip id is the secret.
//!
//! HLS playlists are rendered from the clip's current view on every request (a
//! recording clip grows); init and media segments are the chunks' own bytes; the MP4
//! is a [`VirtualMp4`] built once when the clip is complete and cached until it
//! expires, then served by [`crate::ranged`] with Range and ETag support.

use std::sync::Arc;

use dvrclip_engine::{Clip, ClipId, ClipView, StreamId};
use dvrclip_fmp4::progressive::{Mp4Builder, Options, Trim, VirtualMp4};
use dvrclip_hls::{MediaFile, PlaylistKind, master_playlist, media_playlist};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::app::{App, HttpResponse, full};
use crate::error::ApiError;
use crate::routes::{LinkFormat, Route};

pub(crate) const HLS_TYPE: &str = "application/vnd.apple.mpegurl";

/// Answers a public clip route.
pub async fn handle(app: &App, route: Route, parts: &Parts) -> Result<HttpResponse, ApiError> {
    let mut resp = match route {
        Route::ClipLink {
            stream_id,
            clip,
            name,
            format: LinkFormat::Hls,
        } => {
            let clip = find_clip(app, stream_id, &clip)?;
            let view = clip.view();
            let id = clip.id().to_string();
            let text = if name == "master" {
                master_playlist(&id, &view)
            } else {
                media_playlist(&id, rendition(&view, &name)?, PlaylistKind::of(&view))
            };
            let mut resp = full(StatusCode::OK, HLS_TYPE, text);
            // A recording clip's playlists change with every chunk (RFC 8216 §6.2.1).
            let cache = if view.is_complete() {
                "public, max-age=60"
            } else {
                "no-cache"
            };
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            resp
        }
        Route::ClipLink {
            stream_id,
            clip,
            name,
            format: LinkFormat::Mp4,
        } => {
            let clip = find_clip(app, stream_id, &clip)?;
            let file = mp4_of(app, &clip, &name).await?;
            let resp = crate::ranged::respond(&parts.method, &parts.headers, file);
            resp.map(BodyExt::boxed)
        }
        Route::ClipMedia {
            stream_id,
            clip,
            rendition: name,
            file,
        } => {
            let clip = find_clip(app, stream_id, &clip)?;
            let view = clip.view();
            let media =
                MediaFile::parse(&file).ok_or_else(|| ApiError::NotFound("no such file".into()))?;
            let bytes = media
                .resolve(rendition(&view, &name)?)
                .ok_or_else(|| ApiError::NotFound("no such segment in this clip".into()))?;
            let content_type = match media {
                MediaFile::Init(_) => "video/mp4",
                MediaFile::Segment(_) => "video/iso.segment",
            };
            let mut resp = full(StatusCode::OK, content_type, bytes);
            // A segment URI names one chunk of one clip forever (DESIGN §6).
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=14400, immutable"),
            );
            resp
        }
        other => return Err(ApiError::Internal(format!("not a public route: {other:?}"))),
    };
    set_head_length(parts, &mut resp);
    Ok(resp)
}

/// hyper sends no body for HEAD but keeps `Content-Length` from the headers: give a
/// HEAD answer the length its GET would have.
pub(crate) fn set_head_length(parts: &Parts, resp: &mut HttpResponse) {
    if parts.method != Method::HEAD || resp.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(len) = http_body::Body::size_hint(resp.body()).exact() {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

fn find_clip(app: &App, stream_id: u64, clip: &str) -> Result<Clip, ApiError> {
    let not_found = || ApiError::NotFound("no such clip (unknown or expired)".into());
    let id = ClipId::parse(clip).ok_or_else(not_found)?;
    let clip = app.engine.clip(id).map_err(|_| not_found())?;
    if clip.stream_id() != StreamId(stream_id) {
        return Err(not_found());
    }
    Ok(clip)
}

fn rendition<'a>(
    view: &'a ClipView,
    name: &str,
) -> Result<&'a dvrclip_engine::ClipRendition, ApiError> {
    let found = if name == "master" {
        view.reference()
    } else {
        view.rendition(name)
    };
    found.ok_or_else(|| ApiError::NotFound(format!("clip has no rendition {name:?}")))
}

/// The clip's MP4 of `name` (`master` = the highest rendition), built on first use:
/// concurrent first requests share one build, and the build (tens of milliseconds
/// for a 4 h clip) runs off the runtime's worker threads.
async fn mp4_of(app: &App, clip: &Clip, name: &str) -> Result<Arc<VirtualMp4>, ApiError> {
    let view = clip.view();
    if !view.is_complete() {
        // Gcore: "the clip will be available after start + duration" (425 Too Early).
        return Err(ApiError::TooEarly(format!(
            "clip is still recording until {}; the MP4 is ready when it completes",
            clip.end_utc().to_rfc3339_millis()
        )));
    }
    let rendition_name = rendition(&view, name)?.name().to_owned();
    let cell = app
        .mp4_cache
        .lock()
        .entry((clip.id(), rendition_name.clone()))
        .or_default()
        .clone();
    let build = || {
        let clip = clip.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                build_mp4(&clip, &view, rendition(&view, &rendition_name)?).map(Arc::new)
            })
            .await
            .map_err(|e| ApiError::Internal(format!("building the MP4: {e}")))?
        }
    };
    cell.get_or_try_init(build).await.cloned()
}

/// The MP4 of rendition `r` of `clip` as of `view` (the VOD writer uses it too).
pub(crate) fn build_mp4(
    clip: &Clip,
    view: &ClipView,
    r: &dvrclip_engine::ClipRendition,
) -> Result<VirtualMp4, ApiError> {
    let trim = clip.precise().then(|| Trim {
        lead_in_micros: view.lead_in_micros().max(0) as u64,
        duration_micros: view.requested_duration_micros().max(0) as u64,
    });
    let mut builder = Mp4Builder::new(Options {
        identity: format!("{}/{}", clip.id(), r.name()).into_bytes(),
        trim,
    });
    for (init, segment) in r.segments() {
        builder
            .push(init, segment)
            .map_err(|e| ApiError::Internal(format!("building the MP4: {e}")))?;
    }
    builder.build().map_err(|e| match e {
        dvrclip_fmp4::progressive::BuildError::Empty => {
            ApiError::NotFound("the clip holds no media".into())
        }
        e => ApiError::Internal(format!("building the MP4: {e}")),
    })
}

/// CORS for public links, so a browser player on another origin works.
pub fn add_cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, Accept-Ranges, ETag"),
    );
}

/// The answer to a CORS preflight (`OPTIONS`) on a public link.
pub fn preflight() -> HttpResponse {
    let mut resp = full(StatusCode::NO_CONTENT, "text/plain", bytes::Bytes::new());
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-Range, If-None-Match, If-Modified-Since"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

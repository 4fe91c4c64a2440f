//! Public links, no auth (`ref/api.md` "Public links"): a clip's playlists, segments
//! and MP4 ([`clip`], behind the clip's unguessable id), a stream's live DVR
//! playlists ([`live`], behind its play key), a stored video's files ([`vod`]), a
//! clip this node does not hold from the clip archive ([`archived`]).
//! Playlists are rendered once per change and shared between polls
//! ([`crate::playlist_cache`]).
//! Every answer here carries CORS headers so a browser player on another origin
//! works.

pub mod archived;
pub mod clip;
pub mod live;
mod split_body;
mod store_body;
pub mod vod;

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpResponse, full};
use crate::route::PublicRoute;

/// `Content-Type` of an HLS playlist (RFC 8216 §4).
pub const HLS_TYPE: &str = dvrclip_hls::CONTENT_TYPE;

/// Answers a public route.
pub async fn handle(
    app: &App,
    route: PublicRoute,
    parts: &Parts,
) -> Result<HttpResponse, ApiError> {
    match route {
        PublicRoute::ClipLink {
            stream,
            clip,
            name,
            format,
        } => clip::link(app, stream, clip, &name, format, parts).await,
        PublicRoute::ClipMedia {
            stream,
            clip,
            rendition,
            file,
        } => clip::media(app, stream, clip, &rendition, file, parts).await,
        PublicRoute::LivePlaylist { key, rendition } => {
            live::playlist(app, &key, rendition.as_deref(), parts).await
        }
        PublicRoute::LiveMedia {
            key,
            rendition,
            file,
        } => live::media(app, &key, &rendition, file),
        PublicRoute::Vod(id, file) => vod::file(&app.vod, id, file, parts).await,
        PublicRoute::Preflight => Ok(preflight()),
    }
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
fn preflight() -> HttpResponse {
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

/// Sets `Cache-Control`.
fn cache(resp: &mut HttpResponse, policy: &'static str) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
}

/// Sets `Cache-Control: public, max-age=<secs>` (RFC 9111 §5.2.2.1), with
/// `immutable` (RFC 8246) for what a URI names unchanged for that whole time.
fn cache_for(resp: &mut HttpResponse, secs: u64, immutable: bool) {
    let policy = if immutable {
        format!("public, max-age={secs}, immutable")
    } else {
        format!("public, max-age={secs}")
    };
    if let Ok(v) = HeaderValue::from_str(&policy) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
}

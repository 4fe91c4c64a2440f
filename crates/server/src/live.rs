//! The stream's live DVR playlists (`hls_cmaf_url`), no auth like Gcore's but behind
//! the stream's unguessable play key (as a clip's links are behind its id): the master
//! and per-rendition media playlists over the whole window, rendered from a snapshot
//! of the rings on every request, and the chunks and inits they name.
//!
//! Playlists are `no-cache` (they change with every chunk); a chunk or init is
//! immutable: its URL holds the stream's random key and a number its ring never
//! hands out twice.

use dvrclip_engine::StreamId;
use dvrclip_hls::{LiveFile, live_master_playlist, live_media_playlist};
use http::StatusCode;
use http::header::{self, HeaderValue};
use http::request::Parts;

use crate::app::{App, HttpResponse, full};
use crate::error::ApiError;
use crate::public::{HLS_TYPE, set_head_length};
use crate::routes::Route;

/// Answers a live route.
pub fn handle(app: &App, route: Route, parts: &Parts) -> Result<HttpResponse, ApiError> {
    let engine = &app.engine;
    let (mut resp, cache) = match route {
        Route::LivePlaylist { key, rendition } => {
            let id = stream_of(app, &key)?;
            let text = match rendition {
                None => live_master_playlist(&engine.live_renditions(id)?),
                Some(name) => live_media_playlist(&engine.live_rendition(id, &name)?),
            };
            (full(StatusCode::OK, HLS_TYPE, text), "no-cache")
        }
        Route::LiveMedia {
            key,
            rendition,
            file,
        } => {
            let id = stream_of(app, &key)?;
            let gone = || ApiError::NotFound("not in the DVR window (any more)".into());
            let (content_type, bytes) = match LiveFile::parse(&file).ok_or_else(gone)? {
                LiveFile::Segment(seq) => {
                    let chunk = engine.chunk(id, &rendition, seq)?.ok_or_else(gone)?;
                    ("video/iso.segment", chunk.bytes().clone())
                }
                LiveFile::Init(disc) => {
                    let init = engine.discontinuity_init(id, &rendition, disc)?;
                    ("video/mp4", init.ok_or_else(gone)?.bytes.clone())
                }
            };
            (
                full(StatusCode::OK, content_type, bytes),
                "public, max-age=14400, immutable",
            )
        }
        other => return Err(ApiError::Internal(format!("not a live route: {other:?}"))),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    set_head_length(parts, &mut resp);
    Ok(resp)
}

fn stream_of(app: &App, play_key: &str) -> Result<StreamId, ApiError> {
    app.engine
        .stream_by_play_key(play_key)
        .ok_or_else(|| ApiError::NotFound("no such live stream".into()))
}

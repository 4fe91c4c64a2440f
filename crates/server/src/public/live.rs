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

use super::{HLS_TYPE, cache};
use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpResponse, full};

/// `/live/{play_key}/master.m3u8` (`rendition` None) or `/live/{play_key}/{rendition}.m3u8`.
pub fn playlist(app: &App, key: &str, rendition: Option<&str>) -> Result<HttpResponse, ApiError> {
    let engine = &app.engine;
    let id = stream_of(app, key)?;
    let text = match rendition {
        None => live_master_playlist(&engine.live_renditions(id)?),
        Some(name) => live_media_playlist(&engine.live_rendition(id, name)?),
    };
    let mut resp = full(StatusCode::OK, HLS_TYPE, text);
    cache(&mut resp, "no-cache");
    Ok(resp)
}

/// `/live/{play_key}/{rendition}/{file}`: an init or a chunk of the window.
pub fn media(
    app: &App,
    key: &str,
    rendition: &str,
    file: LiveFile,
) -> Result<HttpResponse, ApiError> {
    let engine = &app.engine;
    let id = stream_of(app, key)?;
    let gone = || ApiError::NotFound("not in the DVR window (any more)".into());
    let (content_type, bytes) = match file {
        LiveFile::Segment(seq) => {
            let chunk = engine.chunk(id, rendition, seq)?.ok_or_else(gone)?;
            ("video/iso.segment", chunk.bytes().clone())
        }
        LiveFile::Init(disc) => {
            let init = engine.discontinuity_init(id, rendition, disc)?;
            ("video/mp4", init.ok_or_else(gone)?.bytes.clone())
        }
    };
    let mut resp = full(StatusCode::OK, content_type, bytes);
    cache(&mut resp, "public, max-age=14400, immutable");
    Ok(resp)
}

fn stream_of(app: &App, play_key: &str) -> Result<StreamId, ApiError> {
    app.engine
        .stream_by_play_key(play_key)
        .ok_or_else(|| ApiError::NotFound("no such live stream".into()))
}

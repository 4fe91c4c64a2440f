//! The stream's live DVR playlists (`hls_cmaf_url`), no auth like Gcore's but behind
//! the stream's unguessable play key (as a clip's links are behind its id): the master
//! and per-rendition media playlists over the whole window, and the chunks and inits
//! they name.
//!
//! A playlist is rendered from a snapshot of the rings once per ring change and the
//! same bytes answer every poll until the next one ([`crate::playlist_cache`]): a poll
//! costs O(1) per rendition, not O(window). Playlists are `no-cache` (they change
//! with every chunk) with a strong ETag, so a player's `If-None-Match` poll between
//! two chunks gets a 304. A chunk or init is immutable: its URL holds the stream's
//! random key and a number its ring never hands out twice.

use dvrclip_engine::StreamId;
use dvrclip_hls::{LiveFile, live_master_playlist, live_media_playlist};
use http::StatusCode;
use http::request::Parts;

use super::cache;
use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpResponse, entity, full};
use crate::playlist_cache::Key;

/// `/live/{play_key}/master.m3u8` (`rendition` None) or `/live/{play_key}/{rendition}.m3u8`.
pub async fn playlist(
    app: &App,
    key: &str,
    rendition: Option<&str>,
    parts: &Parts,
) -> Result<HttpResponse, ApiError> {
    let engine = &app.engine;
    let id = stream_of(app, key)?;
    // The source is read before the snapshot (`Engine::live_generation`).
    let text = match rendition {
        None => app.playlists.get_or_render(
            engine,
            Key::Live(id, None),
            engine.live_generations(id)?,
            || Ok::<_, ApiError>(live_master_playlist(&engine.live_renditions(id)?)),
        )?,
        Some(name) => app.playlists.get_or_render(
            engine,
            Key::Live(id, Some(name.to_owned())),
            vec![engine.live_generation(id, name)?],
            || Ok::<_, ApiError>(live_media_playlist(&engine.live_rendition(id, name)?)),
        )?,
    };
    let Ok(mut resp) = entity::respond(&parts.method, &parts.headers, &text).await;
    // RFC 9110 §15.4.5: a 304 repeats the Cache-Control a 200 would send.
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

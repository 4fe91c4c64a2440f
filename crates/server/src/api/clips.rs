//! Clips: cut one (`PUT|POST .../clip_recording`), list a stream's, read one,
//! delete one. A `vod_required` clip also starts its VOD writer here, every clip the
//! background build of its master MP4 (`App::prebuild_mp4`), and every clip
//! its archiving when there is a clip archive (a delete removes it from there too).
//! A clip whose media a restart lost ([`LostClip`]) is listed, read and deleted like
//! the others, with `state: lost`.

use dvrclip_engine::{Clip, ClipId, ClipRequest, LostClip, StreamId, WallTime};
use serde_json::{Value, json};

use super::page::Page;
use super::unix_secs;
use super::wire::CreateClip;
use crate::app::App;
use crate::error::ApiError;

/// `PUT|POST /streaming/streams/{id}/clip_recording`. A `vod_required` clip is
/// answered once its video's `pending` record is stored, so a crash after the answer
/// always finds the record to resume (`Vod::resume`).
pub async fn create(app: &App, id: StreamId, body: &[u8]) -> Result<Value, ApiError> {
    let req = CreateClip::parse(body)?;
    let engine = &app.engine;
    let clip = engine.create_clip(
        id,
        ClipRequest {
            duration_secs: req.duration,
            start_unix_secs: req.start,
            expiration_unix_secs: req.expiration,
            vod_required: req.vod_required,
            precise: req.precise,
        },
    )?;
    if clip.video_id().is_some() {
        let name = engine.stream(id).map(|s| s.name);
        app.vod
            .start_writer(clip.clone(), name.as_deref().unwrap_or("clip"))
            .await;
    }
    if let Some(archive) = &app.archive {
        archive.spawn(app.engine.clone(), clip.clone());
    }
    // Its master MP4's header, built in the background once the clip is complete:
    // the answer does not wait for it.
    app.prebuild_mp4(clip.clone());
    Ok(clip_json(app, &clip))
}

/// `GET /streaming/streams/{id}/clip_recording`: one page, oldest first; clips
/// whose media a restart lost are listed too (`state: lost`).
pub fn list(app: &App, id: StreamId, page: Page) -> Result<Value, ApiError> {
    let mut all: Vec<Found> = app.engine.clips(id)?.into_iter().map(Found::Clip).collect();
    let lost = app.engine.lost_clips(id);
    if !lost.is_empty() {
        all.extend(lost.into_iter().map(Found::Lost));
        all.sort_by_key(Found::created_at);
    }
    Ok(Value::Array(
        page.of(all).iter().map(|c| c.json(app)).collect(),
    ))
}

/// `GET /streaming/streams/{id}/clip_recording/{clip_id}`.
pub fn get(app: &App, stream: StreamId, id: ClipId) -> Result<Value, ApiError> {
    Ok(find(app, stream, id)?.json(app))
}

/// `DELETE /streaming/streams/{id}/clip_recording/{clip_id}`: its links answer 404
/// at once; its chunks and built MP4s are released (a download in flight keeps what
/// it reads until it ends). A recording `vod_required` clip completes with what it
/// holds, and its video is still written.
pub fn delete(app: &App, stream: StreamId, id: ClipId) -> Result<(), ApiError> {
    find(app, stream, id)?;
    app.engine.delete_clip(id)?;
    app.forget_mp4s(&[id]);
    if let Some(archive) = &app.archive {
        archive.spawn_remove(stream, id);
    }
    Ok(())
}

/// A clip the API answers for: one with media, or one a restart lost.
enum Found {
    Clip(Clip),
    Lost(LostClip),
}

impl Found {
    fn created_at(&self) -> WallTime {
        match self {
            Found::Clip(c) => c.created_at(),
            Found::Lost(l) => l.created_at,
        }
    }

    fn json(&self, app: &App) -> Value {
        match self {
            Found::Clip(c) => clip_json(app, c),
            Found::Lost(l) => lost_json(app, l),
        }
    }
}

/// A clip of `stream`, live or lost; 404 for an unknown stream, or a clip unknown,
/// expired or of another stream.
fn find(app: &App, stream: StreamId, id: ClipId) -> Result<Found, ApiError> {
    app.engine.stream(stream)?;
    match app.engine.clip(id) {
        Ok(clip) if clip.stream_id() == stream => return Ok(Found::Clip(clip)),
        Err(dvrclip_engine::Error::ClipLost { .. }) => {
            if let Some(lost) = app.engine.lost_clip(id).filter(|l| l.stream == stream) {
                return Ok(Found::Lost(lost));
            }
        }
        _ => {}
    }
    Err(ApiError::NotFound(format!(
        "stream {stream} has no clip {id} (never made, expired or deleted)"
    )))
}

/// The Clip object of a clip whose media a restart lost: the request as made, no
/// media (`actual_start` null, `actual_duration` 0), `state: lost` and the reason in
/// `error` (as a Video object's `error`). Its links answer 410.
fn lost_json(app: &App, l: &LostClip) -> Value {
    let base = format!("{}/rec/{}/rec_{}", app.config.public_url, l.stream, l.id);
    let mut v = json!({
        "id": l.id.to_string(),
        "duration": l.request.duration_secs,
        "start": l.start.unix_secs(),
        "expiration": l.expiration.unix_secs(),
        "created_at": l.created_at.to_rfc3339_millis(),
        "vod_required": l.request.vod_required,
        "renditions": l.renditions,
        "hls_master": format!("{base}_master.m3u8"),
        "mp4_master": format!("{base}_master.mp4"),
        "actual_start": Value::Null,
        "actual_duration": 0.0,
        "state": "lost",
        "precise": l.request.precise,
        "error": l.reason,
    });
    if let Some(id) = l.video_id {
        v["video_id"] = id.into();
    }
    v
}

/// The Clip object: exactly Gcore's names, then the extensions.
fn clip_json(app: &App, c: &Clip) -> Value {
    let base = format!(
        "{}/rec/{}/rec_{}",
        app.config.public_url,
        c.stream_id(),
        c.id()
    );
    let view = c.view();
    // What a player gets: a precise clip's trimmed window, else whole chunks.
    let played = c.played(&view);
    let mut v = json!({
        "id": c.id().to_string(),
        "duration": c.duration_secs(),
        "start": c.start_unix_secs(),
        "expiration": c.expiration_unix_secs(),
        "created_at": c.created_at().to_rfc3339_millis(),
        "vod_required": c.vod_required(),
        "renditions": c.renditions(),
        "hls_master": format!("{base}_master.m3u8"),
        "mp4_master": format!("{base}_master.mp4"),
        "actual_start": unix_secs(played.map(|(start, _)| start)),
        "actual_duration": played.map_or(0, |(start, end)| end.micros_since(start)) as f64 / 1e6,
        "state": if view.is_complete() { "complete" } else { "recording" },
        "precise": c.precise(),
    });
    if let Some(id) = c.video_id() {
        v["video_id"] = id.into();
    }
    v
}

//! Clips: cut one (`PUT|POST .../clip_recording`), list a stream's. A
//! `vod_required` clip also starts its VOD writer here.

use dvrclip_engine::{Clip, ClipRequest, StreamId};
use serde_json::{Value, json};

use super::unix_secs;
use super::wire::CreateClip;
use crate::app::App;
use crate::error::ApiError;

/// `PUT|POST /streaming/streams/{id}/clip_recording`.
pub fn create(app: &App, id: StreamId, body: &[u8]) -> Result<Value, ApiError> {
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
            .spawn_writer(clip.clone(), name.as_deref().unwrap_or("clip"));
    }
    Ok(clip_json(app, &clip))
}

/// `GET /streaming/streams/{id}/clip_recording`.
pub fn list(app: &App, id: StreamId) -> Result<Value, ApiError> {
    let clips = app.engine.clips(id)?;
    Ok(Value::Array(
        clips.iter().map(|c| clip_json(app, c)).collect(),
    ))
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
        "actual_start": unix_secs(view.actual_start()),
        "actual_duration": view.actual_duration_micros() as f64 / 1e6,
        "state": if view.is_complete() { "complete" } else { "recording" },
        "precise": c.precise(),
    });
    if let Some(id) = c.video_id() {
        v["video_id"] = id.into();
    }
    v
}

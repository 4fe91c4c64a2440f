//! The Gcore-compatible JSON API under `/streaming` (DESIGN §5): streams, clips,
//! the DVR view. Every call needs `Authorization: APIKey <token>`.
//!
//! Answers use Gcore's field names; `actual_start`, `actual_duration`, `state` and
//! `precise` on clips are additive extensions a Gcore client ignores (DESIGN §10).

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{
    Clip, ClipRequest, DvrInfo, StreamId, StreamInfo, StreamPatch, StreamSettings, WallTime,
};
use http::StatusCode;
use http::request::Parts;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::app::{App, HttpResponse, full};
use crate::error::ApiError;
use crate::routes::Route;
use crate::wire::{CreateClip, CreateStream, PatchStream};

/// Answers an API route.
pub async fn handle(
    app: &Arc<App>,
    route: Route,
    parts: &Parts,
    body: Incoming,
) -> Result<HttpResponse, ApiError> {
    let auth = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    crate::auth::check(auth, &app.config.api_key)?;
    let engine = &app.engine;
    let (status, value) = match route {
        Route::ListStreams => {
            let list: Vec<Value> = engine
                .streams()
                .iter()
                .map(|s| stream_json(app, s))
                .collect();
            (StatusCode::OK, Value::Array(list))
        }
        Route::CreateStream => {
            let req = CreateStream::parse(&read_json(app, parts, body).await?)?;
            let mut settings = StreamSettings::named(req.name);
            settings.active = req.active;
            settings.dvr_enabled = req.dvr_enabled;
            if let Some(d) = req.dvr_duration {
                settings.dvr_duration_secs = d as u32;
            }
            let info = engine.create_stream(settings)?;
            (StatusCode::CREATED, stream_json(app, &info))
        }
        Route::GetStream(id) => (
            StatusCode::OK,
            stream_json(app, &engine.stream(StreamId(id))?),
        ),
        Route::PatchStream(id) => {
            let req = PatchStream::parse(&read_json(app, parts, body).await?)?;
            let patch = StreamPatch {
                name: req.name,
                dvr_enabled: req.dvr_enabled,
                dvr_duration_secs: req.dvr_duration.map(|d| d as u32),
                active: req.active,
            };
            (
                StatusCode::OK,
                stream_json(app, &engine.update_stream(StreamId(id), patch)?),
            )
        }
        Route::DeleteStream(id) => {
            let clips = engine.clips(StreamId(id)).unwrap_or_default();
            engine.delete_stream(StreamId(id))?;
            let mut cache = app.mp4_cache.lock();
            cache.retain(|(clip, _), _| clips.iter().all(|c| c.id() != *clip));
            return Ok(full(
                StatusCode::NO_CONTENT,
                "application/json",
                Bytes::new(),
            ));
        }
        Route::DvrCleanup(id) => {
            engine.drop_dvr(StreamId(id))?;
            (
                StatusCode::OK,
                stream_json(app, &engine.stream(StreamId(id))?),
            )
        }
        Route::DvrView(id) => (StatusCode::OK, dvr_json(&engine.dvr(StreamId(id))?)),
        Route::CreateClip(id) => {
            let req = CreateClip::parse(&read_json(app, parts, body).await?)?;
            let clip = engine.create_clip(
                StreamId(id),
                ClipRequest {
                    duration_secs: req.duration,
                    start_unix_secs: req.start,
                    expiration_unix_secs: req.expiration,
                    vod_required: req.vod_required,
                    precise: req.precise,
                },
            )?;
            if clip.video_id().is_some() {
                let name = engine.stream(StreamId(id)).map(|s| s.name);
                app.vod
                    .spawn_writer(clip.clone(), name.as_deref().unwrap_or("clip"));
            }
            (StatusCode::OK, clip_json(app, &clip))
        }
        Route::ListClips(id) => {
            let clips = engine.clips(StreamId(id))?;
            (
                StatusCode::OK,
                Value::Array(clips.iter().map(|c| clip_json(app, c)).collect()),
            )
        }
        Route::GetVideo(id) => (StatusCode::OK, crate::vod::http::video(&app.vod, id)?),
        other => return Err(ApiError::Internal(format!("not an API route: {other:?}"))),
    };
    Ok(full(status, "application/json", value.to_string()))
}

async fn read_json(app: &App, parts: &Parts, body: Incoming) -> Result<Bytes, ApiError> {
    let limits = &app.config.limits;
    let body = crate::body::read_limited(
        body,
        crate::ingest::content_length(parts)?,
        limits.json_bytes,
        &app.bodies,
        limits.body_idle,
        limits.upload_deadline,
    )
    .await?;
    Ok(Bytes::from(body))
}

fn unix_secs_f64(t: Option<WallTime>) -> Value {
    t.map_or(Value::Null, |t| {
        json!((t.unix_micros() as f64 / 1e3).round() / 1e3)
    })
}

/// The Stream object (Gcore's names).
fn stream_json(app: &App, s: &StreamInfo) -> Value {
    json!({
        "id": s.id.0,
        "name": s.name,
        "active": s.active,
        "dvr_enabled": s.dvr_enabled,
        "dvr_duration": s.dvr_duration_secs,
        "live": s.live,
        "push_url": format!("{}/ingest/{}", app.config.public_url, s.ingest_key),
        "hls_cmaf_url": format!("{}/live/{}/master.m3u8", app.config.public_url, s.play_key),
        "created_at": s.created_at.to_rfc3339_millis(),
        "video_width": s.video_width,
        "video_height": s.video_height,
        "transcoded_qualities": s.renditions,
    })
}

/// The Clip object: exactly Gcore's names, then the extensions.
pub(crate) fn clip_json(app: &App, c: &Clip) -> Value {
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
        "actual_start": unix_secs_f64(view.actual_start()),
        "actual_duration": view.actual_duration_micros() as f64 / 1e6,
        "state": if view.is_complete() { "complete" } else { "recording" },
        "precise": c.precise(),
    });
    if let Some(id) = c.video_id() {
        v["video_id"] = id.into();
    }
    v
}

fn dvr_json(d: &DvrInfo) -> Value {
    let t = |w: WallTime| unix_secs_f64(Some(w));
    json!({
        "stream_id": d.stream.0,
        "dvr_duration": d.dvr_duration_secs,
        "renditions": d.renditions.iter().map(|r| json!({
            "name": r.name,
            "chunks": r.chunks,
            "bytes": r.bytes,
            "ranges": r.ranges.iter().map(|x| json!({
                "start": t(x.start_utc), "end": t(x.end_utc),
                "discontinuity": x.discontinuity, "chunks": x.chunks,
            })).collect::<Vec<_>>(),
            "gaps": r.gaps.iter().map(|g| json!({"start": t(g.start_utc), "end": t(g.end_utc)})).collect::<Vec<_>>(),
            "discontinuities": r.discontinuities.iter().map(|x| json!({
                "discontinuity": x.discontinuity, "start": t(x.start_utc),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

//! Streams: create, list, read, change, delete, the DVR cleanup and the DVR view.
//! The Stream object carries the URLs a client pushes to and plays from.

use dvrclip_engine::{DvrInfo, StreamId, StreamInfo, StreamPatch, StreamSettings, WallTime};
use serde_json::{Value, json};

use super::page::Page;
use super::unix_secs;
use super::wire::{CreateStream, PatchStream};
use crate::app::App;
use crate::error::ApiError;

/// `GET /streaming/streams`: one page, by id.
pub fn list(app: &App, page: Page) -> Value {
    let streams = page.of(app.engine.streams());
    Value::Array(streams.iter().map(|s| stream_json(app, s)).collect())
}

/// `POST /streaming/streams`.
pub fn create(app: &App, body: &[u8]) -> Result<Value, ApiError> {
    let req = CreateStream::parse(body)?;
    let mut settings = StreamSettings::named(req.name);
    settings.active = req.active;
    settings.dvr_enabled = req.dvr_enabled;
    settings.pull = req.pull;
    settings.uri = req.uri;
    if let Some(d) = req.dvr_duration {
        settings.dvr_duration_secs = d as u32;
    }
    let info = app.engine.create_stream(settings)?;
    app.pullers.sync(&app.engine, &info);
    Ok(stream_json(app, &info))
}

/// `GET /streaming/streams/{id}`.
pub fn get(app: &App, id: StreamId) -> Result<Value, ApiError> {
    Ok(stream_json(app, &app.engine.stream(id)?))
}

/// `PATCH /streaming/streams/{id}`.
pub fn patch(app: &App, id: StreamId, body: &[u8]) -> Result<Value, ApiError> {
    let req = PatchStream::parse(body)?;
    let patch = StreamPatch {
        name: req.name,
        dvr_enabled: req.dvr_enabled,
        dvr_duration_secs: req.dvr_duration.map(|d| d as u32),
        active: req.active,
        pull: req.pull,
        uri: req.uri,
    };
    let info = app.engine.update_stream(id, patch)?;
    app.pullers.sync(&app.engine, &info);
    Ok(stream_json(app, &info))
}

/// `DELETE /streaming/streams/{id}`: the stream, its DVR and its clips (archived
/// ones too).
pub fn delete(app: &App, id: StreamId) -> Result<(), ApiError> {
    let clips = app.engine.clips(id).unwrap_or_default();
    app.engine.delete_stream(id)?;
    app.pullers.stop(id);
    let ids: Vec<_> = clips.iter().map(|c| c.id()).collect();
    app.forget_mp4s(&ids);
    if let Some(archive) = &app.archive {
        for clip in &ids {
            archive.spawn_remove(id, *clip);
        }
    }
    Ok(())
}

/// `PUT /streaming/streams/{id}/dvr_cleanup`.
pub fn dvr_cleanup(app: &App, id: StreamId) -> Result<Value, ApiError> {
    app.engine.drop_dvr(id)?;
    get(app, id)
}

/// `GET /streaming/streams/{id}/dvr`.
pub fn dvr(app: &App, id: StreamId) -> Result<Value, ApiError> {
    Ok(dvr_json(&app.engine.dvr(id)?))
}

/// The Stream object (Gcore's names).
fn stream_json(app: &App, s: &StreamInfo) -> Value {
    let base = &app.config.public_url;
    json!({
        "id": s.id.0,
        "name": s.name,
        "active": s.active,
        "dvr_enabled": s.dvr_enabled,
        "dvr_duration": s.dvr_duration_secs,
        "live": s.live,
        "push_url": push_url(app, s),
        "push_url_http": format!("{base}/ingest/{}", s.ingest_key),
        "push_url_srt": push_url_srt(app, s),
        "hls_cmaf_url": format!("{base}/live/{}/master.m3u8", s.play_key),
        "created_at": s.created_at.to_rfc3339_millis(),
        "video_width": s.video_width,
        "video_height": s.video_height,
        "transcoded_qualities": s.renditions,
        "pull": s.pull,
        "uri": s.uri.as_deref().unwrap_or(""),
        "uri_in_use": app.pullers.in_use(s.id),
    })
}

/// Gcore's `push_url`: RTMP when the door listens (the public URL's host, the RTMP
/// port, app `live`, the ingest key), else the HTTP ingest base.
fn push_url(app: &App, s: &StreamInfo) -> String {
    let base = &app.config.public_url;
    let Some(rtmp) = app.config.rtmp_listen else {
        return format!("{base}/ingest/{}", s.ingest_key);
    };
    let host = public_host(base);
    format!("rtmp://{host}:{}/live/{}", rtmp.port(), s.ingest_key)
}

/// Gcore's `push_url_srt`, `srt://{host}:{port}?streamid={ingest key}` (the public
/// URL's host, the SRT port); `""` when SRT is off, as `uri` is when unset.
fn push_url_srt(app: &App, s: &StreamInfo) -> String {
    let Some(srt) = app.config.srt_listen else {
        return String::new();
    };
    let host = public_host(&app.config.public_url);
    format!("srt://{host}:{}?streamid={}", srt.port(), s.ingest_key)
}

/// The host of the public URL, without its HTTP port (an IPv6 literal keeps its
/// brackets).
fn public_host(base: &str) -> &str {
    let authority = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = authority.split('/').next().unwrap_or(authority);
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => h,
        _ => authority,
    }
}

fn dvr_json(d: &DvrInfo) -> Value {
    let t = |w: WallTime| unix_secs(Some(w));
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

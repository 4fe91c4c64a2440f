//! Streams: create, list, read, change, delete, the DVR cleanup and the DVR view.
//! The Stream object carries the URLs a client pushes to and plays from.
//!
//! In a cluster the streams are the records in etcd ([`crate::cluster::records`]):
//! ids come from the cluster's counter, a list or read is answered by any node
//! from the records (a stream this node owns shows its live state and renditions;
//! another's shows the record, not live), and a change or delete reaching this node
//! was already forwarded to the owner if another node owns the stream
//! ([`crate::steer`]), so the record and the owner's engine change together.

use dvrclip_engine::{DvrInfo, StreamId, StreamInfo, StreamPatch, StreamSettings, WallTime};
use serde_json::{Value, json};

use super::page::Page;
use super::unix_secs;
use super::wire::{CreateStream, PatchStream};
use crate::app::App;
use crate::cluster::records::{PatchError, StreamRecord};
use crate::cluster::{Cluster, Place};
use crate::error::ApiError;

/// `GET /streaming/streams`: one page, by id.
pub async fn list(app: &App, page: Page) -> Result<Value, ApiError> {
    let streams = match &app.cluster {
        None => page.of(app.engine.streams()),
        Some(c) => {
            let records = page.of(c.records.list().await?);
            records.iter().map(|r| shown(app, c, r)).collect()
        }
    };
    Ok(Value::Array(
        streams.iter().map(|s| stream_json(app, s)).collect(),
    ))
}

/// A stream of the cluster as this node shows it: its engine's view when it owns
/// the stream, else the record's.
fn shown(app: &App, c: &Cluster, r: &StreamRecord) -> StreamInfo {
    let id = StreamId(r.id);
    match app.engine.stream(id) {
        Ok(info) if c.owns(id) => info,
        _ => r.info(),
    }
}

/// `POST /streaming/streams`.
pub async fn create(app: &App, body: &[u8]) -> Result<Value, ApiError> {
    let req = CreateStream::parse(body)?;
    let mut settings = StreamSettings::named(req.name);
    settings.active = req.active;
    settings.dvr_enabled = req.dvr_enabled;
    settings.pull = req.pull;
    settings.uri = req.uri;
    if let Some(d) = req.dvr_duration {
        settings.dvr_duration_secs = d as u32;
    }
    let Some(c) = &app.cluster else {
        let info = app.engine.create_stream(settings)?;
        app.pullers.sync(&app.engine, &info);
        return Ok(stream_json(app, &info));
    };
    app.engine.check_settings(&settings)?;
    let id = c.next_stream_id().await?;
    let record = StreamRecord::new(id, &settings, app.engine.now()).map_err(ApiError::Internal)?;
    c.records.create(&record).await?;
    // A pulled stream has no encoder to claim it: the node that took the create
    // owns it and pulls.
    if record.pull && c.place(&app.engine, StreamId(id), true).await? == Place::Here {
        app.pullers
            .sync(&app.engine, &app.engine.stream(StreamId(id))?);
    }
    Ok(stream_json(app, &shown(app, c, &record)))
}

/// The record of `id`, or 404.
async fn record(c: &Cluster, id: StreamId) -> Result<StreamRecord, ApiError> {
    c.records
        .get(id.0)
        .await?
        .ok_or_else(|| dvrclip_engine::Error::UnknownStream(id).into())
}

/// `GET /streaming/streams/{id}`.
pub async fn get(app: &App, id: StreamId) -> Result<Value, ApiError> {
    let info = match &app.cluster {
        None => app.engine.stream(id)?,
        // The owner's engine holds the record's settings: no etcd round trip, so
        // reads of what this node owns work while etcd is away.
        Some(c) if c.owns(id) && app.engine.stream(id).is_ok() => app.engine.stream(id)?,
        Some(c) => shown(app, c, &record(c, id).await?),
    };
    Ok(stream_json(app, &info))
}

/// `PATCH /streaming/streams/{id}`.
pub async fn patch(app: &App, id: StreamId, body: &[u8]) -> Result<Value, ApiError> {
    let req = PatchStream::parse(body)?;
    let patch = StreamPatch {
        name: req.name,
        dvr_enabled: req.dvr_enabled,
        dvr_duration_secs: req.dvr_duration.map(|d| d as u32),
        active: req.active,
        pull: req.pull,
        uri: req.uri,
    };
    let Some(c) = &app.cluster else {
        let info = app.engine.update_stream(id, patch)?;
        app.pullers.sync(&app.engine, &info);
        return Ok(stream_json(app, &info));
    };
    let written = c
        .records
        .patch(id.0, &patch, |r| app.engine.check_settings(&r.settings()))
        .await
        .map_err(|e| match e {
            PatchError::Cluster(e) => ApiError::from(e),
            PatchError::Refused(e) => ApiError::from(e),
        })?
        .ok_or(dvrclip_engine::Error::UnknownStream(id))?;
    if app.engine.stream(id).is_ok() {
        let info = app.engine.update_stream(id, patch)?;
        if c.owns(id) {
            app.pullers.sync(&app.engine, &info);
        }
    }
    Ok(stream_json(app, &shown(app, c, &written)))
}

/// `DELETE /streaming/streams/{id}`: the stream, its DVR and its clips (archived
/// ones too).
pub async fn delete(app: &App, id: StreamId) -> Result<(), ApiError> {
    if let Some(c) = &app.cluster {
        record(c, id).await?;
        c.records.delete(id.0).await?;
        // `steer` sent the delete to the owner; answered here without a claim,
        // nobody owns the stream, and no owner will remove its shipped DVR.
        let owned = c.owns(id);
        if app.engine.stream(id).is_ok() {
            delete_here(app, id)?;
        }
        if !owned && let Some(ship) = c.ship() {
            ship.remove_unowned(id);
        }
        return c.release(id).await;
    }
    delete_here(app, id)
}

/// Deletes what this node's engine holds of the stream.
fn delete_here(app: &App, id: StreamId) -> Result<(), ApiError> {
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
    Ok(stream_json(app, &app.engine.stream(id)?))
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

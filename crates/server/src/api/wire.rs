//! JSON request bodies of the Gcore-compatible API, read field by field so a wrong
//! type or value is refused with the field's name (`ref/api.md`).
//!
//! Unknown fields are ignored, as a Gcore client sends many this server does not
//! use; `null` counts as absent.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// `POST /streaming/streams` (flat body).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStream {
    /// Required.
    pub name: String,
    /// Default true.
    pub active: bool,
    /// Default true.
    pub dvr_enabled: bool,
    /// Seconds, default 3600.
    pub dvr_duration: Option<u64>,
    /// Pull from `uri` (Gcore's `pull`), default false.
    pub pull: bool,
    /// Where to pull from: http(s) URLs separated by spaces (checked by `pull_uri`).
    pub uri: Option<String>,
}

/// `PATCH /streaming/streams/{id}` (`{"stream": {...}}`): only the fields given change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchStream {
    /// New name.
    pub name: Option<String>,
    /// Switch on or off.
    pub active: Option<bool>,
    /// Enable or disable DVR.
    pub dvr_enabled: Option<bool>,
    /// New DVR window, seconds.
    pub dvr_duration: Option<u64>,
    /// Switch pulling on or off.
    pub pull: Option<bool>,
    /// New pull URIs; `""` clears them.
    pub uri: Option<String>,
}

/// `PUT /streaming/streams/{id}/clip_recording`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateClip {
    /// Seconds, required.
    pub duration: u64,
    /// Unix seconds; `None` = now.
    pub start: Option<i64>,
    /// Unix seconds; `None` = `max(end, now) + 3600`.
    pub expiration: Option<i64>,
    /// Persist as VOD.
    pub vod_required: bool,
    /// Trim playback to the exact request with edit lists (extension).
    pub precise: bool,
}

/// `PATCH /streaming/videos/{id}`: what Gcore's `videos.update` sends, flat (a body
/// wrapped in `"video"` is accepted too); only `name` is used.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchVideo {
    /// Required, not blank.
    pub name: String,
}

/// At most this many pull URIs, and this many bytes for all of them.
pub const MAX_PULL_URIS: usize = 8;
/// See [`MAX_PULL_URIS`].
pub const MAX_PULL_URI_BYTES: usize = 4096;

/// Gcore's bounds on `dvr_duration`, seconds.
pub const DVR_DURATION_RANGE: std::ops::RangeInclusive<u64> = 30..=14_400;

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("malformed JSON body: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad("JSON body must be an object")),
    }
}

fn get<'a>(m: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    m.get(field).filter(|v| !v.is_null())
}

fn string(m: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ApiError> {
    match get(m, field) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::bad_field(
            field,
            format!("{field} is longer than 255 characters"),
        )),
        Some(_) => Err(ApiError::bad_field(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn boolean(m: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, ApiError> {
    match get(m, field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_field(
            field,
            format!("{field} must be true or false"),
        )),
    }
}

fn integer(m: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, ApiError> {
    match get(m, field) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_field(field, format!("{field} must be an integer"))),
        Some(_) => Err(ApiError::bad_field(
            field,
            format!("{field} must be an integer"),
        )),
    }
}

fn dvr_duration(m: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    match integer(m, "dvr_duration")? {
        None => Ok(None),
        Some(d) if d >= 0 && DVR_DURATION_RANGE.contains(&(d as u64)) => Ok(Some(d as u64)),
        Some(_) => Err(ApiError::bad_field(
            "dvr_duration",
            "dvr_duration must be between 30 and 14400 seconds",
        )),
    }
}

/// `uri`: one or more URLs separated by spaces (Gcore's round-robin list): `http://`
/// or `https://` (HLS), `rtmp://` (played) or `srt://` (called); `rtmps://` and the
/// rest are a 400 naming `uri`. `""` is kept as given (it clears the field on PATCH).
fn pull_uri(m: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let bad = |why: String| ApiError::bad_field("uri", why);
    let uri = match get(m, "uri") {
        None => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad("uri must be a string".into())),
    };
    if uri.len() > MAX_PULL_URI_BYTES {
        return Err(bad(format!(
            "uri is longer than {MAX_PULL_URI_BYTES} bytes"
        )));
    }
    let urls: Vec<&str> = uri.split_ascii_whitespace().collect();
    if urls.len() > MAX_PULL_URIS {
        return Err(bad(format!("uri holds more than {MAX_PULL_URIS} URLs")));
    }
    for u in urls {
        let lower = u.to_ascii_lowercase();
        if lower.starts_with("rtmps://") {
            return Err(bad(format!(
                "{u}: only http(s) HLS, rtmp:// and srt:// URLs are pulled for now"
            )));
        }
        // The puller's own reading, so what is accepted here is what it can follow;
        // stricter than WHATWG about an empty authority (`http:///x` is refused).
        let empty_host = lower
            .split_once("://")
            .is_none_or(|(_, r)| r.starts_with('/'));
        if empty_host || dvrclip_ingest::pull::parse_uris(u).is_err() {
            return Err(bad(format!(
                "{u}: uri must be http(s), rtmp://host/app/key or srt://host:port URLs separated by spaces"
            )));
        }
    }
    Ok(Some(uri.trim().to_owned()))
}

impl CreateStream {
    /// Reads the body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let m = object(body)?;
        let name = string(&m, "name")?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::bad_field("name", "name is required"))?;
        let pull = boolean(&m, "pull")?.unwrap_or(false);
        let uri = pull_uri(&m)?.filter(|u| !u.is_empty());
        if pull && uri.is_none() {
            return Err(ApiError::bad_field("uri", "pull needs a uri"));
        }
        Ok(CreateStream {
            name,
            active: boolean(&m, "active")?.unwrap_or(true),
            dvr_enabled: boolean(&m, "dvr_enabled")?.unwrap_or(true),
            dvr_duration: dvr_duration(&m)?,
            pull,
            uri,
        })
    }
}

impl PatchStream {
    /// Reads the body: Gcore wraps the fields in `"stream"`; a flat body is accepted too.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let outer = object(body)?;
        let m = match outer.get("stream") {
            Some(Value::Object(inner)) => inner,
            Some(_) => return Err(ApiError::bad_field("stream", "stream must be an object")),
            None => &outer,
        };
        let name = string(m, "name")?;
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ApiError::bad_field("name", "name must not be empty"));
        }
        Ok(PatchStream {
            name,
            active: boolean(m, "active")?,
            dvr_enabled: boolean(m, "dvr_enabled")?,
            dvr_duration: dvr_duration(m)?,
            pull: boolean(m, "pull")?,
            uri: pull_uri(m)?,
        })
    }
}

impl CreateClip {
    /// Reads the body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let m = object(body)?;
        let duration = match integer(&m, "duration")? {
            None => return Err(ApiError::bad_field("duration", "duration is required")),
            Some(d) if d > 0 => d as u64,
            Some(_) => return Err(ApiError::bad_field("duration", "duration must be positive")),
        };
        let start = integer(&m, "start")?;
        if start.is_some_and(|s| s < 0) {
            return Err(ApiError::bad_field(
                "start",
                "start must be a Unix time in seconds",
            ));
        }
        Ok(CreateClip {
            duration,
            start,
            expiration: integer(&m, "expiration")?,
            vod_required: boolean(&m, "vod_required")?.unwrap_or(false),
            precise: boolean(&m, "precise")?.unwrap_or(false),
        })
    }
}

impl PatchVideo {
    /// Reads the body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let outer = object(body)?;
        let m = match outer.get("video") {
            Some(Value::Object(inner)) => inner,
            Some(_) => return Err(ApiError::bad_field("video", "video must be an object")),
            None => &outer,
        };
        let name = string(m, "name")?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::bad_field("name", "name is required"))?;
        Ok(PatchVideo { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ApiError) -> Option<&'static str> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn gcore_sdk_bodies() {
        // What gcore-python's clips.create sends (omitted params are left out).
        let c = CreateClip::parse(br#"{"duration": 60, "start": 1716559200}"#).unwrap();
        assert_eq!(
            (c.duration, c.start, c.expiration, c.vod_required),
            (60, Some(1716559200), None, false)
        );
        let s = CreateStream::parse(
            br#"{"name":"cam","dvr_enabled":true,"dvr_duration":600,"pull":false}"#,
        )
        .unwrap();
        assert_eq!(
            (s.name.as_str(), s.dvr_duration, s.active),
            ("cam", Some(600), true)
        );
        let p = PatchStream::parse(br#"{"stream": {"dvr_duration": 120}}"#).unwrap();
        assert_eq!(
            p,
            PatchStream {
                dvr_duration: Some(120),
                ..Default::default()
            }
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(
            field_of(CreateClip::parse(br#"{"duration": "60"}"#).unwrap_err()),
            Some("duration")
        );
        assert_eq!(
            field_of(CreateClip::parse(br#"{"duration": 1.5}"#).unwrap_err()),
            Some("duration")
        );
        assert_eq!(
            field_of(CreateClip::parse(br#"{}"#).unwrap_err()),
            Some("duration")
        );
        assert_eq!(
            field_of(CreateClip::parse(br#"{"duration": 0}"#).unwrap_err()),
            Some("duration")
        );
        assert_eq!(
            field_of(CreateClip::parse(br#"{"duration": 5, "vod_required": 1}"#).unwrap_err()),
            Some("vod_required")
        );
        assert_eq!(
            field_of(CreateClip::parse(br#"{"duration": 5, "start": -3}"#).unwrap_err()),
            Some("start")
        );
        assert_eq!(
            field_of(CreateStream::parse(br#"{"dvr_duration": 60}"#).unwrap_err()),
            Some("name")
        );
        assert_eq!(
            field_of(CreateStream::parse(br#"{"name": "x", "dvr_duration": 5}"#).unwrap_err()),
            Some("dvr_duration")
        );
        assert_eq!(
            field_of(PatchStream::parse(br#"{"stream": 3}"#).unwrap_err()),
            Some("stream")
        );
        // What gcore-python's videos.update sends: flat, `name` required.
        assert_eq!(
            PatchVideo::parse(br#"{"name": "goal", "priority": 0}"#).unwrap(),
            PatchVideo {
                name: "goal".into()
            }
        );
        for (body, field) in [
            (&br#"{"priority": 0}"#[..], "name"),
            (br#"{"name": " "}"#, "name"),
            (br#"{"name": 7}"#, "name"),
            (br#"{"video": []}"#, "video"),
        ] {
            assert_eq!(field_of(PatchVideo::parse(body).unwrap_err()), Some(field));
        }
        assert_eq!(field_of(CreateClip::parse(b"{").unwrap_err()), None);
    }

    #[test]
    fn pull_and_uri() {
        let s = CreateStream::parse(
            br#"{"name":"p","pull":true,"uri":"http://a.example/x/master.m3u8  https://b.example/m.m3u8"}"#,
        )
        .unwrap();
        assert!(s.pull);
        assert_eq!(
            s.uri.as_deref(),
            Some("http://a.example/x/master.m3u8  https://b.example/m.m3u8")
        );
        let rtmp = CreateStream::parse(
            br#"{"name":"p","pull":true,"uri":"rtmp://a.example/live/k srt://c:9000?streamid=x"}"#,
        )
        .unwrap();
        assert_eq!(
            rtmp.uri.as_deref(),
            Some("rtmp://a.example/live/k srt://c:9000?streamid=x")
        );
        for body in [
            &br#"{"name":"p","pull":true}"#[..],
            br#"{"name":"p","pull":true,"uri":""}"#,
            br#"{"name":"p","uri":"rtmps://a.example/live/k"}"#,
            br#"{"name":"p","uri":"srt://a.example"}"#,
            br#"{"name":"p","uri":"srt://a.example:9000?passphrase=short"}"#,
            br#"{"name":"p","uri":"rtmp://a.example/live"}"#,
            br#"{"name":"p","uri":"ftp://a.example/x.m3u8"}"#,
            br#"{"name":"p","uri":"http:///x.m3u8"}"#,
            br#"{"name":"p","uri":"a.example/x.m3u8"}"#,
            br#"{"name":"p","uri":7}"#,
        ] {
            assert_eq!(
                field_of(CreateStream::parse(body).unwrap_err()),
                Some("uri")
            );
        }
        assert_eq!(
            field_of(
                CreateStream::parse(br#"{"name":"p","pull":"yes","uri":"http://a/b"}"#)
                    .unwrap_err()
            ),
            Some("pull")
        );
        let p = PatchStream::parse(br#"{"stream": {"pull": false, "uri": ""}}"#).unwrap();
        assert_eq!((p.pull, p.uri.as_deref()), (Some(false), Some("")));
        assert_eq!(field_of(CreateClip::parse(b"[1]").unwrap_err()), None);
    }
}

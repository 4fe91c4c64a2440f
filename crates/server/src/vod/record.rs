//! A video's metadata record, `videos/{id}.json` in the store, and the Gcore Video
//! object rendered from it (ref/api.md: `id`, `name`, `stream_id`, `status`, `error`,
//! `duration` in ms, `created_at`, `origin_url`, `converted_videos[].mp4_url`,
//! `hls_url`).
//!
//! The stored JSON is the Video object as it was when written plus the private
//! fields (`media_key`, `size`, `etag`, `format_version`); the API re-renders the
//! links from the current public URL, so a changed `--public-url` applies to old
//! videos too.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Version of the record layout; a record from a newer version is still read
/// (unknown fields are ignored).
pub const FORMAT_VERSION: u32 = 1;

/// Where a video stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoStatus {
    /// The clip is recording, or its MP4 is being written.
    Pending,
    /// The MP4 is in the store and served.
    Ready,
    /// It will never be ready; `error` says why.
    Error,
}

/// The persisted record of one video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The video id (the clip's `video_id`).
    pub id: u64,
    /// Human name.
    pub name: String,
    /// The stream the clip was cut from.
    pub stream_id: u64,
    /// The clip it was made from.
    #[serde(default)]
    pub clip_id: String,
    /// Pending, ready or error.
    pub status: VideoStatus,
    /// Why it failed, when `status` is `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// Playback duration, milliseconds (0 until ready).
    #[serde(default)]
    pub duration: u64,
    /// When the clip was created, RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Width of the video track, pixels.
    #[serde(default)]
    pub width: Option<u16>,
    /// Height of the video track, pixels.
    #[serde(default)]
    pub height: Option<u16>,
    /// The rendition written (the highest).
    #[serde(default)]
    pub rendition: Option<String>,
    /// Key of the MP4 in the store, once written.
    #[serde(default)]
    pub media_key: Option<String>,
    /// Size of the MP4, bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Strong ETag of the MP4 (quoted), the same the live clip link served.
    #[serde(default)]
    pub etag: Option<String>,
    /// Key of the single-file fMP4 the HLS playlist addresses.
    #[serde(default)]
    pub hls_media_key: Option<String>,
    /// Its size, bytes.
    #[serde(default)]
    pub hls_media_size: Option<u64>,
    /// Key of the HLS media playlist.
    #[serde(default)]
    pub hls_key: Option<String>,
    /// [`FORMAT_VERSION`] of the writer.
    #[serde(default)]
    pub format_version: u32,
}

impl VideoRecord {
    /// A video as the writer records it before any media: `pending`, nothing stored.
    pub fn pending(
        id: u64,
        name: String,
        stream_id: u64,
        clip_id: String,
        created_at: String,
    ) -> Self {
        VideoRecord {
            id,
            name,
            stream_id,
            clip_id,
            status: VideoStatus::Pending,
            error: None,
            duration: 0,
            created_at,
            width: None,
            height: None,
            rendition: None,
            media_key: None,
            size: None,
            etag: None,
            hls_media_key: None,
            hls_media_size: None,
            hls_key: None,
            format_version: FORMAT_VERSION,
        }
    }

    /// A record as stored (any bytes: the store is another system, and in a
    /// cluster's shared bucket another node's part of it).
    pub fn parse(bytes: &[u8]) -> Result<VideoRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Key of a video's record in the store.
    pub fn key(id: u64) -> String {
        format!("videos/{id}.json")
    }

    /// The id named by a record key, if `key` is one.
    pub fn id_of_key(key: &str) -> Option<u64> {
        let id = key.strip_prefix("videos/")?.strip_suffix(".json")?;
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .then(|| id.parse().ok())
            .flatten()
    }

    /// Marks it failed with `reason`.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.status = VideoStatus::Error;
        self.error = Some(reason.into());
    }

    /// The Gcore Video object, links under `public_url` (no trailing slash).
    pub fn to_json(&self, public_url: &str) -> Value {
        let ready = self.status == VideoStatus::Ready;
        let mp4 = ready.then(|| format!("{public_url}/vod/{}.mp4", self.id));
        let hls =
            (ready && self.hls_key.is_some()).then(|| format!("{public_url}/vod/{}.m3u8", self.id));
        let converted: Vec<Value> = mp4
            .iter()
            .map(|url| {
                json!({
                    "name": self.rendition.as_deref().unwrap_or("mp4"),
                    "status": "complete",
                    "progress": 100,
                    "width": self.width,
                    "height": self.height,
                    "mp4_url": url,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "stream_id": self.stream_id,
            "client_id": Value::Null,
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
            "created_at": self.created_at,
            "origin_url": mp4,
            "origin_size": self.size,
            "converted_videos": converted,
            "hls_url": hls,
            "screenshot": Value::Null,
            "clip_id": self.clip_id,
        })
    }

    /// What is stored: the Video object plus the private fields.
    pub fn to_stored_json(&self, public_url: &str) -> Value {
        let mut v = self.to_json(public_url);
        v["width"] = self.width.into();
        v["height"] = self.height.into();
        v["rendition"] = self.rendition.clone().into();
        v["media_key"] = self.media_key.clone().into();
        v["size"] = self.size.into();
        v["etag"] = self.etag.clone().into();
        v["hls_media_key"] = self.hls_media_key.clone().into();
        v["hls_media_size"] = self.hls_media_size.into();
        v["hls_key"] = self.hls_key.clone().into();
        v["format_version"] = self.format_version.into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> VideoRecord {
        let at = "2026-11-25T06:00:00.000Z".to_owned();
        VideoRecord::pending(7, "cam clip".into(), 3, "ab".into(), at)
    }

    #[test]
    fn stored_json_reads_back() {
        let mut r = pending();
        r.status = VideoStatus::Ready;
        r.media_key = Some("media/7-00.mp4".into());
        r.size = Some(1234);
        r.etag = Some("\"e\"".into());
        r.width = Some(426);
        r.hls_key = Some("media/7-00.m3u8".into());
        r.hls_media_key = Some("media/7-00.m4s".into());
        r.hls_media_size = Some(99);
        let text = r.to_stored_json("http://h").to_string();
        let back: VideoRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn gcore_fields() {
        let mut r = pending();
        let v = r.to_json("http://h");
        assert_eq!(v["status"], "pending");
        assert!(v["origin_url"].is_null());
        r.status = VideoStatus::Ready;
        r.duration = 4000;
        let v = r.to_json("http://h");
        assert_eq!(v["status"], "ready");
        assert_eq!(v["duration"], 4000);
        assert_eq!(v["origin_url"], "http://h/vod/7.mp4");
        assert_eq!(v["converted_videos"][0]["mp4_url"], "http://h/vod/7.mp4");
        assert!(v["hls_url"].is_null());
        r.hls_key = Some("media/7-00.m3u8".into());
        assert_eq!(r.to_json("http://h")["hls_url"], "http://h/vod/7.m3u8");
        assert!(v.get("media_key").is_none());
    }

    #[test]
    fn record_keys() {
        assert_eq!(VideoRecord::key(12), "videos/12.json");
        assert_eq!(VideoRecord::id_of_key("videos/12.json"), Some(12));
        for bad in [
            "videos/.json",
            "videos/x.json",
            "media/1.json",
            "videos/1.json.tmp",
        ] {
            assert_eq!(VideoRecord::id_of_key(bad), None, "{bad}");
        }
    }
}

//! Videos: the Video object of a clip persisted with `vod_required`
//! (`GET /streaming/videos/{id}`). Its media is served by the public links.

use serde_json::Value;

use crate::app::App;
use crate::error::ApiError;

/// `GET /streaming/videos/{id}`.
pub fn get(app: &App, id: u64) -> Result<Value, ApiError> {
    app.vod
        .video_json(id)
        .ok_or_else(|| ApiError::NotFound(format!("video {id} not found")))
}

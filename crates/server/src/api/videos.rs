//! Videos: the Video objects of clips persisted with `vod_required` (`ref/api.md`
//! "Videos"), as Gcore's SDK calls them: list (paged), read, rename, delete. Their
//! media is served by the public links; the store is [`crate::vod`]'s.

use serde_json::Value;

use super::page::Page;
use super::wire::PatchVideo;
use crate::app::App;
use crate::error::ApiError;
use crate::vod::StoreError;

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("video {id} not found"))
}

/// The store failed: the caller may retry.
fn store_failed(id: u64, e: StoreError) -> ApiError {
    ApiError::Unavailable(format!("video {id}: the VOD store failed: {e}; retry"))
}

/// `GET /streaming/videos`: one page, by id.
pub fn list(app: &App, page: Page) -> Value {
    Value::Array(app.vod.videos_json(page.skip(), super::page::PAGE_SIZE))
}

/// `GET /streaming/videos/{id}`.
pub fn get(app: &App, id: u64) -> Result<Value, ApiError> {
    app.vod.video_json(id).ok_or_else(|| not_found(id))
}

/// `PATCH /streaming/videos/{id}`: the name (what Gcore's `videos.update` requires);
/// the other fields it sends describe transcoding and are ignored.
pub async fn patch(app: &App, id: u64, body: &[u8]) -> Result<Value, ApiError> {
    let req = PatchVideo::parse(body)?;
    match app.vod.rename(id, req.name).await {
        Ok(Some(_)) => get(app, id),
        Ok(None) => Err(not_found(id)),
        Err(e) => Err(store_failed(id, e)),
    }
}

/// `DELETE /streaming/videos/{id}`: record and media leave the store; a write in
/// progress is cancelled; 404 after.
pub async fn delete(app: &App, id: u64) -> Result<(), ApiError> {
    match app.vod.delete(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(id)),
        Err(e) => Err(store_failed(id, e)),
    }
}

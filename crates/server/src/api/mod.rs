//! The Gcore-compatible JSON API under `/streaming` (`ref/api.md`): streams
//! ([`streams`]), clips ([`clips`]), videos ([`videos`]), the request bodies
//! ([`wire`]), the `page` of lists ([`page`]). Who may call it is
//! [`crate::auth`]'s business.
//!
//! Answers use Gcore's field names; `actual_start`, `actual_duration`, `state` and
//! `precise` on clips are additive extensions a Gcore client ignores.

pub mod clips;
pub mod page;
pub mod streams;
pub mod videos;
pub mod wire;

use bytes::Bytes;
use dvrclip_engine::WallTime;
use http::StatusCode;
use http::request::Parts;
use http_body::Body;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::http::body::read_request;
use crate::http::{HttpResponse, full};
use crate::route::ApiRoute;
use page::Page;

/// Answers an API route, after the caller is authorized.
pub async fn handle<B>(
    app: &App,
    route: ApiRoute,
    parts: &Parts,
    body: B,
) -> Result<HttpResponse, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    app.auth.authorize(&parts.headers)?;
    let json = || read_json(app, parts, body);
    let page = || Page::from_query(parts.uri.query());
    if let Some(answer) = unheld(app, route).await {
        return answer;
    }
    let (status, value) = match route {
        ApiRoute::ListStreams => (StatusCode::OK, streams::list(app, page()?).await?),
        ApiRoute::CreateStream => (
            StatusCode::CREATED,
            streams::create(app, &json().await?).await?,
        ),
        ApiRoute::GetStream(id) => (StatusCode::OK, streams::get(app, id).await?),
        ApiRoute::PatchStream(id) => (
            StatusCode::OK,
            streams::patch(app, id, &json().await?).await?,
        ),
        ApiRoute::DeleteStream(id) => {
            streams::delete(app, id).await?;
            return Ok(no_content());
        }
        ApiRoute::DvrCleanup(id) => (StatusCode::OK, streams::dvr_cleanup(app, id)?),
        ApiRoute::DvrView(id) => (StatusCode::OK, streams::dvr(app, id)?),
        ApiRoute::CreateClip(id) => (
            StatusCode::OK,
            clips::create(app, id, &json().await?).await?,
        ),
        ApiRoute::ListClips(id) => (StatusCode::OK, clips::list(app, id, page()?)?),
        ApiRoute::GetClip(id, clip) => (StatusCode::OK, clips::get(app, id, clip)?),
        ApiRoute::DeleteClip(id, clip) => {
            clips::delete(app, id, clip)?;
            return Ok(no_content());
        }
        ApiRoute::ListVideos => (
            StatusCode::OK,
            videos::list(app, &parts.headers, page()?).await?,
        ),
        ApiRoute::GetVideo(id) => (StatusCode::OK, videos::get(&app.vod, id)?),
        ApiRoute::PatchVideo(id) => (
            StatusCode::OK,
            videos::patch(app, id, &json().await?).await?,
        ),
        ApiRoute::DeleteVideo(id) => {
            videos::delete(app, id).await?;
            return Ok(no_content());
        }
    };
    Ok(full(status, "application/json", value.to_string()))
}

/// In a cluster, a call needing a DVR that no node holds (the stream was created
/// but no media has reached a node since; [`crate::steer`] already forwarded it if
/// another node owns it): the answer an empty DVR gives. `None`: answered as usual.
async fn unheld(app: &App, route: ApiRoute) -> Option<Result<HttpResponse, ApiError>> {
    let c = app.cluster.as_ref()?;
    let id = match route {
        ApiRoute::DvrView(id)
        | ApiRoute::DvrCleanup(id)
        | ApiRoute::CreateClip(id)
        | ApiRoute::ListClips(id) => id,
        _ => return None,
    };
    if app.engine.stream(id).is_ok() {
        return None;
    }
    let record = match c.records.get(id.0).await {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => return Some(Err(e.into())),
    };
    let value = match route {
        ApiRoute::DvrView(_) => json!({
            "stream_id": id.0, "dvr_duration": record.dvr_duration, "renditions": [],
        }),
        ApiRoute::ListClips(_) => json!([]),
        _ => {
            return Some(Err(ApiError::Unprocessable {
                message: format!(
                    "no node holds stream {id}'s DVR: no media has reached the cluster since its owner left"
                ),
                field: None,
            }));
        }
    };
    Some(Ok(full(
        StatusCode::OK,
        "application/json",
        value.to_string(),
    )))
}

/// 204, as Gcore answers a DELETE.
fn no_content() -> HttpResponse {
    full(StatusCode::NO_CONTENT, "application/json", Bytes::new())
}

async fn read_json<B>(app: &App, parts: &Parts, body: B) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let limits = app.config.limits.body(app.config.limits.json_bytes);
    Ok(read_request(&parts.headers, body, limits, &app.bodies, None).await?)
}

/// A wall time as Unix seconds with milliseconds, `null` when absent.
fn unix_secs(t: Option<WallTime>) -> Value {
    t.map_or(Value::Null, |t| {
        json!((t.unix_micros() as f64 / 1e3).round() / 1e3)
    })
}

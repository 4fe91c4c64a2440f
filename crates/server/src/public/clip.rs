//! A clip's public links: its HLS playlists, rendered from the clip's current view
//! once per view (a recording clip grows; [`crate::playlist_cache`]) and served with
//! a strong ETag, so `If-None-Match` gets a 304; its init and media segments, the
//! chunks' own bytes; its MP4, a `VirtualMp4` built once when the clip is complete
//! and cached until it expires ([`crate::mp4_cache`]), served as an
//! [`entity::Entity`].
//!
//! Caching (RFC 9111 §5.2.2.1 `max-age`): media (the MP4, inits, segments) never
//! changes and lives until the clip expires, so a cache may keep it exactly that
//! long and no longer: `public, max-age=<seconds until expiration>`. Playlists of a
//! recording clip change with every chunk (`no-cache`); a complete clip's are fixed
//! but short-lived (at most 60 s, never past the expiration). ref/api.md "Public clip
//! links".
//!
//! A clip this node does not hold is looked up in the clip archive, if there is one
//! ([`archived`]), before the 404.

use dvrclip_engine::{Clip, ClipId, ClipRendition, ClipView, StreamId};
use dvrclip_hls::{MediaFile, PlaylistKind, master_playlist, media_playlist};
use http::StatusCode;
use http::request::Parts;

use super::{archived, cache, cache_for};
use crate::app::App;
use crate::archive::ClipFile;
use crate::error::ApiError;
use crate::http::entity;
use crate::http::{HttpResponse, full};
use crate::mp4_cache::{Asker, CachedMp4};
use crate::playlist_cache::Key;
use crate::route::LinkFormat;

/// Longest a complete clip's playlist may be cached, seconds.
const PLAYLIST_MAX_AGE_SECS: u64 = 60;

/// `/rec/{stream}/rec_{clip}_{name}.m3u8|.mp4`.
pub async fn link(
    app: &App,
    stream: StreamId,
    clip: ClipId,
    name: &str,
    format: LinkFormat,
    parts: &Parts,
) -> Result<HttpResponse, ApiError> {
    let clip = match find_clip(app, stream, clip) {
        Ok(c) => c,
        Err(local) => {
            let file = match format {
                LinkFormat::Hls => ClipFile::Playlist(name),
                LinkFormat::Mp4 => ClipFile::Mp4(name),
            };
            return archived::serve(app, stream, clip, file, parts, local).await;
        }
    };
    match format {
        LinkFormat::Hls => {
            let view = clip.view();
            let id = clip.id().to_string();
            // A view never changes: its version names the text.
            let text = app.playlists.get_or_render(
                &app.engine,
                Key::Clip(clip.id(), name.to_owned()),
                vec![view.version()],
                || {
                    Ok::<_, ApiError>(if name == "master" {
                        master_playlist(&id, &view)
                    } else {
                        media_playlist(&id, rendition(&view, name)?, PlaylistKind::of(&view))
                    })
                },
            )?;
            let Ok(mut resp) = entity::respond(&parts.method, &parts.headers, &text).await;
            // A recording clip's playlists change with every chunk (RFC 8216 §6.2.1).
            if view.is_complete() {
                let secs = seconds_left(app, &clip).min(PLAYLIST_MAX_AGE_SECS);
                cache_for(&mut resp, secs, false);
            } else {
                cache(&mut resp, "no-cache");
            }
            Ok(resp)
        }
        LinkFormat::Mp4 => {
            let file = mp4_of(app, &clip, name).await?;
            let Ok(mut resp) = entity::respond(&parts.method, &parts.headers, &file).await;
            // Every status of the entity carries it: RFC 9110 §15.4.5 wants a 304 to
            // repeat the Cache-Control a 200 would have sent.
            cache_for(&mut resp, seconds_left(app, &clip), false);
            Ok(resp)
        }
    }
}

/// `/rec/{stream}/rec_{clip}_{rendition}/{file}`: an init or media segment.
pub async fn media(
    app: &App,
    stream: StreamId,
    clip: ClipId,
    name: &str,
    file: MediaFile,
    parts: &Parts,
) -> Result<HttpResponse, ApiError> {
    let clip = match find_clip(app, stream, clip) {
        Ok(c) => c,
        Err(local) => {
            let archived_file = ClipFile::Media(name, file);
            return archived::serve(app, stream, clip, archived_file, parts, local).await;
        }
    };
    let view = clip.view();
    let bytes = file
        .resolve(rendition(&view, name)?)
        .ok_or_else(|| ApiError::NotFound("no such segment in this clip".into()))?;
    let content_type = match file {
        MediaFile::Init(_) => "video/mp4",
        MediaFile::Segment(_) => "video/iso.segment",
    };
    let mut resp = full(StatusCode::OK, content_type, bytes);
    // A segment URI names one chunk of one clip, unchanged until the clip expires.
    cache_for(&mut resp, seconds_left(app, &clip), true);
    Ok(resp)
}

/// Whole seconds from now until `clip` expires (0 when due): the most a cache may
/// keep anything of it.
fn seconds_left(app: &App, clip: &Clip) -> u64 {
    let micros = clip.expiration_utc().micros_since(app.engine.now());
    u64::try_from(micros / 1_000_000).unwrap_or(0)
}

/// The clip of a link: 404 unknown, expired or of another stream; 410 when its
/// media did not survive a restart (never served short).
fn find_clip(app: &App, stream: StreamId, id: ClipId) -> Result<Clip, ApiError> {
    let not_found = || ApiError::NotFound("no such clip (unknown or expired)".into());
    match app.engine.clip(id) {
        Ok(clip) if clip.stream_id() == stream => Ok(clip),
        Err(lost @ dvrclip_engine::Error::ClipLost { .. })
            if app.engine.lost_clip(id).is_some_and(|l| l.stream == stream) =>
        {
            Err(lost.into())
        }
        _ => Err(not_found()),
    }
}

fn rendition<'a>(view: &'a ClipView, name: &str) -> Result<&'a ClipRendition, ApiError> {
    let found = if name == "master" {
        view.reference()
    } else {
        view.rendition(name)
    };
    found.ok_or_else(|| ApiError::NotFound(format!("clip has no rendition {name:?}")))
}

/// The clip's MP4 of `name` (`master` = the highest rendition), built on first use
/// unless the background build of a complete clip's master got there first
/// ([`crate::mp4_prebuild`]); a request during that build waits for it.
async fn mp4_of(app: &App, clip: &Clip, name: &str) -> Result<CachedMp4, ApiError> {
    let view = clip.view();
    if !view.is_complete() {
        // Gcore: "the clip will be available after start + duration" (425 Too Early).
        return Err(ApiError::TooEarly(format!(
            "clip is still recording until {}; the MP4 is ready when it completes",
            clip.end_utc().to_rfc3339_millis()
        )));
    }
    let rendition_name = rendition(&view, name)?.name().to_owned();
    // Over the budget (clips and other headers hold all of it): 503, nothing cached.
    app.mp4_cache
        .clip_rendition(&app.engine, clip, view, &rendition_name, Asker::Request)
        .await
}

//! Writing one complete clip to the archive, as its links serve it: per rendition
//! its segments file (the inits and chunks the HLS links serve, one after another:
//! `crate::vod::hls::single_file`'s layout, one PUT instead of one per segment) and
//! what its progressive MP4 (`Clip::mp4`, the bytes and ETag the MP4 link serves)
//! holds beyond it: the head object, its header and any body bytes of the writer's
//! own, with the [`Mp4Layout`] of the rest in the segments file (so the media is
//! stored once); then every playlist (the texts the links serve, ETag as
//! `crate::playlist_cache` tags them), then the manifest naming them all.
//!
//! Every object is streamed from the clip's own `Bytes` (`VodStore::put_pieces`:
//! one PUT of the pieces themselves up to 8 MiB, a multipart upload of at most two
//! parts in flight beyond), so a clip is never one buffer. Keys are fixed by the
//! stream, clip and rendition, and the bytes are too: a retry or a second writer
//! (a restart re-archiving a restored clip) writes the same objects again.

use std::sync::Arc;

use bytes::Bytes;
use dvrclip_engine::{Clip, ClipView};
use dvrclip_fmp4::progressive::{BuildError, RangeError};
use dvrclip_hls::{PlaylistKind, master_playlist, media_playlist};

use super::layout::Mp4Layout;
use super::manifest::{
    ArchivedRendition, FORMAT_VERSION, Manifest, StoredObject, StoredPlaylist, head_key,
    manifest_key, playlist_key, segments_key,
};
use crate::playlist_cache::etag_of;
use crate::vod::hls::single_file;
use crate::vod::{StoreError, VodStore};

/// Why a clip could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A rendition's MP4 could not be built.
    #[error("building the MP4 of {rendition}: {source}")]
    Build {
        /// The rendition.
        rendition: String,
        /// Why.
        source: BuildError,
    },
    /// Its bytes could not be read.
    #[error("reading the MP4 of {rendition}: {source}")]
    Read {
        /// The rendition.
        rendition: String,
        /// Why.
        source: RangeError,
    },
    /// The build task died.
    #[error("building an MP4: {0}")]
    Task(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes `clip` as of `view` (complete) to `store`; the manifest written, and the
/// bytes written in all (the manifest included).
pub async fn write_clip(
    store: &dyn VodStore,
    clip: &Clip,
    view: &Arc<ClipView>,
) -> Result<(Manifest, u64), UploadError> {
    let (stream, id) = (clip.stream_id(), clip.id());
    let id_text = id.to_string();
    let kind = PlaylistKind::of(view);
    let mut renditions = Vec::with_capacity(view.renditions().len());
    let mut playlists = Vec::with_capacity(view.renditions().len() + 1);
    let mut total = 0u64;
    for r in view.renditions() {
        let name = r.name().to_owned();
        let file = single_file(r, "");
        if file.len > 0 {
            let pieces = Box::new(file.pieces.iter().cloned());
            store
                .put_pieces(&segments_key(stream, id, &name), file.len, pieces)
                .await?;
        }
        let mp4 = if r.chunks().is_empty() {
            None
        } else {
            match write_mp4(store, clip, view, &name, &file.pieces).await {
                Ok(m) => Some(m),
                // The link answers an error for it too: the rest is still archived.
                Err(e @ UploadError::Build { .. }) => {
                    tracing::warn!(clip = %id, error = %e, "archived without this MP4");
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let text = Bytes::from(media_playlist(&id_text, r, kind));
        playlists.push(write_text(store, &playlist_key(stream, id, &name), &name, text).await?);
        let span = |r: &std::ops::Range<u64>| (r.start, r.end);
        total += file.len + mp4.as_ref().map_or(0, |(_, l)| l.head_size());
        let (mp4, mp4_layout) = mp4.unzip();
        renditions.push(ArchivedRendition {
            name,
            mp4,
            mp4_layout,
            segments_size: file.len,
            inits: file.inits.iter().map(span).collect(),
            segments: file.segments.iter().map(span).collect(),
        });
    }
    let master = Bytes::from(master_playlist(&id_text, view));
    let master = write_text(store, &playlist_key(stream, id, "master"), "master", master).await?;
    playlists.insert(0, master);
    total += playlists.iter().map(|p| p.object.size).sum::<u64>();
    let expiration = clip.expiration_utc();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        stream_id: stream.0,
        clip_id: id_text,
        expiration_unix_micros: expiration.unix_micros(),
        expiration: expiration.to_rfc3339_millis(),
        reference: view.reference().map(|r| r.name().to_owned()),
        playlists,
        renditions,
        total_bytes: total,
    };
    let body = Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default());
    let written = total + body.len() as u64;
    store.put(&manifest_key(stream, id), body).await?;
    Ok((manifest, written))
}

/// Builds rendition `name`'s MP4 (off the runtime's threads, as the link does) and
/// writes what of it `segments` (the pieces of the rendition's segments file) does
/// not hold: its head object. The MP4's size, ETag and type, and its layout.
async fn write_mp4(
    store: &dyn VodStore,
    clip: &Clip,
    view: &Arc<ClipView>,
    name: &str,
    segments: &[Bytes],
) -> Result<(StoredObject, Mp4Layout), UploadError> {
    let (c, v, n) = (clip.clone(), Arc::clone(view), name.to_owned());
    let built = tokio::task::spawn_blocking(move || {
        let r = v.rendition(&n).ok_or(BuildError::NoTracks)?;
        c.mp4(&v, r)
    })
    .await
    .map_err(|e| UploadError::Task(e.to_string()))?;
    let file = built.map_err(|source| UploadError::Build {
        rendition: name.to_owned(),
        source,
    })?;
    let len = file.len();
    let pieces = file.range(0..len).map_err(|source| UploadError::Read {
        rendition: name.to_owned(),
        source,
    })?;
    let (layout, head) = Mp4Layout::of(file.header_len(), pieces, segments);
    let key = head_key(clip.stream_id(), clip.id(), name);
    store
        .put_pieces(&key, layout.head_size(), Box::new(head.into_iter()))
        .await?;
    let stored = StoredObject {
        size: len,
        etag: file.etag().to_owned(),
        content_type: Some(file.content_type().to_owned()),
    };
    Ok((stored, layout))
}

async fn write_text(
    store: &dyn VodStore,
    key: &str,
    name: &str,
    text: Bytes,
) -> Result<StoredPlaylist, StoreError> {
    let object = StoredObject {
        size: text.len() as u64,
        etag: etag_of(&text),
        content_type: None,
    };
    store.put(key, text).await?;
    Ok(StoredPlaylist {
        name: name.to_owned(),
        object,
    })
}

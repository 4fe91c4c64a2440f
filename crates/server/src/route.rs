//! The routing table: one pure function from method and path to a [`Route`].
//!
//! A path is decoded once, into a nested type whose arms are the server's rooms
//! ([`ApiRoute`], [`PublicRoute`], [`IngestRoute`], [`OpsRoute`]), each with its
//! parameters already typed (`StreamId`, `ClipId`, the file of a clip or live
//! rendition). Every arm is matched exhaustively by the service, so a route without
//! a handler does not compile. Nothing here touches state: every URL shape of
//! `ref/api.md` is unit-tested without a socket. Path segments are matched raw (not
//! percent-decoded): a `%` in a name is simply not a safe name.

use dvrclip_engine::{ClipId, StreamId, is_safe_name};
use dvrclip_hls::{LiveFile, MediaFile};
use http::Method;

/// What a request asks for, with its path parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The Gcore-compatible JSON API under `/streaming` (needs the API key).
    Api(ApiRoute),
    /// Public links: clips, live playlists, videos (no auth; CORS).
    Public(PublicRoute),
    /// `PUT|POST|DELETE /ingest/...`: an encoder's upload.
    Ingest(IngestRoute),
    /// Health and metrics.
    Ops(OpsRoute),
    /// A known path with a method it does not accept; the methods it does.
    MethodNotAllowed(&'static str),
    /// Nothing here.
    NotFound,
}

/// The JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRoute {
    /// `GET /streaming/streams`
    ListStreams,
    /// `POST /streaming/streams`
    CreateStream,
    /// `GET /streaming/streams/{id}`
    GetStream(StreamId),
    /// `PATCH /streaming/streams/{id}`
    PatchStream(StreamId),
    /// `DELETE /streaming/streams/{id}`
    DeleteStream(StreamId),
    /// `PUT /streaming/streams/{id}/dvr_cleanup`
    DvrCleanup(StreamId),
    /// `GET /streaming/streams/{id}/dvr`
    DvrView(StreamId),
    /// `PUT|POST /streaming/streams/{id}/clip_recording`
    CreateClip(StreamId),
    /// `GET /streaming/streams/{id}/clip_recording`
    ListClips(StreamId),
    /// `GET /streaming/videos/{id}`
    GetVideo(u64),
}

/// A public link: GET and HEAD, and the CORS preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicRoute {
    /// `/rec/{stream}/rec_{clip}_{name}.m3u8|.mp4` (name = `master` or a rendition).
    ClipLink {
        /// Stream id.
        stream: StreamId,
        /// Clip id.
        clip: ClipId,
        /// `master` or a rendition name.
        name: String,
        /// Which format.
        format: LinkFormat,
    },
    /// `/rec/{stream}/rec_{clip}_{rendition}/{file}`: an init or media segment.
    ClipMedia {
        /// Stream id.
        stream: StreamId,
        /// Clip id.
        clip: ClipId,
        /// Rendition name.
        rendition: String,
        /// `init_{n}.mp4` or `seg_{n}.m4s`.
        file: MediaFile,
    },
    /// `/live/{play_key}/master.m3u8` (`rendition` None) or
    /// `/live/{play_key}/{rendition}.m3u8`: the stream's live DVR playlists.
    LivePlaylist {
        /// The stream's play key.
        key: String,
        /// The rendition; `None` for the master playlist.
        rendition: Option<String>,
    },
    /// `/live/{play_key}/{rendition}/{file}`: an init or a chunk of the window.
    LiveMedia {
        /// The stream's play key.
        key: String,
        /// Rendition name.
        rendition: String,
        /// `init_{d}.mp4` or `{seq}.m4s`.
        file: LiveFile,
    },
    /// `/vod/{video_id}.mp4|.m3u8|.m4s`: a stored video.
    Vod(u64, VodFile),
    /// `OPTIONS` on a public path: a CORS preflight.
    Preflight,
}

/// The two formats of a clip link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFormat {
    /// HLS playlist (`.m3u8`).
    Hls,
    /// Progressive MP4 (`.mp4`).
    Mp4,
}

/// The files of a stored video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodFile {
    /// `.mp4`: the progressive MP4.
    Mp4,
    /// `.m3u8`: its HLS playlist.
    Playlist,
    /// `.m4s`: the one fMP4 file that playlist addresses by byte ranges.
    HlsMedia,
}

/// `PUT|POST|DELETE /ingest/{key}/{rendition}/{file}` or `/ingest/{key}/{file}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRoute {
    /// The stream's secret key.
    pub key: String,
    /// `None` for files at the stream level (the master playlist).
    pub rendition: Option<String>,
    /// The file name.
    pub file: String,
    /// DELETE rather than an upload.
    pub delete: bool,
}

/// Operations endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsRoute {
    /// `GET /healthz`
    Health,
    /// `GET /metrics`
    Metrics,
}

fn id(s: &str) -> Option<u64> {
    // Leading `+` and zeros are not ids; `u64::from_str` would accept the former.
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decodes a request line into a [`Route`]. The query string must already be stripped.
pub fn route(method: &Method, path: &str) -> Route {
    let segs: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Route::NotFound,
    };
    let m = method;
    let get = m == Method::GET || m == Method::HEAD;
    match segs.as_slice() {
        ["healthz"] if get => Route::Ops(OpsRoute::Health),
        ["metrics"] if get => Route::Ops(OpsRoute::Metrics),
        ["healthz"] | ["metrics"] => Route::MethodNotAllowed("GET, HEAD"),
        ["streaming", rest @ ..] => api_route(m, rest),
        ["ingest", rest @ ..] => ingest_route(m, rest),
        ["rec", rest @ ..] => public_route(m, rest, clip_route),
        ["live", rest @ ..] => public_route(m, rest, live_route),
        ["vod", rest @ ..] => public_route(m, rest, vod_route),
        _ => Route::NotFound,
    }
}

fn api_route(m: &Method, segs: &[&str]) -> Route {
    let api = match segs {
        ["streams"] => match *m {
            Method::GET => ApiRoute::ListStreams,
            Method::POST => ApiRoute::CreateStream,
            _ => return Route::MethodNotAllowed("GET, POST"),
        },
        ["streams", sid, rest @ ..] => {
            let Some(sid) = id(sid).map(StreamId) else {
                return Route::NotFound;
            };
            match (rest, m) {
                ([], &Method::GET) => ApiRoute::GetStream(sid),
                ([], &Method::PATCH) => ApiRoute::PatchStream(sid),
                ([], &Method::DELETE) => ApiRoute::DeleteStream(sid),
                ([], _) => return Route::MethodNotAllowed("GET, PATCH, DELETE"),
                (["dvr_cleanup"], &Method::PUT) => ApiRoute::DvrCleanup(sid),
                (["dvr_cleanup"], _) => return Route::MethodNotAllowed("PUT"),
                (["dvr"], &Method::GET) => ApiRoute::DvrView(sid),
                (["dvr"], _) => return Route::MethodNotAllowed("GET"),
                (["clip_recording"], &Method::PUT | &Method::POST) => ApiRoute::CreateClip(sid),
                (["clip_recording"], &Method::GET) => ApiRoute::ListClips(sid),
                (["clip_recording"], _) => return Route::MethodNotAllowed("GET, PUT, POST"),
                _ => return Route::NotFound,
            }
        }
        ["videos", vid] => match (id(vid), m) {
            (Some(v), &Method::GET) => ApiRoute::GetVideo(v),
            (Some(_), _) => return Route::MethodNotAllowed("GET"),
            (None, _) => return Route::NotFound,
        },
        _ => return Route::NotFound,
    };
    Route::Api(api)
}

fn ingest_route(m: &Method, segs: &[&str]) -> Route {
    let delete = match *m {
        Method::PUT | Method::POST => false,
        Method::DELETE => true,
        _ => return Route::MethodNotAllowed("PUT, POST, DELETE"),
    };
    let (key, rendition, file) = match segs {
        [key, file] => (key, None, file),
        [key, rendition, file] => (key, Some(rendition), file),
        _ => return Route::NotFound,
    };
    Route::Ingest(IngestRoute {
        key: (*key).to_owned(),
        rendition: rendition.map(|r| (*r).to_owned()),
        file: (*file).to_owned(),
        delete,
    })
}

/// A public link (no auth; GET, HEAD and the CORS preflight): `decode` reads the
/// segments after the prefix.
fn public_route(m: &Method, segs: &[&str], decode: fn(&[&str]) -> Option<PublicRoute>) -> Route {
    let get = m == Method::GET || m == Method::HEAD;
    match decode(segs) {
        Some(_) if m == Method::OPTIONS => Route::Public(PublicRoute::Preflight),
        Some(r) if get => Route::Public(r),
        Some(_) => Route::MethodNotAllowed("GET, HEAD, OPTIONS"),
        None => Route::NotFound,
    }
}

fn vod_route(segs: &[&str]) -> Option<PublicRoute> {
    let [file] = segs else { return None };
    let (stem, ext) = file.rsplit_once('.')?;
    let v = id(stem)?;
    let file = match ext {
        "mp4" => VodFile::Mp4,
        "m3u8" => VodFile::Playlist,
        "m4s" => VodFile::HlsMedia,
        _ => return None,
    };
    Some(PublicRoute::Vod(v, file))
}

fn clip_route(segs: &[&str]) -> Option<PublicRoute> {
    match segs {
        [sid, file] => clip_link(StreamId(id(sid)?), file),
        [sid, dir, file] => clip_media(StreamId(id(sid)?), dir, file),
        _ => None,
    }
}

fn live_route(segs: &[&str]) -> Option<PublicRoute> {
    match segs {
        [key, file] if is_safe_name(key) => {
            let name = file.strip_suffix(".m3u8").filter(|n| is_safe_name(n))?;
            Some(PublicRoute::LivePlaylist {
                key: (*key).to_owned(),
                rendition: (name != "master").then(|| name.to_owned()),
            })
        }
        [key, rendition, file] if is_safe_name(key) && is_safe_name(rendition) => {
            Some(PublicRoute::LiveMedia {
                key: (*key).to_owned(),
                rendition: (*rendition).to_owned(),
                file: LiveFile::parse(file)?,
            })
        }
        _ => None,
    }
}

/// `rec_{clip}_{name}` → (clip, name). Clip ids hold no `_`, names may.
fn split_clip_name(stem: &str) -> Option<(ClipId, &str)> {
    let (clip, name) = stem.strip_prefix("rec_")?.split_once('_')?;
    let clip = ClipId::parse(clip)?;
    is_safe_name(name).then_some((clip, name))
}

fn clip_link(stream: StreamId, file: &str) -> Option<PublicRoute> {
    let (stem, format) = if let Some(s) = file.strip_suffix(".m3u8") {
        (s, LinkFormat::Hls)
    } else {
        (file.strip_suffix(".mp4")?, LinkFormat::Mp4)
    };
    let (clip, name) = split_clip_name(stem)?;
    Some(PublicRoute::ClipLink {
        stream,
        clip,
        name: name.to_owned(),
        format,
    })
}

fn clip_media(stream: StreamId, dir: &str, file: &str) -> Option<PublicRoute> {
    let (clip, rendition) = split_clip_name(dir)?;
    Some(PublicRoute::ClipMedia {
        stream,
        clip,
        rendition: rendition.to_owned(),
        file: MediaFile::parse(file)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = "0123456789abcdef0123456789abcdef";

    fn r(m: Method, p: &str) -> Route {
        route(&m, p)
    }

    fn clip() -> ClipId {
        ClipId::parse(CLIP).unwrap()
    }

    #[test]
    fn api_paths() {
        let api = |a| Route::Api(a);
        let s = StreamId;
        assert_eq!(
            r(Method::GET, "/streaming/streams"),
            api(ApiRoute::ListStreams)
        );
        assert_eq!(
            r(Method::POST, "/streaming/streams"),
            api(ApiRoute::CreateStream)
        );
        assert_eq!(
            r(Method::GET, "/streaming/streams/12"),
            api(ApiRoute::GetStream(s(12)))
        );
        assert_eq!(
            r(Method::PATCH, "/streaming/streams/12"),
            api(ApiRoute::PatchStream(s(12)))
        );
        assert_eq!(
            r(Method::DELETE, "/streaming/streams/12"),
            api(ApiRoute::DeleteStream(s(12)))
        );
        assert_eq!(
            r(Method::PUT, "/streaming/streams/12/dvr_cleanup"),
            api(ApiRoute::DvrCleanup(s(12)))
        );
        assert_eq!(
            r(Method::GET, "/streaming/streams/12/dvr"),
            api(ApiRoute::DvrView(s(12)))
        );
        assert_eq!(
            r(Method::PUT, "/streaming/streams/7/clip_recording"),
            api(ApiRoute::CreateClip(s(7)))
        );
        assert_eq!(
            r(Method::POST, "/streaming/streams/7/clip_recording"),
            api(ApiRoute::CreateClip(s(7)))
        );
        assert_eq!(
            r(Method::GET, "/streaming/streams/7/clip_recording"),
            api(ApiRoute::ListClips(s(7)))
        );
        assert_eq!(
            r(Method::GET, "/streaming/videos/99"),
            api(ApiRoute::GetVideo(99))
        );
        assert_eq!(r(Method::GET, "/streaming/streams/+1"), Route::NotFound);
        assert_eq!(r(Method::GET, "/streaming/streams/abc"), Route::NotFound);
        assert_eq!(
            r(Method::GET, "/streaming/streams/99999999999999999999"),
            Route::NotFound
        );
        assert!(matches!(
            r(Method::DELETE, "/streaming/streams/7/clip_recording"),
            Route::MethodNotAllowed(_)
        ));
    }

    #[test]
    fn ingest_paths() {
        assert_eq!(
            r(Method::PUT, "/ingest/k1/media_1_360/seg_00001.m4s"),
            Route::Ingest(IngestRoute {
                key: "k1".into(),
                rendition: Some("media_1_360".into()),
                file: "seg_00001.m4s".into(),
                delete: false
            })
        );
        assert_eq!(
            r(Method::DELETE, "/ingest/k1/master.m3u8"),
            Route::Ingest(IngestRoute {
                key: "k1".into(),
                rendition: None,
                file: "master.m3u8".into(),
                delete: true
            })
        );
        assert_eq!(r(Method::PUT, "/ingest/k1/a/b/c.m4s"), Route::NotFound);
        assert!(matches!(
            r(Method::GET, "/ingest/k1/a/c.m4s"),
            Route::MethodNotAllowed(_)
        ));
    }

    #[test]
    fn public_links() {
        let public = |p| Route::Public(p);
        assert_eq!(
            r(Method::GET, &format!("/rec/5/rec_{CLIP}_master.m3u8")),
            public(PublicRoute::ClipLink {
                stream: StreamId(5),
                clip: clip(),
                name: "master".into(),
                format: LinkFormat::Hls
            })
        );
        assert_eq!(
            r(Method::HEAD, &format!("/rec/5/rec_{CLIP}_media_1_360.mp4")),
            public(PublicRoute::ClipLink {
                stream: StreamId(5),
                clip: clip(),
                name: "media_1_360".into(),
                format: LinkFormat::Mp4
            })
        );
        assert_eq!(
            r(
                Method::GET,
                &format!("/rec/5/rec_{CLIP}_media_1_360/seg_3.m4s")
            ),
            public(PublicRoute::ClipMedia {
                stream: StreamId(5),
                clip: clip(),
                rendition: "media_1_360".into(),
                file: MediaFile::Segment(3)
            })
        );
        assert_eq!(
            r(Method::OPTIONS, &format!("/rec/5/rec_{CLIP}_master.mp4")),
            public(PublicRoute::Preflight)
        );
        for bad in [
            format!("/rec/5/rec_{CLIP}_master.txt"),
            "/rec/5/rec_abc_master.mp4".to_owned(),
            "/rec/5/rec_ab%2e_master.mp4".to_owned(),
            format!("/rec/5/rec_{CLIP}_m/..%2f.m4s"),
            format!("/rec/5/rec_{CLIP}_m/.."),
            format!("/rec/5/rec_{CLIP}_m/notes.txt"),
        ] {
            assert_eq!(r(Method::GET, &bad), Route::NotFound, "{bad}");
        }
        assert_eq!(
            r(Method::GET, "/vod/12.mp4"),
            public(PublicRoute::Vod(12, VodFile::Mp4))
        );
        assert_eq!(
            r(Method::HEAD, "/vod/12.m3u8"),
            public(PublicRoute::Vod(12, VodFile::Playlist))
        );
        assert_eq!(
            r(Method::GET, "/vod/12.m4s"),
            public(PublicRoute::Vod(12, VodFile::HlsMedia))
        );
        assert_eq!(
            r(Method::OPTIONS, "/vod/12.m4s"),
            public(PublicRoute::Preflight)
        );
        for bad in [
            "/vod/12.txt",
            "/vod/x.mp4",
            "/vod/12",
            "/vod/+1.mp4",
            "/vod/1.2.mp4",
            "/vod/1/2.mp4",
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn live_paths() {
        let playlist = |rendition: Option<&str>| {
            Route::Public(PublicRoute::LivePlaylist {
                key: "k3".into(),
                rendition: rendition.map(str::to_owned),
            })
        };
        assert_eq!(r(Method::GET, "/live/k3/master.m3u8"), playlist(None));
        assert_eq!(
            r(Method::HEAD, "/live/k3/media_1_360.m3u8"),
            playlist(Some("media_1_360"))
        );
        assert_eq!(
            r(Method::GET, "/live/k3/media_1_360/17.m4s"),
            Route::Public(PublicRoute::LiveMedia {
                key: "k3".into(),
                rendition: "media_1_360".into(),
                file: LiveFile::Segment(17),
            })
        );
        assert_eq!(
            r(Method::OPTIONS, "/live/k3/master.m3u8"),
            Route::Public(PublicRoute::Preflight)
        );
        assert_eq!(
            r(Method::PUT, "/live/k3/master.m3u8"),
            Route::MethodNotAllowed("GET, HEAD, OPTIONS")
        );
        for bad in [
            "/live/k3",
            "/live/k%33/master.m3u8",
            "/live/k3/master.mp4",
            "/live/k3/.m3u8",
            "/live/k3/../x.m4s",
            "/live/k3/r/a/b.m4s",
            "/live/k3/r/x.m4s",
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
    }

    proptest::proptest! {
        /// Every link the server hands out decodes to the route that serves it.
        #[test]
        fn handed_out_links_decode_to_their_routes(
            sid in 0u64..1_000_000_000_000_000_000,
            clip_bits in proptest::array::uniform16(proptest::num::u8::ANY),
            name in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}",
            seq in 0u64..1_000_000,
            key in "[0-9a-f]{32}",
        ) {
            let clip = ClipId::parse(&dvrclip_engine::secret::hex(&clip_bits)).unwrap();
            let stream = StreamId(sid);
            for (ext, format) in [("m3u8", LinkFormat::Hls), ("mp4", LinkFormat::Mp4)] {
                proptest::prop_assert_eq!(
                    r(Method::GET, &format!("/rec/{sid}/rec_{clip}_{name}.{ext}")),
                    Route::Public(PublicRoute::ClipLink { stream, clip, name: name.clone(), format })
                );
            }
            proptest::prop_assert_eq!(
                r(Method::HEAD, &format!("/rec/{sid}/rec_{clip}_{name}/seg_{seq}.m4s")),
                Route::Public(PublicRoute::ClipMedia {
                    stream, clip, rendition: name.clone(), file: MediaFile::Segment(seq as usize),
                })
            );
            proptest::prop_assert_eq!(
                r(Method::GET, &format!("/live/{key}/{name}/{seq}.m4s")),
                Route::Public(PublicRoute::LiveMedia {
                    key: key.clone(), rendition: name.clone(), file: LiveFile::Segment(seq),
                })
            );
            proptest::prop_assert_eq!(
                r(Method::PUT, &format!("/ingest/{key}/{name}/seg_{seq}.m4s")),
                Route::Ingest(IngestRoute {
                    key, rendition: Some(name), file: format!("seg_{seq}.m4s"), delete: false,
                })
            );
            proptest::prop_assert_eq!(
                r(Method::GET, &format!("/streaming/streams/{sid}/clip_recording")),
                Route::Api(ApiRoute::ListClips(stream))
            );
        }
    }
}

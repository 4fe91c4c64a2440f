//! The routing table: one pure function from method and path to a [`Route`].
//!
//! A path is decoded once, into a nested type whose arms are the server's rooms
//! ([`ApiRoute`], [`PublicRoute`], [`IngestRoute`], [`OpsRoute`], [`ConsoleFile`]), each with its
//! parameters already typed (`StreamId`, `ClipId`, the file of a clip or live
//! rendition). Every arm is matched exhaustively by the service, so a route without
//! a handler does not compile. Nothing here touches state: every URL shape of
//! `ref/api.md` is unit-tested without a socket, and `ref/openapi.yaml` is checked
//! against the table both ways (every documented operation routes to its shape;
//! every shape and method the table accepts is documented). Path segments are
//! matched raw (not percent-decoded): a `%` in a name is simply not a safe name.

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
    /// `GET /console` and its assets: the browser clipping console.
    Console(ConsoleFile),
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
    /// `GET /streaming/streams/{id}/clip_recording/{clip_id}`
    GetClip(StreamId, ClipId),
    /// `DELETE /streaming/streams/{id}/clip_recording/{clip_id}`
    DeleteClip(StreamId, ClipId),
    /// `GET /streaming/videos`
    ListVideos,
    /// `GET /streaming/videos/{id}`
    GetVideo(u64),
    /// `PATCH /streaming/videos/{id}`
    PatchVideo(u64),
    /// `DELETE /streaming/videos/{id}`
    DeleteVideo(u64),
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
    /// `GET /openapi.yaml`: the OpenAPI document of every endpoint (`ref/openapi.yaml`).
    OpenApi,
}

/// The files of the clipping console (`/console`): the page, and the assets it
/// names relative to itself (`console/{asset}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleFile {
    /// `GET /console`: the page.
    Page,
    /// `GET /console/app.js`
    Script,
    /// `GET /console/app.css`
    Style,
    /// `GET /console/hls.min.js`: the vendored player library.
    HlsJs,
    /// `GET /console/hls.js.LICENSE`: its licence.
    HlsJsLicense,
}

impl ConsoleFile {
    /// The asset named `name` under `/console/`.
    pub fn asset(name: &str) -> Option<ConsoleFile> {
        Some(match name {
            "app.js" => ConsoleFile::Script,
            "app.css" => ConsoleFile::Style,
            "hls.min.js" => ConsoleFile::HlsJs,
            "hls.js.LICENSE" => ConsoleFile::HlsJsLicense,
            _ => return None,
        })
    }
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
        ["openapi.yaml"] if get => Route::Ops(OpsRoute::OpenApi),
        ["healthz"] | ["metrics"] | ["openapi.yaml"] => Route::MethodNotAllowed("GET, HEAD"),
        ["console"] if get => Route::Console(ConsoleFile::Page),
        ["console", asset] => match ConsoleFile::asset(asset) {
            Some(f) if get => Route::Console(f),
            Some(_) => Route::MethodNotAllowed("GET, HEAD"),
            None => Route::NotFound,
        },
        ["console"] => Route::MethodNotAllowed("GET, HEAD"),
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
                (["clip_recording", clip], _) => {
                    let Some(clip) = ClipId::parse(clip) else {
                        return Route::NotFound;
                    };
                    match *m {
                        Method::GET => ApiRoute::GetClip(sid, clip),
                        Method::DELETE => ApiRoute::DeleteClip(sid, clip),
                        _ => return Route::MethodNotAllowed("GET, DELETE"),
                    }
                }
                _ => return Route::NotFound,
            }
        }
        ["videos"] => match *m {
            Method::GET => ApiRoute::ListVideos,
            _ => return Route::MethodNotAllowed("GET"),
        },
        ["videos", vid] => match (id(vid), m) {
            (Some(v), &Method::GET) => ApiRoute::GetVideo(v),
            (Some(v), &Method::PATCH) => ApiRoute::PatchVideo(v),
            (Some(v), &Method::DELETE) => ApiRoute::DeleteVideo(v),
            (Some(_), _) => return Route::MethodNotAllowed("GET, PATCH, DELETE"),
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
        assert_eq!(
            r(
                Method::GET,
                &format!("/streaming/streams/7/clip_recording/{CLIP}")
            ),
            api(ApiRoute::GetClip(s(7), clip()))
        );
        assert_eq!(
            r(
                Method::DELETE,
                &format!("/streaming/streams/7/clip_recording/{CLIP}")
            ),
            api(ApiRoute::DeleteClip(s(7), clip()))
        );
        assert_eq!(
            r(
                Method::PUT,
                &format!("/streaming/streams/7/clip_recording/{CLIP}")
            ),
            Route::MethodNotAllowed("GET, DELETE")
        );
        for bad in [
            "/streaming/streams/7/clip_recording/abc",
            "/streaming/streams/7/clip_recording/0123456789ABCDEF0123456789abcdeg",
            "/streaming/streams/7/clip_recording/",
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
        assert_eq!(
            r(Method::GET, "/streaming/videos"),
            api(ApiRoute::ListVideos)
        );
        assert_eq!(
            r(Method::POST, "/streaming/videos"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            r(Method::PATCH, "/streaming/videos/99"),
            api(ApiRoute::PatchVideo(99))
        );
        assert_eq!(
            r(Method::DELETE, "/streaming/videos/99"),
            api(ApiRoute::DeleteVideo(99))
        );
        assert_eq!(
            r(Method::PUT, "/streaming/videos/99"),
            Route::MethodNotAllowed("GET, PATCH, DELETE")
        );
        assert_eq!(r(Method::DELETE, "/streaming/videos/x"), Route::NotFound);
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

    #[test]
    fn ops_paths() {
        assert_eq!(
            r(Method::GET, "/openapi.yaml"),
            Route::Ops(OpsRoute::OpenApi)
        );
        assert_eq!(
            r(Method::HEAD, "/openapi.yaml"),
            Route::Ops(OpsRoute::OpenApi)
        );
        assert_eq!(
            r(Method::POST, "/openapi.yaml"),
            Route::MethodNotAllowed("GET, HEAD")
        );
    }

    #[test]
    fn console_paths() {
        assert_eq!(
            r(Method::GET, "/console"),
            Route::Console(ConsoleFile::Page)
        );
        assert_eq!(
            r(Method::HEAD, "/console/app.js"),
            Route::Console(ConsoleFile::Script)
        );
        assert_eq!(
            r(Method::GET, "/console/hls.min.js"),
            Route::Console(ConsoleFile::HlsJs)
        );
        assert_eq!(
            r(Method::POST, "/console"),
            Route::MethodNotAllowed("GET, HEAD")
        );
        for bad in [
            "/console/",
            "/console/x.js",
            "/console/../app.js",
            "/console/a/app.js",
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
    }

    /// The path template of `ref/openapi.yaml` that serves a route: one per shape
    /// of the router, matched exhaustively so a new route does not compile until it
    /// has one (and then must be in [`SHAPES`] and the document).
    fn shape(route: &Route) -> Option<&'static str> {
        use ApiRoute as A;
        use PublicRoute as P;
        Some(match route {
            Route::Api(a) => match a {
                A::ListStreams | A::CreateStream => "/streaming/streams",
                A::GetStream(_) | A::PatchStream(_) | A::DeleteStream(_) => {
                    "/streaming/streams/{stream_id}"
                }
                A::DvrCleanup(_) => "/streaming/streams/{stream_id}/dvr_cleanup",
                A::DvrView(_) => "/streaming/streams/{stream_id}/dvr",
                A::CreateClip(_) | A::ListClips(_) => {
                    "/streaming/streams/{stream_id}/clip_recording"
                }
                A::GetClip(..) | A::DeleteClip(..) => {
                    "/streaming/streams/{stream_id}/clip_recording/{clip_id}"
                }
                A::ListVideos => "/streaming/videos",
                A::GetVideo(_) | A::PatchVideo(_) | A::DeleteVideo(_) => {
                    "/streaming/videos/{video_id}"
                }
            },
            Route::Public(p) => match p {
                P::ClipLink {
                    format: LinkFormat::Hls,
                    ..
                } => "/rec/{stream_id}/rec_{clip_id}_{name}.m3u8",
                P::ClipLink {
                    format: LinkFormat::Mp4,
                    ..
                } => "/rec/{stream_id}/rec_{clip_id}_{name}.mp4",
                P::ClipMedia { .. } => "/rec/{stream_id}/rec_{clip_id}_{rendition}/{file}",
                P::LivePlaylist {
                    rendition: None, ..
                } => "/live/{play_key}/master.m3u8",
                P::LivePlaylist {
                    rendition: Some(_), ..
                } => "/live/{play_key}/{rendition}.m3u8",
                P::LiveMedia { .. } => "/live/{play_key}/{rendition}/{file}",
                P::Vod(_, VodFile::Mp4) => "/vod/{video_id}.mp4",
                P::Vod(_, VodFile::Playlist) => "/vod/{video_id}.m3u8",
                P::Vod(_, VodFile::HlsMedia) => "/vod/{video_id}.m4s",
                // Any public path: the path says which.
                P::Preflight => return None,
            },
            Route::Ingest(IngestRoute {
                rendition: Some(_), ..
            }) => "/ingest/{key}/{rendition}/{file}",
            Route::Ingest(IngestRoute {
                rendition: None, ..
            }) => "/ingest/{key}/{file}",
            Route::Ops(o) => match o {
                OpsRoute::Health => "/healthz",
                OpsRoute::Metrics => "/metrics",
                OpsRoute::OpenApi => "/openapi.yaml",
            },
            Route::Console(ConsoleFile::Page) => "/console",
            Route::Console(_) => "/console/{asset}",
            Route::MethodNotAllowed(_) | Route::NotFound => return None,
        })
    }

    /// Every template [`shape`] answers.
    const SHAPES: [&str; 24] = [
        "/streaming/streams",
        "/streaming/streams/{stream_id}",
        "/streaming/streams/{stream_id}/dvr_cleanup",
        "/streaming/streams/{stream_id}/dvr",
        "/streaming/streams/{stream_id}/clip_recording",
        "/streaming/streams/{stream_id}/clip_recording/{clip_id}",
        "/streaming/videos",
        "/streaming/videos/{video_id}",
        "/rec/{stream_id}/rec_{clip_id}_{name}.m3u8",
        "/rec/{stream_id}/rec_{clip_id}_{name}.mp4",
        "/rec/{stream_id}/rec_{clip_id}_{rendition}/{file}",
        "/live/{play_key}/master.m3u8",
        "/live/{play_key}/{rendition}.m3u8",
        "/live/{play_key}/{rendition}/{file}",
        "/vod/{video_id}.mp4",
        "/vod/{video_id}.m3u8",
        "/vod/{video_id}.m4s",
        "/ingest/{key}/{rendition}/{file}",
        "/ingest/{key}/{file}",
        "/healthz",
        "/metrics",
        "/openapi.yaml",
        "/console",
        "/console/{asset}",
    ];

    /// A request path for a template: every parameter given a value of its kind.
    fn instantiate(template: &str) -> String {
        let file = if template.starts_with("/live/") {
            "17.m4s"
        } else {
            "seg_3.m4s"
        };
        template
            .replace("{stream_id}", "7")
            .replace("{video_id}", "12")
            .replace("{clip_id}", CLIP)
            .replace("{name}", "media_1_360")
            .replace("{rendition}", "media_1_360")
            .replace("{play_key}", "k3")
            .replace("{key}", "k1")
            .replace("{file}", file)
            .replace("{asset}", "app.js")
    }

    /// `ref/openapi.yaml`'s operations: (path template, method).
    fn documented() -> Vec<(String, Method)> {
        let doc: serde_json::Value = serde_norway::from_str(crate::ops::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            // OpenAPI 3.1 §4.8.9: the fixed fields of a Path Item that are operations.
            let verbs = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            for key in item.as_object().unwrap().keys() {
                if verbs.contains(&key.as_str()) {
                    ops.push((
                        path.clone(),
                        Method::from_bytes(key.to_uppercase().as_bytes()).unwrap(),
                    ));
                }
            }
        }
        ops
    }

    /// `ref/openapi.yaml` cannot drift from the router: every path and method it
    /// documents routes (neither 404 nor 405) to the route of that very template (an
    /// `OPTIONS` to the CORS preflight).
    #[test]
    fn every_documented_operation_is_routed() {
        let ops = documented();
        assert!(ops.len() > 30, "{ops:?}");
        for (template, m) in &ops {
            let got = route(m, &instantiate(template));
            if *m == Method::OPTIONS {
                assert_eq!(got, Route::Public(PublicRoute::Preflight), "{m} {template}");
            } else {
                assert_eq!(
                    shape(&got),
                    Some(template.as_str()),
                    "{m} {template}: {got:?}"
                );
            }
        }
    }

    /// ... and every shape of the router, with every method it accepts, is in the
    /// document (HEAD where GET is: one rule answers it for every GET).
    #[test]
    fn every_route_is_documented() {
        let ops = documented();
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let mut shapes = std::collections::HashSet::new();
        for template in SHAPES {
            let path = instantiate(template);
            for m in methods.map(|m| Method::from_bytes(m.as_bytes()).unwrap()) {
                let got = route(&m, &path);
                let preflight = got == Route::Public(PublicRoute::Preflight);
                let Some(found) = shape(&got).or(preflight.then_some(template)) else {
                    continue;
                };
                assert_eq!(found, template, "{m} {path}: {got:?}");
                shapes.insert(found);
                let listed = if m == Method::HEAD {
                    Method::GET
                } else {
                    m.clone()
                };
                assert!(
                    ops.contains(&(found.to_owned(), listed.clone())),
                    "{m} {found} is routed but not in ref/openapi.yaml"
                );
            }
        }
        assert_eq!(shapes.len(), SHAPES.len(), "every shape routes to itself");
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

//! The routing table: one pure function from method and path to a [`Route`].
//!
//! Nothing here touches state, so every URL shape of DESIGN §5–7 is unit-tested
//! without a socket. Path segments are matched raw (not percent-decoded): a `%`
//! in an ingest name or clip link is simply not a valid name (DESIGN §7).

use http::Method;

/// What a request asks for, with its path parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Health,
    /// `GET /metrics`
    Metrics,
    /// `GET /streaming/streams`
    ListStreams,
    /// `POST /streaming/streams`
    CreateStream,
    /// `GET /streaming/streams/{id}`
    GetStream(u64),
    /// `PATCH /streaming/streams/{id}`
    PatchStream(u64),
    /// `DELETE /streaming/streams/{id}`
    DeleteStream(u64),
    /// `PUT /streaming/streams/{id}/dvr_cleanup`
    DvrCleanup(u64),
    /// `GET /streaming/streams/{id}/dvr`
    DvrView(u64),
    /// `PUT|POST /streaming/streams/{id}/clip_recording`
    CreateClip(u64),
    /// `GET /streaming/streams/{id}/clip_recording`
    ListClips(u64),
    /// `GET /streaming/videos/{id}`
    GetVideo(u64),
    /// `PUT|POST|DELETE /ingest/{key}/{rendition}/{file}` or `/ingest/{key}/{file}`.
    Ingest {
        /// The stream's secret key.
        key: String,
        /// `None` for files at the stream level (the master playlist).
        rendition: Option<String>,
        /// The file name.
        file: String,
        /// DELETE rather than an upload.
        delete: bool,
    },
    /// `GET|HEAD /rec/{stream}/rec_{clip}_{name}.m3u8|.mp4` (name = `master` or a rendition).
    ClipLink {
        /// Stream id.
        stream_id: u64,
        /// Clip id.
        clip: String,
        /// `master` or a rendition name.
        name: String,
        /// Which format.
        format: LinkFormat,
    },
    /// `GET|HEAD /rec/{stream}/rec_{clip}_{rendition}/{file}`: an init or media segment.
    ClipMedia {
        /// Stream id.
        stream_id: u64,
        /// Clip id.
        clip: String,
        /// Rendition name.
        rendition: String,
        /// `init_{n}.mp4` or `seg_{n}.m4s`.
        file: String,
    },
    /// `GET|HEAD /live/{play_key}/master.m3u8` (`rendition` None) or
    /// `/live/{play_key}/{rendition}.m3u8`: the stream's live DVR playlists.
    LivePlaylist {
        /// The stream's play key.
        key: String,
        /// The rendition; `None` for the master playlist.
        rendition: Option<String>,
    },
    /// `GET|HEAD /live/{play_key}/{rendition}/{file}`: an init or a chunk of the window.
    LiveMedia {
        /// The stream's play key.
        key: String,
        /// Rendition name.
        rendition: String,
        /// `init_{d}.mp4` or `{seq}.m4s`.
        file: String,
    },
    /// `GET|HEAD /vod/{video_id}.mp4`
    VodMp4(u64),
    /// `GET|HEAD /vod/{video_id}.m3u8`: the video's HLS playlist.
    VodHls(u64),
    /// `GET|HEAD /vod/{video_id}.m4s`: the one fMP4 file that playlist addresses by ranges.
    VodHlsMedia(u64),
    /// `OPTIONS` on a public path: a CORS preflight.
    Preflight,
    /// A known path with a method it does not accept.
    MethodNotAllowed(&'static str),
    /// Nothing here.
    NotFound,
}

/// The two formats of a clip link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFormat {
    /// HLS playlist (`.m3u8`).
    Hls,
    /// Progressive MP4 (`.mp4`).
    Mp4,
}

/// Whether `s` is a safe single path component: `[A-Za-z0-9._-]`, 1–128 bytes, not
/// `.`/`..`, not starting with a dot (DESIGN §7: one component of a safe charset).
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
        ["healthz"] if get => Route::Health,
        ["metrics"] if get => Route::Metrics,
        ["healthz"] | ["metrics"] => Route::MethodNotAllowed("GET, HEAD"),
        ["streaming", rest @ ..] => api_route(m, rest),
        ["ingest", rest @ ..] => ingest_route(m, rest),
        ["rec", rest @ ..] => public_route(m, rest, clip_route),
        ["live", rest @ ..] => public_route(m, rest, live_route),
        ["vod", file] => match vod_file(file) {
            Some(v) if get => v,
            Some(_) if m == Method::OPTIONS => Route::Preflight,
            Some(_) => Route::MethodNotAllowed("GET, HEAD, OPTIONS"),
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

fn vod_file(file: &str) -> Option<Route> {
    let (stem, ext) = file.rsplit_once('.')?;
    let v = id(stem)?;
    match ext {
        "mp4" => Some(Route::VodMp4(v)),
        "m3u8" => Some(Route::VodHls(v)),
        "m4s" => Some(Route::VodHlsMedia(v)),
        _ => None,
    }
}

fn api_route(m: &Method, segs: &[&str]) -> Route {
    match segs {
        ["streams"] => match *m {
            Method::GET => Route::ListStreams,
            Method::POST => Route::CreateStream,
            _ => Route::MethodNotAllowed("GET, POST"),
        },
        ["streams", sid, rest @ ..] => {
            let Some(sid) = id(sid) else {
                return Route::NotFound;
            };
            match (rest, m) {
                ([], &Method::GET) => Route::GetStream(sid),
                ([], &Method::PATCH) => Route::PatchStream(sid),
                ([], &Method::DELETE) => Route::DeleteStream(sid),
                ([], _) => Route::MethodNotAllowed("GET, PATCH, DELETE"),
                (["dvr_cleanup"], &Method::PUT) => Route::DvrCleanup(sid),
                (["dvr_cleanup"], _) => Route::MethodNotAllowed("PUT"),
                (["dvr"], &Method::GET) => Route::DvrView(sid),
                (["dvr"], _) => Route::MethodNotAllowed("GET"),
                (["clip_recording"], &Method::PUT | &Method::POST) => Route::CreateClip(sid),
                (["clip_recording"], &Method::GET) => Route::ListClips(sid),
                (["clip_recording"], _) => Route::MethodNotAllowed("GET, PUT, POST"),
                _ => Route::NotFound,
            }
        }
        ["videos", vid] => match (id(vid), m) {
            (Some(v), &Method::GET) => Route::GetVideo(v),
            (Some(_), _) => Route::MethodNotAllowed("GET"),
            (None, _) => Route::NotFound,
        },
        _ => Route::NotFound,
    }
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
    Route::Ingest {
        key: (*key).to_owned(),
        rendition: rendition.map(|r| (*r).to_owned()),
        file: (*file).to_owned(),
        delete,
    }
}

/// A public link (no auth; GET, HEAD and the CORS preflight): `decode` reads the
/// segments after the prefix.
fn public_route(m: &Method, segs: &[&str], decode: fn(&[&str]) -> Option<Route>) -> Route {
    let get = m == Method::GET || m == Method::HEAD;
    match decode(segs) {
        Some(_) if m == Method::OPTIONS => Route::Preflight,
        Some(r) if get => r,
        Some(_) => Route::MethodNotAllowed("GET, HEAD, OPTIONS"),
        None => Route::NotFound,
    }
}

fn clip_route(segs: &[&str]) -> Option<Route> {
    match segs {
        [sid, file] => clip_link(id(sid)?, file),
        [sid, dir, file] => clip_media(id(sid)?, dir, file),
        _ => None,
    }
}

fn live_route(segs: &[&str]) -> Option<Route> {
    match segs {
        [key, file] if is_safe_name(key) => {
            let name = file.strip_suffix(".m3u8").filter(|n| is_safe_name(n))?;
            Some(Route::LivePlaylist {
                key: (*key).to_owned(),
                rendition: (name != "master").then(|| name.to_owned()),
            })
        }
        [key, rendition, file] if [key, rendition, file].iter().all(|s| is_safe_name(s)) => {
            Some(Route::LiveMedia {
                key: (*key).to_owned(),
                rendition: (*rendition).to_owned(),
                file: (*file).to_owned(),
            })
        }
        _ => None,
    }
}

/// `rec_{clip}_{name}` → (clip, name). Clip ids hold no `_`, names may.
fn split_clip_name(stem: &str) -> Option<(&str, &str)> {
    let (clip, name) = stem.strip_prefix("rec_")?.split_once('_')?;
    let ok = !clip.is_empty() && clip.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok && is_safe_name(name)).then_some((clip, name))
}

fn clip_link(stream_id: u64, file: &str) -> Option<Route> {
    let (stem, format) = if let Some(s) = file.strip_suffix(".m3u8") {
        (s, LinkFormat::Hls)
    } else {
        (file.strip_suffix(".mp4")?, LinkFormat::Mp4)
    };
    let (clip, name) = split_clip_name(stem)?;
    Some(Route::ClipLink {
        stream_id,
        clip: clip.to_owned(),
        name: name.to_owned(),
        format,
    })
}

fn clip_media(stream_id: u64, dir: &str, file: &str) -> Option<Route> {
    let (clip, rendition) = split_clip_name(dir)?;
    is_safe_name(file).then(|| Route::ClipMedia {
        stream_id,
        clip: clip.to_owned(),
        rendition: rendition.to_owned(),
        file: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Route {
        route(&m, p)
    }

    #[test]
    fn api_paths() {
        assert_eq!(r(Method::GET, "/streaming/streams"), Route::ListStreams);
        assert_eq!(r(Method::POST, "/streaming/streams"), Route::CreateStream);
        assert_eq!(
            r(Method::GET, "/streaming/streams/12"),
            Route::GetStream(12)
        );
        assert_eq!(
            r(Method::PATCH, "/streaming/streams/12"),
            Route::PatchStream(12)
        );
        assert_eq!(
            r(Method::DELETE, "/streaming/streams/12"),
            Route::DeleteStream(12)
        );
        assert_eq!(
            r(Method::PUT, "/streaming/streams/12/dvr_cleanup"),
            Route::DvrCleanup(12)
        );
        assert_eq!(
            r(Method::GET, "/streaming/streams/12/dvr"),
            Route::DvrView(12)
        );
        assert_eq!(
            r(Method::PUT, "/streaming/streams/7/clip_recording"),
            Route::CreateClip(7)
        );
        assert_eq!(
            r(Method::POST, "/streaming/streams/7/clip_recording"),
            Route::CreateClip(7)
        );
        assert_eq!(
            r(Method::GET, "/streaming/streams/7/clip_recording"),
            Route::ListClips(7)
        );
        assert_eq!(r(Method::GET, "/streaming/videos/99"), Route::GetVideo(99));
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
            Route::Ingest {
                key: "k1".into(),
                rendition: Some("media_1_360".into()),
                file: "seg_00001.m4s".into(),
                delete: false
            }
        );
        assert_eq!(
            r(Method::DELETE, "/ingest/k1/master.m3u8"),
            Route::Ingest {
                key: "k1".into(),
                rendition: None,
                file: "master.m3u8".into(),
                delete: true
            }
        );
        assert_eq!(r(Method::PUT, "/ingest/k1/a/b/c.m4s"), Route::NotFound);
        assert!(matches!(
            r(Method::GET, "/ingest/k1/a/c.m4s"),
            Route::MethodNotAllowed(_)
        ));
    }

    #[test]
    fn public_links() {
        assert_eq!(
            r(Method::GET, "/rec/5/rec_abc123_master.m3u8"),
            Route::ClipLink {
                stream_id: 5,
                clip: "abc123".into(),
                name: "master".into(),
                format: LinkFormat::Hls
            }
        );
        assert_eq!(
            r(Method::HEAD, "/rec/5/rec_abc123_media_1_360.mp4"),
            Route::ClipLink {
                stream_id: 5,
                clip: "abc123".into(),
                name: "media_1_360".into(),
                format: LinkFormat::Mp4
            }
        );
        assert_eq!(
            r(Method::GET, "/rec/5/rec_abc123_media_1_360/seg_3.m4s"),
            Route::ClipMedia {
                stream_id: 5,
                clip: "abc123".into(),
                rendition: "media_1_360".into(),
                file: "seg_3.m4s".into()
            }
        );
        assert_eq!(
            r(Method::OPTIONS, "/rec/5/rec_abc_master.mp4"),
            Route::Preflight
        );
        assert_eq!(r(Method::GET, "/rec/5/rec_abc_master.txt"), Route::NotFound);
        assert_eq!(
            r(Method::GET, "/rec/5/rec_ab%2e_master.mp4"),
            Route::NotFound
        );
        assert_eq!(
            r(Method::GET, "/rec/5/rec_abc_m/..%2f.m4s"),
            Route::NotFound
        );
        assert_eq!(r(Method::GET, "/rec/5/rec_abc_m/.."), Route::NotFound);
        assert_eq!(r(Method::GET, "/vod/12.mp4"), Route::VodMp4(12));
        assert_eq!(r(Method::HEAD, "/vod/12.m3u8"), Route::VodHls(12));
        assert_eq!(r(Method::GET, "/vod/12.m4s"), Route::VodHlsMedia(12));
        assert_eq!(r(Method::OPTIONS, "/vod/12.m4s"), Route::Preflight);
        for bad in [
            "/vod/12.txt",
            "/vod/x.mp4",
            "/vod/12",
            "/vod/+1.mp4",
            "/vod/1.2.mp4",
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn live_paths() {
        let playlist = |rendition: Option<&str>| Route::LivePlaylist {
            key: "k3".into(),
            rendition: rendition.map(str::to_owned),
        };
        assert_eq!(r(Method::GET, "/live/k3/master.m3u8"), playlist(None));
        assert_eq!(
            r(Method::HEAD, "/live/k3/media_1_360.m3u8"),
            playlist(Some("media_1_360"))
        );
        assert_eq!(
            r(Method::GET, "/live/k3/media_1_360/17.m4s"),
            Route::LiveMedia {
                key: "k3".into(),
                rendition: "media_1_360".into(),
                file: "17.m4s".into(),
            }
        );
        assert_eq!(r(Method::OPTIONS, "/live/k3/master.m3u8"), Route::Preflight);
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
        ] {
            assert_eq!(r(Method::GET, bad), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name("seg_00001.m4s"));
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a%2fb",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }
}

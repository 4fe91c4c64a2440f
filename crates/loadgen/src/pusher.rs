//! One live stream pushed in real time, as ffmpeg's HLS muxer pushes it with
//! `-method PUT -http_persistent 1`: the stream is created through the API, then each
//! rendition's init and the master playlist are uploaded once, and every segment
//! duration each rendition's next segment followed by its media playlist (a sliding
//! window of the last [`WINDOW`] segments, each with `EXT-X-PROGRAM-DATE-TIME`).
//! Bodies go with a `Content-Length`, or chunked as ffmpeg sends them (`--chunked`).
//!
//! Segment `k` is due when its media has "happened": the stream's start plus the
//! media time up to its end. A pusher that wakes later than one segment past that
//! counts it as late: the client, not the server, fell behind.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvrclip_engine::WallTime;

use crate::error::Error;
use crate::http::Client;
use crate::shared::{LiveStream, Shared, url_path};
use crate::stats::Kind;

/// Segments listed in a media playlist, as `-hls_list_size 6` would.
const WINDOW: u64 = 6;

/// A stream made through the API: its id, HTTP ingest base path and RTMP
/// `push_url` (empty when the server has no RTMP door).
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub(crate) id: u64,
    pub(crate) ingest_path: String,
    pub(crate) push_url: String,
}

/// `POST /streaming/streams` with a DVR of `dvr_secs`.
pub(crate) async fn create_stream(
    shared: &Shared,
    client: &mut Client,
    name: &str,
    dvr_secs: u32,
) -> Result<Created, Error> {
    let body = format!(r#"{{"name":"{name}","dvr_duration":{dvr_secs}}}"#);
    let headers = format!("{}Content-Type: application/json\r\n", shared.auth);
    let resp = client
        .send(
            "POST",
            "/streaming/streams",
            &headers,
            body.as_bytes(),
            true,
        )
        .await?;
    if resp.status != 201 {
        return Err(Error::Api(format!(
            "create stream: {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|e| Error::Api(e.to_string()))?;
    let id = v["id"]
        .as_u64()
        .ok_or_else(|| Error::Api("stream without id".into()))?;
    let push = v["push_url_http"]
        .as_str()
        .ok_or_else(|| Error::Api("stream without push_url_http".into()))?;
    Ok(Created {
        id,
        ingest_path: url_path(push).trim_end_matches('/').to_owned(),
        push_url: v["push_url"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Pushes `stream` from `phase` from now until the run stops.
pub(crate) async fn push(shared: Arc<Shared>, stream: Created, phase: Duration, chunked: bool) {
    let mut stop = shared.stop.subscribe();
    let mut client = Client::new(shared.server).chunked(chunked);
    let start = Instant::now() + phase;
    tokio::time::sleep_until(start.into()).await;
    let wall_start = WallTime::from_unix_micros(unix_micros_now());
    let base = &stream.ingest_path;
    for r in &shared.ladder.renditions {
        let path = format!("{base}/{}/{}", r.name, r.init_name);
        upload(&shared, &mut client, &path, &r.init, None).await;
    }
    let master = master_playlist(&shared);
    upload(
        &shared,
        &mut client,
        &format!("{base}/master.m3u8"),
        master.as_bytes(),
        None,
    )
    .await;
    shared.streams().push(LiveStream {
        id: stream.id,
        started: start,
    });

    // Media seconds from the stream's start to the start of segment k.
    let mut media_secs = 0.0f64;
    let mut starts: Vec<f64> = Vec::new();
    for k in 0u64.. {
        let dur = shared.ladder.duration_secs(k);
        starts.push(media_secs);
        if starts.len() > WINDOW as usize {
            starts.remove(0);
        }
        media_secs += dur;
        let due = start + Duration::from_secs_f64(media_secs);
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.changed() => return,
        }
        if Instant::now().saturating_duration_since(due) > Duration::from_secs_f64(dur) {
            shared.stats().late += 1;
        }
        for r in &shared.ladder.renditions {
            let Ok(bytes) = r.segment(k) else {
                shared.stats().error(Kind::Segment);
                continue;
            };
            let path = format!("{base}/{}/seg_{k:05}.m4s", r.name);
            upload(&shared, &mut client, &path, &bytes, Some(Kind::Segment)).await;
            let playlist = media_playlist(&shared, r.init_name.as_str(), k, &starts, wall_start);
            let path = format!("{base}/{}/index.m3u8", r.name);
            upload(
                &shared,
                &mut client,
                &path,
                playlist.as_bytes(),
                Some(Kind::Playlist),
            )
            .await;
        }
    }
}

/// One PUT, timed as `kind` when given; a 2xx is success.
async fn upload(shared: &Shared, client: &mut Client, path: &str, body: &[u8], kind: Option<Kind>) {
    let t = Instant::now();
    let outcome = client.send("PUT", path, "", body, false).await;
    let took = t.elapsed();
    let Some(kind) = kind else { return };
    match outcome {
        Ok(resp) => shared
            .stats()
            .record(kind, took, (200..300).contains(&resp.status)),
        Err(_) => shared.stats().error(kind),
    }
}

fn master_playlist(shared: &Shared) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    for r in &shared.ladder.renditions {
        let _ = write!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH=300000\n{}/index.m3u8\n\n",
            r.name
        );
    }
    s
}

/// The media playlist after segment `k`: the last segments with their dates.
/// `starts` holds the media-time starts of the listed segments, oldest first.
fn media_playlist(
    shared: &Shared,
    init: &str,
    k: u64,
    starts: &[f64],
    wall_start: WallTime,
) -> String {
    let first = k + 1 - starts.len() as u64;
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n\
         #EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{init}\"\n",
        shared.ladder.target_duration_secs()
    );
    for (i, start) in starts.iter().enumerate() {
        let seq = first + i as u64;
        let date = wall_start
            .add_micros((start * 1e6) as i64)
            .to_rfc3339_millis();
        let _ = write!(
            s,
            "#EXTINF:{:.6},\n#EXT-X-PROGRAM-DATE-TIME:{date}\nseg_{seq:05}.m4s\n",
            shared.ladder.duration_secs(seq)
        );
    }
    s
}

fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Wall time now, Unix seconds.
pub(crate) fn unix_secs_now() -> i64 {
    unix_micros_now() / 1_000_000
}

//! The pull task: the round robin over origins, and one loop per rendition that
//! reloads its playlist ([`super::follow`]) and pushes what is new: fMP4 segments
//! through the upload path ([`crate::Upload::store`]), MPEG-TS segments through the
//! rendition's [`TsPublish`], which keeps its state from one segment to the next. An
//! `rtmp://` origin is played by [`crate::rtmp::pull()`] instead, and an `srt://` one
//! called by [`crate::srt::pull()`], one connection per turn.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use dvrclip_engine::{Engine, MemoryReservation, StreamId, is_safe_name};
use dvrclip_hls::ingest::{IngestSegment, Playlist, parse_playlist};
use reqwest::Url;
use tokio::time::Instant;

use super::fetch::{Fetcher, What};
use super::follow::{Follow, rendition_name};
use super::{FetchError, PullConfig, PullStatus};
use crate::ts::{TsError, TsPublish};
use crate::{FileKind, Stored, Upload, UploadError};
use crate::{rtmp, srt};

/// The budget follows what a rendition's [`TsPublish`] holds in steps of this.
const TS_RESERVATION_STEP: u64 = 256 << 10;

/// One stream's pull.
pub(crate) struct Job {
    pub(crate) engine: Arc<Engine>,
    pub(crate) stream: StreamId,
    pub(crate) urls: Vec<Url>,
    pub(crate) fetcher: Fetcher,
    pub(crate) config: Arc<PullConfig>,
    pub(crate) status: Arc<PullStatus>,
}

/// A rendition's state, kept across origins so a switch neither refetches nor skips.
struct Rendition {
    name: String,
    follow: Follow,
    init_url: Option<Url>,
    /// MPEG-TS segments (no `EXT-X-MAP`): the demuxer and fragmenter they go
    /// through, and the budget its held bytes take.
    ts: Option<(TsPublish, MemoryReservation, u64)>,
}

impl Rendition {
    /// A new discontinuity: a TS rendition flushes and starts a new epoch (which
    /// breaks the engine's timeline itself); an fMP4 one tells the engine.
    fn discontinuity(&mut self, engine: &Engine, stream: StreamId) {
        match &mut self.ts {
            Some((ts, ..)) => ts.discontinuity(engine),
            None => {
                let _ = engine.break_discontinuity(stream, &self.name);
            }
        }
    }
}

/// A URI as logs show it: an SRT `passphrase` is a secret, and is replaced.
fn shown(url: &Url) -> std::borrow::Cow<'_, str> {
    if !url.query_pairs().any(|(k, _)| k == "passphrase") {
        return url.as_str().into();
    }
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "passphrase" {
                "(hidden)".into()
            } else {
                v
            };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string().into()
}

impl Job {
    /// Follows the URIs round robin until stopped: the next one when one fails (after
    /// its retries) or stops sending; a pause that doubles when all fail in a row.
    pub(crate) async fn run(self) {
        let epoch = Instant::now();
        let mut renditions = Vec::new();
        let mut index = 0;
        let mut failed_in_a_row = 0;
        let mut pause = self.config.retry_backoff.max(Duration::from_millis(100));
        let mut switched = false;
        loop {
            self.status.in_use.store(index, Relaxed);
            let url = &self.urls[index];
            tracing::info!(stream = %self.stream, uri = %shown(url), switched, "pull: following");
            let before = self.status.segments.load(Relaxed);
            let err = if url.scheme() == "rtmp" {
                self.play_rtmp(url).await
            } else if url.scheme() == "srt" {
                self.call_srt(url).await
            } else {
                self.follow_origin(url, epoch, &mut renditions, switched)
                    .await
            };
            if matches!(err, FetchError::Stopped) {
                tracing::info!(stream = %self.stream, "pull: stopped");
                return;
            }
            self.status.errors.fetch_add(1, Relaxed);
            if self.status.segments.load(Relaxed) > before {
                failed_in_a_row = 0;
                pause = self.config.retry_backoff.max(Duration::from_millis(100));
            } else {
                failed_in_a_row += 1;
            }
            let next = (index + 1) % self.urls.len();
            tracing::warn!(
                stream = %self.stream, uri = %shown(url), error = %err,
                next = %shown(&self.urls[next]), "pull: origin failed or stopped sending"
            );
            if failed_in_a_row >= self.urls.len() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(self.config.max_round_backoff);
                failed_in_a_row = 0;
            }
            switched = next != index;
            if switched {
                self.status.switches.fetch_add(1, Relaxed);
            }
            index = next;
        }
    }

    /// Plays one `rtmp://` origin until it ends; returns how. The chunks it stored
    /// count as segments, so a long play followed by the server closing is not taken
    /// for a failing origin.
    async fn play_rtmp(&self, url: &Url) -> FetchError {
        let ended = |reason: String| FetchError::Ended {
            url: url.to_string(),
            reason,
        };
        let source = match rtmp::RtmpSource::parse(url.as_str()) {
            Ok(s) => s,
            Err(e) => return ended(e.to_string()),
        };
        let limits = rtmp::PullLimits {
            connect: self.config.connect_timeout,
            ..rtmp::PullLimits::default()
        };
        let before = self.next_seq(rtmp::RENDITION);
        let played = rtmp::pull(&self.engine, self.stream, &source, &limits).await;
        self.count_chunks(rtmp::RENDITION, before);
        match played {
            Ok(stats) => {
                self.status.bytes.fetch_add(stats.bytes, Relaxed);
                ended("the server ended the stream".into())
            }
            Err(e) => ended(e.to_string()),
        }
    }

    /// Calls one `srt://` origin and takes its stream until it ends; returns how.
    async fn call_srt(&self, url: &Url) -> FetchError {
        let ended = |reason: String| FetchError::Ended {
            url: url.to_string(),
            reason,
        };
        let source = match srt::SrtSource::parse(url) {
            Ok(s) => s,
            Err(e) => return ended(e.to_string()),
        };
        let before = self.next_seq(srt::RENDITION);
        let limits = srt::PublishLimits::default();
        let called = srt::pull(
            &self.engine,
            self.stream,
            &source,
            self.config.connect_timeout,
            &limits,
        )
        .await;
        self.count_chunks(srt::RENDITION, before);
        match called {
            Ok(stats) => {
                self.status.bytes.fetch_add(stats.bytes, Relaxed);
                ended("the source ended the stream".into())
            }
            Err(e) => ended(e.to_string()),
        }
    }

    /// The sequence number the next chunk of `rendition` will have.
    fn next_seq(&self, rendition: &str) -> u64 {
        self.engine
            .rendition_chunks(self.stream, rendition)
            .ok()
            .and_then(|c| c.last().map(|c| c.seq() + 1))
            .unwrap_or(0)
    }

    /// Counts the chunks a connection stored since `before` as segments.
    fn count_chunks(&self, rendition: &str, before: u64) {
        let stored = self.next_seq(rendition).saturating_sub(before);
        self.status.segments.fetch_add(stored, Relaxed);
    }

    /// Follows one origin until it fails; returns why.
    async fn follow_origin(
        &self,
        top: &Url,
        epoch: Instant,
        renditions: &mut Vec<Rendition>,
        switched: bool,
    ) -> FetchError {
        let media = match self.variants(top).await {
            Ok(m) => m,
            Err(e) => return e,
        };
        for (name, _) in &media {
            if !renditions.iter().any(|r| &r.name == name) {
                renditions.push(Rendition {
                    name: name.clone(),
                    follow: Follow::default(),
                    init_url: None,
                    ts: None,
                });
            }
        }
        let loops: Vec<_> = renditions
            .iter_mut()
            .filter_map(|r| {
                let url = media.iter().find(|(n, _)| n == &r.name)?.1.clone();
                Some(Box::pin(self.follow_rendition(r, url, epoch, switched)))
            })
            .collect();
        // The first rendition to fail ends this origin; dropping the others cancels them.
        futures_util::future::select_all(loops).await.0
    }

    /// The media playlists of an origin's URI, named: a master's variants, or the URI
    /// itself when it is a media playlist.
    async fn variants(&self, top: &Url) -> Result<Vec<(String, Url)>, FetchError> {
        let body = self.fetch(top, What::Playlist).await?;
        let playlist = parse_playlist(&body).map_err(|source| FetchError::Playlist {
            url: top.to_string(),
            source,
        })?;
        let uris = match playlist {
            Playlist::Media(_) => {
                return Ok(vec![(rendition_name(top.path(), 0, &[]), top.clone())]);
            }
            Playlist::Master(uris) => uris,
        };
        let mut named: Vec<(String, Url)> = Vec::new();
        let mut taken = Vec::new();
        for (i, uri) in uris.iter().enumerate() {
            if named.len() >= self.engine.config().max_renditions {
                tracing::warn!(stream = %self.stream, uri = %top, "pull: more variants than renditions allowed; the rest are ignored");
                break;
            }
            let Ok(url) = top.join(uri) else { continue };
            if !matches!(url.scheme(), "http" | "https") {
                continue;
            }
            let name = rendition_name(url.path(), i, &taken);
            taken.push(name.clone());
            named.push((name, url));
        }
        if named.is_empty() {
            return Err(FetchError::Unusable {
                url: top.to_string(),
                reason: "the master playlist lists no http(s) variant",
            });
        }
        Ok(named)
    }

    async fn follow_rendition(
        &self,
        r: &mut Rendition,
        url: Url,
        epoch: Instant,
        switched: bool,
    ) -> FetchError {
        if switched {
            // Another origin: whatever its media time says, a new discontinuity.
            r.discontinuity(&self.engine, self.stream);
        }
        // Each origin (or each retry of the only one) gets its own stall allowance.
        r.follow.restart_stall_clock(epoch.elapsed());
        loop {
            let began = Instant::now();
            let body = match self.fetch(&url, What::Playlist).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            let media = match parse_playlist(&body) {
                Ok(Playlist::Media(m)) => m,
                Ok(Playlist::Master(_)) => {
                    return FetchError::Unusable {
                        url: url.to_string(),
                        reason: "a master playlist where a media playlist was expected",
                    };
                }
                Err(source) => {
                    return FetchError::Playlist {
                        url: url.to_string(),
                        source,
                    };
                }
            };
            let plan = r.follow.on_playlist(&media, began - epoch);
            if plan.reset {
                tracing::warn!(stream = %self.stream, rendition = %r.name, %url,
                    "pull: media sequence went backwards; new discontinuity");
                self.status.resets.fetch_add(1, Relaxed);
                r.discontinuity(&self.engine, self.stream);
            }
            if plan.skipped > 0 {
                tracing::warn!(stream = %self.stream, rendition = %r.name, %url,
                    skipped = plan.skipped, "pull: segments left the playlist before they were fetched");
                self.status.resets.fetch_add(1, Relaxed);
            }
            for seg in &media.segments[plan.fetch.clone()] {
                match self.take(r, &url, seg).await {
                    Ok(()) => {}
                    // One segment the origin lists but no longer has (or never had)
                    // is lost, not a failed origin: the ones after it may be there.
                    Err(
                        e @ FetchError::Status {
                            status: 404 | 410, ..
                        },
                    ) => {
                        self.status.errors.fetch_add(1, Relaxed);
                        tracing::warn!(stream = %self.stream, rendition = %r.name, error = %e, "pull: segment skipped");
                    }
                    Err(e) => return e,
                }
                r.follow.fetched(seg.media_sequence);
            }
            if r.follow
                .stalled(epoch.elapsed(), self.config.stall_target_durations)
            {
                let target = super::follow::target_duration(&media);
                return FetchError::Stalled {
                    url: url.to_string(),
                    secs: (target * self.config.stall_target_durations).as_secs(),
                };
            }
            tokio::time::sleep_until(began + plan.reload_after).await;
        }
    }

    /// Fetches one segment (and its init when it changed) and stores it as an upload
    /// would be, then its date.
    async fn take(
        &self,
        r: &mut Rendition,
        base: &Url,
        seg: &IngestSegment,
    ) -> Result<(), FetchError> {
        let unusable = |reason| FetchError::Unusable {
            url: base.to_string(),
            reason,
        };
        let Some(map) = seg.map_uri.as_deref() else {
            return self.take_ts(r, base, seg).await;
        };
        let init_url = base.join(map).map_err(|_| unusable("bad EXT-X-MAP URI"))?;
        if r.init_url.as_ref() != Some(&init_url) {
            let (bytes, _held) = self.fetch_held(&init_url, What::Init).await?;
            self.store(&r.name, "init.mp4", FileKind::Init, bytes)?;
            r.init_url = Some(init_url);
        }
        if seg.discontinuity {
            let _ = self.engine.break_discontinuity(self.stream, &r.name);
        }
        let seg_url = base
            .join(&seg.uri)
            .map_err(|_| unusable("bad segment URI"))?;
        let (bytes, _held_until_stored) = self.fetch_held(&seg_url, What::Segment).await?;
        let name = if is_safe_name(&seg.file_name)
            && FileKind::of(&seg.file_name) == Some(FileKind::Segment)
        {
            seg.file_name.clone()
        } else {
            format!("seq_{}.m4s", seg.media_sequence)
        };
        if self.store(&r.name, &name, FileKind::Segment, bytes)? {
            self.status.segments.fetch_add(1, Relaxed);
            if let Some(utc) = seg.program_date_time {
                let _ = self
                    .engine
                    .set_segment_date(self.stream, &r.name, &name, utc);
            }
        }
        Ok(())
    }

    /// Fetches one MPEG-TS segment (RFC 8216 §3.2: a segment without `EXT-X-MAP`)
    /// and feeds it to the rendition's demuxer. `EXT-X-PROGRAM-DATE-TIME` is not
    /// applied: fragments are cut at keyframes, not at segment boundaries, so no
    /// chunk is the segment it dates; wall time is anchored on arrival.
    async fn take_ts(
        &self,
        r: &mut Rendition,
        base: &Url,
        seg: &IngestSegment,
    ) -> Result<(), FetchError> {
        let seg_url = base.join(&seg.uri).map_err(|_| FetchError::Unusable {
            url: base.to_string(),
            reason: "bad segment URI",
        })?;
        let (bytes, _held_until_fed) = self.fetch_held(&seg_url, What::Segment).await?;
        let (ts, reservation, reserved) = r.ts.get_or_insert_with(|| {
            (
                TsPublish::new(self.stream, &r.name),
                self.engine.reserve_memory(TS_RESERVATION_STEP),
                TS_RESERVATION_STEP,
            )
        });
        if seg.discontinuity {
            ts.discontinuity(&self.engine);
        }
        let before = ts.stats();
        let fed = ts.feed(&self.engine, &bytes);
        let after = ts.stats();
        let damaged = |s: &crate::ts::TsStats| {
            s.skipped_bytes
                + s.bad_packets
                + s.continuity_errors
                + s.pes_dropped
                + s.sections_dropped
        };
        if damaged(&after) > damaged(&before) {
            tracing::warn!(stream = %self.stream, rendition = %r.name, url = %seg_url,
                skipped_bytes = after.skipped_bytes - before.skipped_bytes,
                bad_packets = after.bad_packets - before.bad_packets,
                continuity_errors = after.continuity_errors - before.continuity_errors,
                pes_dropped = after.pes_dropped - before.pes_dropped,
                "pull: damaged MPEG-TS segment; what could be read was kept");
        }
        let need = (ts.held_bytes() as u64)
            .div_ceil(TS_RESERVATION_STEP)
            .max(1)
            * TS_RESERVATION_STEP;
        if need != *reserved {
            *reservation = self.engine.reserve_memory(need);
            *reserved = need;
        }
        match fed {
            Ok(()) => {
                self.status.segments.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(TsError::Engine(dvrclip_engine::Error::UnknownStream(_))) => {
                Err(FetchError::Stopped)
            }
            Err(e) => {
                // What was stored before stays; the next segment goes on from the
                // demuxer's state, in a new epoch.
                self.status.errors.fetch_add(1, Relaxed);
                tracing::warn!(stream = %self.stream, rendition = %r.name, url = %seg_url, error = %e, "pull: MPEG-TS segment refused");
                ts.discontinuity(&self.engine);
                Ok(())
            }
        }
    }

    /// Fetches `url`; the bytes count in the budget until the reservation drops.
    async fn fetch_held(
        &self,
        url: &Url,
        what: What,
    ) -> Result<(bytes::Bytes, MemoryReservation), FetchError> {
        let (bytes, held) = self.fetcher.get(&self.engine, url, what).await?;
        if what != What::Playlist {
            self.status.bytes.fetch_add(bytes.len() as u64, Relaxed);
        }
        Ok((bytes, held))
    }

    async fn fetch(&self, url: &Url, what: What) -> Result<bytes::Bytes, FetchError> {
        Ok(self.fetch_held(url, what).await?.0)
    }

    /// Stores through the upload path. A refusal by the engine is logged and counted
    /// and the pull goes on (the next segment may be fine); a stream that is gone
    /// stops it. Returns whether something was stored.
    fn store(
        &self,
        rendition: &str,
        file: &str,
        kind: FileKind,
        bytes: bytes::Bytes,
    ) -> Result<bool, FetchError> {
        let upload = Upload {
            stream: self.stream,
            rendition: Some(rendition),
            file,
            kind,
        };
        match upload.store(&self.engine, bytes) {
            Ok(stored) => Ok(stored == Stored::Created),
            Err(UploadError::Engine(dvrclip_engine::Error::UnknownStream(_))) => {
                Err(FetchError::Stopped)
            }
            Err(e) => {
                self.status.errors.fetch_add(1, Relaxed);
                tracing::warn!(stream = %self.stream, rendition, file, error = %e, "pull: refused");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_an_srt_passphrase() {
        let url =
            Url::parse("srt://h:9000?streamid=a&passphrase=correct-horse&pbkeylen=16").unwrap();
        let line = shown(&url);
        assert!(!line.contains("correct-horse"), "{line}");
        assert!(
            line.contains("streamid=a") && line.contains("pbkeylen=16"),
            "{line}"
        );
        let plain = Url::parse("http://h/live/master.m3u8?token=x").unwrap();
        assert_eq!(shown(&plain), plain.as_str());
    }
}

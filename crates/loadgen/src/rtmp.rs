//! One live stream published over RTMP in real time, as OBS or `ffmpeg -f flv`
//! publishes it to the stream's `push_url`: `rml_rtmp`'s client handshake and
//! session (`connect` to the URL's application, `publish` of its key), the AVC and
//! AAC sequence headers, then every sample of one rendition of the ladder as an FLV
//! video or audio tag, sent when its decode time has come (in 100 ms batches, as an
//! encoder's output reaches the socket), the fixture looped with timestamps moved on
//! by one pass each time.
//!
//! RTMP has no answer per message, so what is timed (as [`Kind::Segment`]) is how
//! long each batch takes to go into the socket: it grows when the server stops
//! reading. Whether the server kept up shows in the clips cut meanwhile
//! ([`crate::clipper`]), which need the last seconds in its DVR.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dvrclip_fmp4::{parse_init, parse_segment};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::ladder::Ladder;
use crate::shared::{LiveStream, Shared};
use crate::stats::Kind;

/// Samples due within this are sent together.
const BATCH: Duration = Duration::from_millis(100);
/// The handshake, `connect` and `publish` must be accepted within this.
const SETUP: Duration = Duration::from_secs(10);

/// One FLV tag of a pass: its decode time from the pass's start, and its body.
#[derive(Debug)]
struct Tag {
    dts_ms: u32,
    video: bool,
    body: Bytes,
}

/// One rendition of the ladder as FLV tag bodies, ready to loop.
#[derive(Debug)]
pub(crate) struct FlvPass {
    /// The AVC sequence header (`AVCDecoderConfigurationRecord`).
    video_header: Bytes,
    /// The AAC sequence header (`AudioSpecificConfig`), when the rendition has audio.
    audio_header: Option<Bytes>,
    /// Every sample of one pass, in decode order.
    tags: Vec<Tag>,
    /// Milliseconds one pass spans.
    pass_ms: u32,
}

impl FlvPass {
    /// The top rendition of `ladder` (the last in its master playlist) as FLV tags:
    /// H.264 and AAC-LC, what the fixture ladder holds.
    pub(crate) fn from_ladder(ladder: &Ladder) -> Result<FlvPass, Error> {
        let r = ladder
            .renditions
            .last()
            .ok_or_else(|| Error::Ladder("no rendition".into()))?;
        let init = parse_init(r.init.clone())?;
        let video = init
            .video_track()
            .filter(|t| matches!(&t.entry.format.0, b"avc1" | b"avc3"))
            .ok_or_else(|| Error::Ladder(format!("{}: no H.264 track for RTMP", r.name)))?;
        let video_header = tag_body(&[0x17, 0x00, 0, 0, 0], &video.entry.config);
        let audio = init.audio_track().filter(|t| &t.entry.format.0 == b"mp4a");
        let audio_header = audio
            .and_then(|t| t.entry.audio.as_ref())
            .map(|a| {
                let asc = aac_lc_config(a.sample_rate, a.channels)?;
                Ok::<_, Error>(tag_body(&[0xAF, 0x00], &asc))
            })
            .transpose()?;
        let mut tags = Vec::new();
        let mut first: Vec<(u32, u64)> = Vec::new();
        // The end of the last sample of any track: a pass's length, so that the next
        // pass never overlaps this one (a track may end a few ms earlier: a gap).
        let mut pass_ms = 0u32;
        for k in 0..ladder.pass_len() as u64 {
            let segment = parse_segment(Bytes::from(r.segment(k)?), &init)?;
            for track in &segment.tracks {
                let is_video = track.track_id == video.track_id;
                let Some(timescale) = init
                    .track(track.track_id)
                    .filter(|_| is_video || audio_header.is_some())
                    .map(|t| u64::from(t.timescale.max(1)))
                else {
                    continue;
                };
                for s in &track.samples {
                    let zero = match first.iter().find(|(id, _)| *id == track.track_id) {
                        Some(&(_, z)) => z,
                        None => {
                            first.push((track.track_id, s.decode_ticks));
                            s.decode_ticks
                        }
                    };
                    let ms = |ticks: i64| ticks * 1000 / timescale as i64;
                    let dts_ms = ms(s.decode_ticks.saturating_sub(zero) as i64);
                    let end = s.decode_ticks.saturating_sub(zero) + u64::from(s.duration);
                    let end_ms = (end * 1000).div_ceil(timescale);
                    pass_ms = pass_ms.max(u32::try_from(end_ms).unwrap_or(u32::MAX));
                    let data = segment.bytes.get(s.range()).ok_or_else(|| {
                        Error::Ladder(format!("{}: sample past its segment", r.name))
                    })?;
                    let body = if is_video {
                        let cts =
                            ms(i64::from(s.composition_offset)).clamp(-(1 << 23), (1 << 23) - 1);
                        let cts = (cts as i32).to_be_bytes();
                        let flags = if s.is_sync { 0x17 } else { 0x27 };
                        tag_body(&[flags, 0x01, cts[1], cts[2], cts[3]], data)
                    } else {
                        tag_body(&[0xAF, 0x01], data)
                    };
                    tags.push(Tag {
                        dts_ms: u32::try_from(dts_ms).unwrap_or(0),
                        video: is_video,
                        body,
                    });
                }
            }
        }
        tags.sort_by_key(|t| t.dts_ms);
        Ok(FlvPass {
            video_header,
            audio_header,
            tags,
            pass_ms,
        })
    }
}

fn tag_body(head: &[u8], data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(head.len() + data.len());
    b.extend_from_slice(head);
    b.extend_from_slice(data);
    b.into()
}

/// An AAC-LC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1): object type 2, the
/// sampling-frequency index, the channel configuration.
fn aac_lc_config(sample_rate: u32, channels: u16) -> Result<[u8; 2], Error> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let index = RATES
        .iter()
        .position(|&r| r == sample_rate)
        .ok_or_else(|| Error::Ladder(format!("AAC at {sample_rate} Hz")))? as u8;
    let channels = u8::try_from(channels.min(7)).unwrap_or(2);
    Ok([
        (2 << 3) | (index >> 1),
        ((index & 1) << 7) | (channels << 3),
    ])
}

/// Where to publish: `rtmp://host:port/app/key` taken apart.
fn target(push_url: &str) -> Result<(String, String, String), Error> {
    let bad = || {
        Error::Api(format!(
            "push_url {push_url:?} is not rtmp://host:port/app/key"
        ))
    };
    let rest = push_url.strip_prefix("rtmp://").ok_or_else(bad)?;
    let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
    let (app, key) = path.split_once('/').ok_or_else(bad)?;
    Ok((authority.to_owned(), app.to_owned(), key.to_owned()))
}

/// Publishes stream `id` to `push_url` from `phase` from now until the run stops or
/// the connection fails (counted as an error of [`Kind::Segment`]).
pub(crate) async fn push(
    shared: Arc<Shared>,
    flv: Arc<FlvPass>,
    id: u64,
    push_url: String,
    phase: Duration,
) {
    tokio::time::sleep(phase).await;
    if publish(&shared, &flv, id, &push_url).await.is_err() {
        shared.stats().error(Kind::Segment);
    }
}

async fn publish(shared: &Shared, flv: &FlvPass, id: u64, push_url: &str) -> Result<(), Error> {
    let mut stop = shared.stop.subscribe();
    let (authority, app, key) = target(push_url)?;
    let mut socket = TcpStream::connect(&authority)
        .await
        .map_err(|e| Error::Api(format!("rtmp connect {authority}: {e}")))?;
    let _ = socket.set_nodelay(true);
    let mut session = tokio::time::timeout(SETUP, set_up(&mut socket, &app, &key))
        .await
        .map_err(|_| Error::Api("rtmp: publish not accepted in time".into()))??;
    let start = Instant::now();
    shared.streams().push(LiveStream { id, started: start });
    let mut out = Vec::new();
    let zero = RtmpTimestamp::new(0);
    let header = session.publish_video_data(flv.video_header.clone(), zero, false);
    queue(&mut out, header)?;
    if let Some(audio) = &flv.audio_header {
        queue(
            &mut out,
            session.publish_audio_data(audio.clone(), zero, false),
        )?;
    }
    socket.write_all(&out).await.map_err(rtmp_io)?;
    let mut inbound = vec![0u8; 4096];
    let (mut pass, mut next) = (0u32, 0usize);
    // Ticks on a fixed grid (not a sleep after each batch, which would drift by the
    // time each batch takes); a tick missed under load is taken late, not twice.
    let mut tick = tokio::time::interval(BATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let elapsed = start.elapsed();
        let now_ms = elapsed.as_millis() as u64;
        out.clear();
        // Every tag due by now, passes after the first moved on by the pass length.
        loop {
            let Some(tag) = flv.tags.get(next) else {
                (pass, next) = (pass + 1, 0);
                continue;
            };
            let at = u64::from(pass) * u64::from(flv.pass_ms) + u64::from(tag.dts_ms);
            if at > now_ms {
                break;
            }
            let ts = RtmpTimestamp::new(at as u32);
            let sent = if tag.video {
                session.publish_video_data(tag.body.clone(), ts, false)
            } else {
                session.publish_audio_data(tag.body.clone(), ts, false)
            };
            queue(&mut out, sent)?;
            next += 1;
        }
        if !out.is_empty() {
            let t = Instant::now();
            socket.write_all(&out).await.map_err(rtmp_io)?;
            shared.stats().record(Kind::Segment, t.elapsed(), true);
        }
        // The server's acknowledgements and pings are read and dropped.
        tokio::select! {
            _ = tick.tick() => {}
            read = socket.read(&mut inbound) => {
                if read.map_err(rtmp_io)? == 0 {
                    return Err(Error::Api("rtmp: the server closed".into()));
                }
            }
            _ = stop.changed() => return Ok(()),
        }
        if start.elapsed() > elapsed + BATCH * 10 {
            shared.stats().late += 1;
        }
    }
}

/// Handshake, `connect` to `app`, `publish` of `key`: the session, publishing.
async fn set_up(socket: &mut TcpStream, app: &str, key: &str) -> Result<ClientSession, Error> {
    let protocol = |e: &dyn std::fmt::Display| Error::Api(format!("rtmp: {e}"));
    let mut handshake = Handshake::new(PeerType::Client);
    let p0p1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| protocol(&e))?;
    socket.write_all(&p0p1).await.map_err(rtmp_io)?;
    let mut buf = vec![0u8; 16 << 10];
    let left_over = loop {
        let n = socket.read(&mut buf).await.map_err(rtmp_io)?;
        if n == 0 {
            return Err(protocol(&"closed in the handshake"));
        }
        match handshake
            .process_bytes(&buf[..n])
            .map_err(|e| protocol(&e))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.map_err(rtmp_io)?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await.map_err(rtmp_io)?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, results) =
        ClientSession::new(ClientSessionConfig::new()).map_err(|e| protocol(&e))?;
    let mut out = Vec::new();
    for r in results {
        queue(&mut out, Ok::<_, Error>(r))?;
    }
    queue(
        &mut out,
        session
            .request_connection(app.to_owned())
            .map_err(|e| protocol(&e)),
    )?;
    socket.write_all(&out).await.map_err(rtmp_io)?;
    let mut input = left_over;
    loop {
        out.clear();
        let results = session.handle_input(&input).map_err(|e| protocol(&e))?;
        for r in results {
            match r {
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    let asked = session
                        .request_publishing(key.to_owned(), PublishRequestType::Live)
                        .map_err(|e| protocol(&e));
                    queue(&mut out, asked)?;
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    socket.write_all(&out).await.map_err(rtmp_io)?;
                    return Ok(session);
                }
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestRejected { description },
                ) => return Err(protocol(&description)),
                other => queue(&mut out, Ok::<_, Error>(other))?,
            }
        }
        socket.write_all(&out).await.map_err(rtmp_io)?;
        let n = socket.read(&mut buf).await.map_err(rtmp_io)?;
        if n == 0 {
            return Err(protocol(&"closed before the publish was accepted"));
        }
        input = buf[..n].to_vec();
    }
}

/// Appends an outbound packet's bytes; other results are dropped.
fn queue<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    result: Result<ClientSessionResult, E>,
) -> Result<(), Error> {
    match result.map_err(|e| Error::Api(format!("rtmp: {e}")))? {
        ClientSessionResult::OutboundResponse(packet) => out.extend_from_slice(&packet.bytes),
        ClientSessionResult::RaisedEvent(_)
        | ClientSessionResult::UnhandleableMessageReceived(_) => {}
    }
    Ok(())
}

fn rtmp_io(e: std::io::Error) -> Error {
    Error::Api(format!("rtmp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_ladder_becomes_flv_tags() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ladder");
        let flv = FlvPass::from_ladder(&Ladder::load(&dir).unwrap()).unwrap();
        assert_eq!(&flv.video_header[..2], &[0x17, 0x00]);
        assert_eq!(
            flv.audio_header.as_deref().map(|h| &h[..2]),
            Some(&[0xAF, 0x00][..])
        );
        assert!(
            flv.tags
                .first()
                .is_some_and(|t| t.video && t.body[0] == 0x17)
        );
        assert!(flv.tags.windows(2).all(|w| w[0].dts_ms <= w[1].dts_ms));
        assert!(flv.tags.last().is_some_and(|t| t.dts_ms < flv.pass_ms));
        // 48 kHz stereo AAC-LC.
        assert_eq!(aac_lc_config(48_000, 2).unwrap(), [0x11, 0x90]);
        assert_eq!(
            target("rtmp://127.0.0.1:1935/live/k3y").unwrap(),
            ("127.0.0.1:1935".into(), "live".into(), "k3y".into())
        );
    }
}

//! One MPEG-TS byte stream into one rendition: bytes in any slicing, CMAF fragments
//! into the engine out (`demux` → `annexb`/`adts` → `dvrclip_fmp4::Fragmenter` →
//! a [`FragmentSink`]: the engine or a server's sink). No I/O: the SRT
//! door feeds it messages, the puller whole segments; the fuzz target drives it with
//! an engine in memory. The shape follows `rtmp::publish`.
//!
//! # Time
//! PTS and DTS are 33-bit at 90 kHz (ISO/IEC 13818-1 §2.4.3.7); they are unwrapped
//! to 64 bits by signed 33-bit steps from the last time seen on any track (video and
//! audio share the program clock, so a wrap is crossed by both alike). Video keeps
//! 90 kHz, with the composition offset PTS − DTS; AAC uses its sample rate and
//! counts 1024-sample frames from the PES time, re-anchored when they drift more
//! than two frames apart (a gap).
//!
//! # Epochs
//! The fragmenter's tracks are fixed, so it is built at the first keyframe once the
//! program's tracks are known: the video's parameter sets (an `avcC`/`hvcC` built
//! from the SPS/PPS/VPS in band) and, when the PMT lists audio, the first ADTS
//! header's AudioSpecificConfig. Access units from the first keyframe on are held
//! until then (ffmpeg writes the first audio PES after the first pictures), at most
//! 2 s or 8 MiB, after which the epoch starts without the audio; audio before the
//! epoch is dropped. An epoch ends (its samples flushed as the last fragments) and the next
//! one starts at the next keyframe with a new init and
//! [`FragmentSink::break_discontinuity`] when: the PMT changes what it carries; the
//! parameter sets or the ADTS configuration change (at the next keyframe); the
//! demuxer sees a lost packet or a PCR discontinuity; video time goes back more than
//! a second at a keyframe; or the caller says so ([`TsPublish::discontinuity`]: a
//! reconnect, an origin switch). A smaller step back drops the sample (video: until
//! the next keyframe).

use bytes::Bytes;
use dvrclip_engine::StreamId;

use crate::door::FragmentSink;
use dvrclip_fmp4::fragment::{
    CodecConfig, Fragment, FragmentError, Fragmenter, InputSample, Options, TrackConfig,
};

use super::adts::{self, AdtsConfig, FRAME_SAMPLES};
use super::annexb::ParameterSets;
use super::demux::{Demuxer, Event};
use super::psi::{Program, VideoCodec};

/// Largest fragment this door builds (the fragmenter cuts before it), bytes.
const MAX_FRAGMENT_BYTES: usize = 16 << 20;

/// 90 kHz: the MPEG-TS system clock divided by 300 (§2.4.2.2), the PTS unit.
const TS_TIMESCALE: u32 = 90_000;
/// Ticks subtracted from an epoch's first time so tfdt starts near 10 s and audio a
/// little ahead of the first video frame still fits.
const EPOCH_LEAD_TICKS: i64 = 10 * 90_000;
/// A keyframe this far before the last video time starts a new epoch (an encoder
/// that reset its clock), 1 s.
const RESET_TICKS: i64 = 90_000;
/// Video held before the first epoch while the audio configuration is awaited:
/// bytes, and 90 kHz ticks (2 s).
const MAX_PENDING_BYTES: usize = 8 << 20;
const MAX_PENDING_TICKS: i64 = 2 * 90_000;

/// Why a TS stream's media is refused; the caller closes its connection (SRT) or
/// drops the segment (pull). Hostile bytes inside the stream are skipped and counted
/// in [`TsStats`], not refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// The fragmenter refused a configuration or a sample.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// The engine refused the init or a fragment.
    #[error(transparent)]
    Engine(#[from] dvrclip_engine::Error),
    /// A sink elsewhere (another node) refused a fragment.
    #[error("fragments not delivered: {0}")]
    Elsewhere(String),
}

impl From<crate::door::SinkError> for TsError {
    fn from(e: crate::door::SinkError) -> Self {
        match e {
            crate::door::SinkError::Engine(e) => TsError::Engine(e),
            crate::door::SinkError::Elsewhere(m) => TsError::Elsewhere(m),
        }
    }
}

/// What a TS stream did, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TsStats {
    /// 188-byte packets read.
    pub packets: u64,
    /// Bytes skipped to find the next sync byte.
    pub skipped_bytes: u64,
    /// Packets skipped: transport error, scrambled, impossible adaptation field.
    pub bad_packets: u64,
    /// Continuity-counter errors (lost packets).
    pub continuity_errors: u64,
    /// PCR discontinuities (signalled, or a jump).
    pub pcr_discontinuities: u64,
    /// PES packets dropped (too large, broken header, length not reached).
    pub pes_dropped: u64,
    /// PSI sections dropped (bad CRC, too long).
    pub sections_dropped: u64,
    /// Program changes (a PMT that carries other streams mid-stream).
    pub program_changes: u64,
    /// Access units and audio frames dropped: parameter sets that do not parse, ADTS
    /// that does not, time going back, waiting for a keyframe or a track's config.
    pub samples_dropped: u64,
    /// Epochs (inits pushed).
    pub epochs: u64,
    /// Fragments stored.
    pub fragments: u64,
    /// Bytes of the fragments stored.
    pub bytes: u64,
}

/// One MPEG-TS stream into one rendition of one stream (mirror of
/// [`crate::rtmp::Publish`]).
#[derive(Debug)]
pub struct TsPublish {
    demux: Demuxer,
    media: Media,
}

/// Everything past the demuxer, so a demuxer event borrows this while the demuxer
/// runs.
#[derive(Debug)]
struct Media {
    stream: StreamId,
    rendition: String,
    program: Option<Program>,
    video: Option<ParameterSets>,
    audio: Option<AdtsConfig>,
    clock: Option<(u64, i64)>,
    epoch: Option<Epoch>,
    /// Video held before the first epoch (see `wait_or_start`).
    pending: Vec<VideoAu>,
    pending_bytes: usize,
    stats: TsStats,
}

#[derive(Debug)]
struct VideoAu {
    data: Bytes,
    keyframe: bool,
    /// Unwrapped, 90 kHz.
    dts: i64,
    composition_offset: i32,
}

#[derive(Debug)]
struct Epoch {
    fragmenter: Fragmenter,
    video: Option<usize>,
    audio: Option<(usize, AudioClock)>,
    audio_config: Option<AdtsConfig>,
    base_ticks: i64,
    last_video: Option<i64>,
    wait_keyframe: bool,
}

#[derive(Debug)]
struct AudioClock {
    rate: u32,
    last_ticks: Option<u64>,
}

impl TsPublish {
    /// A TS stream into `rendition` of `stream`; nothing reaches the engine before
    /// the first keyframe.
    pub fn new(stream: StreamId, rendition: &str) -> Self {
        TsPublish {
            demux: Demuxer::default(),
            media: Media {
                stream,
                rendition: rendition.to_owned(),
                program: None,
                video: None,
                audio: None,
                clock: None,
                epoch: None,
                pending: Vec::new(),
                pending_bytes: 0,
                stats: TsStats::default(),
            },
        }
    }

    /// Feeds bytes of the stream, sliced anyhow (SRT messages of 1316 bytes, whole
    /// HTTP segments). Garbage is skipped and counted; an error is the engine's or
    /// the fragmenter's refusal, and what was stored before it stays.
    pub fn feed(&mut self, engine: &dyn FragmentSink, bytes: &[u8]) -> Result<(), TsError> {
        let media = &mut self.media;
        self.demux
            .feed(bytes, &mut |event| media.event(engine, event))
    }

    /// A reconnect or an origin switch: what is held is flushed and the next bytes
    /// start a new epoch (a discontinuity in the rendition). A flush the engine
    /// refuses is dropped with a log line.
    pub fn discontinuity(&mut self, engine: &dyn FragmentSink) {
        self.demux.reset();
        if let Err(e) = self.media.break_epoch(engine) {
            tracing::warn!(stream = %self.media.stream, rendition = %self.media.rendition, error = %e, "ts: flush at a discontinuity refused");
        }
    }

    /// The stream ended: the PES in progress and what is held become the last
    /// fragments.
    pub fn finish(&mut self, engine: &dyn FragmentSink) -> Result<(), TsError> {
        let media = &mut self.media;
        self.demux.flush(&mut |event| media.event(engine, event))?;
        media.end_epoch(engine)
    }

    /// Bytes held (a partial packet, section and PES buffers, parameter sets, the
    /// fragmenter's samples), for the memory budget.
    pub fn held_bytes(&self) -> usize {
        self.demux.held_bytes()
            + self.media.pending_bytes
            + self
                .media
                .video
                .as_ref()
                .map_or(0, ParameterSets::held_bytes)
            + self
                .media
                .epoch
                .as_ref()
                .map_or(0, |e| e.fragmenter.held_bytes())
    }

    /// What it did so far.
    pub fn stats(&self) -> TsStats {
        let c = self.demux.counters();
        TsStats {
            packets: c.packets,
            skipped_bytes: self.demux.skipped_bytes(),
            bad_packets: c.bad_packets,
            continuity_errors: c.continuity_errors,
            pcr_discontinuities: c.pcr_discontinuities,
            pes_dropped: c.pes_dropped,
            sections_dropped: c.sections_dropped,
            program_changes: c.program_changes,
            ..self.media.stats
        }
    }
}

impl Media {
    fn event(&mut self, engine: &dyn FragmentSink, event: Event) -> Result<(), TsError> {
        match event {
            Event::Program(program) => {
                self.drop_pending();
                self.end_epoch(engine)?;
                self.video = program.video.map(|(_, codec)| ParameterSets::new(codec));
                self.audio = None;
                self.program = Some(program);
                Ok(())
            }
            Event::Discontinuity => self.break_epoch(engine),
            Event::Video { pts, dts, data } => self.video(engine, pts, dts, &data),
            Event::Audio { pts, data } => self.audio(engine, pts, data),
        }
    }

    /// Ends the epoch and forgets the clock: the times after a break may be anything.
    fn break_epoch(&mut self, engine: &dyn FragmentSink) -> Result<(), TsError> {
        self.clock = None;
        self.drop_pending();
        self.end_epoch(engine)
    }

    /// Unwraps a 33-bit time against the last one seen.
    fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = raw & ((1 << 33) - 1);
        let now = match self.clock {
            None => raw as i64,
            Some((last_raw, last)) => {
                let step = ((raw.wrapping_sub(last_raw) & ((1 << 33) - 1)) as i64) << 31 >> 31;
                last + step
            }
        };
        self.clock = Some((raw, now));
        now
    }

    fn video(
        &mut self,
        engine: &dyn FragmentSink,
        pts: Option<u64>,
        dts: Option<u64>,
        data: &[u8],
    ) -> Result<(), TsError> {
        let Some(sets) = self.video.as_mut() else {
            return Ok(());
        };
        let Some(pts_raw) = pts else {
            self.stats.samples_dropped += 1;
            return Ok(());
        };
        let au = match sets.convert(data) {
            Ok(au) => au,
            Err(_) => {
                self.stats.samples_dropped += 1;
                if let Some(e) = &mut self.epoch {
                    e.wait_keyframe = true;
                }
                return Ok(());
            }
        };
        let pts = self.unwrap(pts_raw);
        let dts = dts.map_or(pts, |d| self.unwrap(d));
        let Ok(composition_offset) = i32::try_from(pts - dts) else {
            self.stats.samples_dropped += 1;
            return Ok(());
        };
        let au = VideoAu {
            data: au.data,
            keyframe: au.keyframe,
            dts,
            composition_offset,
        };
        if au.keyframe {
            let changed = self.video.as_ref().is_some_and(ParameterSets::changed);
            let (audio, wants_audio) =
                (self.audio, self.program.is_some_and(|p| p.audio.is_some()));
            let reset = self.epoch.as_ref().is_some_and(|e| {
                e.video.is_none()
                    || e.audio_config != audio && (e.audio.is_some() || wants_audio)
                    || e.last_video.is_some_and(|l| l - dts > RESET_TICKS)
            });
            if changed || reset {
                self.end_epoch(engine)?;
            }
        }
        if self.epoch.is_none() {
            return self.wait_or_start(engine, au);
        }
        self.video_sample(engine, au)
    }

    /// Before an epoch: access units from a keyframe on are held until every track
    /// the program lists has its configuration (ffmpeg sends the first audio a
    /// little after the first picture), at most [`MAX_PENDING_BYTES`] or
    /// [`MAX_PENDING_TICKS`]; then the epoch starts without the missing audio.
    fn wait_or_start(&mut self, engine: &dyn FragmentSink, au: VideoAu) -> Result<(), TsError> {
        if self.pending.is_empty() && !au.keyframe {
            self.stats.samples_dropped += 1;
            return Ok(());
        }
        self.pending_bytes += au.data.len();
        let last = au.dts;
        self.pending.push(au);
        let first = self.pending.first().map_or(last, |a| a.dts);
        let give_up = self.pending_bytes > MAX_PENDING_BYTES || last - first > MAX_PENDING_TICKS;
        if self.start_epoch(engine, first, give_up)? {
            return self.drain_pending(engine);
        }
        if give_up {
            self.drop_pending();
        }
        Ok(())
    }

    fn drain_pending(&mut self, engine: &dyn FragmentSink) -> Result<(), TsError> {
        self.pending_bytes = 0;
        for au in std::mem::take(&mut self.pending) {
            self.video_sample(engine, au)?;
        }
        Ok(())
    }

    fn drop_pending(&mut self) {
        self.stats.samples_dropped += self.pending.len() as u64;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn video_sample(&mut self, engine: &dyn FragmentSink, au: VideoAu) -> Result<(), TsError> {
        let Some(e) = self.epoch.as_mut() else {
            self.stats.samples_dropped += 1;
            return Ok(());
        };
        let Some(track) = e.video else {
            self.stats.samples_dropped += 1;
            return Ok(());
        };
        let rel = au.dts - e.base_ticks;
        if rel < 0 || e.last_video.is_some_and(|l| au.dts <= l) || (e.wait_keyframe && !au.keyframe)
        {
            e.wait_keyframe = true;
            self.stats.samples_dropped += 1;
            return Ok(());
        }
        e.wait_keyframe = false;
        e.last_video = Some(au.dts);
        let sample = InputSample {
            track,
            decode_ticks: rel as u64,
            composition_offset: au.composition_offset,
            is_sync: au.keyframe,
            data: au.data,
        };
        self.push(engine, sample)
    }

    fn audio(
        &mut self,
        engine: &dyn FragmentSink,
        pts: Option<u64>,
        data: Vec<u8>,
    ) -> Result<(), TsError> {
        if self.program.is_none_or(|p| p.audio.is_none()) {
            return Ok(());
        }
        let Some(pts_raw) = pts else {
            self.stats.samples_dropped += 1;
            return Ok(());
        };
        let pts = self.unwrap(pts_raw);
        let data = Bytes::from(data);
        for (i, frame) in adts::frames(&data).enumerate() {
            let Ok((config, range)) = frame else {
                self.stats.samples_dropped += 1;
                break;
            };
            if self.audio != Some(config) {
                self.audio = Some(config);
                // A new configuration takes effect at a new epoch: at once without
                // video, else at the next keyframe.
                if self.video.is_none() {
                    self.end_epoch(engine)?;
                }
            }
            if self.epoch.is_none() {
                match self.pending.first().map(|a| a.dts) {
                    None if self.video.is_none() => {
                        self.start_epoch(engine, pts, false)?;
                    }
                    Some(first) if self.start_epoch(engine, first, false)? => {
                        self.drain_pending(engine)?;
                    }
                    _ => {}
                }
            }
            let Some(e) = self.epoch.as_mut() else {
                self.stats.samples_dropped += 1;
                continue;
            };
            let Some((track, clock)) = e.audio.as_mut().filter(|_| e.audio_config == Some(config))
            else {
                self.stats.samples_dropped += 1;
                continue;
            };
            let rate = u64::from(clock.rate);
            let frame_ticks = u64::from(FRAME_SAMPLES);
            let rel = pts - e.base_ticks;
            let derived = (rel.max(0) as u64).saturating_mul(rate) / u64::from(TS_TIMESCALE)
                + i as u64 * frame_ticks;
            let ticks = match clock.last_ticks {
                Some(last) if derived.abs_diff(last + frame_ticks) <= 2 * frame_ticks => {
                    last + frame_ticks
                }
                _ => derived,
            };
            if rel < 0 || clock.last_ticks.is_some_and(|l| ticks <= l) {
                self.stats.samples_dropped += 1;
                continue;
            }
            clock.last_ticks = Some(ticks);
            let sample = InputSample {
                track: *track,
                decode_ticks: ticks,
                composition_offset: 0,
                is_sync: true,
                data: data.slice(range),
            };
            self.push(engine, sample)?;
        }
        Ok(())
    }

    /// Builds the fragmenter from the tracks known now and pushes its init; `false`
    /// when a track the program lists has no configuration yet (audio may be left
    /// out when `without_audio`).
    fn start_epoch(
        &mut self,
        engine: &dyn FragmentSink,
        first_ticks: i64,
        without_audio: bool,
    ) -> Result<bool, TsError> {
        let mut tracks = Vec::new();
        let mut video = None;
        let mut audio = None;
        if let Some(sets) = self.video.as_mut() {
            let codec = sets.codec();
            let Some(record) = sets.record() else {
                return Ok(false);
            };
            video = Some(tracks.len());
            let config = match codec {
                VideoCodec::Avc => CodecConfig::Avc { avcc: record },
                VideoCodec::Hevc => CodecConfig::Hevc { hvcc: record },
            };
            tracks.push(TrackConfig::new(TS_TIMESCALE, config));
        }
        if self.program.is_some_and(|p| p.audio.is_some()) {
            match self.audio {
                Some(config) => {
                    let rate = config.sample_rate();
                    audio = Some((
                        tracks.len(),
                        AudioClock {
                            rate,
                            last_ticks: None,
                        },
                    ));
                    let asc = Bytes::copy_from_slice(&config.audio_specific_config());
                    tracks.push(TrackConfig::new(
                        rate,
                        CodecConfig::Aac {
                            audio_specific_config: asc,
                        },
                    ));
                }
                None if without_audio => {}
                None => return Ok(false),
            }
        }
        if tracks.is_empty() {
            return Ok(false);
        }
        let options = Options {
            max_bytes: MAX_FRAGMENT_BYTES,
            ..Options::default()
        };
        let fragmenter = Fragmenter::new(tracks, options)?;
        engine.push_init(
            self.stream,
            &self.rendition,
            fragmenter.init_segment().clone(),
        )?;
        engine.break_discontinuity(self.stream, &self.rendition)?;
        self.stats.epochs += 1;
        self.epoch = Some(Epoch {
            fragmenter,
            video,
            audio,
            audio_config: self.audio,
            base_ticks: first_ticks - EPOCH_LEAD_TICKS,
            last_video: None,
            wait_keyframe: true,
        });
        Ok(true)
    }

    fn push(&mut self, engine: &dyn FragmentSink, sample: InputSample) -> Result<(), TsError> {
        let Some(e) = self.epoch.as_mut() else {
            return Ok(());
        };
        let fragments = e.fragmenter.push(sample)?;
        self.store(engine, fragments)
    }

    fn end_epoch(&mut self, engine: &dyn FragmentSink) -> Result<(), TsError> {
        let Some(mut e) = self.epoch.take() else {
            return Ok(());
        };
        let fragments = e.fragmenter.flush()?;
        self.store(engine, fragments)
    }

    fn store(
        &mut self,
        engine: &dyn FragmentSink,
        fragments: Vec<Fragment>,
    ) -> Result<(), TsError> {
        let stats = &mut self.stats;
        crate::door::store_fragments(engine, self.stream, &self.rendition, fragments, |len| {
            stats.fragments += 1;
            stats.bytes += len;
        })?;
        Ok(())
    }
}

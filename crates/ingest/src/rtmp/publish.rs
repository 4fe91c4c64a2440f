//! One publish's media path: FLV tag bodies with their RTMP timestamps in, CMAF
//! fragments into a [`FragmentSink`] out (`flv` → `dvrclip_fmp4::Fragmenter` →
//! the local engine (`Engine::push_init_bytes`, `Engine::push_segment_bytes`),
//! or the server's sink for a stream another node owns). No I/O: the engine is in
//! memory and a sink never waits, so the fuzz target drives this with the
//! connection around it.
//!
//! # Time
//! RTMP timestamps are 32-bit milliseconds; they are unwrapped to 64 bits by signed
//! 32-bit deltas (a wrap after 49.7 days is a small positive step). Video keeps
//! RTMP's own unit, timescale 1000: exact, where 90 kHz would only multiply the same
//! millisecond jitter. AAC uses its sample rate and counts frames (1024 or 960
//! samples each) from the first frame's time, re-anchored on the RTMP time when they
//! drift more than two frames apart (a gap); Opus uses 48 kHz.
//!
//! # Epochs
//! The fragmenter's tracks are fixed, so it is built at the first frame from the
//! sequence headers seen by then. A sequence header that differs from the one in use
//! (a new resolution, a track appearing), or video time going back more than a
//! second at a keyframe (an encoder that reset its clock), flushes it and starts an
//! epoch: a new fragmenter, its init pushed, and [`FragmentSink::break_discontinuity`]
//! so the engine opens a discontinuity anchored on arrival even when the init is
//! byte-identical (without video, a second's regression of the audio does it). A new
//! publish (an encoder reconnecting) starts in a new epoch too. A smaller regression
//! drops the sample (video: until the next keyframe).

use bytes::Bytes;
use dvrclip_engine::StreamId;
use dvrclip_fmp4::fragment::{
    CodecConfig, Fragment, FragmentError, Fragmenter, InputSample, Options, TrackConfig,
};

use crate::door::{FragmentSink, SinkError};
use crate::flv::{self, Codec, FlvError, Tag};

/// The rendition an RTMP publish feeds: one per publish, the encoder's own stream.
pub const RENDITION: &str = "rtmp";

/// Largest fragment this door builds (the fragmenter cuts before it), bytes; with
/// the message cap it bounds what a publish holds.
pub const MAX_FRAGMENT_BYTES: usize = 16 << 20;

/// Why a publish's media is refused; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A tag this door cannot read.
    #[error(transparent)]
    Flv(#[from] FlvError),
    /// A frame before its track's sequence header.
    #[error("{0:?} frame before its sequence header")]
    NoSequenceHeader(Codec),
    /// An AudioSpecificConfig without a usable sample rate.
    #[error("AudioSpecificConfig without a sample rate")]
    BadAudioConfig,
    /// The fragmenter refused a configuration or a sample.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// The engine refused the init or a fragment.
    #[error(transparent)]
    Engine(#[from] dvrclip_engine::Error),
    /// A sink elsewhere (another node) refused a fragment or could not keep up.
    #[error("fragments not delivered: {0}")]
    Elsewhere(String),
}

impl From<SinkError> for PublishError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Engine(e) => PublishError::Engine(e),
            SinkError::Elsewhere(m) => PublishError::Elsewhere(m),
        }
    }
}

/// What a publish did, for its log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Fragments stored.
    pub fragments: u64,
    /// Bytes of the fragments stored.
    pub bytes: u64,
    /// Samples dropped for going back in time.
    pub dropped: u64,
    /// Epochs (inits pushed).
    pub epochs: u64,
}

/// One publish into one stream.
#[derive(Debug)]
pub struct Publish {
    stream: StreamId,
    video: Option<(Codec, Bytes)>,
    audio: Option<(Codec, Bytes)>,
    epoch: Option<Epoch>,
    last_raw: Option<u32>,
    unwrapped_ms: i64,
    stats: PublishStats,
}

#[derive(Debug)]
struct Epoch {
    fragmenter: Fragmenter,
    video: Option<usize>,
    audio: Option<(usize, AudioClock)>,
    /// Milliseconds subtracted from the unwrapped time: tfdt starts near 10 s, so
    /// audio slightly ahead of the first video frame still fits.
    base_ms: i64,
    last_video_ms: Option<i64>,
    wait_keyframe: bool,
}

#[derive(Debug)]
struct AudioClock {
    rate: u32,
    frame: u32,
    last_ticks: Option<u64>,
}

const EPOCH_LEAD_MS: i64 = 10_000;

impl Publish {
    /// A publish into `stream`; nothing reaches the engine before the first frame.
    pub fn new(stream: StreamId) -> Self {
        Publish {
            stream,
            video: None,
            audio: None,
            epoch: None,
            last_raw: None,
            unwrapped_ms: 0,
            stats: PublishStats::default(),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> PublishStats {
        self.stats
    }

    /// Bytes held waiting to become fragments.
    pub fn held_bytes(&self) -> usize {
        self.epoch.as_ref().map_or(0, |e| e.fragmenter.held_bytes())
    }

    /// Unwraps a 32-bit RTMP timestamp.
    fn unwrap_ms(&mut self, raw: u32) -> i64 {
        match self.last_raw {
            None => self.unwrapped_ms = i64::from(raw),
            Some(last) => self.unwrapped_ms += i64::from(raw.wrapping_sub(last) as i32),
        }
        self.last_raw = Some(raw);
        self.unwrapped_ms
    }

    /// One video message body at RTMP time `raw_ms`.
    pub fn video(
        &mut self,
        engine: &dyn FragmentSink,
        body: &Bytes,
        raw_ms: u32,
    ) -> Result<(), PublishError> {
        let ms = self.unwrap_ms(raw_ms);
        match flv::parse_video(body)? {
            Tag::SequenceHeader { codec, config } => self.config(engine, true, codec, config),
            Tag::Frame {
                codec,
                keyframe,
                composition_ms,
                data,
            } => {
                if self.video.as_ref().is_none_or(|(c, _)| *c != codec) {
                    return Err(PublishError::NoSequenceHeader(codec));
                }
                if self.epoch.as_ref().is_some_and(|e| e.video.is_none()) {
                    self.end_epoch(engine)?;
                }
                if let Some(e) = &self.epoch {
                    let back = e.last_video_ms.is_some_and(|l| ms <= l);
                    if back && keyframe && e.last_video_ms.is_some_and(|l| l - ms > 1000) {
                        self.end_epoch(engine)?;
                    }
                }
                let e = self.epoch(engine, ms)?;
                let track = e.video.unwrap_or(0);
                let rel = ms - e.base_ms;
                if rel < 0
                    || e.last_video_ms.is_some_and(|l| ms <= l)
                    || (e.wait_keyframe && !keyframe)
                {
                    e.wait_keyframe = true;
                    self.stats.dropped += 1;
                    return Ok(());
                }
                e.wait_keyframe = false;
                e.last_video_ms = Some(ms);
                let sample = InputSample {
                    track,
                    decode_ticks: rel as u64,
                    composition_offset: composition_ms,
                    is_sync: keyframe,
                    data,
                };
                self.push(engine, ms, sample)
            }
            Tag::EndOfSequence | Tag::Ignored => Ok(()),
        }
    }

    /// One audio message body at RTMP time `raw_ms`.
    pub fn audio(
        &mut self,
        engine: &dyn FragmentSink,
        body: &Bytes,
        raw_ms: u32,
    ) -> Result<(), PublishError> {
        let ms = self.unwrap_ms(raw_ms);
        match flv::parse_audio(body)? {
            Tag::SequenceHeader { codec, config } => {
                if codec == Codec::Aac && flv::aac_timing(&config).is_none() {
                    return Err(PublishError::BadAudioConfig);
                }
                self.config(engine, false, codec, config)
            }
            Tag::Frame { codec, data, .. } => {
                if self.audio.as_ref().is_none_or(|(c, _)| *c != codec) {
                    return Err(PublishError::NoSequenceHeader(codec));
                }
                if self.epoch.as_ref().is_some_and(|e| e.audio.is_none()) {
                    self.end_epoch(engine)?;
                }
                // Without video, a clock reset is seen on the audio.
                if let Some(e) = &self.epoch {
                    let reset = e.video.is_none()
                        && e.audio.as_ref().is_some_and(|(_, c)| {
                            c.last_ticks.is_some_and(|l| {
                                let last_ms = l.saturating_mul(1000) / u64::from(c.rate);
                                (ms - e.base_ms) < last_ms as i64 - 1000
                            })
                        });
                    if reset {
                        self.end_epoch(engine)?;
                    }
                }
                let e = self.epoch(engine, ms)?;
                let rel = ms - e.base_ms;
                let Some((track, clock)) = e.audio.as_mut() else {
                    return Ok(());
                };
                let derived = (rel.max(0) as u64).saturating_mul(u64::from(clock.rate)) / 1000;
                let ticks = match clock.last_ticks {
                    Some(last) => {
                        let expected = last + u64::from(clock.frame);
                        if derived.abs_diff(expected) <= 2 * u64::from(clock.frame) {
                            expected
                        } else {
                            derived
                        }
                    }
                    None => derived,
                };
                if rel < 0 || clock.last_ticks.is_some_and(|l| ticks <= l) {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                clock.last_ticks = Some(ticks);
                let sample = InputSample {
                    track: *track,
                    decode_ticks: ticks,
                    composition_offset: 0,
                    is_sync: true,
                    data,
                };
                self.push(engine, ms, sample)
            }
            Tag::EndOfSequence | Tag::Ignored => Ok(()),
        }
    }

    /// The publish ended: what is held becomes the last fragments.
    pub fn finish(&mut self, engine: &dyn FragmentSink) -> Result<(), PublishError> {
        self.end_epoch(engine)
    }

    fn config(
        &mut self,
        engine: &dyn FragmentSink,
        video: bool,
        codec: Codec,
        config: Bytes,
    ) -> Result<(), PublishError> {
        let slot = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if slot
            .as_ref()
            .is_some_and(|(c, b)| *c == codec && *b == config)
        {
            return Ok(()); // repeated, as some encoders do at every keyframe
        }
        *slot = Some((codec, config));
        self.end_epoch(engine)
    }

    fn epoch(&mut self, engine: &dyn FragmentSink, ms: i64) -> Result<&mut Epoch, PublishError> {
        let slot = &mut self.epoch;
        if let Some(e) = slot {
            return Ok(e);
        }
        let mut tracks = Vec::new();
        let mut video = None;
        let mut audio = None;
        if let Some((codec, config)) = &self.video {
            video = Some(tracks.len());
            let codec = match codec {
                Codec::Hevc => CodecConfig::Hevc {
                    hvcc: config.clone(),
                },
                _ => CodecConfig::Avc {
                    avcc: config.clone(),
                },
            };
            tracks.push(TrackConfig::new(1000, codec));
        }
        if let Some((codec, config)) = &self.audio {
            let (cfg, rate, frame) = match codec {
                Codec::Opus => (CodecConfig::opus_from_id_header(config)?, 48_000, 960),
                _ => {
                    let (rate, frame) =
                        flv::aac_timing(config).ok_or(PublishError::BadAudioConfig)?;
                    let cfg = CodecConfig::Aac {
                        audio_specific_config: config.clone(),
                    };
                    (cfg, rate, frame)
                }
            };
            audio = Some((
                tracks.len(),
                AudioClock {
                    rate,
                    frame,
                    last_ticks: None,
                },
            ));
            tracks.push(TrackConfig::new(rate, cfg));
        }
        let options = Options {
            max_bytes: MAX_FRAGMENT_BYTES,
            ..Options::default()
        };
        let fragmenter = Fragmenter::new(tracks, options)?;
        engine.push_init(self.stream, RENDITION, fragmenter.init_segment().clone())?;
        engine.break_discontinuity(self.stream, RENDITION)?;
        self.stats.epochs += 1;
        Ok(slot.insert(Epoch {
            fragmenter,
            video,
            audio,
            base_ms: ms - EPOCH_LEAD_MS,
            last_video_ms: None,
            wait_keyframe: true,
        }))
    }

    fn push(
        &mut self,
        engine: &dyn FragmentSink,
        ms: i64,
        sample: InputSample,
    ) -> Result<(), PublishError> {
        let fragments = self.epoch(engine, ms)?.fragmenter.push(sample)?;
        self.store(engine, fragments)
    }

    fn end_epoch(&mut self, engine: &dyn FragmentSink) -> Result<(), PublishError> {
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
    ) -> Result<(), PublishError> {
        let stats = &mut self.stats;
        crate::door::store_fragments(engine, self.stream, RENDITION, fragments, |len| {
            stats.fragments += 1;
            stats.bytes += len;
        })?;
        Ok(())
    }
}

//! MPEG-TS in (ISO/IEC 13818-1), CMAF fragments into the engine out: the door behind
//! SRT pushes and pulls (the SRT door hands it each message) and pulled MPEG-TS HLS
//! (the puller hands it each segment); it knows neither. [`TsPublish`] is the whole public face:
//! bytes in any slicing, one rendition fed, [`TsStats`] counting what was skipped.
//!
//! Rooms, each with its spec:
//! - `packet`: 188-byte transport packets (§2.4.3.2–2.4.3.5), resync on garbage.
//! - `psi`: PAT and PMT sections (§2.4.4), CRC-checked (Annex A).
//! - `demux`: PES reassembly (§2.4.3.6–2.4.3.7) with bounded buffers, continuity
//!   counters and PCR discontinuities.
//! - `annexb`: H.264 / H.265 access units from Annex B to 14496-15 samples, parameter
//!   sets gathered for the `avcC`/`hvcC` that `dvrclip_fmp4::params` builds.
//! - `adts`: AAC frames from ADTS (13818-7 §6.2, 14496-3 §1.A.2.2) and the
//!   AudioSpecificConfig their header implies (14496-3 §1.6.2.1).
//! - `publish`: times unwrapped from 33 bits, epochs, the fragmenter, the engine.
//!
//! # Why our own packet layer, not `mpeg2ts-reader`
//! `mpeg2ts-reader` (and `h264-reader` beside it) were the candidates. Its
//! `Demultiplex::push` (its current `src/demultiplex.rs`) cuts its input with
//! `chunks_exact(188)` and returns at the first chunk that does not start with 0x47:
//! it never resynchronises, drops the rest of the slice after one bad byte, and drops
//! a trailing partial packet, so an SRT message boundary or garbage between packets
//! (a hostile-input case of ours) would silently lose media; the caller would have to
//! do sync and carry itself, which is half of a packet layer. Its PES layer hands out
//! payload pieces and leaves reassembly (the buffer that needs a bound) to the
//! caller, and its filters are chosen through a trait-object-free but macro-heavy
//! `DemuxContext`. What remains for it to do is the 4-byte header, the adaptation
//! field and the PSI tables: about 400 lines here, with every length checked before
//! use, no allocation beyond the capped buffers, fuzzed (`fuzz_targets/ts_demux.rs`).
//! The SPS reader is `dvrclip_fmp4::params`'s (see its doc for why not
//! `h264-reader`).
//!
//! # Bounds
//! A partial packet (187 bytes), two section buffers (1 KiB each), two PES buffers
//! (8 MiB video, 1 MiB audio), at most 16 parameter sets of each kind of at most
//! 4 KiB, video held before the first epoch (8 MiB or 2 s), and the fragmenter's
//! samples; [`TsPublish::held_bytes`] reports them for the memory budget. Packets of
//! PIDs the PMT does not name cost a header read. A PMT that keeps changing ends
//! the epoch each time, and a new one starts only at a keyframe.
//!
//! Assumed of the source, as every encoder we know writes it: one access unit per
//! video PES (§2.14.3.1 recommends it; ffmpeg, x264/x265-based encoders and OBS do),
//! PTS on every video PES.

mod adts;
mod annexb;
mod demux;
mod packet;
mod psi;
mod publish;
#[cfg(test)]
mod tests;

pub use publish::{TsError, TsPublish, TsStats};

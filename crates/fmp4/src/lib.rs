//! ISO-BMFF for dvrclip: zero-copy parsing of CMAF init and media segments exactly
//! as encoders write them, (in `progressive`) writing a progressive MP4 of a clip, and
//! (in [`fragment`]) cutting elementary-stream samples from RTMP/SRT/MPEG-TS doors into
//! an init segment and `moof`+`mdat` fragments that the same parser reads back.
//!
//! No I/O lives here: every function takes bytes already in memory and returns plain
//! data, so the crate is fuzzable and usable from any runtime.
//!
//! An init's H.264/H.265 parameter sets are checked whole ([`params`]: every SPS and
//! PPS inside its `avcC`/`hvcC`, of its type, the SPS giving a picture size); the same
//! functions serve a fragmenter that gathers parameter sets from RTMP or MPEG-TS.
//!
//! # Parsing: [`parse_init`] and [`parse_segment`]
//!
//! The box layer is our own (`reader`, under 300 lines), because neither crate on
//! crates.io reads real encoder output as we need it:
//! - `mp4` 0.14 keeps only the last `trun` of a `traf` and reads signed (`trun` v1)
//!   composition offsets as unsigned, so B-frame fragments from ffmpeg come out wrong;
//!   it stays a dev-dependency, as an independent oracle for progressive files.
//! - `mp4-atom` decodes every flag combination but copies box bodies into `Vec`s, drops
//!   child boxes it does not know (we carry `stsd` verbatim into written `moov`s) and
//!   writes only 32-bit sizes.
//!
//! Our parser borrows the input: a parsed segment holds the one `Bytes` it was given
//! and byte ranges into it, so no media byte is copied. Input is untrusted (it arrives
//! over HTTP from encoders): every read is bounds-checked, box sizes are checked
//! against their parent, nesting is capped at 16, counts are checked against the bytes
//! present before anything is allocated, offsets use checked arithmetic, and a refused
//! input gets an [`Error`] naming the box path and offset, never a panic. Both entry
//! points are fuzzed (`fuzz/`) and compared with ffprobe on ffmpeg-made fixtures
//! (`tests/fixtures/`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod decode_time;
mod error;
pub mod fragment;
mod init;
mod model;
pub mod params;
pub mod progressive;
mod reader;
mod segment;
pub mod synthetic;
mod writer;

pub use decode_time::{DecodeTimeField, decode_time_fields, write_decode_time};
pub use error::{Error, ErrorKind};
pub use init::parse_init;
pub use model::*;
pub use segment::parse_segment;

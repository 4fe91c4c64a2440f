//! Media into the engine, whatever door it comes through. Every door ends in the
//! engine's rings the same way, so a clip of any stream is the same kind of clip.
//!
//! - [`upload`]: named-file uploads of CMAF HLS (`init.mp4`, `seg_N.m4s`,
//!   `index.m3u8`), as `ffmpeg -f hls -method PUT` and packagers send them. The HTTP
//!   transport (bodies, limits, status codes) stays in the server; what a file
//!   means and where it goes is here.
//!
//! - [`pull`]: live streams pulled from an origin (Gcore's `pull` and `uri`): HLS by
//!   an HTTP client following RFC 8216 §6.3, each fMP4 segment stored as an upload
//!   is, each MPEG-TS segment fed through [`ts`]; `rtmp://` played by the RTMP
//!   client ([`rtmp::pull()`]); `srt://` called by the SRT caller ([`srt::pull()`]).
//!
//! - [`rtmp`]: RTMP push (`rtmp://host:port/live/{key}`), FLV tags ([`flv`]) through
//!   the CMAF fragmenter.
//!
//! - [`srt`]: SRT push (`srt://host:port?streamid={key}`), MPEG-TS through [`ts`].
//!   [`publishers`] keeps one publisher per stream across both push doors; what
//!   their media paths share (where fragments go, storing them, counters as text) is
//!   [`door`].
//!
//! - [`ts`]: MPEG-TS (SRT pushes, pulled MPEG-TS HLS) demuxed into elementary
//!   streams through the CMAF fragmenter ([`ts::TsPublish`]).
//!
//! Protocols that carry elementary streams rather than files (RTMP, SRT) belong here
//! too, each feeding the engine through the CMAF fragmenter of `dvrclip_fmp4`. No
//! HTTP server lives in this crate (the puller is a client).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod door;
pub mod flv;
pub mod publishers;
pub mod pull;
pub mod rtmp;
pub mod srt;
pub mod ts;
pub mod upload;

pub use upload::{FileKind, Stored, Upload, UploadError};

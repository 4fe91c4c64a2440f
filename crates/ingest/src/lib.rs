//! Media into the engine, whatever door it comes through. Every door ends in the
//! engine's rings the same way, so a clip of any stream is the same kind of clip.
//!
//! - [`upload`]: named-file uploads of CMAF HLS (`init.mp4`, `seg_N.m4s`,
//!   `index.m3u8`), as `ffmpeg -f hls -method PUT` and packagers send them. The HTTP
//!   transport (bodies, limits, status codes) stays in the server; what a file
//!   means and where it goes is here.
//!
//! Protocols that carry elementary streams rather than files (RTMP, SRT, pulling
//! HLS) belong here too, beside `upload`, each feeding the engine through the CMAF
//! fragmenter of `dvrclip_fmp4`. Nothing in this crate does HTTP.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod upload;

pub use upload::{FileKind, Stored, Upload, UploadError};

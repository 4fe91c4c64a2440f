//! ISO-BMFF for dvrclip: zero-copy parsing of CMAF init and media segments exactly
//! as encoders write them, and (in `progressive`) writing a progressive MP4 of a clip.
//!
//! No I/O lives here: every function takes bytes already in memory and returns plain
//! data, so the crate is fuzzable and usable from any runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod model;

pub use error::{Error, ErrorKind};
pub use model::*;

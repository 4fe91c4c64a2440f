//! MPEG-TS in (ISO/IEC 13818-1), CMAF fragments into the engine out: the door behind
//! SRT pushes and pulled MPEG-TS HLS. Skeleton: the public API is fixed, the demuxer
//! follows.

mod publish;

pub use publish::{TsError, TsPublish, TsStats};

//! The progressive MP4 of one clip rendition: the one place a clip's chunks become a
//! [`VirtualMp4`]. The HTTP link of a complete clip and the VOD writer both call
//! [`Clip::mp4`], so a stored video is byte for byte what the link served.
//!
//! The cutter stays container-neutral; this module only hands its plan (the chunks,
//! with the table rows each was summarised and encoded into at ingest, and for a precise clip the
//! lead-in and requested duration) to `dvrclip_fmp4::progressive`, which owns every
//! box. Where the clip holds a whole block of its ring's MP4 header index
//! (`ring::index`), the block goes in one push instead of its 64 chunks: O(blocks)
//! pieces and lookups, the chunks at the clip's ends (and any the index lacks)
//! visited one by one. The bytes are the same either way.

use dvrclip_fmp4::progressive::{BuildError, Mp4Builder, Options, Trim, VirtualMp4};

use crate::{Clip, ClipRendition, ClipView};

impl Clip {
    /// The MP4 of rendition `r` of this clip as of `view`. Its identity (clip id and
    /// rendition) is hashed into the file's strong ETag. A `precise` clip is trimmed
    /// to the requested range (as far as the clip holds it) by edit lists; others play
    /// whole keyframe chunks.
    ///
    /// Errors: [`BuildError::Empty`] when the rendition holds no media, others when
    /// the chunks cannot be written as one file (a bug or an impossible input).
    pub fn mp4(&self, view: &ClipView, r: &ClipRendition) -> Result<VirtualMp4, BuildError> {
        // The window of `ClipView::trimmed`, from the first keyframe: the API reports
        // the same bounds (`Clip::played`).
        let trim = match (self.precise(), view.actual_start(), view.trimmed()) {
            (true, Some(held), Some((start, end))) => Some(Trim {
                lead_in_micros: start.micros_since(held).max(0) as u64,
                duration_micros: end.micros_since(start).max(0) as u64,
            }),
            _ => None,
        };
        let mut builder = Mp4Builder::new(Options {
            identity: format!("{}/{}", self.id(), r.name()).into_bytes(),
            trim,
        });
        // Each chunk's rows were summarised and encoded at ingest: the header takes
        // them by reference, per block of the ring's index where the clip holds one
        // whole, else per chunk; never per sample.
        let chunks = r.chunks();
        builder.reserve_segments(chunks.len());
        let blocks = match (r.ring(), chunks.first(), chunks.last()) {
            (Some(ring), Some(first), Some(last)) => ring.blocks(first.seq(), last.seq()),
            _ => Vec::new(),
        };
        let mut blocks = blocks.iter().peekable();
        let mut i = 0;
        while let Some(c) = chunks.get(i) {
            while blocks.next_if(|b| b.first_seq < c.seq()).is_some() {}
            if let Some(b) = blocks.peek().filter(|b| b.first_seq == c.seq())
                && let Some(run) = chunks.get(i..i + b.len())
                && b.covers(run)
                && builder.push_block(c.init(), &b.tables)?
            {
                i += run.len();
                continue;
            }
            builder.push_prepared(c.init(), c.segment(), c.tables())?;
            i += 1;
        }
        builder.build()
    }
}

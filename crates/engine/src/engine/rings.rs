//! Reading what the rings hold, for the server and for embedders: each rendition's
//! state, its chunks (one by `seq`, or a whole-window snapshot a live playlist is
//! rendered from) and the DVR's ranges and gaps. Every read is one short ring read
//! lock; what it returns holds its chunks for as long as it lives.

use std::sync::Arc;

use dvrclip_fmp4::InitSegment;

use super::Engine;
use crate::Result;
use crate::chunk::{Chunk, bytes_per_sec};
use crate::clip::{ClipRendition, RenditionHead};
use crate::dvr::{DvrInfo, describe};
use crate::ring::Ring;
use crate::stream::{RenditionInfo, StreamId, video_of};

impl Engine {
    /// Each rendition's current state, in the stream's order.
    pub fn renditions(&self, id: StreamId) -> Result<Vec<RenditionInfo>> {
        let stream = self.stream_arc(id)?;
        Ok(stream
            .rings()
            .iter()
            .map(|r| {
                let (chunks, bytes, init) =
                    r.read(|st| (st.chunks.len(), st.bytes, st.init().cloned()));
                RenditionInfo {
                    name: r.name.to_string(),
                    init,
                    video: video_of(r),
                    chunks,
                    bytes,
                }
            })
            .collect())
    }

    /// The chunks a rendition's ring holds now, oldest first.
    pub fn rendition_chunks(&self, id: StreamId, rendition: &str) -> Result<Vec<Arc<Chunk>>> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.read(|st| st.chunks.iter().cloned().collect()))
    }

    /// Every rendition's ring as it is now, in the stream's order: what a live DVR
    /// master playlist lists. The shape is a clip rendition's, so one playlist writer
    /// serves both; the snapshot holds its chunks only as long as it lives.
    pub fn live_renditions(&self, id: StreamId) -> Result<Vec<ClipRendition>> {
        Ok(self
            .stream_arc(id)?
            .rings()
            .iter()
            .map(|r| live_rendition(r))
            .collect())
    }

    /// One rendition's ring as it is now: what its live media playlist lists.
    pub fn live_rendition(&self, id: StreamId, rendition: &str) -> Result<ClipRendition> {
        Ok(live_rendition(&*self.ring(id, rendition)?))
    }

    /// A number that changes with every write to a rendition's ring (a chunk in or
    /// out, a new init, a re-anchor) and is never handed out twice in this process:
    /// equal numbers mean the same window, so a live playlist rendered from
    /// [`Engine::live_rendition`] can be reused while it holds. Read it before the
    /// snapshot, so a write between the two makes the next read differ. O(1).
    pub fn live_generation(&self, id: StreamId, rendition: &str) -> Result<u64> {
        Ok(self.ring(id, rendition)?.read(|st| st.generation))
    }

    /// Every rendition's [`Engine::live_generation`], in the stream's order: what the
    /// live master playlist ([`Engine::live_renditions`]) depends on.
    pub fn live_generations(&self, id: StreamId) -> Result<Vec<u64>> {
        Ok(self
            .stream_arc(id)?
            .rings()
            .iter()
            .map(|r| r.read(|st| st.generation))
            .collect())
    }

    /// The init segment of a rendition's discontinuity `disc`, while the ring holds a
    /// chunk of it (what a live playlist's `init_{disc}.mp4` names). O(log n).
    pub fn discontinuity_init(
        &self,
        id: StreamId,
        rendition: &str,
        disc: u64,
    ) -> Result<Option<Arc<InitSegment>>> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.read(|st| {
            let i = st.chunks.partition_point(|c| c.discontinuity() < disc);
            let chunk = st.chunks.get(i).filter(|c| c.discontinuity() == disc);
            chunk.map(|c| Arc::clone(c.init()))
        }))
    }

    /// One chunk by its `seq`, while the ring holds it. O(1).
    pub fn chunk(&self, id: StreamId, rendition: &str, seq: u64) -> Result<Option<Arc<Chunk>>> {
        let ring = self.ring(id, rendition)?;
        Ok(ring.read(|st| st.index_of_seq(seq).map(|i| Arc::clone(&st.chunks[i]))))
    }

    /// What the stream's DVR holds: ranges, gaps, discontinuities per rendition.
    pub fn dvr(&self, id: StreamId) -> Result<DvrInfo> {
        let stream = self.stream_arc(id)?;
        let dvr_duration_secs = stream.settings.read().dvr_duration_secs;
        let renditions = stream
            .rings()
            .iter()
            .map(|r| r.read(|st| describe(&r.name, st)))
            .collect();
        Ok(DvrInfo {
            stream: id,
            dvr_duration_secs,
            renditions,
        })
    }
}

/// A ring's whole window in a clip rendition's shape.
fn live_rendition(ring: &Ring) -> ClipRendition {
    let (chunks, head) = ring.read(|st| {
        let chunks: Vec<Arc<Chunk>> = st.chunks.iter().cloned().collect();
        let head = RenditionHead {
            init: st.init().cloned(),
            ring: std::sync::Weak::new(),
            bandwidth_bps: bytes_per_sec(st.chunks.iter().rev().take(8)) * 8,
            // None of its own: the target duration is then the longest chunk held
            // (`ClipRendition::target_duration_secs`), which moves only if the
            // encoder makes a longer one.
            target_secs: 0,
        };
        (chunks, head)
    });
    ClipRendition::live(Arc::clone(&ring.name), head, chunks)
}

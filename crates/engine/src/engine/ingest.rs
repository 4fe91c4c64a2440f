//! Media in: init and media segments pushed into a stream's rings, playlist dates,
//! the DVR cleanup, and the global memory budget enforced on every push.
//!
//! Two doors: parsed segments ([`Engine::push_init`], [`Engine::push_segment`]) for a
//! host that parses itself, and raw bytes ([`Engine::push_init_bytes`],
//! [`Engine::push_segment_bytes`]) parsed here against the rendition's own current
//! init, so a caller never fetches an init to hand it back. A segment that does not
//! parse leaves the ring exactly as it was. Each segment's rows of a clip MP4's sample
//! tables are summarised here, O(samples of the segment) before any lock, so that a
//! clip's header is later built per segment rather than per sample.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use dvrclip_fmp4::{InitSegment, MediaSegment};

use super::Engine;
use crate::chunk::Chunk;
use crate::ring::{PushInput, PushOutcome, Ring};
use crate::stream::{StreamId, check_component};
use crate::{Error, Result, WallTime};

impl Engine {
    /// Pushes an init segment, creating the rendition on first sight. A different
    /// init than the current one makes the next chunk open a new discontinuity.
    pub fn push_init(
        &self,
        id: StreamId,
        rendition: &str,
        init: InitSegment,
    ) -> Result<PushOutcome> {
        check_component(rendition)?;
        let stream = self.stream_arc(id)?;
        if !stream.settings.read().active {
            return Err(Error::StreamInactive(id));
        }
        if init.tracks.is_empty() {
            return Err(Error::EmptyInit);
        }
        let ring = match stream.ring(rendition) {
            Some(r) => r,
            None => {
                let mut list = stream.renditions.write();
                match list.iter().find(|r| &*r.name == rendition) {
                    Some(r) => Arc::clone(r),
                    None => {
                        if list.len() >= self.config.max_renditions {
                            return Err(Error::TooManyRenditions {
                                stream: id,
                                max: self.config.max_renditions,
                            });
                        }
                        let r = Arc::new(Ring::new(
                            Arc::from(rendition),
                            self.config.mp4_index_block_chunks,
                        ));
                        list.push(Arc::clone(&r));
                        r
                    }
                }
            }
        };
        let out = ring.push_init(init)?;
        if let (PushOutcome::NewInit, Some(p), Some(init)) =
            (&out, self.persist(), ring.current_init())
        {
            p.init_admitted(id, rendition, &init);
        }
        stream
            .last_ingest
            .store(self.now().unix_micros(), Ordering::SeqCst);
        Ok(out)
    }

    /// Parses `bytes` as an init segment (ISO/IEC 23000-19 §7.3.2: `ftyp` + `moov`)
    /// and pushes it as [`Engine::push_init`] does. The payload is kept, not copied.
    pub fn push_init_bytes(
        &self,
        id: StreamId,
        rendition: &str,
        bytes: Bytes,
    ) -> Result<PushOutcome> {
        check_component(rendition)?;
        let init = dvrclip_fmp4::parse_init(bytes).map_err(media_error(id, rendition))?;
        self.push_init(id, rendition, init)
    }

    /// Parses `bytes` as a media segment against the rendition's current init and
    /// pushes it as [`Engine::push_segment`] does. The payload is kept, not copied:
    /// every chunk's samples point into these `Bytes`.
    pub fn push_segment_bytes(
        &self,
        id: StreamId,
        rendition: &str,
        segment_name: Option<&str>,
        bytes: Bytes,
    ) -> Result<PushOutcome> {
        let no_init = || Error::NoInit {
            stream: id,
            rendition: rendition.to_owned(),
        };
        let ring = self.stream_arc(id)?.ring(rendition).ok_or_else(no_init)?;
        let init = ring.current_init().ok_or_else(no_init)?;
        let segment =
            dvrclip_fmp4::parse_segment(bytes, &init).map_err(media_error(id, rendition))?;
        self.push_segment(id, rendition, segment_name, segment)
    }

    /// Pushes a parsed media segment. A retry (the same start and bytes as a chunk
    /// held in the current discontinuity) is a no-op; the same start with other bytes
    /// is an encoder restart and opens a discontinuity. `segment_name` (the uploaded
    /// file name) lets [`Engine::set_segment_date`] find the chunk. Evicts the oldest
    /// DVR data across streams if the budget needs it, and feeds recording clips.
    pub fn push_segment(
        &self,
        id: StreamId,
        rendition: &str,
        segment_name: Option<&str>,
        mut segment: MediaSegment,
    ) -> Result<PushOutcome> {
        if let Some(n) = segment_name {
            check_component(n)?;
        }
        let stream = self.stream_arc(id)?;
        let window = {
            let s = stream.settings.read();
            if !s.active {
                return Err(Error::StreamInactive(id));
            }
            self.window_micros(&s)
        };
        let ring = stream.ring(rendition).ok_or_else(|| Error::NoInit {
            stream: id,
            rendition: rendition.to_string(),
        })?;
        let needed = segment.bytes.len() as u64;
        let pinned = self.account.pinned_bytes();
        if pinned.saturating_add(needed) > self.config.memory_budget_bytes {
            return Err(Error::OverBudget {
                needed_bytes: needed,
                available_bytes: self.config.memory_budget_bytes.saturating_sub(pinned),
            });
        }
        if let Some(p) = self.persist() {
            // Sample offsets index the payload, so the same bytes elsewhere serve.
            segment.bytes = p
                .place_payload(segment.bytes)
                .map_err(|reason| Error::Storage { reason })?;
        }
        let now = self.now();
        let pushed = {
            let mut shared = stream.shared_anchor.lock();
            let inp = PushInput {
                stream: id,
                name: segment_name,
                tables: dvrclip_fmp4::progressive::SegmentTables::new(&segment),
                segment,
                arrival: now,
                window_micros: window,
                account: &self.account,
            };
            ring.push(inp, &mut shared)?
        };
        drop(pushed.evicted);
        let PushOutcome::Stored { seq, .. } = pushed.outcome else {
            return Ok(pushed.outcome);
        };
        if let Some(p) = self.persist()
            && let Some(chunk) =
                ring.read(|st| st.index_of_seq(seq).map(|i| Arc::clone(&st.chunks[i])))
        {
            p.chunk_admitted(id, rendition, &chunk);
        }
        stream
            .last_ingest
            .store(now.unix_micros(), Ordering::SeqCst);
        self.enforce_budget(Some(&ring));
        self.feed_recording(&stream);
        Ok(pushed.outcome)
    }

    /// Re-anchors the chunk named `segment_name` (and the chunks after it in its
    /// discontinuity that have no date of their own) to start at `utc`: the playlist's
    /// `EXT-X-PROGRAM-DATE-TIME` for that segment, which arrives after the segment.
    /// Returns whether anything moved. A chunk with its own `prft` keeps its time.
    pub fn set_segment_date(
        &self,
        id: StreamId,
        rendition: &str,
        segment_name: &str,
        utc: WallTime,
    ) -> Result<bool> {
        let ring = self.ring(id, rendition)?;
        let moved = ring.set_segment_date(segment_name, utc);
        if let Some(p) = self.persist() {
            for c in &moved {
                p.chunk_moved(id, rendition, c.seq(), c.start_utc());
            }
        }
        let moved = !moved.is_empty();
        if moved {
            // A later date can leave older chunks outside the window: drop them now,
            // as a push would, not at some later push.
            let window = self.window_micros(&self.stream_arc(id)?.settings.read());
            drop(ring.prune(window));
        }
        Ok(moved)
    }

    /// Makes the rendition's next chunk open a new discontinuity, as a new init does:
    /// its source changed (a pull moved to another origin) though its media time may
    /// seem to continue. A rendition not yet created is left alone.
    pub fn break_discontinuity(&self, id: StreamId, rendition: &str) -> Result<()> {
        if let Some(ring) = self.stream_arc(id)?.ring(rendition) {
            ring.break_discontinuity();
        }
        Ok(())
    }

    /// Drops every chunk of the stream's DVR. Clips already cut keep theirs.
    pub fn drop_dvr(&self, id: StreamId) -> Result<()> {
        let stream = self.stream_arc(id)?;
        for r in stream.rings() {
            let gone = r.clear();
            self.report_left(id, &r, &gone);
        }
        Ok(())
    }

    /// Evicts the oldest chunk across every ring until chunks and reservations fit
    /// the budget. O(renditions) per evicted chunk; never evicts `keep`'s newest chunk.
    pub(super) fn enforce_budget(&self, keep: Option<&Arc<Ring>>) {
        if self.account.held_bytes() <= self.config.memory_budget_bytes {
            return;
        }
        let _one_evictor = self.evict.lock();
        let rings: Vec<(StreamId, Arc<Ring>)> = self
            .streams
            .read()
            .values()
            .flat_map(|s| s.rings().into_iter().map(|r| (s.id, r)))
            .collect();
        while self.account.held_bytes() > self.config.memory_budget_bytes {
            let oldest = rings
                .iter()
                .filter(|(_, r)| {
                    keep.is_none_or(|k| !Arc::ptr_eq(r, k)) || r.read(|st| st.chunks.len() > 1)
                })
                .filter_map(|(id, r)| r.oldest_start().map(|t| (t, id, r)))
                .min_by_key(|(t, _, _)| *t);
            let Some((_, id, ring)) = oldest else { break };
            let gone: Vec<Arc<Chunk>> = ring.pop_oldest().into_iter().collect();
            self.report_left(*id, ring, &gone);
        }
    }

    /// Tells the persistence hook that `gone` left `ring` of stream `id`.
    fn report_left(&self, id: StreamId, ring: &Ring, gone: &[Arc<Chunk>]) {
        if let Some(p) = self.persist()
            && !gone.is_empty()
        {
            let seqs: Vec<u64> = gone.iter().map(|c| c.seq()).collect();
            p.chunks_left_ring(id, &ring.name, &seqs);
        }
    }
}

/// What a parse failure of `rendition`'s media becomes.
fn media_error(stream: StreamId, rendition: &str) -> impl FnOnce(dvrclip_fmp4::Error) -> Error {
    move |source| Error::Media {
        stream,
        rendition: rendition.to_owned(),
        source,
    }
}

//! [`Mp4Builder`]: accumulates the sample tables of a clip segment by segment, stitches
//! the timeline across encoder restarts, then lays out the immutable [`VirtualMp4`].
//!
//! Owns the timeline arithmetic (ISO/IEC 14496-12 §8.6.1.1: decode times are the
//! running sum of `stts` durations, so a continuous output timeline is a matter of
//! choosing each seam's last duration), the edit lists and the `mdat` layout. The
//! tables it fills are `track`'s; box bytes are written by `write`.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::block::{BlockTables, inside_mdat};
use super::prepared::{SegmentTables, TrackTables};
use super::track::{Chunk, Description, OutTrack};
use super::write::{self, Edit, TrackHeader};
use super::{BuildError, ClipBounds, FORMAT_VERSION, Options, Piece, PieceData, VirtualMp4};
use crate::model::{EditEntry, FourCC, InitSegment, MediaSegment, Sample, TrackKind, TrackSamples};
use crate::writer::handler;

/// Builds a [`VirtualMp4`] from one rendition's segments, pushed in decode order.
///
/// ```
/// # fn f(init: &dvrclip_fmp4::InitSegment, segs: &[dvrclip_fmp4::MediaSegment])
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use dvrclip_fmp4::progressive::{Mp4Builder, Options};
/// let mut b = Mp4Builder::new(Options { identity: b"clip-42/media_2_720".to_vec(), trim: None });
/// for s in segs {
///     b.push(init, s)?;
/// }
/// let mp4 = b.build()?;
/// let first_kib: Vec<bytes::Bytes> = mp4.range(0..1024.min(mp4.len()))?.collect();
/// # Ok(()) }
/// ```
///
/// Costs: `push` is O(samples of the segment); `push_prepared` O(runs kept as numbers)
/// where a run continues; `build` writes the header's own bytes (O(chunks), plus
/// O(samples) of rows walked by `push`) and takes the encoded rows by reference.
/// After `push` returns an error the builder is half-updated: drop it.
#[derive(Debug)]
pub struct Mp4Builder {
    options: Options,
    tracks: Vec<OutTrack>,
    /// Index in `tracks` of the track that defines time 0 and the seams: the first
    /// video track, else the first track.
    reference: usize,
    segments: usize,
    last_init: Option<Bytes>,
    anchor: Option<Anchor>,
    body: Vec<PieceData>,
    body_len: u64,
    hasher: Sha256,
    /// Table rows to make room for in each track when it is created.
    sample_hint: usize,
    /// Segments about to be pushed (a hint for the per-segment tables).
    segment_hint: usize,
}

/// Maps the current run's source timeline onto the output: a source presentation
/// instant `src` of the reference track is output movie instant `out` (both in the
/// reference track's ticks).
#[derive(Clone, Copy, Debug)]
struct Anchor {
    src: i128,
    out: i128,
}

/// Where a chunk of this segment lies in the segment, before layout.
struct SegChunk {
    start: u32,
    end: u32,
    track: usize,
    chunk: usize,
    /// Bytes written just before the chunk (in-band parameter sets at a seam).
    prefix: Option<Bytes>,
}

impl Mp4Builder {
    /// A builder with no segments.
    pub fn new(options: Options) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(FORMAT_VERSION.to_be_bytes());
        hasher.update((options.identity.len() as u64).to_be_bytes());
        hasher.update(&options.identity);
        match options.trim {
            Some(t) => {
                hasher.update([1]);
                hasher.update(t.lead_in_micros.to_be_bytes());
                hasher.update(t.duration_micros.to_be_bytes());
            }
            None => hasher.update([0]),
        }
        Mp4Builder {
            options,
            tracks: Vec::new(),
            reference: 0,
            segments: 0,
            last_init: None,
            anchor: None,
            body: Vec::new(),
            body_len: 0,
            hasher,
            sample_hint: 0,
            segment_hint: 0,
        }
    }

    /// Makes room for `samples` sizes in each track's table before the first
    /// [`Mp4Builder::push`], so a clip walked sample by sample fills it without
    /// reallocating (a 4 h clip has over a million samples). A hint: rows past it
    /// still fit. Of no use with [`Mp4Builder::push_prepared`], whose rows are
    /// shared, not copied.
    pub fn reserve_samples(&mut self, samples: usize) {
        self.sample_hint = samples;
    }

    /// Makes room for `segments` segments in the per-segment tables (chunks, rows
    /// taken by reference, `mdat` pieces) before the first push, so a clip of
    /// thousands of chunks fills them without reallocating. A hint.
    pub fn reserve_segments(&mut self, segments: usize) {
        self.segment_hint = segments;
        self.body.reserve(segments);
    }

    /// Appends one media segment described by `init`. A different `init` than the
    /// previous call's starts a discontinuity. The first segment must start with a
    /// sync sample of the reference track (the first video track, else the first).
    pub fn push(&mut self, init: &InitSegment, segment: &MediaSegment) -> Result<(), BuildError> {
        self.push_with(init, segment, None)
    }

    /// [`Mp4Builder::push`] with the segment's [`SegmentTables`] made earlier (at
    /// ingest): where a track continues its run (same init, no gap to absorb, no
    /// timescale to convert) its rows are taken from the summary, their encoded bytes
    /// by reference, instead of sample by sample. The result is the same bytes; the
    /// header is then pieces, each chunk's rows one.
    pub fn push_prepared(
        &mut self,
        init: &InitSegment,
        segment: &MediaSegment,
        tables: &SegmentTables,
    ) -> Result<(), BuildError> {
        self.push_with(init, segment, Some(tables))
    }

    /// Appends the segments `block` summarises, all decoded with `init`, as one:
    /// O(chunks of the block) in a tight loop and a handful of pieces, instead of a
    /// visit per segment. Only where they continue what was pushed before on every
    /// track (same init, no seam to stitch, no sample entry switch, same timescale,
    /// not the first segment): there the result is the same bytes as pushing them
    /// one by one. Otherwise returns `Ok(false)` having changed nothing, and the
    /// caller pushes the segments itself.
    pub fn push_block(
        &mut self,
        init: &InitSegment,
        block: &BlockTables,
    ) -> Result<bool, BuildError> {
        if !self.takes_block(init, block) {
            return Ok(false);
        }
        let base = self.body_len;
        for t in &mut self.tracks {
            let Some(bt) = t.src_track_id.and_then(|id| block.track(id)) else {
                continue;
            };
            t.append_rows(&bt.tables)?;
            let description = t.last_description;
            t.chunks
                .extend(bt.chunks.iter().map(|&(samples, at)| Chunk {
                    samples,
                    description,
                    body_pos: at.map_or(0, |at| base + at),
                }));
            t.expected_src_decode = Some(bt.tables.end_decode);
        }
        self.hasher.update(block.segment_lens());
        if block.body.len() > 0 {
            self.body_len += block.body.len();
            self.body
                .push(PieceData::Run(std::sync::Arc::clone(&block.body)));
        }
        self.segments += block.segments();
        Ok(true)
    }

    /// Whether pushing `block`'s segments one by one would take each track's
    /// summarised rows whole, with no seam: see [`Mp4Builder::push_block`].
    fn takes_block(&self, init: &InitSegment, block: &BlockTables) -> bool {
        let same_init = self
            .last_init
            .as_ref()
            .is_some_and(|b| same_bytes(b, &init.bytes));
        if self.segments == 0 || !same_init {
            return false;
        }
        // Every track of the block is written, the reference among them.
        let written = |id: u32| self.tracks.iter().any(|t| t.src_track_id == Some(id));
        if !block.tracks.iter().all(|bt| written(bt.tables.track_id))
            || self.tracks[self.reference]
                .src_track_id
                .and_then(|id| block.track(id))
                .is_none()
        {
            return false;
        }
        self.tracks.iter().all(|t| {
            let Some(bt) = t.src_track_id.and_then(|id| block.track(id)) else {
                return true;
            };
            let index = bt.description_index.max(1);
            let first = bt.tables.first_decode;
            t.sample_count > 0
                && t.src_timescale == t.timescale
                && index <= t.desc_count
                && t.desc_base.saturating_add(index - 1) == t.last_description
                && t.expected_src_decode == Some(first)
                && t.run_offset
                    .is_some_and(|o| i128::from(first) + o == i128::from(t.decode_end))
        })
    }

    fn push_with(
        &mut self,
        init: &InitSegment,
        segment: &MediaSegment,
        tables: Option<&SegmentTables>,
    ) -> Result<(), BuildError> {
        let seg_index = self.segments;
        if self.tracks.is_empty() {
            self.adopt_first_init(init)?;
        }
        let init_changed = self
            .last_init
            .as_ref()
            .is_none_or(|b| !same_bytes(b, &init.bytes));
        if init_changed {
            self.adopt_init(init)?;
            self.hasher.update(b"init");
            self.hasher.update((init.bytes.len() as u64).to_be_bytes());
            self.hasher.update(&init.bytes);
            self.last_init = Some(init.bytes.clone());
        }
        self.hasher
            .update((segment.bytes.len() as u64).to_be_bytes());

        let r = self.reference;
        let ref_samples = self.tracks[r]
            .src_track_id
            .and_then(|id| segment.track(id))
            .filter(|t| !t.samples.is_empty());
        if seg_index == 0 && !ref_samples.is_some_and(|t| t.samples[0].is_sync) {
            return Err(BuildError::NotKeyframe {
                segment: 0,
                track_id: self.tracks[r].src_track_id.unwrap_or(0),
            });
        }
        if let Some(ts) = ref_samples {
            let first = Lead::of(ts, tables);
            let t = &self.tracks[r];
            if init_changed || t.expected_src_decode != Some(first.decode_ticks) {
                // A new run: its first reference sample is presented where everything
                // before it ends, so the output timeline has neither gap nor overlap.
                let src = t.to_out(first.presentation()) + t.src_shift;
                let out = if t.sample_count == 0 {
                    0
                } else {
                    i128::from(t.max_pt_end) + t.presentation_offset
                };
                self.anchor = Some(Anchor { src, out });
                for t in &mut self.tracks {
                    t.run_offset = None;
                }
            }
        }

        let ref_timescale = self.tracks[r].timescale;
        let mut seg_chunks = Vec::new();
        let order = std::iter::once(r).chain((0..self.tracks.len()).filter(|&i| i != r));
        for i in order {
            let track = &mut self.tracks[i];
            let Some(ts) = track.src_track_id.and_then(|id| segment.track(id)) else {
                continue;
            };
            if ts.samples.is_empty() {
                continue;
            }
            let ctx = AppendCtx {
                segment,
                seg_index,
                anchor: self.anchor,
                ref_timescale,
                is_reference: i == r,
                track_index: i,
            };
            // A summary of other samples than these (a caller's mix-up) is not used.
            let prepared = tables
                .and_then(|t| t.track(ts.track_id))
                .filter(|t| t.samples == ts.samples.len());
            track.append(ts, prepared, &ctx, &mut seg_chunks)?;
        }
        self.lay_out(segment, seg_index, seg_chunks)?;
        self.segments += 1;
        Ok(())
    }

    /// Puts this segment's chunks into the `mdat` body in source byte order,
    /// coalescing chunks that touch in the source into one slice.
    fn lay_out(
        &mut self,
        segment: &MediaSegment,
        seg_index: usize,
        mut chunks: Vec<SegChunk>,
    ) -> Result<(), BuildError> {
        chunks.sort_unstable_by_key(|c| c.start);
        let mut run: Option<(u32, u32)> = None;
        for c in chunks {
            if let Some(prefix) = c.prefix {
                if let Some((s, e)) = run.take() {
                    self.flush(segment, s, e);
                }
                self.tracks[c.track].chunks[c.chunk].body_pos = self.body_len;
                self.body_len += prefix.len() as u64;
                self.body.push(PieceData::One(prefix));
                run = Some((c.start, c.end));
                continue;
            }
            run = match run {
                Some((s, e)) if c.start == e => Some((s, c.end)),
                Some((_, e)) if c.start < e => {
                    return Err(BuildError::OverlappingSamples {
                        segment: seg_index,
                        offset: c.start,
                    });
                }
                Some((s, e)) => {
                    self.flush(segment, s, e);
                    Some((c.start, c.end))
                }
                None => Some((c.start, c.end)),
            };
            let (s, _) = run.unwrap_or((c.start, c.end));
            self.tracks[c.track].chunks[c.chunk].body_pos = self.body_len + u64::from(c.start - s);
        }
        if let Some((s, e)) = run {
            self.flush(segment, s, e);
        }
        Ok(())
    }

    fn flush(&mut self, segment: &MediaSegment, start: u32, end: u32) {
        // Bounds were checked against `mdat_ranges` and the segment length in append.
        self.body.push(PieceData::One(
            segment.bytes.slice(start as usize..end as usize),
        ));
        self.body_len += u64::from(end - start);
    }

    fn adopt_first_init(&mut self, init: &InitSegment) -> Result<(), BuildError> {
        let mut seen: Vec<TrackKind> = Vec::new();
        for t in &init.tracks {
            if !matches!(t.kind, TrackKind::Video | TrackKind::Audio) {
                continue;
            }
            let ordinal = seen.iter().filter(|&&k| k == t.kind).count();
            seen.push(t.kind);
            let mut out = OutTrack::new(t, ordinal);
            out.sizes.reserve(self.sample_hint);
            out.reserve_segments(self.segment_hint);
            self.tracks.push(out);
        }
        if self.tracks.is_empty() {
            return Err(BuildError::NoTracks);
        }
        self.reference = self
            .tracks
            .iter()
            .position(|t| t.kind == TrackKind::Video)
            .unwrap_or(0);
        Ok(())
    }

    /// Matches each output track to its counterpart in `init` (same kind, same rank).
    fn adopt_init(&mut self, init: &InitSegment) -> Result<(), BuildError> {
        self.anchor = None;
        for out in &mut self.tracks {
            out.run_offset = None;
            let Some(t) = init
                .tracks
                .iter()
                .filter(|t| t.kind == out.kind)
                .nth(out.ordinal)
            else {
                out.src_track_id = None;
                continue;
            };
            out.src_track_id = Some(t.track_id);
            out.src_timescale = t.timescale;
            out.src_shift = rescale(
                edit_shift(&t.edits, init.movie_timescale, t.timescale),
                t.timescale,
                out.timescale,
            );
            if !out.codecs.contains(&t.entry.codec) {
                out.codecs.push(t.entry.codec.clone());
            }
            if let Some(d) = out.descriptions.iter().find(|d| d.stsd == t.entry.stsd) {
                out.desc_base = d.first_index;
                out.desc_count = d.count;
                continue;
            }
            let count = stsd_entry_count(&t.entry.stsd).ok_or(BuildError::BadStsd {
                track_id: t.track_id,
            })?;
            let first_index = out
                .descriptions
                .last()
                .map_or(1, |d| d.first_index.saturating_add(d.count));
            out.descriptions.push(Description {
                stsd: t.entry.stsd.clone(),
                first_index,
                count,
                in_band: parameter_sets(t.entry.format, &t.entry.config),
            });
            out.desc_base = first_index;
            out.desc_count = count;
        }
        Ok(())
    }

    /// Lays out the file: edit lists, `moov`, the `mdat` header and the piece table.
    pub fn build(self) -> Result<VirtualMp4, BuildError> {
        if self.segments == 0 {
            return Err(BuildError::Empty);
        }
        let reference = &self.tracks[self.reference];
        let movie_timescale = reference.timescale;
        let ref_end = i128::from(reference.max_pt_end) + reference.presentation_offset;
        let (w0, w1) = match self.options.trim {
            Some(t) => {
                let w0 = micros_to_ticks(t.lead_in_micros, movie_timescale);
                if w0 >= ref_end {
                    return Err(BuildError::TrimOutOfRange {
                        lead_in_micros: t.lead_in_micros,
                    });
                }
                let w1 = w0 + micros_to_ticks(t.duration_micros, movie_timescale);
                (w0, w1.min(ref_end))
            }
            None => (0, i128::MAX),
        };

        let mut headers = Vec::new();
        let mut movie_duration: u64 = 0;
        let mut next_id = 1;
        for (i, t) in self.tracks.iter().enumerate() {
            if t.sample_count == 0 {
                continue;
            }
            let ts = t.timescale;
            let w0_t = rescale(w0, movie_timescale, ts);
            let w1_t = if w1 == i128::MAX {
                i128::MAX
            } else {
                rescale(w1, movie_timescale, ts)
            };
            let start = (i128::from(t.first_pt) + t.presentation_offset).max(w0_t);
            let end = (i128::from(t.max_pt_end) + t.presentation_offset).min(w1_t);
            if end <= start {
                // Entirely outside the trim window: leave it out (its bytes stay in
                // `mdat`, unreferenced, which §8.1.1 allows).
                if i == self.reference {
                    return Err(BuildError::TrimOutOfRange {
                        lead_in_micros: self.options.trim.map_or(0, |t| t.lead_in_micros),
                    });
                }
                continue;
            }
            let media_time = start - t.presentation_offset;
            if media_time < 0 {
                return Err(BuildError::NegativeStart {
                    track_id: t.first_track_id,
                });
            }
            let empty = to_u64(rescale(start - w0_t, ts, movie_timescale))?;
            let shown = to_u64(rescale(end - start, ts, movie_timescale))?;
            let media_time =
                i64::try_from(media_time).map_err(|_| BuildError::TooLarge("media time"))?;
            let mut edits = Vec::with_capacity(2);
            if empty > 0 {
                edits.push(Edit {
                    duration: empty,
                    media_time: -1,
                });
            }
            edits.push(Edit {
                duration: shown,
                media_time,
            });
            let duration = empty
                .checked_add(shown)
                .ok_or(BuildError::TooLarge("duration"))?;
            movie_duration = movie_duration.max(duration);
            headers.push(TrackHeader {
                track: t,
                track_id: next_id,
                duration,
                edits,
            });
            next_id += 1;
        }

        let ftyp = write::ftyp(&self.tracks);
        let body_len = self.body_len;
        let mdat_header_len: u64 = if body_len + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        };
        let mut wide = false;
        let (mut header, header_len) = loop {
            let (mut header, patches) = write::moov(
                &ftyp,
                &headers,
                movie_timescale,
                movie_duration,
                next_id,
                wide,
            )?;
            let header_len = header.len() + mdat_header_len;
            if !wide && header_len + body_len > u64::from(u32::MAX) {
                wide = true;
                continue;
            }
            write::patch_offsets(&mut header, &patches, header_len);
            break (header, header_len);
        };
        let mdat = header.own();
        if mdat_header_len == 16 {
            mdat.extend_from_slice(&1u32.to_be_bytes());
            mdat.extend_from_slice(b"mdat");
            mdat.extend_from_slice(&(body_len + 16).to_be_bytes());
        } else {
            mdat.extend_from_slice(&((body_len + 8) as u32).to_be_bytes());
            mdat.extend_from_slice(b"mdat");
        }
        debug_assert_eq!(header.len(), header_len);

        // The header's own bytes and the chunks' encoded rows, then the media.
        let header_own = header.own_len() as u64;
        let header_pieces = header.into_pieces();
        let mut pieces = Vec::with_capacity(header_pieces.len() + self.body.len());
        let mut end = 0;
        for data in header_pieces.map(PieceData::One).chain(self.body) {
            end += data.len();
            pieces.push(Piece { end, data });
        }

        let digest = self.hasher.finalize();
        let mut etag = String::with_capacity(34);
        etag.push('"');
        for b in &digest[..16] {
            etag.push_str(&format!("{b:02x}"));
        }
        etag.push('"');

        let bounds = ClipBounds {
            lead_in_micros: ticks_to_micros(w0, movie_timescale),
            duration_micros: ticks_to_micros(i128::from(movie_duration), movie_timescale),
        };
        let sample_counts = headers
            .iter()
            .map(|h| (handler(h.track.kind), u64::from(h.track.sample_count)))
            .collect();
        Ok(VirtualMp4 {
            pieces,
            len: end,
            header_len,
            header_own,
            etag,
            content_type: content_type(&headers),
            bounds,
            sample_counts,
        })
    }
}

struct AppendCtx<'a> {
    segment: &'a MediaSegment,
    seg_index: usize,
    anchor: Option<Anchor>,
    ref_timescale: u32,
    is_reference: bool,
    track_index: usize,
}

impl OutTrack {
    /// Appends one segment's samples of this track, first fixing the seam with what
    /// is already there.
    fn append(
        &mut self,
        ts: &TrackSamples,
        prepared: Option<&TrackTables>,
        ctx: &AppendCtx<'_>,
        seg_chunks: &mut Vec<SegChunk>,
    ) -> Result<(), BuildError> {
        let rescaled;
        let samples = if self.src_timescale == self.timescale {
            &ts.samples[..]
        } else {
            rescaled = self.rescale_samples(&ts.samples);
            &rescaled[..]
        };
        let first = match prepared.filter(|_| self.src_timescale == self.timescale) {
            Some(tt) => Lead::prepared(tt),
            None => match samples.first() {
                Some(s) => Lead::sample(s),
                None => return Ok(()),
            },
        };
        let index = ts.sample_description_index.max(1);
        if index > self.desc_count {
            return Err(BuildError::BadSampleDescription {
                segment: ctx.seg_index,
                track_id: ts.track_id,
                index,
            });
        }
        let description = self.desc_base.saturating_add(index - 1);
        // After a switch of sample entry (a restart with new SPS/PPS), repeat the new
        // parameter sets in-band before the keyframe: stsc already points decoders
        // at the new entry, but parsers that only look at the stream (ffmpeg's h264
        // parser) need them in the samples.
        let mut prefix = if self.last_description != 0 && self.last_description != description {
            self.descriptions
                .iter()
                .find(|d| d.first_index == self.desc_base)
                .and_then(|d| d.in_band.clone())
        } else {
            None
        };

        let cto = i128::from(first.composition_offset);
        let run_offset = match self.run_offset {
            Some(o) => o,
            None => {
                let out_decode = match ctx.anchor {
                    Some(a) => {
                        let src = first.presentation() + self.src_shift;
                        let movie = rescale(a.out - a.src, ctx.ref_timescale, self.timescale) + src;
                        if self.sample_count == 0 {
                            self.presentation_offset = movie - cto;
                            0
                        } else {
                            movie - cto - self.presentation_offset
                        }
                    }
                    // No reference sample since the init changed: just continue.
                    None => {
                        if self.sample_count == 0 {
                            self.presentation_offset = -cto;
                        }
                        i128::from(self.decode_end)
                    }
                };
                let o = out_decode - i128::from(first.decode_ticks);
                self.run_offset = Some(o);
                o
            }
        };

        let mut skip = 0;
        if self.sample_count > 0 {
            let mut gap = i128::from(first.decode_ticks) + run_offset - i128::from(self.decode_end);
            if gap != 0 {
                // Overlap longer than the last sample can absorb: drop this track's
                // leading samples (audio that the previous run already covers). The
                // reference track is never cut: its decoding depends on every sample.
                if !ctx.is_reference {
                    let room = i128::from(self.last_duration) - 1;
                    while gap < -room && skip < samples.len() {
                        gap += i128::from(samples[skip].duration);
                        skip += 1;
                    }
                }
                let d = (i128::from(self.last_duration) + gap).clamp(1, i128::from(u32::MAX));
                self.set_last_duration(d as u32);
            }
        }

        if let Some(tt) = prepared
            .filter(|_| skip == 0 && prefix.is_none() && self.src_timescale == self.timescale)
        {
            self.append_rows(tt)?;
            for &c in std::iter::once(&tt.first_chunk).chain(&tt.more_chunks) {
                self.close_chunk(c, description, ctx, ts, None, seg_chunks)?;
            }
            self.last_description = description;
            self.expected_src_decode = Some(tt.end_decode);
            return Ok(());
        }

        let mut chunk: Option<(u32, u32, u32)> = None;
        for s in &samples[skip..] {
            let end = s
                .offset
                .checked_add(s.size)
                .ok_or_else(|| out_of_bounds(ctx, ts, s))?;
            match &mut chunk {
                // An empty sample has no bytes to place: it joins the current chunk.
                Some((_, e, n)) if *e == s.offset || s.size == 0 => {
                    if s.size > 0 {
                        *e = end;
                    }
                    *n += 1;
                }
                _ => {
                    if let Some(c) = chunk.take() {
                        self.close_chunk(c, description, ctx, ts, prefix.take(), seg_chunks)?;
                    }
                    chunk = Some((s.offset, end, 1));
                }
            }
            self.push_sample(s)?;
        }
        if let Some(c) = chunk {
            self.close_chunk(c, description, ctx, ts, prefix.take(), seg_chunks)?;
        }
        self.last_description = description;
        self.expected_src_decode = ts
            .samples
            .last()
            .map(|s| s.decode_ticks + u64::from(s.duration));
        Ok(())
    }

    /// Source ticks of the current run as output ticks.
    fn to_out(&self, x: i128) -> i128 {
        rescale(x, self.src_timescale, self.timescale)
    }

    /// A run whose init has another timescale (e.g. 44.1 kHz audio after a restart
    /// of a 48 kHz stream): decode times are rescaled and durations taken as their
    /// differences, so rounding never accumulates.
    fn rescale_samples(&self, samples: &[Sample]) -> Vec<Sample> {
        samples
            .iter()
            .map(|s| {
                let dt = i128::from(s.decode_ticks);
                let start = self.to_out(dt);
                let end = self.to_out(dt + i128::from(s.duration));
                Sample {
                    decode_ticks: u64::try_from(start).unwrap_or(0),
                    duration: u32::try_from(end - start).unwrap_or(u32::MAX),
                    composition_offset: i32::try_from(
                        self.to_out(i128::from(s.composition_offset)),
                    )
                    .unwrap_or(0),
                    ..*s
                }
            })
            .collect()
    }

    fn close_chunk(
        &mut self,
        (start, end, samples): (u32, u32, u32),
        description: u32,
        ctx: &AppendCtx<'_>,
        ts: &TrackSamples,
        prefix: Option<Bytes>,
        seg_chunks: &mut Vec<SegChunk>,
    ) -> Result<(), BuildError> {
        if !inside_mdat(ctx.segment, start, end) {
            return Err(BuildError::SampleOutOfBounds {
                segment: ctx.seg_index,
                track_id: ts.track_id,
                offset: start,
                size: end - start,
            });
        }
        self.chunks.push(Chunk {
            samples,
            description,
            body_pos: 0,
        });
        if end == start {
            // Only empty samples: any offset will do, nothing is read there.
            return Ok(());
        }
        // The prefix becomes part of the chunk's first sample, a sync sample.
        // Only a walked segment has a prefix, so its sizes are the table's own.
        let first = self.sizes.len() - samples as usize;
        let mut prefix = prefix.filter(|_| self.sync.contains(first as u32 + 1));
        if let Some(p) = &prefix
            && !self.sizes.grow_from_end(samples as usize, p.len())?
        {
            prefix = None;
        }
        seg_chunks.push(SegChunk {
            start,
            end,
            track: ctx.track_index,
            chunk: self.chunks.len() - 1,
            prefix,
        });
        Ok(())
    }
}

fn out_of_bounds(ctx: &AppendCtx<'_>, ts: &TrackSamples, s: &Sample) -> BuildError {
    BuildError::SampleOutOfBounds {
        segment: ctx.seg_index,
        track_id: ts.track_id,
        offset: s.offset,
        size: s.size,
    }
}

/// What the seams need of a segment's first sample of a track: from the sample, or
/// from the segment's summary (which saves reading the sample's memory).
#[derive(Clone, Copy)]
struct Lead {
    decode_ticks: u64,
    composition_offset: i32,
}

impl Lead {
    fn sample(s: &Sample) -> Self {
        Lead {
            decode_ticks: s.decode_ticks,
            composition_offset: s.composition_offset,
        }
    }

    fn prepared(t: &TrackTables) -> Self {
        Lead {
            decode_ticks: t.first_decode,
            composition_offset: t.first_cto,
        }
    }

    /// The first sample of `ts` (which has one), from `tables` when they summarise it.
    fn of(ts: &TrackSamples, tables: Option<&SegmentTables>) -> Self {
        match tables
            .and_then(|t| t.track(ts.track_id))
            .filter(|t| t.samples == ts.samples.len())
        {
            Some(tt) => Lead::prepared(tt),
            None => Lead::sample(&ts.samples[0]),
        }
    }

    /// Presentation time in source ticks, without the overflow
    /// `Sample::presentation_ticks` could hit on a hostile `tfdt`.
    fn presentation(self) -> i128 {
        i128::from(self.decode_ticks) + i128::from(self.composition_offset)
    }
}

/// Whether two inits are the same bytes: pointer equality first, as the engine hands
/// the same `Bytes` to every segment of a run.
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// Source presentation shift from an init's `elst` (§8.6.6): empty edits delay the
/// track, the first media edit's `media_time` is presented at their end.
fn edit_shift(edits: &[EditEntry], movie_timescale: u32, timescale: u32) -> i128 {
    let mut empty: i128 = 0;
    for e in edits {
        if e.media_time == -1 {
            if movie_timescale != 0 {
                empty += rescale(i128::from(e.segment_duration), movie_timescale, timescale);
            }
        } else {
            return empty - i128::from(e.media_time);
        }
    }
    empty
}

/// The parameter sets of an `avcC` (ISO/IEC 14496-15 §5.3.3.1) or `hvcC` (§8.3.3.1)
/// record as NAL units prefixed with the record's own length size, ready to sit in
/// front of a sample. `None` for other codecs or a record that does not parse.
pub(super) fn parameter_sets(format: FourCC, config: &[u8]) -> Option<Bytes> {
    let mut nals: Vec<&[u8]> = Vec::new();
    let length_size = match &format.0 {
        b"avc1" | b"avc3" => {
            let length_size = usize::from(config.get(4)? & 3) + 1;
            let mut pos = 5;
            let sps = usize::from(config.get(pos)? & 0x1f);
            pos += 1;
            for _ in 0..sps {
                nals.push(take_nal(config, &mut pos)?);
            }
            let pps = usize::from(*config.get(pos)?);
            pos += 1;
            for _ in 0..pps {
                nals.push(take_nal(config, &mut pos)?);
            }
            length_size
        }
        b"hvc1" | b"hev1" => {
            let length_size = usize::from(config.get(21)? & 3) + 1;
            let arrays = *config.get(22)?;
            let mut pos = 23;
            for _ in 0..arrays {
                let n = u16::from_be_bytes([*config.get(pos + 1)?, *config.get(pos + 2)?]);
                pos += 3;
                for _ in 0..n {
                    nals.push(take_nal(config, &mut pos)?);
                }
            }
            length_size
        }
        _ => return None,
    };
    if nals.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for nal in nals {
        let len = (nal.len() as u64).to_be_bytes();
        // A NAL longer than the length field can say cannot be repeated in-band.
        if length_size < 8 && (nal.len() as u64) >> (8 * length_size) != 0 {
            return None;
        }
        out.extend_from_slice(&len[8 - length_size..]);
        out.extend_from_slice(nal);
    }
    Some(Bytes::from(out))
}

/// One `u16` length + NAL unit of a decoder configuration record.
fn take_nal<'a>(config: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes([
        *config.get(*pos)?,
        *config.get(*pos + 1)?,
    ]));
    let nal = config.get(*pos + 2..*pos + 2 + len)?;
    *pos += 2 + len;
    Some(nal)
}

/// `entry_count` of a whole `stsd` box, checking its header.
fn stsd_entry_count(stsd: &[u8]) -> Option<u32> {
    let head = stsd.get(..16)?;
    if &head[4..8] != b"stsd" {
        return None;
    }
    let count = u32::from_be_bytes([head[12], head[13], head[14], head[15]]);
    // Each entry is a box of at least 8 bytes: a larger count is a lie.
    (count > 0 && count as usize <= (stsd.len() - 16) / 8).then_some(count)
}

/// `x` ticks at `from` Hz as ticks at `to` Hz, rounded to nearest.
pub(super) fn rescale(x: i128, from: u32, to: u32) -> i128 {
    if from == to || from == 0 {
        return x;
    }
    let (from, to) = (i128::from(from), i128::from(to));
    (2 * x * to + from).div_euclid(2 * from)
}

fn micros_to_ticks(us: u64, timescale: u32) -> i128 {
    rescale(i128::from(us), 1_000_000, timescale)
}

fn ticks_to_micros(ticks: i128, timescale: u32) -> u64 {
    u64::try_from(rescale(ticks, timescale, 1_000_000).max(0)).unwrap_or(u64::MAX)
}

fn to_u64(x: i128) -> Result<u64, BuildError> {
    u64::try_from(x).map_err(|_| BuildError::TooLarge("duration"))
}

/// RFC 6381 `Content-Type`, keeping only characters legal in a codecs token so a
/// strange codec string cannot break the header.
fn content_type(headers: &[TrackHeader<'_>]) -> String {
    let video = headers.iter().any(|h| h.track.kind == TrackKind::Video);
    let mut codecs: Vec<String> = Vec::new();
    for h in headers {
        for c in &h.track.codecs {
            let clean: String = c
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
                .collect();
            if !clean.is_empty() && !codecs.contains(&clean) {
                codecs.push(clean);
            }
        }
    }
    let base = if video { "video/mp4" } else { "audio/mp4" };
    if codecs.is_empty() {
        base.to_owned()
    } else {
        format!("{base}; codecs=\"{}\"", codecs.join(","))
    }
}

//! Where each byte of an archived clip's progressive MP4 is stored (manifest format
//! 2, `design/architecture.md` "Clip archive"): the MP4 is not written whole. Its
//! body is the chunks' sample data, which the rendition's segments file holds
//! already (inside each chunk's `mdat`), so the archive writes only the rest, the
//! head object (`ftyp`, `moov`, the `mdat` header, and any body bytes the MP4 writer
//! made of its own: parameter sets repeated at a seam), and an [`Mp4Layout`] naming
//! where each stretch of the MP4 lies in the segments file.
//!
//! Owns building a layout ([`Mp4Layout::of`]), checking a stored one (a manifest is
//! hostile input: a layout that reads back is in order, inside the length it adds
//! up to, and without overflow; `Manifest::file` serves it only where that length is
//! the MP4's and its spans lie inside the segments file), planning the store reads
//! that serve a byte range ([`Mp4Layout::read`]) and turning a read's bytes into the
//! MP4's as they stream by ([`Cursor`]). No I/O: `public::split_body` does the reads.
//!
//! What it rests on, read from the writer (`dvrclip_fmp4::progressive::build`): the
//! MP4's body is the clip's chunks in order, each chunk's samples in their source
//! byte order (runs that touch in the source as one slice). So the body runs
//! forward through the segments file, about one span per chunk (its `mdat` body when
//! every sample is kept), and the gaps between spans are each chunk's `moof` and
//! `mdat` header, and an init at a discontinuity: a range of the body is ONE ranged
//! read of the segments file with the gap bytes dropped as they pass, not a read per
//! chunk. A gap of more than [`MAX_SKIP`] (or a span going backwards, or head bytes
//! between two spans) starts another read.
//!
//! Which stretch lies where is found by identity, not by parsing: each piece of the
//! MP4's body is a `Bytes` slice of a chunk's payload (the builder slices
//! `MediaSegment::bytes`, which the segments file writes as it is), so a piece whose
//! memory lies inside a segments-file piece's memory IS those bytes, at that offset.
//! A piece found nowhere goes in the head object. So the MP4 writer's piece table
//! needs no column naming each piece's chunk, and a clip's first-byte path is what
//! it was. The header is always in the head object, so the first bytes of the file
//! are one read.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};

/// Most bytes of the segments file a read passes over between two spans, rather
/// than ending and starting another read: a `moof` is a few KB, and a request to
/// S3 costs a round trip, worth about a megabyte of transfer.
pub const MAX_SKIP: u64 = 1 << 20;

/// A stretch of the MP4 stored in the segments file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u64; 3]", into = "[u64; 3]")]
pub struct Span {
    /// Its offset in the MP4.
    pub at: u64,
    /// Its offset in the segments file.
    pub from: u64,
    /// Bytes.
    pub len: u64,
}

impl From<[u64; 3]> for Span {
    fn from([at, from, len]: [u64; 3]) -> Span {
        Span { at, from, len }
    }
}

impl From<Span> for [u64; 3] {
    fn from(s: Span) -> [u64; 3] {
        [s.at, s.from, s.len]
    }
}

/// Where an archived MP4's bytes lie: the spans stored in the segments file, in MP4
/// order; every other byte, in order, is the head object's. Cheap to clone (the
/// spans are shared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredLayout", into = "StoredLayout")]
pub struct Mp4Layout {
    head_size: u64,
    spans: Arc<[Span]>,
    /// Bytes of the spans before each span; derived.
    before: Arc<[u64]>,
    /// The MP4's length; derived.
    len: u64,
    /// The furthest byte of the segments file a span names; derived.
    segments_end: u64,
}

/// [`Mp4Layout`] as the manifest stores it.
#[derive(Serialize, Deserialize)]
struct StoredLayout {
    /// Bytes of the head object.
    head_size: u64,
    /// `[at, from, len]` each.
    spans: Vec<Span>,
}

/// Why a stored layout is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Span `index` is empty, overlaps the one before or overflows.
    #[error("MP4 layout: span {index} is empty, out of order or too large")]
    Span {
        /// Its index.
        index: usize,
    },
    /// The head and spans add up to more than a file can be.
    #[error("MP4 layout: its length overflows")]
    Length,
}

impl TryFrom<StoredLayout> for Mp4Layout {
    type Error = LayoutError;

    fn try_from(stored: StoredLayout) -> Result<Mp4Layout, LayoutError> {
        let mut before = Vec::with_capacity(stored.spans.len());
        let (mut in_spans, mut next_at, mut segments_end) = (0u64, 0u64, 0u64);
        for (index, s) in stored.spans.iter().enumerate() {
            let end = s.at.checked_add(s.len);
            let from_end = s.from.checked_add(s.len);
            let (Some(end), Some(from_end)) = (end, from_end) else {
                return Err(LayoutError::Span { index });
            };
            if s.len == 0 || s.at < next_at {
                return Err(LayoutError::Span { index });
            }
            before.push(in_spans);
            in_spans += s.len;
            next_at = end;
            segments_end = segments_end.max(from_end);
        }
        let len = in_spans
            .checked_add(stored.head_size)
            .ok_or(LayoutError::Length)?;
        // The last span ends inside the file: the head fills every gap.
        if next_at > len {
            return Err(LayoutError::Length);
        }
        Ok(Mp4Layout {
            head_size: stored.head_size,
            spans: stored.spans.into(),
            before: before.into(),
            len,
            segments_end,
        })
    }
}

impl From<Mp4Layout> for StoredLayout {
    fn from(l: Mp4Layout) -> StoredLayout {
        StoredLayout {
            head_size: l.head_size,
            spans: l.spans.to_vec(),
        }
    }
}

/// Which object a stretch of the MP4 lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The head object.
    Head,
    /// The rendition's segments file.
    Segments,
}

/// A run of the MP4 stored contiguously in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stretch {
    source: Source,
    /// Where the byte asked for lies in `source`.
    offset: u64,
    /// The MP4 offset where the run ends.
    end: u64,
}

/// One ranged read of a stored object: its bytes `range` hold the MP4's bytes `mp4`
/// (all of them, with gap bytes between to drop when it spans several spans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The object.
    pub source: Source,
    /// Its bytes to read.
    pub range: Range<u64>,
    /// The MP4's bytes they hold.
    pub mp4: Range<u64>,
}

impl Mp4Layout {
    /// The layout of an MP4 made of `mp4`'s pieces (in order; the first
    /// `header_len` bytes its header) whose body pieces are slices of the pieces of
    /// a segments file, `segments` (in order), and the pieces of its head object:
    /// every piece of `mp4` that is not found in `segments`' memory, the header's
    /// always. O((pieces + segments pieces) · log(segments pieces)).
    pub fn of(
        header_len: u64,
        mp4: impl IntoIterator<Item = Bytes>,
        segments: &[Bytes],
    ) -> (Mp4Layout, Vec<Bytes>) {
        // Each segments-file piece by where its bytes lie in memory: (address,
        // length, offset in the file).
        let mut places = Vec::with_capacity(segments.len());
        let mut offset = 0u64;
        for p in segments {
            if !p.is_empty() {
                places.push((p.as_ptr().addr(), p.len(), offset));
            }
            offset += p.len() as u64;
        }
        places.sort_unstable_by_key(|p| p.0);
        let mut spans: Vec<Span> = Vec::new();
        let mut head = Vec::new();
        let (mut head_size, mut at) = (0u64, 0u64);
        for piece in mp4 {
            let len = piece.len() as u64;
            if len == 0 {
                continue;
            }
            match (at >= header_len).then(|| find(&places, &piece)).flatten() {
                Some(from) => match spans.last_mut() {
                    Some(s) if s.at + s.len == at && s.from + s.len == from => s.len += len,
                    _ => spans.push(Span { at, from, len }),
                },
                None => {
                    head_size += len;
                    head.push(piece);
                }
            }
            at += len;
        }
        let mut before = Vec::with_capacity(spans.len());
        let (mut in_spans, mut segments_end) = (0, 0);
        for s in &spans {
            before.push(in_spans);
            in_spans += s.len;
            segments_end = segments_end.max(s.from + s.len);
        }
        let layout = Mp4Layout {
            head_size,
            spans: spans.into(),
            before: before.into(),
            len: at,
            segments_end,
        };
        (layout, head)
    }

    /// The MP4's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the MP4 has no byte (never, for a layout of a built file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the head object.
    pub fn head_size(&self) -> u64 {
        self.head_size
    }

    /// The stretches stored in the segments file, in MP4 order.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The furthest byte of the segments file the layout names: a layout is used
    /// only when this is inside the file.
    pub fn segments_end(&self) -> u64 {
        self.segments_end
    }

    /// Where MP4 byte `pos` (inside the file) lies, and where its run ends.
    fn stretch(&self, pos: u64) -> Stretch {
        let i = self.spans.partition_point(|s| s.at + s.len <= pos);
        match self.spans.get(i) {
            Some(s) if s.at <= pos => Stretch {
                source: Source::Segments,
                offset: s.from + (pos - s.at),
                end: s.at + s.len,
            },
            next => Stretch {
                source: Source::Head,
                offset: pos
                    - self
                        .before
                        .get(i)
                        .copied()
                        .unwrap_or(self.len - self.head_size),
                end: next.map_or(self.len, |s| s.at),
            },
        }
    }

    /// The first read serving the MP4's bytes from `pos` to at most `end`: a read
    /// of the head object up to the next span, or of the segments file across the
    /// spans that follow each other in the MP4 and run forward in the file with at
    /// most [`MAX_SKIP`] bytes between them. `None` unless `pos < end <= len`.
    pub fn read(&self, pos: u64, end: u64) -> Option<Read> {
        if pos >= end || end > self.len {
            return None;
        }
        let first = self.stretch(pos);
        if first.source == Source::Head {
            let stop = first.end.min(end);
            return Some(Read {
                source: Source::Head,
                range: first.offset..first.offset + (stop - pos),
                mp4: pos..stop,
            });
        }
        let mut j = self.spans.partition_point(|s| s.at + s.len <= pos);
        while let (Some(cur), Some(next)) = (self.spans.get(j), self.spans.get(j + 1)) {
            let cur_end = cur.from + cur.len;
            let follows = next.at == cur.at + cur.len && next.at < end;
            if !follows || next.from < cur_end || next.from - cur_end > MAX_SKIP {
                break;
            }
            j += 1;
        }
        let last = self.spans[j];
        let stop = end.min(last.at + last.len);
        Some(Read {
            source: Source::Segments,
            range: first.offset..last.from + (stop - last.at),
            mp4: pos..stop,
        })
    }
}

/// The segments-file offset of `piece`'s bytes, when they lie inside one of the
/// pieces `places` lists by address.
fn find(places: &[(usize, usize, u64)], piece: &Bytes) -> Option<u64> {
    let addr = piece.as_ptr().addr();
    let i = places.partition_point(|p| p.0 <= addr).checked_sub(1)?;
    let (start, len, offset) = places[i];
    (addr + piece.len() <= start + len).then(|| offset + (addr - start) as u64)
}

/// The bytes of a [`Read`] as they arrive, turned into the MP4's: gap bytes
/// dropped, the rest handed on as `Bytes` slices of what arrived (no copy).
#[derive(Debug)]
pub struct Cursor {
    read: Read,
    /// The MP4 offset of the next byte to hand on.
    pos: u64,
    /// The object offset of the next byte to arrive.
    at: u64,
}

/// A read's bytes went past the byte the layout wants next: the read was not one
/// [`Mp4Layout::read`] planned on this layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archived MP4: a read at byte {at} of its object passed MP4 byte {pos}")]
pub struct Misplaced {
    /// The object offset reached.
    pub at: u64,
    /// The MP4 byte wanted.
    pub pos: u64,
}

impl Cursor {
    /// A cursor at the start of `read`.
    pub fn new(read: Read) -> Cursor {
        Cursor {
            pos: read.mp4.start,
            at: read.range.start,
            read,
        }
    }

    /// Whether every MP4 byte of the read was handed on.
    pub fn is_done(&self) -> bool {
        self.pos >= self.read.mp4.end
    }

    /// The MP4 offset of the next byte to hand on.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The next MP4 bytes in `arrived` (the read's next bytes, consumed as far as
    /// used), `Ok(None)` once `arrived` is spent or the read is done.
    pub fn take(
        &mut self,
        layout: &Mp4Layout,
        arrived: &mut Bytes,
    ) -> Result<Option<Bytes>, Misplaced> {
        while !self.is_done() && !arrived.is_empty() {
            let s = layout.stretch(self.pos);
            if s.source != self.read.source || s.offset < self.at {
                return Err(Misplaced {
                    at: self.at,
                    pos: self.pos,
                });
            }
            let skip = (s.offset - self.at).min(arrived.len() as u64);
            if skip > 0 {
                arrived.advance(skip as usize);
                self.at += skip;
                continue;
            }
            let n = (arrived.len() as u64)
                .min(s.end - self.pos)
                .min(self.read.mp4.end - self.pos);
            self.pos += n;
            self.at += n;
            return Ok(Some(arrived.split_to(n as usize)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An MP4 made of a header, slices of a segments file's pieces in file order
    /// (with gaps), and pieces of its own between them; what it is, whole.
    struct Fixture {
        header_len: u64,
        mp4_pieces: Vec<Bytes>,
        segments: Vec<Bytes>,
        mp4: Vec<u8>,
        /// Bytes of its own (the header's among them).
        own: u64,
    }

    /// A chunk's length, the stretches of it the body keeps (as `(skip, keep)`
    /// pairs) and whether a piece of the MP4's own comes first.
    type ChunkPlan = (usize, Vec<(usize, usize)>, bool);

    fn fixture(header: usize, chunks: &[ChunkPlan]) -> Fixture {
        let byte = |i: usize| (i * 31 % 251) as u8;
        let mut n = 0;
        let mut fresh = |len: usize| {
            let b: Vec<u8> = (n..n + len).map(byte).collect();
            n += len;
            Bytes::from(b)
        };
        let header_bytes = fresh(header);
        let mut mp4_pieces = vec![
            header_bytes.slice(..header / 2),
            header_bytes.slice(header / 2..),
        ];
        let mut segments = vec![fresh(40)];
        let mut own = header as u64;
        for (len, keep, prefix) in chunks {
            let chunk = fresh(*len);
            if *prefix {
                let p = fresh(7);
                own += 7;
                mp4_pieces.push(p);
            }
            let mut at = 0;
            for &(skip, take) in keep {
                let start = (at + skip).min(*len);
                let end = (start + take).min(*len);
                if end > start {
                    mp4_pieces.push(chunk.slice(start..end));
                }
                at = end;
            }
            segments.push(chunk);
        }
        let mp4 = mp4_pieces.concat();
        Fixture {
            header_len: header as u64,
            mp4_pieces,
            segments,
            mp4,
            own,
        }
    }

    /// Serves `range` of the MP4 from the two objects as the body does: read after
    /// read, each read's bytes arriving in pieces of `step`; the reads made.
    fn serve(
        layout: &Mp4Layout,
        head: &[u8],
        segments: &[u8],
        range: Range<u64>,
        step: usize,
    ) -> (Vec<u8>, Vec<Read>) {
        let mut out = Vec::new();
        let mut reads = Vec::new();
        let mut pos = range.start;
        while let Some(read) = layout.read(pos, range.end) {
            reads.push(read.clone());
            let object = match read.source {
                Source::Head => head,
                Source::Segments => segments,
            };
            let bytes = &object[read.range.start as usize..read.range.end as usize];
            let mut cursor = Cursor::new(read);
            for piece in bytes.chunks(step.max(1)) {
                let mut arrived = Bytes::copy_from_slice(piece);
                while let Some(b) = cursor.take(layout, &mut arrived).unwrap() {
                    out.extend_from_slice(&b);
                }
            }
            assert!(cursor.is_done());
            pos = cursor.pos();
        }
        assert_eq!(pos, range.end.max(range.start));
        (out, reads)
    }

    fn split(f: &Fixture) -> (Mp4Layout, Vec<u8>, Vec<u8>) {
        let (layout, head) = Mp4Layout::of(f.header_len, f.mp4_pieces.clone(), &f.segments);
        (layout, head.concat(), f.segments.concat())
    }

    #[test]
    fn the_body_is_ranges_of_the_segments_file() {
        let f = fixture(
            100,
            &[
                (50, vec![(10, 40)], false),
                (60, vec![(12, 48)], false),
                (30, vec![(5, 10), (3, 12)], true),
            ],
        );
        let (layout, head, segments) = split(&f);
        assert_eq!(
            (layout.len(), layout.head_size()),
            (f.mp4.len() as u64, f.own)
        );
        assert_eq!(head.len() as u64, f.own);
        // The header, then one span per stretch kept; the own piece in the head.
        let spans: Vec<[u64; 3]> = layout.spans().iter().map(|&s| s.into()).collect();
        assert_eq!(
            spans,
            [
                [100, 50, 40],
                [140, 102, 48],
                [195, 155, 10],
                [205, 168, 12]
            ]
        );
        let all = 0..layout.len();
        let (bytes, reads) = serve(&layout, &head, &segments, all, 13);
        assert_eq!(bytes, f.mp4);
        // The header; the first two chunks in one read; the own piece; the last
        // chunk's two stretches in one read.
        let sources: Vec<_> = reads.iter().map(|r| (r.source, r.range.clone())).collect();
        assert_eq!(
            sources,
            [
                (Source::Head, 0..100),
                (Source::Segments, 50..150),
                (Source::Head, 100..107),
                (Source::Segments, 155..180),
            ]
        );
        // A stored layout reads back the same; a hostile one is refused.
        let text = serde_json::to_string(&layout).unwrap();
        assert!(text.contains("[100,50,40]"), "{text}");
        assert_eq!(serde_json::from_str::<Mp4Layout>(&text).unwrap(), layout);
        for bad in [
            r#"{"head_size":10,"spans":[[5,0,0]]}"#,
            r#"{"head_size":10,"spans":[[5,0,4],[8,0,4]]}"#,
            r#"{"head_size":0,"spans":[[5,0,4]]}"#,
            r#"{"head_size":10,"spans":[[5,18446744073709551615,4]]}"#,
            r#"{"head_size":18446744073709551615,"spans":[[0,0,4]]}"#,
        ] {
            assert!(serde_json::from_str::<Mp4Layout>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_long_gap_starts_another_read() {
        let gap = MAX_SKIP as usize + 1;
        let f = fixture(
            10,
            &[(20, vec![(0, 20)], false), (gap + 5, vec![(gap, 5)], false)],
        );
        let (layout, head, segments) = split(&f);
        let (bytes, reads) = serve(&layout, &head, &segments, 0..layout.len(), 4096);
        assert_eq!(bytes, f.mp4);
        assert_eq!(reads.len(), 3, "{reads:?}");
    }

    #[test]
    fn pieces_not_in_the_segments_file_are_the_heads() {
        // A body piece of other memory (a copy of a chunk's bytes) goes in the head.
        let f = fixture(10, &[(20, vec![(0, 20)], false)]);
        let mut pieces = f.mp4_pieces.clone();
        let copy = Bytes::copy_from_slice(&pieces[2]);
        pieces[2] = copy;
        let (layout, head) = Mp4Layout::of(10, pieces, &f.segments);
        assert!(layout.spans().is_empty());
        assert_eq!(head.concat(), f.mp4);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any byte range of the MP4, served from the head object and reads of the
        /// segments file, is that range of the MP4, however the reads' bytes arrive;
        /// each read stays inside its object, and (every gap here being short) no
        /// two reads in a row are of the same object.
        #[test]
        fn any_range_is_the_mp4s_bytes(
            header in 1usize..200,
            chunks in proptest::collection::vec(
                (
                    1usize..300,
                    proptest::collection::vec((0usize..40, 0usize..120), 1..4),
                    proptest::bool::weighted(0.2),
                ),
                1..12,
            ),
            a in 0u64..4000,
            b in 0u64..4000,
            step in 1usize..200,
        ) {
            let f = fixture(header, &chunks);
            let (layout, head, segments) = split(&f);
            prop_assert_eq!(layout.len(), f.mp4.len() as u64);
            prop_assert_eq!(layout.head_size(), f.own);
            prop_assert!(layout.segments_end() <= segments.len() as u64);
            let len = layout.len();
            let (a, b) = (a % len, b % len);
            let r = a.min(b)..a.max(b) + 1;
            let (bytes, reads) = serve(&layout, &head, &segments, r.clone(), step);
            prop_assert_eq!(&bytes[..], &f.mp4[r.start as usize..r.end as usize]);
            for read in &reads {
                let size = match read.source {
                    Source::Head => head.len(),
                    Source::Segments => segments.len(),
                } as u64;
                prop_assert!(read.range.start < read.range.end && read.range.end <= size);
            }
            for pair in reads.windows(2) {
                prop_assert!(pair[0].source != pair[1].source, "{:?}", reads);
            }
            let text = serde_json::to_string(&layout).unwrap();
            prop_assert_eq!(serde_json::from_str::<Mp4Layout>(&text).unwrap(), layout);
        }
    }
}

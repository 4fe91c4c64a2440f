//! Sample-table rows kept as encoded bytes: the pieces a clip's header is made of.
//!
//! Owns the shapes the big tables of a progressive header take between ingest and
//! the wire: [`SegmentRuns`], one segment's run-length rows (`stts` §8.6.1.2, `ctts`
//! §8.6.1.3) encoded once into big-endian bytes, and the per-clip tables
//! ([`RunTable`], [`SizeTable`] for `stsz` §8.7.3, [`SyncTable`] for `stss` §8.6.2)
//! that hold either such shared bytes or rows of their own (samples walked one by
//! one at a seam). A clip's header is then box headers, counts and these pieces,
//! the shared bytes written by reference, never copied.
//!
//! Why a segment keeps its first run and its last two as numbers, not bytes: runs
//! continue across segment boundaries (4 h of constant-duration video is ONE `stts`
//! entry), and the last sample before a seam may get another duration. With the
//! edges as numbers a table merges and splits exactly where a sample-by-sample
//! table would (a segment's inner runs are maximal, so they never merge with a
//! neighbour), and the file is the same bytes. Knows nothing of boxes or timelines.

use bytes::Bytes;

use super::BuildError;

/// A value of a run-length table row: a duration (`u32`) or a composition offset
/// (`i32`), written as 4 big-endian bytes.
pub(super) trait RowValue: Copy + PartialEq {
    /// Its 4 bytes in a table row.
    fn to_be(self) -> [u8; 4];
    /// Whether it is 0.
    fn is_zero(self) -> bool;
    /// Whether it is below 0.
    fn is_negative(self) -> bool;
}

impl RowValue for u32 {
    fn to_be(self) -> [u8; 4] {
        self.to_be_bytes()
    }
    fn is_zero(self) -> bool {
        self == 0
    }
    fn is_negative(self) -> bool {
        false
    }
}

impl RowValue for i32 {
    fn to_be(self) -> [u8; 4] {
        self.to_be_bytes()
    }
    fn is_zero(self) -> bool {
        self == 0
    }
    fn is_negative(self) -> bool {
        self < 0
    }
}

/// One segment's maximal runs `(count, value)`: the first and the last two as
/// numbers, the ones between as encoded rows (8 bytes each).
#[derive(Debug, Clone)]
pub(super) struct SegmentRuns<T> {
    first: Option<(u32, T)>,
    middle: Bytes,
    middle_rows: u32,
    middle_nonzero: bool,
    middle_negative: bool,
    last: [Option<(u32, T)>; 2],
}

impl<T: RowValue> SegmentRuns<T> {
    /// Encodes `runs`, which must be maximal (no two neighbours with one value).
    pub(super) fn new(runs: &[(u32, T)]) -> Self {
        let n = runs.len();
        let inner = if n >= 4 { &runs[1..n - 2] } else { &[][..] };
        let mut middle = Vec::with_capacity(inner.len() * 8);
        for &(count, v) in inner {
            middle.extend_from_slice(&count.to_be_bytes());
            middle.extend_from_slice(&v.to_be());
        }
        // After the first: the last two runs, or whatever follows the first.
        let tail = runs.get(n.saturating_sub(2).max(1)..).unwrap_or_default();
        let mut last = [None, None];
        for (slot, &run) in last.iter_mut().zip(tail) {
            *slot = Some(run);
        }
        SegmentRuns {
            first: runs.first().copied(),
            middle: Bytes::from(middle),
            middle_rows: inner.len() as u32,
            middle_nonzero: inner.iter().any(|r| !r.1.is_zero()),
            middle_negative: inner.iter().any(|r| r.1.is_negative()),
            last,
        }
    }

    /// Heap bytes held.
    pub(super) fn memory_bytes(&self) -> usize {
        self.middle.len()
    }
}

/// A row of a [`RunTable`] as the writer sees it.
pub(super) enum RunRow<'a, T> {
    /// One row of the table's own.
    Run(u32, T),
    /// Encoded rows shared with a chunk.
    Encoded(&'a Bytes),
}

#[derive(Debug)]
enum RunItem<T> {
    Run(u32, T),
    Encoded(Bytes),
}

/// A clip track's run-length table (`stts` or `ctts`): runs of its own and
/// segments' encoded rows, neighbours of one value always merged.
#[derive(Debug)]
pub(super) struct RunTable<T> {
    items: Vec<RunItem<T>>,
    rows: u32,
    nonzero: bool,
    negative: bool,
}

impl<T: RowValue> RunTable<T> {
    pub(super) fn new() -> Self {
        RunTable {
            items: Vec::new(),
            rows: 0,
            nonzero: false,
            negative: false,
        }
    }

    /// Makes room for `items` runs or encoded stretches.
    pub(super) fn reserve(&mut self, items: usize) {
        self.items.reserve(items);
    }

    /// Appends `count` samples of value `v`, joining the last run if it has `v`.
    pub(super) fn push(&mut self, count: u32, v: T) {
        self.nonzero |= !v.is_zero();
        self.negative |= v.is_negative();
        if let Some(RunItem::Run(n, last)) = self.items.last_mut()
            && *last == v
        {
            *n += count;
            return;
        }
        self.items.push(RunItem::Run(count, v));
        self.rows += 1;
    }

    /// Appends a segment's runs: its encoded rows are shared, not copied.
    pub(super) fn append(&mut self, s: &SegmentRuns<T>) {
        if let Some((n, v)) = s.first {
            self.push(n, v);
        }
        if s.middle_rows > 0 {
            self.items.push(RunItem::Encoded(s.middle.clone()));
            self.rows += s.middle_rows;
            self.nonzero |= s.middle_nonzero;
            self.negative |= s.middle_negative;
        }
        for &(n, v) in s.last.iter().flatten() {
            self.push(n, v);
        }
    }

    /// The last run (always one of the table's own: a segment ends with numbers).
    pub(super) fn last(&self) -> Option<(u32, T)> {
        match self.items.last() {
            Some(RunItem::Run(n, v)) => Some((*n, *v)),
            _ => None,
        }
    }

    /// Gives the last sample the value `v`, splitting or merging runs as a
    /// sample-by-sample table would. Returns the value it had.
    pub(super) fn set_last_sample(&mut self, v: T) -> Option<T> {
        let Some(RunItem::Run(n, old)) = self.items.last_mut() else {
            return None;
        };
        let was = *old;
        if was == v {
            return Some(was);
        }
        if *n == 1 {
            self.items.pop();
            self.rows -= 1;
        } else {
            *n -= 1;
        }
        self.push(1, v);
        Some(was)
    }

    /// Entries the table's box counts.
    pub(super) fn rows(&self) -> u32 {
        self.rows
    }

    /// Whether any value pushed was not 0 (`ctts` is left out otherwise).
    pub(super) fn any_nonzero(&self) -> bool {
        self.nonzero
    }

    /// Whether any value pushed was negative (`ctts` version 1).
    pub(super) fn any_negative(&self) -> bool {
        self.negative
    }

    /// Runs of the table's own, for sizing the header buffer.
    pub(super) fn own_rows(&self) -> usize {
        self.items.len()
    }

    /// The runs of its own, in order (a test's view).
    #[cfg(test)]
    pub(super) fn own_runs(&self) -> Vec<(u32, T)> {
        self.pieces()
            .filter_map(|p| match p {
                RunRow::Run(n, v) => Some((n, v)),
                RunRow::Encoded(_) => None,
            })
            .collect()
    }

    /// The rows in order.
    pub(super) fn pieces(&self) -> impl Iterator<Item = RunRow<'_, T>> {
        self.items.iter().map(|i| match i {
            RunItem::Run(n, v) => RunRow::Run(*n, *v),
            RunItem::Encoded(b) => RunRow::Encoded(b),
        })
    }
}

/// A stretch of a [`SizeTable`] as the writer sees it.
pub(super) enum SizeRows<'a> {
    /// Sizes of the table's own.
    Own(&'a [u32]),
    /// A segment's sizes, encoded once (4 big-endian bytes each).
    Encoded(&'a Bytes),
}

#[derive(Debug)]
enum SizeItem {
    Own(Vec<u32>),
    Encoded { rows: Bytes, uniform: Option<u32> },
}

/// A clip track's sample sizes: segments' encoded rows and sizes of its own.
#[derive(Debug, Default)]
pub(super) struct SizeTable {
    items: Vec<SizeItem>,
    len: usize,
    /// Capacity for the first stretch of its own (a hint from the builder).
    hint: usize,
}

impl SizeTable {
    /// Makes the first stretch of sizes of its own hold `samples` without growing.
    pub(super) fn reserve(&mut self, samples: usize) {
        self.hint = samples;
    }

    /// Makes room for `segments` stretches of encoded rows.
    pub(super) fn reserve_segments(&mut self, segments: usize) {
        self.items.reserve(segments);
    }

    /// Samples held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends one size of its own.
    pub(super) fn push(&mut self, size: u32) {
        self.len += 1;
        if let Some(SizeItem::Own(v)) = self.items.last_mut() {
            v.push(size);
            return;
        }
        let mut v = Vec::with_capacity(std::mem::take(&mut self.hint).max(64));
        v.push(size);
        self.items.push(SizeItem::Own(v));
    }

    /// Appends a segment's `count` encoded sizes; `uniform` is their one size if
    /// they share it.
    pub(super) fn append(&mut self, rows: &Bytes, count: usize, uniform: Option<u32>) {
        self.len += count;
        self.items.push(SizeItem::Encoded {
            rows: rows.clone(),
            uniform,
        });
    }

    /// Adds `extra` bytes to the sample `back` places from the end, which must be
    /// one of the table's own (pushed, not appended). Returns whether it was.
    pub(super) fn grow_from_end(&mut self, back: usize, extra: usize) -> Result<bool, BuildError> {
        let Some(SizeItem::Own(v)) = self.items.last_mut() else {
            return Ok(false);
        };
        let Some(size) = v.len().checked_sub(back).and_then(|i| v.get_mut(i)) else {
            return Ok(false);
        };
        *size = u32::try_from(extra)
            .ok()
            .and_then(|e| size.checked_add(e))
            .ok_or(BuildError::TooLarge("sample size"))?;
        Ok(true)
    }

    /// The one size every sample has, unless some differ or it is 0 (`stsz` then
    /// lists them all).
    pub(super) fn uniform(&self) -> Option<u32> {
        let mut common: Option<u32> = None;
        let mut same = |s: u32| match common {
            None => {
                common = Some(s);
                true
            }
            Some(c) => c == s,
        };
        for item in &self.items {
            let all = match item {
                SizeItem::Own(v) => v.iter().all(|&s| same(s)),
                SizeItem::Encoded { uniform, .. } => uniform.is_some_and(&mut same),
            };
            if !all {
                return None;
            }
        }
        common.filter(|&c| c != 0)
    }

    /// Stretches of sizes, its own or encoded, for sizing the header's piece table.
    pub(super) fn stretches(&self) -> usize {
        self.items.len()
    }

    /// Sizes of its own, for sizing the header buffer.
    pub(super) fn own_len(&self) -> usize {
        self.items
            .iter()
            .map(|i| match i {
                SizeItem::Own(v) => v.len(),
                SizeItem::Encoded { .. } => 0,
            })
            .sum()
    }

    /// The sizes in order.
    pub(super) fn pieces(&self) -> impl Iterator<Item = SizeRows<'_>> {
        self.items.iter().map(|i| match i {
            SizeItem::Own(v) => SizeRows::Own(v),
            SizeItem::Encoded { rows, .. } => SizeRows::Encoded(rows),
        })
    }
}

/// A clip track's sync sample numbers (1-based) as runs of consecutive numbers
/// `(first, count)`: an all-sync audio track is one run, not a row per sample.
#[derive(Debug, Clone, Default)]
pub(super) struct SyncTable {
    runs: Vec<(u32, u32)>,
    len: u32,
}

impl SyncTable {
    /// Makes room for `runs` runs.
    pub(super) fn reserve(&mut self, runs: usize) {
        self.runs.reserve(runs);
    }

    /// Adds sample number `n`, above every number held.
    pub(super) fn push(&mut self, n: u32) {
        self.push_run(n, 1);
    }

    /// Adds the numbers of `segment` (numbered within a segment) shifted by `before`.
    pub(super) fn append(&mut self, before: u32, segment: &SegmentSync) {
        for &(first, count) in segment.first.iter().chain(&segment.rest) {
            self.push_run(before + first, count);
        }
    }

    fn push_run(&mut self, first: u32, count: u32) {
        self.len += count;
        if let Some((f, c)) = self.runs.last_mut()
            && *f + *c == first
        {
            *c += count;
            return;
        }
        self.runs.push((first, count));
    }

    /// Sync samples held.
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// Whether sample number `n` is a sync sample.
    pub(super) fn contains(&self, n: u32) -> bool {
        let i = self.runs.partition_point(|&(f, _)| f <= n);
        i > 0 && n - self.runs[i - 1].0 < self.runs[i - 1].1
    }

    /// Every sync sample number, in order.
    pub(super) fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|&(f, c)| f..f + c)
    }
}

/// One segment's sync sample numbers (1-based, within the segment) as runs, the
/// first kept inline: most segments have one (a keyframe, or every audio sample),
/// and a clip's header then reads no other memory to take it.
#[derive(Debug, Clone, Default)]
pub(super) struct SegmentSync {
    first: Option<(u32, u32)>,
    rest: Vec<(u32, u32)>,
}

impl SegmentSync {
    /// Adds sample number `n`, above every number held.
    pub(super) fn push(&mut self, n: u32) {
        let last = self.rest.last_mut().or(self.first.as_mut());
        match last {
            Some((f, c)) if *f + *c == n => *c += 1,
            Some(_) => self.rest.push((n, 1)),
            None => self.first = Some((n, 1)),
        }
    }

    /// Heap bytes held.
    pub(super) fn memory_bytes(&self) -> usize {
        self.rest.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand<T: RowValue>(t: &RunTable<T>) -> Vec<[u8; 8]> {
        let mut out = Vec::new();
        for p in t.pieces() {
            match p {
                RunRow::Run(n, v) => {
                    let mut r = [0; 8];
                    r[..4].copy_from_slice(&n.to_be_bytes());
                    r[4..].copy_from_slice(&v.to_be());
                    out.push(r);
                }
                RunRow::Encoded(b) => {
                    out.extend(b.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).unwrap()))
                }
            }
        }
        out
    }

    fn rows(runs: &[(u32, u32)]) -> Vec<[u8; 8]> {
        let mut t = RunTable::new();
        for &(n, v) in runs {
            t.push(n, v);
        }
        expand(&t)
    }

    /// Segments appended whole give the rows of the same samples pushed one by one,
    /// merging across segment edges and splitting at a changed last sample.
    #[test]
    fn segments_merge_and_split_like_samples() {
        let segs: [&[(u32, u32)]; 4] = [
            &[(1, 7), (3, 5), (2, 9), (1, 5), (4, 7)],
            &[(2, 7)],
            &[(1, 3), (1, 7)],
            &[(5, 7), (1, 2), (1, 7), (2, 1), (1, 9)],
        ];
        let mut pieced = RunTable::new();
        let mut walked = RunTable::new();
        for s in segs {
            pieced.append(&SegmentRuns::new(s));
            for &(n, v) in s {
                for _ in 0..n {
                    walked.push(1, v);
                }
            }
        }
        assert_eq!(expand(&pieced), expand(&walked));
        assert_eq!(pieced.rows(), walked.rows());
        assert_eq!(pieced.rows() as usize, expand(&pieced).len());
        // The last sample (9) becomes 1, then 2: the last run merges, then splits.
        for v in [1, 2, 9] {
            assert_eq!(pieced.set_last_sample(v), walked.set_last_sample(v));
            assert_eq!(expand(&pieced), expand(&walked));
            assert_eq!(pieced.rows() as usize, expand(&pieced).len());
        }
        assert_eq!(
            rows(&[(3, 4), (1, 4), (2, 1)]),
            rows(&[(4, 4), (2, 1)]),
            "neighbours of one value merge"
        );
    }

    #[test]
    fn sync_runs_answer_membership() {
        let segment = |numbers: &[u32]| {
            let mut t = SegmentSync::default();
            numbers.iter().for_each(|&n| t.push(n));
            t
        };
        let mut s = SyncTable::default();
        s.append(0, &segment(&[1, 2, 3, 7]));
        s.push(8);
        s.append(8, &segment(&[1, 5, 6]));
        assert_eq!(s.numbers().collect::<Vec<_>>(), [1, 2, 3, 7, 8, 9, 13, 14]);
        assert_eq!(s.len(), 8);
        for n in 0..20 {
            assert_eq!(
                s.contains(n),
                [1, 2, 3, 7, 8, 9, 13, 14].contains(&n),
                "{n}"
            );
        }
    }

    #[test]
    fn sizes_are_uniform_only_when_all_agree() {
        let mut t = SizeTable::default();
        t.append(&Bytes::from_static(&[0, 0, 0, 5]), 1, Some(5));
        t.push(5);
        assert_eq!(t.uniform(), Some(5));
        assert_eq!(t.grow_from_end(1, 2), Ok(true));
        assert_eq!(t.uniform(), None);
        assert_eq!(t.len(), 2);
        let mut z = SizeTable::default();
        z.push(0);
        assert_eq!(z.uniform(), None, "a size of 0 is listed");
    }
}

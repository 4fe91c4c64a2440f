//! Reading a byte range of a [`VirtualMp4`] as `Bytes` pieces.
//!
//! Owns only the lookup: a binary search over the pieces' end offsets finds the
//! first piece (O(log n)), then each later piece is yielded whole or cut at the
//! range's end; a piece that is a block's `mdat` slices yields them one by one (a
//! binary search over its slices' ends to enter it). `Bytes::slice` shares the
//! segment's buffer, so nothing is copied.

use std::ops::{Deref, Range};

use bytes::Bytes;

use super::{PieceData, RangeError, VirtualMp4};

/// An iterator over the pieces of one byte range of a [`VirtualMp4`].
#[derive(Debug)]
pub struct Pieces<D> {
    file: D,
    /// Index of the piece holding `pos`.
    index: usize,
    pos: u64,
    end: u64,
}

impl<D: Deref<Target = VirtualMp4>> Pieces<D> {
    pub(super) fn new(file: D, range: Range<u64>) -> Result<Self, RangeError> {
        if range.start > range.end || range.end > file.len {
            return Err(RangeError {
                start: range.start,
                end: range.end,
                len: file.len,
            });
        }
        let index = file.pieces.partition_point(|p| p.end <= range.start);
        Ok(Pieces {
            file,
            index,
            pos: range.start,
            end: range.end,
        })
    }

    /// Bytes still to be yielded.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Whether the next piece yielded lies in the header (`ftyp`, `moov`, the `mdat`
    /// header), whose pieces are small: a body may gather them into one frame.
    pub fn in_header(&self) -> bool {
        self.pos < self.end && self.pos < self.file.header_len
    }
}

impl<D: Deref<Target = VirtualMp4>> Iterator for Pieces<D> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let piece = self.file.pieces.get(self.index)?;
        let piece_start = piece.end - piece.data.len();
        // `pos` lies inside the piece: it was found by the search or is the end of
        // what was yielded before.
        let (bytes, start) = match &piece.data {
            PieceData::One(b) => (b, piece_start),
            PieceData::Run(run) => {
                let at = self.pos - piece_start;
                let i = run.ends.partition_point(|&e| e <= at);
                let slice = run.slices.get(i)?;
                let end = run.ends.get(i)?;
                (slice, piece_start + end - slice.len() as u64)
            }
        };
        let stop = self.end.min(start + bytes.len() as u64);
        let data = bytes.slice((self.pos - start) as usize..(stop - start) as usize);
        self.pos = stop;
        if stop == piece.end {
            self.index += 1;
        }
        Some(data)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.pos >= self.end {
            (0, Some(0))
        } else {
            (1, None)
        }
    }
}

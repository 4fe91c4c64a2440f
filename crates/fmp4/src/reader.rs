//! The box layer: a bounds-checked walk over ISO-BMFF boxes in a byte slice
//! (ISO/IEC 14496-12 §4.2), and a field cursor over one box body.
//!
//! Owns box headers (32-bit size, `size == 1` with a 64-bit `largesize`, `size == 0`
//! meaning "to the end of the parent", `uuid` user types), the check that every box
//! fits inside its parent, the nesting cap, and the box path carried into every
//! [`Error`]. It knows no box semantics: `init` and `segment` own those.
//!
//! Positions are absolute offsets into the whole input, so a caller turns any range
//! into a zero-copy `Bytes::slice` and errors name the offset an operator can find in a
//! hex dump. Nothing here allocates.

use crate::error::{Error, ErrorKind};
use crate::model::FourCC;

/// Deepest box nesting accepted (ref/api.md "Operations"). Real init segments reach 8
/// (`moov/trak/mdia/minf/stbl/stsd/avc1/avcC`).
pub(crate) const MAX_DEPTH: usize = 16;

/// The types from the top level down to a box: what an [`Error`] prints as `path`.
/// A fixed array, so descending costs no allocation.
#[derive(Clone, Copy)]
pub(crate) struct Path {
    types: [FourCC; MAX_DEPTH],
    len: usize,
}

impl Path {
    /// Above the top-level boxes.
    pub(crate) const ROOT: Path = Path {
        types: [FourCC([0; 4]); MAX_DEPTH],
        len: 0,
    };

    fn child(&self, typ: FourCC, offset: usize) -> Result<Path, Error> {
        if self.len == MAX_DEPTH {
            return Err(self.error(offset, ErrorKind::TooDeep(MAX_DEPTH)));
        }
        let mut p = *self;
        p.types[p.len] = typ;
        p.len += 1;
        Ok(p)
    }

    /// An error located at `offset` inside the box this path names.
    pub(crate) fn error(&self, offset: usize, kind: ErrorKind) -> Error {
        let mut path = String::with_capacity(self.len * 5);
        for (i, t) in self.types[..self.len].iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(&t.to_string());
        }
        if path.is_empty() {
            path.push_str("(top level)");
        }
        Error {
            path,
            offset: offset as u64,
            kind,
        }
    }
}

/// One box: its type, where it starts, where its body starts and where it ends.
#[derive(Clone, Copy)]
pub(crate) struct BoxRef {
    /// Box type.
    pub(crate) typ: FourCC,
    /// Offset of the first header byte.
    pub(crate) start: usize,
    /// Offset of the first body byte (after size, type, largesize and usertype).
    pub(crate) body: usize,
    /// Offset just past the box.
    pub(crate) end: usize,
    /// Path including this box.
    pub(crate) path: Path,
}

impl BoxRef {
    /// An error about this box.
    pub(crate) fn error(&self, kind: ErrorKind) -> Error {
        self.path.error(self.start, kind)
    }

    /// A cursor over the body.
    pub(crate) fn cursor<'a>(&self, data: &'a [u8]) -> Cursor<'a> {
        Cursor {
            data,
            pos: self.body,
            end: self.end,
            at: *self,
        }
    }

    /// The boxes directly inside this one, starting `skip` bytes into the body (the
    /// fixed fields of a sample entry or of `stsd` come before its children).
    pub(crate) fn children<'a>(&self, data: &'a [u8], skip: usize) -> Boxes<'a> {
        let pos = self.body.saturating_add(skip).min(self.end);
        Boxes {
            data,
            pos,
            end: self.end,
            parent: self.path,
        }
    }

    /// The first child of type `typ`, if any.
    pub(crate) fn find(&self, data: &[u8], typ: &[u8; 4]) -> Result<Option<BoxRef>, Error> {
        for b in self.children(data, 0) {
            let b = b?;
            if b.typ.0 == *typ {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// The first child of type `typ`, or [`ErrorKind::Missing`].
    pub(crate) fn require(&self, data: &[u8], typ: &[u8; 4]) -> Result<BoxRef, Error> {
        self.find(data, typ)?
            .ok_or_else(|| self.error(ErrorKind::Missing(FourCC(*typ))))
    }
}

/// Iterates the boxes of one level, from `pos` to `end`. After an error it yields
/// nothing more: a bad size leaves no trustworthy place to resume.
pub(crate) struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    parent: Path,
}

impl<'a> Boxes<'a> {
    /// The top-level boxes of `data`.
    pub(crate) fn top(data: &'a [u8]) -> Self {
        Boxes {
            data,
            pos: 0,
            end: data.len(),
            parent: Path::ROOT,
        }
    }

    fn header(&self) -> Result<BoxRef, Error> {
        let start = self.pos;
        let left = self.end - start;
        let err = |kind| self.parent.error(start, kind);
        if left < 8 {
            return Err(err(ErrorKind::Truncated {
                needed: 8,
                available: left as u64,
            }));
        }
        let size32 = be_u32(self.data, start);
        let typ = FourCC([
            self.data[start + 4],
            self.data[start + 5],
            self.data[start + 6],
            self.data[start + 7],
        ]);
        let path = self.parent.child(typ, start)?;
        let err = |kind| path.error(start, kind);
        let mut header = 8usize;
        let size = match size32 {
            // §4.2: size 0 is "box extends to the end of the file", i.e. of its parent.
            0 => left as u64,
            1 => {
                if left < 16 {
                    return Err(err(ErrorKind::Truncated {
                        needed: 16,
                        available: left as u64,
                    }));
                }
                header = 16;
                be_u64(self.data, start + 8)
            }
            n => u64::from(n),
        };
        if typ.0 == *b"uuid" {
            header += 16;
        }
        if size < header as u64 || size > left as u64 {
            return Err(err(ErrorKind::BadSize(size)));
        }
        // `size <= left` and `left` is a usize, so neither cast nor sum can overflow.
        Ok(BoxRef {
            typ,
            start,
            body: start + header,
            end: start + size as usize,
            path,
        })
    }
}

impl Iterator for Boxes<'_> {
    type Item = Result<BoxRef, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        match self.header() {
            Ok(b) => {
                self.pos = b.end;
                Some(Ok(b))
            }
            Err(e) => {
                self.pos = self.end;
                Some(Err(e))
            }
        }
    }
}

/// Reads big-endian fields from one box body, refusing to read past the box end.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    at: BoxRef,
}

impl<'a> Cursor<'a> {
    /// An error about the box being read.
    pub(crate) fn error(&self, kind: ErrorKind) -> Error {
        self.at.error(kind)
    }

    /// Bytes left in the box.
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Fails unless `n` more bytes are present.
    pub(crate) fn need(&self, n: usize) -> Result<(), Error> {
        if n > self.remaining() {
            return Err(self.error(ErrorKind::Truncated {
                needed: n as u64,
                available: self.remaining() as u64,
            }));
        }
        Ok(())
    }

    /// The next `n` bytes as a slice.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.need(n)?;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Everything left in the box, as an absolute range.
    pub(crate) fn rest(&mut self) -> std::ops::Range<usize> {
        let r = self.pos..self.end;
        self.pos = self.end;
        r
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        self.need(4)?;
        let v = be_u32(self.data, self.pos);
        self.pos += 4;
        Ok(v)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Error> {
        self.u32().map(|v| v as i32)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.need(8)?;
        let v = be_u64(self.data, self.pos);
        self.pos += 8;
        Ok(v)
    }

    /// A `FullBox` header (§4.2.2): version and 24 bits of flags.
    pub(crate) fn version_flags(&mut self) -> Result<(u8, u32), Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// A field that is 32 bits in version 0 and 64 bits in version 1 (§4.2.2).
    pub(crate) fn u32_or_u64(&mut self, version: u8) -> Result<u64, Error> {
        if version == 0 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }

    /// A NUL-terminated string (the NUL is consumed, not returned). A string cut by
    /// the box end is refused: `emsg` requires the terminator.
    pub(crate) fn cstr(&mut self) -> Result<&'a [u8], Error> {
        let body = &self.data[self.pos..self.end];
        match body.iter().position(|&b| b == 0) {
            Some(n) => {
                self.pos += n + 1;
                Ok(&body[..n])
            }
            None => Err(self.error(ErrorKind::Invalid("string without NUL terminator"))),
        }
    }
}

/// Callers check bounds first; these only assemble bytes.
fn be_u32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn be_u64(d: &[u8], at: usize) -> u64 {
    (u64::from(be_u32(d, at)) << 32) | u64::from(be_u32(d, at + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(data: &[u8]) -> Vec<Result<(String, usize, usize, usize), Error>> {
        Boxes::top(data)
            .map(|b| b.map(|b| (b.typ.to_string(), b.start, b.body, b.end)))
            .collect()
    }

    #[test]
    fn sizes_32_64_and_to_end() {
        let mut d = vec![0, 0, 0, 12, b'f', b'r', b'e', b'e', 1, 2, 3, 4];
        d.extend_from_slice(&[
            0, 0, 0, 1, b's', b'k', b'i', b'p', 0, 0, 0, 0, 0, 0, 0, 17, 9,
        ]);
        d.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 7, 7]);
        let got: Vec<_> = boxes(&d).into_iter().map(|r| r.ok()).collect();
        assert_eq!(
            got,
            vec![
                Some(("free".into(), 0, 8, 12)),
                Some(("skip".into(), 12, 28, 29)),
                Some(("mdat".into(), 29, 37, 39)),
            ]
        );
    }

    #[test]
    fn size_past_parent_or_below_header_is_refused() {
        for d in [
            &[0, 0, 0, 9, b'f', b'r', b'e', b'e'][..],
            &[0, 0, 0, 7, b'f', b'r', b'e', b'e', 0],
            &[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 8],
            &[
                0, 0, 0, 1, b'f', b'r', b'e', b'e', 0xff, 0, 0, 0, 0, 0, 0, 16,
            ],
            &[0, 0, 0, 12, b'f', b'r'],
        ] {
            let r = boxes(d);
            assert_eq!(r.len(), 1);
            assert!(r[0].is_err(), "{d:?}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        // 17 boxes each holding the next: the 17th is one level too deep.
        let mut d = Vec::new();
        for i in 0..17u32 {
            d.extend_from_slice(&(8 * (17 - i)).to_be_bytes());
            d.extend_from_slice(b"moov");
        }
        fn walk(data: &[u8], b: BoxRef) -> Result<usize, Error> {
            let mut depth = 1;
            for c in b.children(data, 0) {
                depth = depth.max(1 + walk(data, c?)?);
            }
            Ok(depth)
        }
        let top = Boxes::top(&d).next().unwrap().unwrap();
        let err = walk(&d, top).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep(MAX_DEPTH));
        assert!(err.path.starts_with("moov/moov/"));
        assert_eq!(err.offset, 8 * 16);
    }
}

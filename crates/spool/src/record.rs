//! The journal's records and their framing: pure, no I/O, fed untrusted bytes (a
//! journal file someone else may have cut or scribbled on).
//!
//! A frame is `len: u32 LE | crc32c(body): u32 LE | body`, the body one JSON
//! [`Record`]. [`decode`] reads one frame from the front of a buffer: `Ok(None)`
//! when the buffer ends inside it (a torn tail), an error when it is not a frame
//! (a length past [`MAX_BODY`], a checksum or JSON that does not match). It never
//! allocates more than the body's bytes, which are bounded by the buffer's length.
//! JSON rather than a packed layout: a chunk's record is ~250 bytes against a
//! ~100 KiB payload, so readability wins (`jq` reads a journal after `dd`).

use serde::{Deserialize, Serialize};

/// Bytes of a frame's header.
pub const HEADER_BYTES: usize = 8;

/// Largest record body accepted: a clip of 4 h of 1 s chunks in 16 renditions, with
/// every chunk its own range, stays far below it.
pub const MAX_BODY: usize = 8 << 20;

/// What the journal records. Keys are the engine's: stream id, rendition name, seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A stream created or changed.
    Stream(StreamRec),
    /// A stream deleted.
    StreamGone {
        /// Its id.
        id: u64,
    },
    /// Counters that must outlive what they counted (written by compaction).
    Next {
        /// The next stream id.
        stream: u64,
    },
    /// A rendition's counters (written by compaction).
    Rendition {
        /// Stream id.
        stream: u64,
        /// Rendition name.
        rendition: String,
        /// Past every seq handed out.
        next_seq: u64,
        /// Past every discontinuity opened.
        next_disc: u64,
    },
    /// A rendition's new init, bytes inline (an init is a few hundred bytes).
    Init {
        /// Spool-wide init id.
        id: u64,
        /// Stream id.
        stream: u64,
        /// Rendition name.
        rendition: String,
        /// The `ftyp` + `moov` bytes.
        bytes: Vec<u8>,
    },
    /// A chunk entered a ring.
    Chunk(ChunkRec),
    /// A chunk was re-anchored.
    Moved {
        /// Stream id.
        stream: u64,
        /// Rendition name.
        rendition: String,
        /// Its seq.
        seq: u64,
        /// New wall-clock start, Unix µs.
        start_us: i64,
    },
    /// Chunks left a ring other than by its window.
    Left {
        /// Stream id.
        stream: u64,
        /// Rendition name.
        rendition: String,
        /// Their seqs.
        seqs: Vec<u64>,
    },
    /// A clip as of its last published view.
    Clip(ClipRec),
    /// A clip deleted or expired.
    ClipGone {
        /// Its id, 32 hex characters.
        id: String,
    },
}

/// A stream's settings and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct StreamRec {
    pub id: u64,
    pub name: String,
    pub active: bool,
    pub dvr_enabled: bool,
    pub dvr_duration_secs: u32,
    pub pull: bool,
    pub uri: Option<String>,
    pub created_us: i64,
    pub ingest_key: String,
    pub play_key: String,
}

/// A chunk: where it sits and which file holds its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ChunkRec {
    pub stream: u64,
    pub rendition: String,
    pub seq: u64,
    /// Payload file id (`chunks/{file:016x}.m4s`).
    pub file: u64,
    /// Payload length, bytes.
    pub len: u64,
    /// crc32c of the payload.
    pub crc: u32,
    /// Init id.
    pub init: u64,
    pub name: Option<String>,
    pub start_us: i64,
    pub disc: u64,
    pub arrival_us: i64,
    /// Only clips held it when the journal was compacted.
    #[serde(default)]
    pub held_only: bool,
}

/// A clip: its request, bounds and the seqs it holds per rendition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ClipRec {
    pub id: String,
    pub stream: u64,
    pub duration_secs: u64,
    pub start_unix_secs: Option<i64>,
    pub expiration_unix_secs: Option<i64>,
    pub vod_required: bool,
    pub precise: bool,
    pub start_us: i64,
    pub end_us: i64,
    pub expiration_us: i64,
    pub created_us: i64,
    pub video_id: Option<u64>,
    pub reference: usize,
    pub complete: bool,
    pub renditions: Vec<ClipRenditionRec>,
}

/// One rendition of a clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ClipRenditionRec {
    pub name: String,
    /// Init id of what it announced when cut.
    pub init: Option<u64>,
    pub bandwidth_bps: u64,
    pub target_secs: u64,
    /// Held seqs as inclusive runs `[first, last]`, in play order.
    pub runs: Vec<(u64, u64)>,
}

impl ClipRenditionRec {
    /// Seqs as runs of consecutive values.
    pub fn runs_of(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for s in seqs {
            match runs.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(s) => *last = s,
                _ => runs.push((s, s)),
            }
        }
        runs
    }

    /// The seqs back from runs; `None` when the runs claim more than `max` seqs in
    /// all (a record must not make us allocate what its bytes do not carry).
    pub fn seqs(&self, max: usize) -> Option<Vec<u64>> {
        let mut out = Vec::new();
        for &(a, b) in &self.runs {
            let n = usize::try_from(b.checked_sub(a)?.checked_add(1)?).ok()?;
            if out.len().checked_add(n)? > max {
                return None;
            }
            out.extend(a..=b);
        }
        Some(out)
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is past [`MAX_BODY`].
    #[error("record of {len} bytes is longer than {MAX_BODY}")]
    TooLong {
        /// What the frame claimed.
        len: u64,
    },
    /// The body's crc32c does not match the header's.
    #[error("record checksum {found:08x} does not match {expected:08x}")]
    Checksum {
        /// From the header.
        expected: u32,
        /// Of the body.
        found: u32,
    },
    /// The body is not a record.
    #[error("record body: {0}")]
    Body(String),
}

/// crc32c (Castagnoli, hardware-assisted where the CPU has it).
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Appends `record` as one frame to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let body = serde_json::to_vec(record).map_err(|e| FrameError::Body(e.to_string()))?;
    if body.len() > MAX_BODY {
        return Err(FrameError::TooLong {
            len: body.len() as u64,
        });
    }
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Reads the frame at the front of `buf`: the record and the bytes it took, or
/// `Ok(None)` when `buf` ends inside it.
pub fn decode(buf: &[u8]) -> Result<Option<(Record, usize)>, FrameError> {
    let (Some(len), Some(crc)) = (buf.get(0..4), buf.get(4..8)) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if len > MAX_BODY {
        return Err(FrameError::TooLong { len: len as u64 });
    }
    let Some(body) = buf.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Ok(None);
    };
    let found = crc32c(body);
    if found != expected {
        return Err(FrameError::Checksum { expected, found });
    }
    let record = serde_json::from_slice(body).map_err(|e| FrameError::Body(e.to_string()))?;
    Ok(Some((record, HEADER_BYTES + len)))
}

/// Every whole frame at the front of `buf`, and the length they take: what follows
/// (a torn or corrupt tail) is not a record and is reported by the caller.
pub fn decode_all(buf: &[u8]) -> (Vec<Record>, usize, Option<FrameError>) {
    let mut records = Vec::new();
    let mut at = 0;
    loop {
        let rest = buf.get(at..).unwrap_or_default();
        match decode(rest) {
            Ok(Some((r, n))) => {
                records.push(r);
                at += n;
            }
            Ok(None) => return (records, at, None),
            Err(e) => return (records, at, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chunk(seq: u64) -> Record {
        Record::Chunk(ChunkRec {
            stream: 1,
            rendition: "v720".into(),
            seq,
            file: seq + 7,
            len: 1000,
            crc: 0xdead_beef,
            init: 1,
            name: Some(format!("seg_{seq}.m4s")),
            start_us: 1_795_564_800_000_000 + seq as i64 * 2_000_000,
            disc: 0,
            arrival_us: 1_795_564_800_000_000,
            held_only: false,
        })
    }

    fn journal(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 0..n {
            encode(&chunk(seq), &mut out).unwrap();
        }
        out
    }

    /// The last record cut at every byte offset: every whole record before it is
    /// read, the cut one never is, and nothing panics.
    #[test]
    fn a_tail_cut_at_every_offset_loses_only_the_cut_record() {
        let whole = journal(3);
        let (all, used, err) = decode_all(&whole);
        assert_eq!((all.len(), used, err), (3, whole.len(), None));
        let last_start = journal(2).len();
        for cut in last_start..whole.len() {
            let (records, used, err) = decode_all(&whole[..cut]);
            assert_eq!(records, [chunk(0), chunk(1)], "cut at {cut}");
            assert_eq!((used, err), (last_start, None), "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_is_caught_by_the_checksum() {
        let mut bytes = journal(2);
        let first = journal(1).len();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x40;
            let (records, _, _) = decode_all(&bytes);
            if i < first {
                assert!(records.is_empty(), "flip at {i}");
            } else {
                assert_eq!(records, [chunk(0)], "flip at {i}");
            }
            bytes[i] ^= 0x40;
        }
    }

    #[test]
    fn a_length_past_the_bound_is_refused_before_reading() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
        bytes.extend_from_slice(b"{}");
        assert!(matches!(decode(&bytes), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn runs_bound_what_they_expand_to() {
        let r = ClipRenditionRec {
            name: "v".into(),
            init: None,
            bandwidth_bps: 0,
            target_secs: 0,
            runs: vec![(0, u64::MAX)],
        };
        assert_eq!(r.seqs(10_000), None);
    }

    proptest! {
        #[test]
        fn runs_round_trip(mut seqs in proptest::collection::vec(0u64..500, 0..200)) {
            seqs.sort_unstable();
            seqs.dedup();
            let r = ClipRenditionRec {
                name: "v".into(),
                init: None,
                bandwidth_bps: 0,
                target_secs: 0,
                runs: ClipRenditionRec::runs_of(seqs.iter().copied()),
            };
            prop_assert_eq!(r.seqs(1000), Some(seqs));
        }

        /// Any bytes: no panic, never past the buffer, and what decodes re-encodes
        /// to frames that decode to the same records.
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (records, used, _) = decode_all(&bytes);
            prop_assert!(used <= bytes.len());
            let mut again = Vec::new();
            for r in &records {
                encode(r, &mut again).unwrap();
            }
            prop_assert_eq!(decode_all(&again).0, records);
        }
    }
}

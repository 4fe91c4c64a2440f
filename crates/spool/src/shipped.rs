//! A shipped batch: journal records ([`crate::record`]) with their chunks' payloads,
//! as a cluster node ships a stream's DVR to an object store
//! (`design/cluster.md` "DVR shipping"), and a stream rebuilt from such batches for
//! [`dvrclip_engine::Engine::restore`] by the spool's own fold. Pure, no I/O, fed
//! untrusted bytes (an object anyone holding the bucket's keys may have written).
//!
//! Layout: [`MAGIC`] (the format's version is in it), the object's length in bytes
//! (u64 LE: a batch cut at a frame's edge is not taken for a shorter one), then frames of
//! [`crate::record`]; a `Chunk` record's frame is followed at once by its payload:
//! `len` bytes whose crc32c is its `crc` (its `file` is not used: 0). An object is
//! written whole by one PUT, so anything but whole frames and payloads up to its
//! last byte is refused with the reason and the offset, never read in part. Reusing
//! the journal's frames keeps one record encoding, one checksum rule and one fold
//! for the spool and the store.
//!
//! Init ids are the shipping node's; each generation (one owner's claim) numbers
//! its own, so [`restore_stream`] moves generation `g`'s ids to `g << 48 | id`, and
//! takes inits of one rendition with the same bytes as one. Ids say which init a
//! chunk or clip was cut against, never which init is current: that is the one the
//! rendition's last `Init` record names (`recover`'s rule), so the shipper ends
//! each batch that names an init of a rendition with that rendition's current init
//! (an init named again for a clip may be an old one).
//!
//! What [`restore_stream`] gives is new to the claiming node's own store, so it
//! asks the engine to report it there (`Restore::report_to_store`): on a node with
//! a spool every restored payload becomes a spool file and every record a journal
//! record, through the same hooks as an admission.

use std::collections::HashMap;

use bytes::Bytes;
use dvrclip_engine::WallTime;
use dvrclip_engine::persist::Restore;

use crate::record::{self, ChunkRec, FrameError, Record, StreamRec};
use crate::recover::{Fold, RecoveryReport, build_with};

/// The first bytes of a batch object.
pub const MAGIC: &[u8; 8] = b"DVRSHIP1";

/// Largest chunk payload accepted (ingest takes segments up to 16 MiB).
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// Init ids of one generation stay below this.
pub const MAX_INIT_ID: u64 = 1 << 48;

/// One record of a batch, with the payload of a chunk record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record.
    pub record: Record,
    /// The chunk's payload (`Chunk` records only).
    pub payload: Option<Bytes>,
}

/// Why bytes are not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The magic is missing: not a batch, or another version.
    #[error("not a dvrclip DVR batch (no {MAGIC:?} magic)")]
    NotABatch,
    /// The object is not as long as its header says (cut, or grown).
    #[error("{found} bytes, the header says {said}")]
    Length {
        /// From the header.
        said: u64,
        /// The object's.
        found: u64,
    },
    /// A frame is not a record.
    #[error("at byte {offset}: {source}")]
    Frame {
        /// Where the frame starts.
        offset: usize,
        /// Why.
        source: FrameError,
    },
    /// The object ends inside a frame or a payload.
    #[error("cut short at byte {offset}")]
    Truncated {
        /// Where the cut frame or payload starts.
        offset: usize,
    },
    /// A chunk's payload is empty or longer than [`MAX_PAYLOAD`].
    #[error("at byte {offset}: a chunk payload of {len} bytes")]
    PayloadLength {
        /// Where its record starts.
        offset: usize,
        /// What the record claims.
        len: u64,
    },
    /// A chunk's payload does not match its record's crc32c.
    #[error(
        "at byte {offset}: chunk {seq} payload checksum {found:08x}, record says {expected:08x}"
    )]
    PayloadChecksum {
        /// Where the payload starts.
        offset: usize,
        /// The chunk's seq.
        seq: u64,
        /// From the record.
        expected: u32,
        /// Of the bytes.
        found: u32,
    },
    /// A record an encoder was given has no payload, or one of another length.
    #[error("chunk {seq}: the payload given does not match its record")]
    Unpaired {
        /// The chunk's seq.
        seq: u64,
    },
}

/// `entries` as the pieces of one batch object, in order (payloads are not copied).
/// A chunk record's `len` and `crc` must be its payload's.
pub fn encode(entries: &[Entry]) -> Result<Vec<Bytes>, BatchError> {
    let mut pieces = Vec::new();
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&[0; 8]);
    for e in entries {
        record::encode(&e.record, &mut head)
            .map_err(|source| BatchError::Frame { offset: 0, source })?;
        if let Record::Chunk(c) = &e.record {
            let Some(p) = &e.payload else {
                return Err(BatchError::Unpaired { seq: c.seq });
            };
            if p.len() as u64 != c.len || p.is_empty() {
                return Err(BatchError::Unpaired { seq: c.seq });
            }
            pieces.push(Bytes::from(std::mem::take(&mut head)));
            pieces.push(p.clone());
        }
    }
    if !head.is_empty() {
        pieces.push(Bytes::from(head));
    }
    let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    // The length goes into the first piece, which starts with the magic.
    if let Some(first) = pieces.first_mut() {
        let mut b = first.to_vec();
        b[MAGIC.len()..HEAD_BYTES].copy_from_slice(&total.to_le_bytes());
        *first = Bytes::from(b);
    }
    Ok(pieces)
}

/// Magic and length.
const HEAD_BYTES: usize = MAGIC.len() + 8;

/// Reads a whole batch object; payloads are slices of `bytes`.
pub fn decode(bytes: &Bytes) -> Result<Vec<Entry>, BatchError> {
    if !bytes.starts_with(MAGIC) {
        return Err(BatchError::NotABatch);
    }
    let len = bytes
        .get(MAGIC.len()..HEAD_BYTES)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or(BatchError::Truncated { offset: 0 })?;
    if len != bytes.len() as u64 {
        return Err(BatchError::Length {
            said: len,
            found: bytes.len() as u64,
        });
    }
    let mut at = HEAD_BYTES;
    let mut out = Vec::new();
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        let (rec, n) = match record::decode(rest) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(BatchError::Truncated { offset: at }),
            Err(source) => return Err(BatchError::Frame { offset: at, source }),
        };
        let record_at = at;
        at += n;
        let payload = match &rec {
            Record::Chunk(c) => {
                if c.len == 0 || c.len > MAX_PAYLOAD {
                    return Err(BatchError::PayloadLength {
                        offset: record_at,
                        len: c.len,
                    });
                }
                let end = at
                    .checked_add(c.len as usize)
                    .filter(|e| *e <= bytes.len())
                    .ok_or(BatchError::Truncated { offset: at })?;
                let p = bytes.slice(at..end);
                let found = record::crc32c(&p);
                if found != c.crc {
                    return Err(BatchError::PayloadChecksum {
                        offset: at,
                        seq: c.seq,
                        expected: c.crc,
                        found,
                    });
                }
                at = end;
                Some(p)
            }
            _ => None,
        };
        out.push(Entry {
            record: rec,
            payload,
        });
    }
    Ok(out)
}

/// A chunk record for `payload` (its length and crc32c filled in).
#[allow(clippy::too_many_arguments)]
pub fn chunk_record(
    stream: u64,
    rendition: &str,
    seq: u64,
    init: u64,
    name: Option<String>,
    start_us: i64,
    disc: u64,
    arrival_us: i64,
    payload: &[u8],
) -> Record {
    Record::Chunk(ChunkRec {
        stream,
        rendition: rendition.to_owned(),
        seq,
        file: 0,
        len: payload.len() as u64,
        crc: record::crc32c(payload),
        init,
        name,
        start_us,
        disc,
        arrival_us,
        held_only: false,
    })
}

/// Stream `stream` rebuilt from its shipped batches, `generations` oldest first
/// (each a generation's batches' entries in order), as of `now`: its renditions
/// and chunks (payloads verified again, re-parsed by the engine's restore) and its
/// clips, under the settings and keys of `stream` (the cluster's record).
/// Records of other streams, and stream-level records, are ignored.
pub fn restore_stream(
    stream: StreamRec,
    generations: Vec<Vec<Entry>>,
    now: WallTime,
) -> (Restore, RecoveryReport) {
    let id = stream.id;
    let mut records = vec![Record::Stream(stream)];
    let mut payloads: HashMap<u64, Bytes> = HashMap::new();
    let mut report = RecoveryReport::default();
    // Inits alike (rendition and bytes) in several generations are one: the ring
    // sees one init for chunks of one discontinuity shipped by two owners.
    let mut canonical: HashMap<(String, Vec<u8>), u64> = HashMap::new();
    for (g, entries) in generations.into_iter().enumerate() {
        let g = g as u64;
        let mut ids: HashMap<u64, u64> = HashMap::new();
        for Entry { record, payload } in entries {
            report.records += 1;
            let remap = |ids: &HashMap<u64, u64>, init: u64| {
                ids.get(&init)
                    .copied()
                    .or_else(|| (init < MAX_INIT_ID).then_some(g << 48 | init))
            };
            let kept = match record {
                Record::Init {
                    id: init,
                    stream,
                    rendition,
                    bytes,
                } if stream == id && init < MAX_INIT_ID => {
                    let key = (rendition, bytes);
                    let c = *canonical.entry(key.clone()).or_insert(g << 48 | init);
                    ids.insert(init, c);
                    // Kept where it is, also when an earlier one stands for it:
                    // the last one of a rendition names its current init.
                    let (rendition, bytes) = key;
                    Some(Record::Init {
                        id: c,
                        stream,
                        rendition,
                        bytes,
                    })
                }
                Record::Chunk(mut c) if c.stream == id => match (remap(&ids, c.init), payload) {
                    (Some(init), Some(p)) => {
                        c.init = init;
                        c.file = payloads.len() as u64 + 1;
                        payloads.insert(c.file, p);
                        Some(Record::Chunk(c))
                    }
                    _ => None,
                },
                Record::Clip(mut c) if c.stream == id => {
                    for r in &mut c.renditions {
                        r.init = r.init.and_then(|i| remap(&ids, i));
                    }
                    Some(Record::Clip(c))
                }
                r @ (Record::Moved { stream, .. } | Record::Left { stream, .. })
                    if stream == id =>
                {
                    Some(r)
                }
                r @ Record::ClipGone { .. } => Some(r),
                _ => None,
            };
            records.extend(kept);
        }
    }
    let fold = Fold::of(records);
    let recovered = build_with(fold, now, &mut report, &mut |c, report| {
        let p = payloads.get(&c.file)?;
        if p.len() as u64 == c.len && record::crc32c(p) == c.crc {
            report.chunks_verified += 1;
            Some(p.clone())
        } else {
            report.chunks_failed += 1;
            None
        }
    });
    let mut restore = recovered.restore;
    restore.next_stream_id = 0;
    // The claiming node's own store (its spool) has not seen any of it.
    restore.report_to_store = true;
    (restore, recovered.report)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chunk(seq: u64, payload: &[u8]) -> Entry {
        Entry {
            record: chunk_record(
                7,
                "v720",
                seq,
                1,
                Some(format!("seg_{seq}.m4s")),
                1_795_564_800_000_000 + seq as i64 * 2_000_000,
                0,
                1_795_564_800_000_000,
                payload,
            ),
            payload: Some(Bytes::copy_from_slice(payload)),
        }
    }

    fn object(entries: &[Entry]) -> Bytes {
        let pieces = encode(entries).unwrap();
        Bytes::from(pieces.concat())
    }

    fn batch() -> Vec<Entry> {
        vec![
            Entry {
                record: Record::Init {
                    id: 1,
                    stream: 7,
                    rendition: "v720".into(),
                    bytes: b"ftyp-moov".to_vec(),
                },
                payload: None,
            },
            chunk(0, b"first payload"),
            chunk(1, b"second payload, longer"),
            Entry {
                record: Record::ClipGone {
                    id: "00".repeat(16),
                },
                payload: None,
            },
        ]
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let entries = batch();
        assert_eq!(decode(&object(&entries)).unwrap(), entries);
        assert_eq!(decode(&object(&[])).unwrap(), []);
    }

    /// An object cut at any byte, or with any byte flipped, is refused whole, with
    /// a reason, and nothing panics.
    #[test]
    fn a_cut_or_flipped_object_is_refused() {
        let whole = object(&batch());
        for cut in 0..whole.len() {
            assert!(decode(&whole.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bytes = whole.to_vec();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x10;
            let r = decode(&Bytes::from(bytes.clone()));
            assert!(r.is_err(), "flip at {i}: {r:?}");
            bytes[i] ^= 0x10;
        }
    }

    #[test]
    fn refusals_say_why() {
        let whole = object(&batch());
        assert_eq!(
            decode(&Bytes::from_static(b"DVRJNL1\nxx")),
            Err(BatchError::NotABatch)
        );
        let mut bad = whole.to_vec();
        let at = bad.len() - 40;
        bad[at] ^= 1;
        let e = decode(&Bytes::from(bad)).unwrap_err();
        assert!(e.to_string().contains("at byte"), "{e}");
        let unpaired = Entry {
            payload: None,
            ..chunk(3, b"x")
        };
        assert_eq!(encode(&[unpaired]), Err(BatchError::Unpaired { seq: 3 }));
    }

    proptest! {
        /// Any chunks round-trip, payloads included.
        #[test]
        fn chunks_round_trip(payloads in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 1..300), 0..12)) {
            let entries: Vec<Entry> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| chunk(i as u64, p))
                .collect();
            prop_assert_eq!(decode(&object(&entries)).unwrap(), entries);
        }

        /// Any bytes after the magic and a right length: no panic, and what decodes
        /// encodes to a batch that decodes the same.
        #[test]
        fn any_bytes_decode_without_panic(tail in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&((tail.len() + HEAD_BYTES) as u64).to_le_bytes());
            bytes.extend_from_slice(&tail);
            if let Ok(entries) = decode(&Bytes::from(bytes)) {
                prop_assert_eq!(decode(&object(&entries)).unwrap(), entries);
            }
        }
    }
}

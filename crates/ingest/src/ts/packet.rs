//! Transport packets (ISO/IEC 13818-1 §2.4.3.2 header, §2.4.3.4 adaptation field)
//! and finding them in a byte stream sliced anyhow: [`Packets`] carries what it
//! cannot settle yet between calls and resynchronises on garbage.
//!
//! Sync (§2.4.3.3: `sync_byte` "is 0x47"): a 0x47 is taken as a packet start when
//! the byte 188 further is 0x47 too, so a packet is handed on once the first byte
//! after it has arrived, and the last one at [`Packets::flush`]. A 0x47 inside
//! garbage is not mistaken for a packet; a packet whose successor lost its sync
//! byte is dropped with it. Skipped bytes are counted; at most 376 bytes are
//! carried between calls. Nothing here allocates after construction.

/// Bytes of a transport packet (§2.4.3.2).
pub(crate) const PACKET_SIZE: usize = 188;
const SYNC_BYTE: u8 = 0x47;

/// Why a packet is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketError {
    /// `transport_error_indicator` set: the link says the packet is damaged.
    TransportError,
    /// `transport_scrambling_control` not 0: we hold no keys.
    Scrambled,
    /// `adaptation_field_control` 00, reserved (§2.4.3.3).
    ReservedControl,
    /// An `adaptation_field_length` the packet cannot hold (§2.4.3.5: 0..=182 with a
    /// payload, 183 without).
    AdaptationLength,
}

/// One transport packet, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub(crate) pid: u16,
    /// `payload_unit_start_indicator`: a PES or a section starts here.
    pub(crate) unit_start: bool,
    pub(crate) continuity_counter: u8,
    pub(crate) has_payload: bool,
    /// The adaptation field's `discontinuity_indicator` (§2.4.3.5).
    pub(crate) discontinuity: bool,
    /// `program_clock_reference_base`, 33 bits at 90 kHz.
    pub(crate) pcr_base: Option<u64>,
    pub(crate) payload: &'a [u8],
}

/// Reads one 188-byte packet.
pub(crate) fn parse(p: &[u8; PACKET_SIZE]) -> Result<Packet<'_>, PacketError> {
    if p[1] & 0x80 != 0 {
        return Err(PacketError::TransportError);
    }
    if p[3] & 0xc0 != 0 {
        return Err(PacketError::Scrambled);
    }
    let control = (p[3] >> 4) & 3;
    let mut packet = Packet {
        pid: u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]),
        unit_start: p[1] & 0x40 != 0,
        continuity_counter: p[3] & 0x0f,
        has_payload: control & 1 != 0,
        discontinuity: false,
        pcr_base: None,
        payload: &[],
    };
    let mut start = 4;
    match control {
        0 => return Err(PacketError::ReservedControl),
        1 => {}
        _ => {
            let len = usize::from(p[4]);
            let fits = if packet.has_payload {
                len <= 182
            } else {
                len == 183
            };
            if !fits {
                return Err(PacketError::AdaptationLength);
            }
            if len > 0 {
                let flags = p[5];
                packet.discontinuity = flags & 0x80 != 0;
                if flags & 0x10 != 0 && len >= 7 {
                    // PCR_flag: 33-bit base, 6 reserved bits, 9-bit extension.
                    let b = &p[6..11];
                    packet.pcr_base = Some(
                        u64::from(b[0]) << 25
                            | u64::from(b[1]) << 17
                            | u64::from(b[2]) << 9
                            | u64::from(b[3]) << 1
                            | u64::from(b[4]) >> 7,
                    );
                }
            }
            start = 5 + len;
        }
    }
    if packet.has_payload {
        packet.payload = &p[start..];
    }
    Ok(packet)
}

/// Cuts a byte stream into aligned packets across calls.
#[derive(Debug)]
pub(crate) struct Packets {
    carry: Vec<u8>,
    skipped: u64,
}

impl Packets {
    pub(crate) fn new() -> Self {
        Packets {
            carry: Vec::with_capacity(2 * PACKET_SIZE),
            skipped: 0,
        }
    }

    /// Bytes skipped looking for a sync byte so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Bytes held between calls.
    pub(crate) fn held_bytes(&self) -> usize {
        self.carry.capacity()
    }

    /// Forgets the partial packet (a new connection).
    pub(crate) fn reset(&mut self) {
        self.carry.clear();
    }

    /// Calls `each` with every packet `data` completes, in order; stops at the
    /// first error `each` returns (the partial packet is then dropped). A packet is
    /// handed on once the byte after it has arrived, or at [`Packets::flush`].
    pub(crate) fn feed<E>(
        &mut self,
        data: &[u8],
        each: &mut impl FnMut(&[u8; PACKET_SIZE]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = data;
        if !self.carry.is_empty() {
            // Two packets' worth settles every start in the carry (at most 188
            // bytes), so the scan stops past the carried bytes when data suffices.
            let old = self.carry.len();
            let take = (2 * PACKET_SIZE - old).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            let mut carry = std::mem::take(&mut self.carry);
            let stop = self.scan(&carry, each)?;
            if stop < old {
                carry.drain(..stop);
                self.carry = carry;
                return Ok(());
            }
            carry.clear();
            self.carry = carry;
            rest = &data[stop - old..];
        }
        let stop = self.scan(rest, each)?;
        self.carry.extend_from_slice(&rest[stop..]);
        Ok(())
    }

    /// The packet held at the end of the stream, if whole.
    pub(crate) fn flush<E>(
        &mut self,
        each: &mut impl FnMut(&[u8; PACKET_SIZE]) -> Result<(), E>,
    ) -> Result<(), E> {
        let carry = std::mem::take(&mut self.carry);
        let result = match carry.first_chunk::<PACKET_SIZE>() {
            Some(p) if p[0] == SYNC_BYTE => each(p),
            _ => Ok(()),
        };
        self.skipped += carry.len().saturating_sub(PACKET_SIZE) as u64;
        self.carry = carry;
        self.carry.clear();
        result
    }

    /// Hands on every packet of `buf` whose next byte is in `buf` too; returns where
    /// it stopped (what is left is less than a packet and one byte, or a packet
    /// start to settle with the next bytes).
    fn scan<E>(
        &mut self,
        buf: &[u8],
        each: &mut impl FnMut(&[u8; PACKET_SIZE]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut at = 0;
        while let Some(rest) = buf.get(at..).filter(|r| !r.is_empty()) {
            let Some(offset) = rest.iter().position(|&b| b == SYNC_BYTE) else {
                self.lose_sync(rest.len() as u64);
                return Ok(buf.len());
            };
            if offset > 0 {
                self.lose_sync(offset as u64);
                at += offset;
                continue;
            }
            let Some((packet, after)) = rest.split_first_chunk::<PACKET_SIZE>() else {
                return Ok(at);
            };
            match after.first() {
                None => return Ok(at),
                Some(&SYNC_BYTE) => {
                    at += PACKET_SIZE;
                    each(packet)?;
                }
                Some(_) => {
                    // A 0x47 inside garbage or payload: not a packet start.
                    self.lose_sync(1);
                    at += 1;
                }
            }
        }
        Ok(at)
    }

    fn lose_sync(&mut self, bytes: u64) {
        self.skipped += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pid: u16, cc: u8) -> [u8; PACKET_SIZE] {
        let mut p = [0xff; PACKET_SIZE];
        p[..4].copy_from_slice(&[0x47, (pid >> 8) as u8, pid as u8, 0x10 | cc]);
        p
    }

    fn collect(packets: &mut Packets, data: &[u8]) -> Vec<u16> {
        let mut pids = Vec::new();
        let mut each = |p: &[u8; PACKET_SIZE]| {
            pids.push(parse(p).unwrap().pid);
            Ok::<(), ()>(())
        };
        packets.feed(data, &mut each).unwrap();
        pids
    }

    #[test]
    fn any_slicing_gives_the_same_packets() {
        let mut stream = Vec::new();
        for i in 0..20 {
            stream.extend_from_slice(&packet(i, (i % 16) as u8));
        }
        for step in [1, 7, 187, 188, 189, 1316, 5000] {
            let mut p = Packets::new();
            let mut pids = Vec::new();
            for piece in stream.chunks(step) {
                pids.extend(collect(&mut p, piece));
                assert!(p.held_bytes() <= 2 * PACKET_SIZE);
            }
            p.flush(&mut |pk| {
                pids.push(parse(pk).unwrap().pid);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(pids, (0..20).collect::<Vec<_>>(), "step {step}");
        }
    }

    #[test]
    fn garbage_between_packets_is_skipped_and_counted() {
        let mut stream = packet(1, 0).to_vec();
        stream.extend_from_slice(&[0x47, 0x00, 0x47, 1, 2, 3]);
        stream.extend_from_slice(&packet(2, 0));
        stream.extend_from_slice(&packet(3, 0));
        let mut p = Packets::new();
        assert_eq!(collect(&mut p, &stream), vec![1, 2]);
        assert_eq!(p.skipped(), 6);
        let mut last = Vec::new();
        p.flush(&mut |pk| {
            last.push(parse(pk).unwrap().pid);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(last, vec![3]);
    }

    proptest::proptest! {
        /// Invariant: how the stream is sliced changes nothing — the packets handed
        /// on, the bytes skipped — and what is carried stays under two packets.
        #[test]
        fn slicing_never_changes_the_packets(
            garbage in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 12),
            cuts in proptest::collection::vec(1usize..600, 1..40),
        ) {
            let mut stream = Vec::new();
            for (i, g) in garbage.iter().enumerate() {
                stream.extend_from_slice(&packet(i as u16, 0));
                // Garbage never holds a 0x47 followed 188 bytes later by another.
                stream.extend(g.iter().map(|&b| if b == 0x47 { 0x46 } else { b }));
            }
            let whole = {
                let mut p = Packets::new();
                let mut pids = collect(&mut p, &stream);
                p.flush(&mut |pk| { pids.push(parse(pk).unwrap().pid); Ok::<(), ()>(()) }).unwrap();
                (pids, p.skipped())
            };
            let mut p = Packets::new();
            let mut pids = Vec::new();
            let mut rest = &stream[..];
            for &n in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                pids.extend(collect(&mut p, piece));
                proptest::prop_assert!(p.carry.len() <= 2 * PACKET_SIZE);
            }
            p.flush(&mut |pk| { pids.push(parse(pk).unwrap().pid); Ok::<(), ()>(()) }).unwrap();
            proptest::prop_assert_eq!(&pids, &whole.0);
            proptest::prop_assert_eq!(p.skipped(), whole.1);
            // A packet right before garbage has no sync byte after it: dropped.
            let clean_before = garbage.iter().filter(|g| g.is_empty()).count();
            proptest::prop_assert!(pids.len() >= clean_before && pids.len() <= garbage.len());
        }
    }

    #[test]
    fn impossible_adaptation_lengths_are_refused() {
        let mut p = packet(1, 0);
        p[3] = 0x30; // adaptation field and payload
        p[4] = 183;
        assert_eq!(parse(&p), Err(PacketError::AdaptationLength));
        p[3] = 0x20; // adaptation field only
        p[4] = 100;
        assert_eq!(parse(&p), Err(PacketError::AdaptationLength));
        p[4] = 183;
        assert!(parse(&p).unwrap().payload.is_empty());
    }
}

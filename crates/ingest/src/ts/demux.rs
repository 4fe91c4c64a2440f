//! The transport-stream demultiplexer (ISO/IEC 13818-1 §2.4): packets in, whole PES
//! payloads of the first program's video and audio streams out, with PTS/DTS
//! (§2.4.3.7) still 33-bit, and the events that break the timeline.
//!
//! State is fixed in size but for two PES buffers and two section buffers: packets
//! of PIDs the PMT does not name are counted and dropped, so a PID flood costs
//! nothing. A PES buffer holds at most [`MAX_VIDEO_PES`] / [`MAX_AUDIO_PES`]; a PES
//! that never ends is dropped there, one whose `PES_packet_length` is not reached
//! before the next PES starts is dropped too, and the stream goes on at the next
//! `payload_unit_start_indicator`.
//!
//! Discontinuities (§2.4.3.5, Annex U): a `continuity_counter` that skips on a
//! video or audio PID (a lost packet; a repeated counter is a duplicate packet and
//! is dropped), a PCR with `discontinuity_indicator` set, or a PCR that goes back or
//! jumps more than [`PCR_JUMP_TICKS`] forward. Each raises
//! [`Event::Discontinuity`] and drops the PES in progress.

use super::packet::{self, PACKET_SIZE, Packet, Packets};
use super::psi::{self, Program, Sections};

/// Largest video PES payload kept, bytes (a 4K intra picture is a few MB).
pub(crate) const MAX_VIDEO_PES: usize = 8 << 20;
/// Largest audio PES payload kept, bytes (ffmpeg packs a few ADTS frames in one).
pub(crate) const MAX_AUDIO_PES: usize = 1 << 20;
/// PCR steps forward larger than this (10 s at 90 kHz) are a discontinuity.
pub(crate) const PCR_JUMP_TICKS: i64 = 10 * 90_000;
/// PCR steps back by more than this (100 ms) are a discontinuity.
const PCR_BACK_TICKS: i64 = 9_000;

/// What the demuxer hands on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The first program's PMT, first seen or changed in what it carries.
    Program(Program),
    /// A whole video PES payload (an Annex B access unit) with its 33-bit times.
    Video {
        pts: Option<u64>,
        dts: Option<u64>,
        data: Vec<u8>,
    },
    /// A whole audio PES payload (ADTS frames).
    Audio { pts: Option<u64>, data: Vec<u8> },
    /// A lost packet or a PCR discontinuity: the timeline breaks here.
    Discontinuity,
}

/// Counts of what was skipped, for [`super::TsStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) packets: u64,
    pub(crate) bad_packets: u64,
    pub(crate) continuity_errors: u64,
    pub(crate) pcr_discontinuities: u64,
    pub(crate) pes_dropped: u64,
    pub(crate) sections_dropped: u64,
    pub(crate) program_changes: u64,
}

#[derive(Debug)]
pub(crate) struct Demuxer {
    packets: Packets,
    state: State,
}

/// Everything but the packet cutter, so a packet borrows one while it updates the
/// other.
#[derive(Debug)]
struct State {
    pat: Sections,
    pmt_pid: Option<u16>,
    pmt: Sections,
    program: Option<Program>,
    video: Pes,
    audio: Pes,
    last_pcr: Option<u64>,
    counters: Counters,
}

#[derive(Debug)]
struct Pes {
    pid: Option<u16>,
    cap: usize,
    buf: Vec<u8>,
    collecting: bool,
    pts: Option<u64>,
    dts: Option<u64>,
    /// Payload bytes `PES_packet_length` announces, when not 0.
    expected: Option<usize>,
    last_cc: Option<u8>,
}

impl Pes {
    fn new(cap: usize) -> Self {
        Pes {
            pid: None,
            cap,
            buf: Vec::new(),
            collecting: false,
            pts: None,
            dts: None,
            expected: None,
            last_cc: None,
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.collecting = false;
        self.last_cc = None;
    }

    /// Takes the PES in progress out, leaving an empty buffer of the same size.
    fn take(&mut self) -> Vec<u8> {
        self.collecting = false;
        let next = Vec::with_capacity(self.buf.len().min(self.cap));
        std::mem::replace(&mut self.buf, next)
    }
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer {
            packets: Packets::new(),
            state: State::new(),
        }
    }
}

impl State {
    fn new() -> Self {
        State {
            pat: Sections::default(),
            pmt_pid: None,
            pmt: Sections::default(),
            program: None,
            video: Pes::new(MAX_VIDEO_PES),
            audio: Pes::new(MAX_AUDIO_PES),
            last_pcr: None,
            counters: Counters::default(),
        }
    }
}

impl Demuxer {
    pub(crate) fn counters(&self) -> Counters {
        self.state.counters
    }

    pub(crate) fn skipped_bytes(&self) -> u64 {
        self.packets.skipped()
    }

    pub(crate) fn held_bytes(&self) -> usize {
        let s = &self.state;
        self.packets.held_bytes()
            + s.pat.held_bytes()
            + s.pmt.held_bytes()
            + s.video.buf.capacity()
            + s.audio.buf.capacity()
    }

    /// A new connection or origin: partial packets and PES are dropped, continuity
    /// counters and PCR forgotten; the program is kept until a PMT says otherwise.
    pub(crate) fn reset(&mut self) {
        self.packets.reset();
        let s = &mut self.state;
        s.pat.reset();
        s.pmt.reset();
        s.video.reset();
        s.audio.reset();
        s.last_pcr = None;
    }

    /// Feeds bytes; `each` gets every event they complete, in stream order.
    pub(crate) fn feed<E>(
        &mut self,
        data: &[u8],
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        let state = &mut self.state;
        self.packets.feed(data, &mut |p| state.packet(p, each))
    }

    /// The packet held and the PES in progress, as if the stream ended here.
    pub(crate) fn flush<E>(
        &mut self,
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        let state = &mut self.state;
        self.packets.flush(&mut |p| state.packet(p, each))?;
        for video in [true, false] {
            if let Some(event) = self.state.finish_pes(video) {
                each(event)?;
            }
        }
        Ok(())
    }
}

impl State {
    fn packet<E>(
        &mut self,
        raw: &[u8; PACKET_SIZE],
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        self.counters.packets += 1;
        let Ok(p) = packet::parse(raw) else {
            self.counters.bad_packets += 1;
            return Ok(());
        };
        if let Some(pcr) = p.pcr_base {
            if self.program.is_some_and(|g| g.pcr_pid == p.pid)
                && self.pcr_breaks(pcr, p.discontinuity)
            {
                self.counters.pcr_discontinuities += 1;
                self.video.collecting = false;
                self.audio.collecting = false;
                each(Event::Discontinuity)?;
            }
        }
        if p.pid == 0 {
            let mut pmt_pid = None;
            self.counters.sections_dropped += self.pat.push(p.unit_start, p.payload, &mut |s| {
                pmt_pid = pmt_pid.or(psi::parse_pat(s));
            });
            if pmt_pid.is_some() && pmt_pid != self.pmt_pid {
                self.pmt_pid = pmt_pid;
                self.pmt.reset();
            }
            return Ok(());
        }
        if Some(p.pid) == self.pmt_pid {
            let mut program = None;
            self.counters.sections_dropped += self.pmt.push(p.unit_start, p.payload, &mut |s| {
                program = program.or(psi::parse_pmt(s));
            });
            if let Some(program) = program {
                return self.program(program, each);
            }
            return Ok(());
        }
        if Some(p.pid) == self.video.pid {
            return self.es_packet(true, &p, each);
        }
        if Some(p.pid) == self.audio.pid {
            return self.es_packet(false, &p, each);
        }
        Ok(())
    }

    fn pcr_breaks(&mut self, pcr: u64, flagged: bool) -> bool {
        let last = self.last_pcr.replace(pcr);
        let Some(last) = last else {
            return flagged;
        };
        // 33-bit arithmetic: the step as a signed 33-bit value.
        let step = ((pcr.wrapping_sub(last) & ((1 << 33) - 1)) as i64) << 31 >> 31;
        flagged || !(-PCR_BACK_TICKS..=PCR_JUMP_TICKS).contains(&step)
    }

    fn program<E>(
        &mut self,
        program: Program,
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        let same_streams = self
            .program
            .is_some_and(|old| old.video == program.video && old.audio == program.audio);
        if self.program == Some(program) {
            return Ok(());
        }
        self.program = Some(program);
        if same_streams {
            return Ok(()); // a PCR PID change only
        }
        if self.video.pid.is_some() || self.audio.pid.is_some() {
            self.counters.program_changes += 1;
        }
        let video_pid = program.video.map(|(pid, _)| pid);
        if self.video.pid != video_pid {
            self.video.reset();
            self.video.pid = video_pid;
        }
        if self.audio.pid != program.audio {
            self.audio.reset();
            self.audio.pid = program.audio;
        }
        self.last_pcr = None;
        each(Event::Program(program))
    }

    fn es_packet<E>(
        &mut self,
        video: bool,
        p: &Packet<'_>,
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        let pes = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if let Some(last) = pes.last_cc {
            // §2.4.3.3: the counter steps with each packet carrying payload; one
            // repeat is a duplicate packet.
            let expected = if p.has_payload {
                (last + 1) & 0x0f
            } else {
                last
            };
            if p.has_payload && p.continuity_counter == last && !p.discontinuity {
                return Ok(());
            }
            if p.continuity_counter != expected && !p.discontinuity {
                pes.last_cc = Some(p.continuity_counter);
                pes.collecting = false;
                self.counters.continuity_errors += 1;
                each(Event::Discontinuity)?;
                return self.es_payload(video, p, each);
            }
        }
        pes.last_cc = Some(p.continuity_counter);
        self.es_payload(video, p, each)
    }

    fn es_payload<E>(
        &mut self,
        video: bool,
        p: &Packet<'_>,
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        if !p.has_payload {
            return Ok(());
        }
        if p.unit_start {
            if let Some(event) = self.finish_pes(video) {
                each(event)?;
            }
            let pes = if video {
                &mut self.video
            } else {
                &mut self.audio
            };
            let Some(header) = parse_pes_header(p.payload) else {
                self.counters.pes_dropped += 1;
                return Ok(());
            };
            pes.buf.clear();
            pes.collecting = true;
            pes.pts = header.pts;
            pes.dts = header.dts;
            pes.expected = header.payload_len;
            return self.append(
                video,
                p.payload.get(header.payload_at..).unwrap_or_default(),
                each,
            );
        }
        self.append(video, p.payload, each)
    }

    fn append<E>(
        &mut self,
        video: bool,
        data: &[u8],
        each: &mut impl FnMut(Event) -> Result<(), E>,
    ) -> Result<(), E> {
        let pes = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if !pes.collecting {
            return Ok(());
        }
        if pes.buf.len() + data.len() > pes.cap {
            pes.collecting = false;
            pes.buf.clear();
            self.counters.pes_dropped += 1;
            return Ok(());
        }
        pes.buf.extend_from_slice(data);
        if pes.expected.is_some_and(|n| pes.buf.len() >= n) {
            if let Some(event) = self.finish_pes(video) {
                return each(event);
            }
        }
        Ok(())
    }

    /// The PES in progress as an event, if whole.
    fn finish_pes(&mut self, video: bool) -> Option<Event> {
        let pes = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if !pes.collecting {
            return None;
        }
        if let Some(n) = pes.expected {
            if pes.buf.len() < n {
                // PES_packet_length past what arrived before the next PES.
                pes.collecting = false;
                self.counters.pes_dropped += 1;
                return None;
            }
            pes.buf.truncate(n);
        }
        let (pts, dts) = (pes.pts, pes.dts);
        let data = pes.take();
        Some(if video {
            Event::Video { pts, dts, data }
        } else {
            Event::Audio { pts, data }
        })
    }
}

/// What a PES header (§2.4.3.6, Table 2-21) says that this door uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PesHeader {
    pts: Option<u64>,
    dts: Option<u64>,
    /// Payload bytes from `PES_packet_length`; `None` when 0 (unbounded video).
    payload_len: Option<usize>,
    /// Where the payload starts in the packet's payload.
    payload_at: usize,
}

/// Reads a PES header at the start of a packet's payload; `None` when it is not one
/// this door reads (no start code, a stream without the optional header, a header
/// longer than the packet, lengths that contradict each other).
fn parse_pes_header(d: &[u8]) -> Option<PesHeader> {
    let [
        0,
        0,
        1,
        stream_id,
        l0,
        l1,
        f1,
        f2,
        header_len,
        ref rest @ ..,
    ] = *d
    else {
        return None;
    };
    // Table 2-22: these stream_ids have no optional PES header.
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) || f1 & 0xc0 != 0x80
    {
        return None;
    }
    let header_len = usize::from(header_len);
    let fields = rest.get(..header_len)?;
    let packet_len = usize::from(u16::from_be_bytes([l0, l1]));
    let payload_len = match packet_len {
        0 => None,
        n => Some(n.checked_sub(3 + header_len)?),
    };
    let (pts, dts) = match f2 >> 6 {
        0b10 => (Some(timestamp(fields.get(..5)?)), None),
        0b11 => (
            Some(timestamp(fields.get(..5)?)),
            Some(timestamp(fields.get(5..10)?)),
        ),
        0b00 => (None, None),
        _ => return None, // '01' is forbidden
    };
    Some(PesHeader {
        pts,
        dts,
        payload_len,
        payload_at: 9 + header_len,
    })
}

/// A 33-bit PTS or DTS from its 5 bytes (§2.4.3.7), marker bits not checked.
fn timestamp(b: &[u8]) -> u64 {
    let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    (byte(0) >> 1 & 7) << 30 | byte(1) << 22 | (byte(2) >> 1) << 15 | byte(3) << 7 | byte(4) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pes_header_times_and_lies() {
        // PTS 0x1_2345_6789 and DTS 0x1_0000_0000, PES_packet_length 13 + 4.
        let mut h = vec![0, 0, 1, 0xe0, 0, 17, 0x80, 0xc0, 10];
        let ts = |prefix: u8, t: u64| {
            [
                prefix << 4 | ((t >> 29) & 0x0e) as u8 | 1,
                (t >> 22) as u8,
                ((t >> 14) & 0xfe) as u8 | 1,
                (t >> 7) as u8,
                ((t << 1) & 0xfe) as u8 | 1,
            ]
        };
        h.extend_from_slice(&ts(3, 0x1_2345_6789));
        h.extend_from_slice(&ts(1, 0x1_0000_0000));
        h.extend_from_slice(&[1, 2, 3, 4]);
        let got = parse_pes_header(&h).unwrap();
        assert_eq!(got.pts, Some(0x1_2345_6789));
        assert_eq!(got.dts, Some(0x1_0000_0000));
        assert_eq!(got.payload_len, Some(4));
        assert_eq!(got.payload_at, 19);
        // A header_data_length past the packet, a PES length shorter than the header.
        let mut past = h.clone();
        past[8] = 200;
        assert_eq!(parse_pes_header(&past), None);
        let mut short = h.clone();
        short[5] = 5;
        assert_eq!(parse_pes_header(&short), None);
    }
}

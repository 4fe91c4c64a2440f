//! Program-specific information: sections reassembled from packets (ISO/IEC 13818-1
//! §2.4.4.1–2.4.4.2, `pointer_field`), checked by their CRC_32 (Annex A), and the two
//! tables a demuxer needs: the PAT (§2.4.4.3, program → PMT PID) and the PMT
//! (§2.4.4.8, PID and `stream_type` of each elementary stream; Table 2-34).
//!
//! One section buffer per PSI PID, capped at 1024 bytes (§2.4.4.3/§2.4.4.8:
//! `section_length` "shall not exceed 1021"); a longer claim drops the section.

/// Largest PAT or PMT section, header included.
const MAX_SECTION: usize = 3 + 1021;

/// Video codecs carried (Table 2-34 `stream_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    /// 0x1B, ITU-T H.264 (Annex B byte stream, §2.14).
    Avc,
    /// 0x24, ITU-T H.265 (§2.17).
    Hevc,
}

/// What the PMT of the first program says, as far as this door reads it: the first
/// video stream of a codec it carries and the first ADTS AAC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Program {
    pub(crate) pcr_pid: u16,
    pub(crate) video: Option<(u16, VideoCodec)>,
    /// `stream_type` 0x0F: ISO/IEC 13818-7 audio with ADTS transport syntax.
    pub(crate) audio: Option<u16>,
}

/// Reassembles the sections of one PID.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    buf: Vec<u8>,
    active: bool,
}

impl Sections {
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// One packet's payload; `each` gets every section it completes whose CRC holds.
    /// Returns how many sections were dropped (bad CRC, too long).
    pub(crate) fn push(
        &mut self,
        unit_start: bool,
        payload: &[u8],
        each: &mut impl FnMut(&[u8]),
    ) -> u64 {
        let mut dropped = 0;
        if !unit_start {
            if self.active {
                self.append(payload, each, &mut dropped);
            }
            return dropped;
        }
        // §2.4.4.2: pointer_field, then the end of the previous section, then new.
        let Some((&pointer, rest)) = payload.split_first() else {
            self.reset();
            return 1;
        };
        let Some((tail, new)) = rest.split_at_checked(usize::from(pointer)) else {
            self.reset();
            return 1;
        };
        if self.active {
            self.append(tail, each, &mut dropped);
        }
        self.buf.clear();
        self.active = true;
        self.append(new, each, &mut dropped);
        dropped
    }

    fn append(&mut self, mut data: &[u8], each: &mut impl FnMut(&[u8]), dropped: &mut u64) {
        while self.active {
            if self.buf.len() < 3 {
                let take = (3 - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() < 3 {
                    return;
                }
            }
            if self.buf[0] == 0xff {
                // Stuffing after the last section (§2.4.4.2).
                self.reset();
                return;
            }
            let total = 3 + (usize::from(self.buf[1] & 0x0f) << 8 | usize::from(self.buf[2]));
            if !(3 + 5 + 4..=MAX_SECTION).contains(&total) {
                *dropped += 1;
                self.reset();
                return;
            }
            let take = (total - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < total {
                return;
            }
            if crc32_mpeg2(&self.buf) == 0 {
                each(&self.buf);
            } else {
                *dropped += 1;
            }
            self.buf.clear();
            if data.is_empty() {
                self.active = false;
            }
        }
    }
}

/// The PMT PID of the first program of a PAT section (program_number 0 is the
/// network PID, skipped).
pub(crate) fn parse_pat(section: &[u8]) -> Option<u16> {
    let body = table_body(section, 0x00)?;
    body.chunks_exact(4).find_map(|e| {
        let program = u16::from_be_bytes([e[0], e[1]]);
        (program != 0).then_some(u16::from(e[2] & 0x1f) << 8 | u16::from(e[3]))
    })
}

/// The streams of a PMT section.
pub(crate) fn parse_pmt(section: &[u8]) -> Option<Program> {
    let body = table_body(section, 0x02)?;
    let pcr_pid = u16::from(*body.first()? & 0x1f) << 8 | u16::from(*body.get(1)?);
    let info_len = usize::from(*body.get(2)? & 0x0f) << 8 | usize::from(*body.get(3)?);
    let mut rest = body.get(4 + info_len..)?;
    let mut program = Program {
        pcr_pid,
        ..Program::default()
    };
    while let [stream_type, p0, p1, l0, l1, tail @ ..] = rest {
        let pid = u16::from(p0 & 0x1f) << 8 | u16::from(*p1);
        let es_info = usize::from(l0 & 0x0f) << 8 | usize::from(*l1);
        rest = tail.get(es_info..)?;
        match stream_type {
            0x1b if program.video.is_none() => program.video = Some((pid, VideoCodec::Avc)),
            0x24 if program.video.is_none() => program.video = Some((pid, VideoCodec::Hevc)),
            0x0f if program.audio.is_none() => program.audio = Some(pid),
            _ => {}
        }
    }
    Some(program)
}

/// The bytes between a long-form section's header and its CRC, for `table_id`
/// with `current_next_indicator` set (a "next" table is not in force yet).
fn table_body(section: &[u8], table_id: u8) -> Option<&[u8]> {
    let [id, flags, _, _, _, version, ..] = *section else {
        return None;
    };
    let syntax = flags & 0x80 != 0;
    let current = version & 1 != 0;
    if id != table_id || !syntax || !current {
        return None;
    }
    section.get(8..section.len().checked_sub(4)?)
}

/// CRC-32/MPEG-2 (Annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no
/// reflection); 0 over a whole section whose CRC_32 field is right.
pub(crate) fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A long-form section with a right CRC.
    pub(crate) fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![
            table_id,
            0xb0 | (len >> 8) as u8,
            len as u8,
            0,
            1,
            0xc1,
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    #[test]
    fn crc_of_a_known_pat() {
        // ffmpeg's PAT: program 1 → PMT PID 0x1000.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1,
            0x04, 0xb2,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0);
        assert_eq!(parse_pat(&pat), Some(0x1000));
    }

    #[test]
    fn pmt_streams() {
        let body = [
            0xe1, 0x00, 0xf0, 0x00, // PCR PID 0x100, no program info
            0x06, 0xe0, 0x50, 0xf0, 0x00, // private data: ignored
            0x1b, 0xe1, 0x00, 0xf0, 0x00, // H.264 on 0x100
            0x0f, 0xe1, 0x01, 0xf0, 0x02, 0x0a, 0x00, // AAC on 0x101, a descriptor
        ];
        let p = parse_pmt(&section(2, &body)).unwrap();
        assert_eq!(p.pcr_pid, 0x100);
        assert_eq!(p.video, Some((0x100, VideoCodec::Avc)));
        assert_eq!(p.audio, Some(0x101));
        // An ES_info_length past the section: refused.
        let mut bad = body;
        bad[18] = 0x40;
        assert_eq!(parse_pmt(&section(2, &bad)), None);
    }

    #[test]
    fn sections_across_packets_and_bad_crc() {
        let s = section(2, &[0xe1, 0x00, 0xf0, 0x00]);
        let mut got = Vec::new();
        let mut sections = Sections::default();
        let mut first = vec![0u8];
        first.extend_from_slice(&s[..5]);
        assert_eq!(
            sections.push(true, &first, &mut |x| got.push(x.to_vec())),
            0
        );
        assert_eq!(
            sections.push(false, &s[5..], &mut |x| got.push(x.to_vec())),
            0
        );
        assert_eq!(got, vec![s.clone()]);
        let mut broken = vec![0u8];
        broken.extend_from_slice(&s);
        broken[6] ^= 1;
        assert_eq!(
            sections.push(true, &broken, &mut |_| panic!("bad CRC passed")),
            1
        );
    }
}

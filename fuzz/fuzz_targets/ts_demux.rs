//! The MPEG-TS door (`dvrclip_ingest::ts`) fed what a hostile SRT caller or HLS
//! origin sends: arbitrary bytes, in slices whose lengths come from the input, into
//! [`TsPublish`] with a real in-memory engine, with a reconnect
//! ([`TsPublish::discontinuity`]) where the input says.
//!
//! Input: a seed byte, then pieces, each a length byte (×8 bytes; 0 is a reconnect)
//! and that many bytes of transport stream. Half the inputs (by the seed) have a
//! valid PAT and H.264 + AAC PMT put first, so the PES, Annex B and ADTS paths are
//! reached without the fuzzer finding a CRC.
//!
//! Asserted: nothing panics; a refused feed leaves the ring with what it held;
//! what the door reports holding stays within its documented caps (a partial
//! packet, two section buffers, 8 + 1 MiB of PES, parameter sets, 8 MiB of pending
//! video, and the fragmenter's 2 × 16 MiB).
#![no_main]

use std::sync::Arc;

use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::ts::TsPublish;
use libfuzzer_sys::fuzz_target;

const HELD_CAP: usize = (8 + 1 + 8 + 1 + 32) << 20;

/// PAT (program 1 → PMT PID 0x1000) and PMT (H.264 on 0x100, AAC on 0x101), as
/// ffmpeg writes them.
fn psi_prefix() -> Vec<u8> {
    fn packet(pid: u16, section: &[u8]) -> [u8; 188] {
        let mut p = [0xff; 188];
        p[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0]);
        p[5..5 + section.len()].copy_from_slice(section);
        p
    }
    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
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
        let crc = s.iter().fold(0xffff_ffffu32, |mut crc, &b| {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
            crc
        });
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }
    let pat = section(0, &[0, 1, 0xf0, 0x00]);
    let pmt = section(
        2,
        &[
            0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1, 0x00, 0xf0, 0x00, 0x0f, 0xe1, 0x01, 0xf0, 0x00,
        ],
    );
    let mut out = packet(0, &pat).to_vec();
    out.extend_from_slice(&packet(0x1000, &pmt));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let engine = Arc::new(Engine::default());
    let stream = engine.create_stream(StreamSettings::named("f")).unwrap().id;
    let chunks = || {
        engine
            .renditions(stream)
            .ok()
            .map_or(0, |r| r.iter().map(|r| r.chunks).sum::<usize>())
    };
    let mut p = TsPublish::new(stream, "ts");
    if seed % 2 == 0 {
        p.feed(&engine, &psi_prefix()).unwrap();
    }
    while let Some((&n, tail)) = rest.split_first() {
        if n == 0 {
            p.discontinuity(&engine);
            rest = tail;
            continue;
        }
        let (piece, tail) = tail.split_at((usize::from(n) * 8).min(tail.len()));
        rest = tail;
        let before = chunks();
        if p.feed(&engine, piece).is_err() {
            assert!(chunks() >= before);
            return;
        }
        assert!(p.held_bytes() <= HELD_CAP, "{}", p.held_bytes());
    }
    let _ = p.finish(&engine);
});

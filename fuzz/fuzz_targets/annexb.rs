//! The Annex B → ISO/IEC 14496-15 path of the MPEG-TS door: access units split into
//! NAL units, parameter sets gathered and checked, `avcC`/`hvcC` built
//! (`dvrclip_fmp4::params::build_*_config`), samples written with 4-byte lengths
//! and fragmented.
//!
//! Input: a codec byte (even: H.264, odd: HEVC), then access units separated by the
//! byte 0xA5 0x5A; each becomes one PES with a PTS 40 ms after the last, wrapped in
//! valid transport packets after a valid PAT/PMT, and goes through `TsPublish` into
//! an in-memory engine. The same NAL units also go straight to the record builders.
//!
//! Asserted: nothing panics; a record the builders return parses back; whatever the
//! engine stored parsed as a segment of its init (it refuses anything else).
#![no_main]

use std::sync::Arc;

use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_fmp4::params;
use dvrclip_ingest::ts::TsPublish;
use libfuzzer_sys::fuzz_target;

fn crc(s: &[u8]) -> u32 {
    s.iter().fold(0xffff_ffffu32, |mut crc, &b| {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
        crc
    })
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
    let c = crc(&s);
    s.extend_from_slice(&c.to_be_bytes());
    s
}

/// `payload` as transport packets of `pid`, the first with the unit start flag.
fn packets(out: &mut Vec<u8>, pid: u16, payload: &[u8], cc: &mut u8) {
    for (i, piece) in payload.chunks(184).enumerate() {
        let start = if i == 0 { 0x40 } else { 0 };
        let mut p = vec![0x47, start | (pid >> 8) as u8, pid as u8];
        if piece.len() == 184 {
            p.push(0x10 | *cc);
        } else {
            // Adaptation field of stuffing so the packet is 188 bytes.
            let af = 183 - piece.len();
            p.push(0x30 | *cc);
            p.push(af as u8);
            if af > 0 {
                p.push(0);
                p.resize(p.len() + af - 1, 0xff);
            }
        }
        p.extend_from_slice(piece);
        *cc = (*cc + 1) & 0x0f;
        out.extend_from_slice(&p);
    }
}

fn pts_bytes(prefix: u8, t: u64) -> [u8; 5] {
    [
        prefix << 4 | ((t >> 29) & 0x0e) as u8 | 1,
        (t >> 22) as u8,
        ((t >> 14) & 0xfe) as u8 | 1,
        (t >> 7) as u8,
        ((t << 1) & 0xfe) as u8 | 1,
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&codec, rest)) = data.split_first() else {
        return;
    };
    let hevc = codec % 2 == 1;
    let units: Vec<&[u8]> = {
        let mut v = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + 1 < rest.len() {
            if rest[i] == 0xa5 && rest[i + 1] == 0x5a {
                v.push(&rest[start..i]);
                start = i + 2;
                i += 2;
            } else {
                i += 1;
            }
        }
        v.push(&rest[start..]);
        v
    };

    // The record builders on the NAL units of the input, by type.
    let nals: Vec<&[u8]> = units
        .iter()
        .flat_map(|u| u.split(|&b| b == 0).filter(|n| !n.is_empty()))
        .take(64)
        .collect();
    if hevc {
        let of = |t: u8| {
            nals.iter()
                .copied()
                .filter(|n| (n[0] >> 1) & 0x3f == t)
                .collect::<Vec<_>>()
        };
        if let Ok(r) = params::build_hevc_config(&of(32), &of(33), &of(34)) {
            params::parse_hevc_config(&r).unwrap();
        }
    } else {
        let of = |t: u8| {
            nals.iter()
                .copied()
                .filter(|n| n[0] & 0x1f == t)
                .collect::<Vec<_>>()
        };
        if let Ok(r) = params::build_avc_config(&of(7), &of(8)) {
            params::parse_avc_config(&r).unwrap();
        }
    }

    // The door: the access units as PES packets of a valid stream.
    let stream_type = if hevc { 0x24 } else { 0x1b };
    let mut ts = Vec::new();
    let mut cc = [0u8; 3];
    packets(
        &mut ts,
        0,
        &[&[0u8][..], &section(0, &[0, 1, 0xf0, 0x00])].concat(),
        &mut cc[0],
    );
    let pmt = section(
        2,
        &[0xe1, 0x00, 0xf0, 0x00, stream_type, 0xe1, 0x00, 0xf0, 0x00],
    );
    packets(&mut ts, 0x1000, &[&[0u8][..], &pmt].concat(), &mut cc[1]);
    for (i, unit) in units.iter().enumerate() {
        let t = 900_000 + i as u64 * 3600;
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10];
        pes.extend_from_slice(&pts_bytes(3, t + 3600));
        pes.extend_from_slice(&pts_bytes(1, t));
        pes.extend_from_slice(unit);
        packets(&mut ts, 0x100, &pes, &mut cc[2]);
    }
    let engine = Arc::new(Engine::default());
    let stream = engine.create_stream(StreamSettings::named("f")).unwrap().id;
    let mut p = TsPublish::new(stream, "ts");
    if p.feed(&engine, &ts).is_ok() {
        let _ = p.finish(&engine);
    }
});

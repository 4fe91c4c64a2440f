//! The CMAF fragmenter (`dvrclip_fmp4::fragment`) fed arbitrary configurations and
//! sample sequences, as a hostile RTMP or SRT publisher could make a door hand them
//! over.
//!
//! Input: a header byte (track count 1-3 and the options' shape), then per track a
//! byte choosing its codec (H.264, HEVC, AAC, Opus) and timescale and whether its
//! configuration record is ffmpeg's (from `tests/fixtures`) or the next bytes of the
//! input (a length byte, then the record); then samples, each a track byte, a signed
//! 24-bit decode step, a flags byte (sync, composition offset present), optionally a
//! 32-bit composition offset, a 16-bit length and that many payload bytes (for video
//! sometimes framed as one NAL unit, sometimes left raw so the framing check runs);
//! a track byte of 0xff flushes.
//!
//! Asserted: nothing panics; an accepted configuration's init parses with
//! `parse_init` into the declared tracks; the fragmenter never holds more than twice
//! `max_bytes`; every fragment parses with `parse_segment`, fits `max_bytes`, and
//! all of them together give back exactly the samples accepted, in order, with
//! their bytes.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use dvrclip_fmp4::fragment::{
    CodecConfig, Fragment, Fragmenter, InputSample, Options, TrackConfig,
};
use dvrclip_fmp4::{parse_init, parse_segment};
use libfuzzer_sys::fuzz_target;

/// ffmpeg's records: (avcC, hvcC, AudioSpecificConfig-bearing esds's ASC, dOps).
static RECORDS: LazyLock<[Bytes; 3]> = LazyLock::new(|| {
    let config = |b: &'static [u8], video: bool| {
        let init = parse_init(Bytes::from_static(b)).expect("fixture init parses");
        let t = if video {
            init.video_track()
        } else {
            init.audio_track()
        };
        t.expect("fixture track").entry.config.clone()
    };
    [
        config(
            include_bytes!("../../tests/fixtures/h264_aac/init.mp4"),
            true,
        ),
        config(include_bytes!("../../tests/fixtures/hevc/init.mp4"), true),
        config(
            include_bytes!("../../tests/fixtures/av1_opus/init.mp4"),
            false,
        ),
    ]
});

const TIMESCALES: [u32; 4] = [90_000, 1000, 48_000, 44_100];

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            head
        })
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(head) = input.byte() else { return };
    let count = usize::from(head % 3) + 1;
    let target = Duration::from_millis(1 + u64::from(head >> 2) * 50);
    let options = Options {
        target_duration: target,
        max_duration: target * (1 + u32::from(head >> 6) * 3),
        max_bytes: if head & 0x20 != 0 { 4096 } else { 1 << 20 },
    };
    let mut configs = Vec::new();
    for _ in 0..count {
        let Some(pick) = input.byte() else { return };
        let timescale = TIMESCALES[usize::from(pick >> 2) % TIMESCALES.len()];
        let record = if pick & 0x80 != 0 {
            let Some(n) = input.byte() else { return };
            let Some(b) = input.take(usize::from(n)) else {
                return;
            };
            Some(Bytes::copy_from_slice(b))
        } else {
            None
        };
        let codec = match pick & 3 {
            0 => CodecConfig::Avc {
                avcc: record.unwrap_or_else(|| RECORDS[0].clone()),
            },
            1 => CodecConfig::Hevc {
                hvcc: record.unwrap_or_else(|| RECORDS[1].clone()),
            },
            2 => CodecConfig::Aac {
                audio_specific_config: record.unwrap_or(Bytes::from_static(&[0x11, 0x90])),
            },
            _ => CodecConfig::Opus {
                dops: record.unwrap_or_else(|| RECORDS[2].clone()),
            },
        };
        configs.push(TrackConfig::new(timescale, codec));
    }
    let Ok(mut f) = Fragmenter::new(configs, options) else {
        return;
    };
    let init =
        parse_init(f.init_segment().clone()).expect("an accepted configuration's init parses");
    assert_eq!(init.tracks.len(), count);

    // What went in, per track: (decode time, composition offset, sync, bytes).
    let mut accepted: Vec<Vec<(u64, i32, bool, Bytes)>> = vec![Vec::new(); count];
    let mut last = vec![0u64; count];
    let mut fragments: Vec<Fragment> = Vec::new();
    while let Some(t) = input.byte() {
        if t == 0xff {
            fragments.extend(f.flush().expect("flush"));
            continue;
        }
        let Some(step) = input.take(3) else { break };
        let Some(flags) = input.byte() else { break };
        let cto = if flags & 2 != 0 {
            let Some(b) = input.take(4) else { break };
            i32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            0
        };
        let Some(len) = input.take(2) else { break };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(payload) = input.take(len.min(input.0.len())) else {
            break;
        };
        let mut bytes = Vec::with_capacity(payload.len() + 4);
        if flags & 4 != 0 {
            bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        }
        bytes.extend_from_slice(payload);
        let track = usize::from(t) % (count + 1); // sometimes a track that is not there
        let step = i64::from(i32::from_be_bytes([step[0], step[1], step[2], 0]) >> 8);
        let base = last.get(track).copied().unwrap_or(0);
        let dts = if flags & 8 != 0 {
            u64::MAX - step.unsigned_abs()
        } else {
            base.saturating_add_signed(step)
        };
        let sample = InputSample {
            track,
            decode_ticks: dts,
            composition_offset: cto,
            is_sync: flags & 1 != 0,
            data: Bytes::from(bytes),
        };
        let kept = sample.clone();
        if let Ok(out) = f.push(sample) {
            accepted[track].push((
                kept.decode_ticks,
                kept.composition_offset,
                kept.is_sync,
                kept.data,
            ));
            last[track] = dts;
            fragments.extend(out);
        }
        assert!(f.held_bytes() <= 2 * options.max_bytes);
    }
    fragments.extend(f.flush().expect("flush"));
    assert_eq!(f.held_bytes(), 0);

    let mut got: Vec<Vec<(u64, i32, bool, Bytes)>> = vec![Vec::new(); count];
    for (i, frag) in fragments.iter().enumerate() {
        assert_eq!(frag.sequence_number as usize, i + 1);
        assert!(frag.len() <= options.max_bytes);
        let seg = parse_segment(frag.to_bytes(), &init).expect("a fragment parses");
        for ts in &seg.tracks {
            for s in &ts.samples {
                got[ts.track_id as usize - 1].push((
                    s.decode_ticks,
                    s.composition_offset,
                    s.is_sync,
                    seg.bytes.slice(s.range()),
                ));
            }
        }
    }
    assert_eq!(got, accepted, "the samples accepted come back");
});

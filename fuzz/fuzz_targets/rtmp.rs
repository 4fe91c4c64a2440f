//! The RTMP door's message path (`dvrclip_ingest::rtmp`, `dvrclip_ingest::flv`) fed
//! what a hostile publisher sends.
//!
//! Input: a mode byte, then
//! - mode 0 (media): messages for one accepted publish, each a kind byte (even:
//!   video, odd: audio), a 32-bit RTMP timestamp, a 16-bit length and that many
//!   bytes of FLV tag body, into [`Publish`] with a real in-memory engine;
//! - mode 1 (wire): bytes for [`Connection::feed`] from the first byte on (the
//!   handshake included), in slices whose lengths come from the input;
//! - mode 2 (after a handshake): a valid plain handshake is done first, then as mode 1
//!   (the chunk stream, AMF commands).
//!
//! Asserted: nothing panics outside `rml_rtmp` (whose arithmetic on peer values can
//! panic; the door catches that and closes, see `crates/ingest/src/rtmp/mod.rs`); a
//! refused message closes the publish with the ring holding only what was stored
//! before it, every stored chunk whole; what a connection reports holding stays
//! under twice the message cap plus the fragmenter's bound.
#![no_main]

use std::sync::{Arc, Once};

use bytes::Bytes;
use dvrclip_engine::{Engine, StreamSettings};
use dvrclip_ingest::rtmp::{Connection, ConnectionLimits, Publish, Publishers, RENDITION};
use libfuzzer_sys::fuzz_target;

static QUIET: Once = Once::new();

fn chunks(engine: &Engine, id: dvrclip_engine::StreamId) -> usize {
    engine
        .renditions(id)
        .ok()
        .and_then(|r| r.iter().find(|r| r.name == RENDITION).map(|r| r.chunks))
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    // Panics inside rml_rtmp are caught by the door; keep them quiet. Any other
    // panic still reaches libfuzzer's harness, which aborts.
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let engine = Arc::new(Engine::default());
    let stream = engine.create_stream(StreamSettings::named("f")).unwrap().id;
    match mode % 3 {
        0 => {
            let mut p = Publish::new(stream);
            while rest.len() >= 7 {
                let kind = rest[0];
                let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                let len = usize::from(u16::from_be_bytes([rest[5], rest[6]]));
                let body = &rest[7..];
                let body = Bytes::copy_from_slice(&body[..len.min(body.len())]);
                rest = &rest[(7 + len).min(rest.len())..];
                let before = chunks(&engine, stream);
                let r = if kind % 2 == 0 {
                    p.video(&engine, &body, ts)
                } else {
                    p.audio(&engine, &body, ts)
                };
                if r.is_err() {
                    // The door closes the connection: the ring keeps what it had.
                    assert!(chunks(&engine, stream) >= before);
                    return;
                }
            }
            let _ = p.finish(&engine);
        }
        m => {
            let limits = ConnectionLimits::default();
            let mut c = Connection::new(engine.clone(), Arc::new(Publishers::default()), limits);
            let mut out = Vec::new();
            if m == 2 {
                let mut c0c1 = vec![3u8];
                c0c1.resize(1537, 0);
                if c.feed(&c0c1, &mut out).is_err() || out.len() < 1537 {
                    return;
                }
                let c2 = out[1..1537].to_vec();
                if c.feed(&c2, &mut out).is_err() {
                    return;
                }
            }
            while let Some((&n, tail)) = rest.split_first() {
                let n = usize::from(n).max(1) * 16;
                let (piece, tail) = tail.split_at(n.min(tail.len()));
                rest = tail;
                out.clear();
                if c.feed(piece, &mut out).is_err() {
                    break;
                }
                assert!(c.held_bytes() <= 2 * limits.max_message_bytes + (32 << 20));
            }
            let _ = c.finish();
            assert_eq!(chunks(&engine, stream), 0, "no publish, nothing stored");
        }
    }
});

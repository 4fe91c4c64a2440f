//! The Range / If-* serving path of `dvrclip_server::http::entity` on arbitrary
//! requests.
//!
//! Input: byte 0 picks the method (GET, HEAD, other), bytes 1..9 a length for the pure
//! `decide` (big-endian, reduced), the rest is split on `\n` into the values of
//! Range, If-Range, If-Match, If-None-Match (in that order; a missing or non-visible
//! value leaves the header out, an empty one sends it empty).
//!
//! Asserted for every request: the body length equals `Content-Length` and, on a 206,
//! the `Content-Range`; a 416 says `bytes */len`; 304 and HEAD have no body. Then the
//! same request through `respond` on a real clip (the `h264_aac` fixture as a
//! `VirtualMp4`): the streamed frames add up to `Content-Length` and equal the same
//! bytes of the whole file.
#![no_main]

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use dvrclip_fmp4::progressive::{Mp4Builder, Options, VirtualMp4};
use dvrclip_fmp4::{parse_init, parse_segment};
use dvrclip_server::http::entity::{Decision, decide, respond};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::Body;
use libfuzzer_sys::fuzz_target;

static CLIP: LazyLock<(Arc<VirtualMp4>, Vec<u8>)> = LazyLock::new(|| {
    let init = parse_init(Bytes::from_static(include_bytes!(
        "../../tests/fixtures/h264_aac/init.mp4"
    )))
    .expect("fixture init");
    let mut b = Mp4Builder::new(Options::default());
    for seg in [
        &include_bytes!("../../tests/fixtures/h264_aac/seg_000.m4s")[..],
        &include_bytes!("../../tests/fixtures/h264_aac/seg_001.m4s")[..],
    ] {
        let s = parse_segment(Bytes::from_static(seg), &init).expect("fixture segment");
        b.push(&init, &s).expect("fixture pushes");
    }
    let mp4 = b.build().expect("fixture builds");
    let whole: Vec<u8> = mp4.range(0..mp4.len()).expect("whole").flatten().collect();
    (Arc::new(mp4), whole)
});

const ETAG: &str = "\"5f3a\"";

fn header_u64(h: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

fn check(method: &Method, d: &Decision, len: u64) {
    let cl = header_u64(&d.headers, header::CONTENT_LENGTH);
    if let Some(r) = &d.body {
        assert!(r.start <= r.end && r.end <= len, "{r:?} of {len}");
        assert_eq!(cl, Some(r.end - r.start));
    }
    let cr = d
        .headers
        .get(header::CONTENT_RANGE)
        .map(|v| v.to_str().unwrap().to_owned());
    match d.status {
        StatusCode::OK => {
            assert_eq!(cl, Some(len));
            if method == Method::HEAD {
                assert!(d.body.is_none());
            } else {
                assert_eq!(d.body, Some(0..len));
            }
        }
        StatusCode::PARTIAL_CONTENT => {
            assert_eq!(method, Method::GET);
            let r = d.body.clone().expect("206 has a body");
            assert!(r.start < r.end);
            assert_eq!(cr, Some(format!("bytes {}-{}/{len}", r.start, r.end - 1)));
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            assert_eq!(cr, Some(format!("bytes */{len}")));
            assert_eq!(d.body, Some(0..0));
        }
        StatusCode::NOT_MODIFIED => {
            assert!(d.body.is_none());
            assert!(cl.is_none());
        }
        StatusCode::PRECONDITION_FAILED | StatusCode::METHOD_NOT_ALLOWED => {
            assert_eq!(d.body, Some(0..0));
        }
        other => panic!("unexpected status {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let method = match data[0] % 3 {
        0 => Method::GET,
        1 => Method::HEAD,
        _ => Method::POST,
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(&data[1..9]);
    // Mostly small lengths so ranges hit inside, sometimes huge ones.
    let raw = u64::from_be_bytes(n);
    let len = if raw & 1 == 0 {
        (raw >> 1) % 100_000
    } else {
        raw >> 1
    };
    let mut headers = HeaderMap::new();
    let names = [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
    ];
    for (name, value) in names.into_iter().zip(data[9..].split(|&b| b == b'\n')) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }

    let d = decide(&method, &headers, len, ETAG);
    check(&method, &d, len);

    // The real body path: same headers against the fixture clip (its own ETag).
    let (clip, whole) = &*CLIP;
    let d = decide(&method, &headers, clip.len(), clip.etag());
    check(&method, &d, clip.len());
    let mut cx = Context::from_waker(Waker::noop());
    // A clip's MP4 is in memory: its response is ready at the first poll.
    let Poll::Ready(Ok(resp)) = pin!(respond(&method, &headers, clip)).poll(&mut cx) else {
        panic!("an in-memory entity answers at once");
    };
    assert_eq!(resp.status(), d.status);
    let cl = header_u64(resp.headers(), header::CONTENT_LENGTH);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
        let data = frame.expect("infallible").into_data().expect("data frame");
        assert!(!data.is_empty());
        got.extend_from_slice(&data);
    }
    match d.body {
        Some(r) => {
            assert_eq!(Some(got.len() as u64), cl);
            assert_eq!(&got[..], &whole[r.start as usize..r.end as usize]);
        }
        None => assert!(got.is_empty()),
    }
});

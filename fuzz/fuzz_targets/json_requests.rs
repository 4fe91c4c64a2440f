//! The JSON bodies of the Gcore API (`dvrclip_server::api::wire`) on arbitrary bytes.
//!
//! Byte 0 picks the parser (`CreateClip`, `CreateStream`, `PatchStream`,
//! `PatchVideo`); the rest
//! is the body. Besides never panicking, an accepted body must hold values the rest
//! of the server may trust without checking again (ref/api.md): a positive duration,
//! a non-negative start, a `dvr_duration` inside Gcore's bounds, a non-blank name of
//! at most 255 characters; and a refused one must be a 400 with a reason.
#![no_main]

use dvrclip_server::error::ApiError;
use dvrclip_server::api::wire::{
    CreateClip, CreateStream, DVR_DURATION_RANGE, PatchStream, PatchVideo,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn refused(e: ApiError) {
    assert_eq!(e.status(), http::StatusCode::BAD_REQUEST, "{e:?}");
    assert!(!e.to_string().is_empty(), "a refusal without a reason");
}

fn sane_name(n: &str) {
    assert!(!n.trim().is_empty() && n.chars().count() <= 255, "{n:?}");
}

/// Parsing again what a success means, written back as JSON, gives the same value.
fn round_trip<T: PartialEq + std::fmt::Debug>(v: &T, body: Value, parse: fn(&[u8]) -> Result<T, ApiError>) {
    let again = parse(body.to_string().as_bytes()).expect("a re-encoded success parses");
    assert_eq!(&again, v);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    match pick % 4 {
        0 => match CreateClip::parse(body) {
            Ok(c) => {
                assert!(c.duration > 0 && c.duration <= i64::MAX as u64);
                assert!(c.start.is_none_or(|s| s >= 0));
                round_trip(
                    &c,
                    json!({"duration": c.duration, "start": c.start, "expiration": c.expiration,
                           "vod_required": c.vod_required, "precise": c.precise}),
                    CreateClip::parse,
                );
            }
            Err(e) => refused(e),
        },
        1 => match CreateStream::parse(body) {
            Ok(s) => {
                sane_name(&s.name);
                assert!(s.dvr_duration.is_none_or(|d| DVR_DURATION_RANGE.contains(&d)));
                round_trip(
                    &s,
                    json!({"name": s.name, "active": s.active, "dvr_enabled": s.dvr_enabled,
                           "dvr_duration": s.dvr_duration}),
                    CreateStream::parse,
                );
            }
            Err(e) => refused(e),
        },
        2 => match PatchStream::parse(body) {
            Ok(p) => {
                if let Some(n) = &p.name {
                    sane_name(n);
                }
                assert!(p.dvr_duration.is_none_or(|d| DVR_DURATION_RANGE.contains(&d)));
                round_trip(
                    &p,
                    json!({"stream": {"name": p.name, "active": p.active,
                           "dvr_enabled": p.dvr_enabled, "dvr_duration": p.dvr_duration}}),
                    PatchStream::parse,
                );
            }
            Err(e) => refused(e),
        },
        _ => match PatchVideo::parse(body) {
            Ok(v) => {
                sane_name(&v.name);
                round_trip(&v, json!({"name": v.name}), PatchVideo::parse);
            }
            Err(e) => refused(e),
        },
    }
});

//! The routing table (`dvrclip_server::route`) on arbitrary request lines.
//!
//! Input: byte 0 picks the method, the rest is the path (when it is UTF-8).
//! Asserted: decoding never panics; a public route answers GET, HEAD and (as a
//! preflight) OPTIONS only, and GET and HEAD decode to the same route; every name a
//! public route carries is a safe name (one path component, no traversal); a route
//! decodes the same twice.
#![no_main]

use dvrclip_engine::is_safe_name;
use dvrclip_server::route::{PublicRoute, Route, route};
use http::Method;
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, path)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let decoded = route(method, path);
    assert_eq!(decoded, route(method, path));
    if let Route::Public(public) = &decoded {
        match public {
            PublicRoute::Preflight => assert_eq!(method, Method::OPTIONS),
            _ => {
                assert!(method == Method::GET || method == Method::HEAD, "{method}");
                let other = if method == Method::GET { Method::HEAD } else { Method::GET };
                assert_eq!(route(&other, path), decoded);
            }
        }
        match public {
            PublicRoute::ClipLink { name, .. } => assert!(is_safe_name(name)),
            PublicRoute::ClipMedia { rendition, .. } => assert!(is_safe_name(rendition)),
            PublicRoute::LivePlaylist { key, rendition } => {
                assert!(is_safe_name(key));
                assert!(rendition.as_deref().is_none_or(is_safe_name));
            }
            PublicRoute::LiveMedia { key, rendition, .. } => {
                assert!(is_safe_name(key) && is_safe_name(rendition));
            }
            PublicRoute::Vod(..) | PublicRoute::Preflight => {}
        }
    }
});

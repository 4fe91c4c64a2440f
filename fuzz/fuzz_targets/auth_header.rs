//! `dvrclip_server::auth::check`, the API's `Authorization: APIKey <token>` check
//! (ref/api.md, its opening paragraph), on arbitrary header values and keys.
//!
//! Input: byte 0 gives the key's length (mod 32) and how to write a well-formed
//! header for it; then the key; then the header value (no header when the input
//! ends with the key). Asserted: never panics; a header is accepted exactly when it
//! is `APIKey` (any case), one or more spaces and the key, with optional spaces or
//! tabs around (RFC 9110 §11.6.2, §5.6.3), the key being visible ASCII; a well-formed
//! header with another token is `Invalid`, anything else `Malformed`, no header
//! `Missing`; and every well-formed header written for the key is accepted.
#![no_main]

use dvrclip_server::auth::{AuthError, check};
use libfuzzer_sys::fuzz_target;

/// The token of a well-formed `APIKey` header value, written independently of
/// `check`: OWS, the scheme, 1*SP, a token of visible ASCII, OWS.
fn token(value: &[u8]) -> Option<&[u8]> {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b))?;
    let end = value.iter().rposition(|b| !ows(b))? + 1;
    let credentials = &value[start..end];
    let (scheme, rest) = credentials.split_at_checked(6)?;
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    let token = &rest[spaces..];
    let well_formed = scheme.eq_ignore_ascii_case(b"apikey")
        && spaces > 0
        && !token.is_empty()
        && token.iter().all(u8::is_ascii_graphic);
    well_formed.then_some(token)
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let (key, header) = rest.split_at(usize::from(how % 32).min(rest.len()));
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };

    let header = (!header.is_empty()).then_some(header);
    let expected = match header.map(token) {
        None => Err(AuthError::Missing),
        Some(None) => Err(AuthError::Malformed),
        Some(Some(t)) if t == key.as_bytes() => Ok(()),
        Some(Some(_)) => Err(AuthError::Invalid),
    };
    assert_eq!(check(header, key), expected, "{header:?} against {key:?}");

    // Written for the key as a client may: the scheme's case, 1-2 spaces, OWS around.
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()) {
        let scheme = if how & 0x20 == 0 { "APIKey" } else { "apikey" };
        let spaces = if how & 0x40 == 0 { " " } else { "  " };
        let ows = if how & 0x80 == 0 { "" } else { " \t" };
        let written = format!("{ows}{scheme}{spaces}{key}{ows}");
        assert_eq!(check(Some(written.as_bytes()), key), Ok(()), "{written:?}");
    }
});

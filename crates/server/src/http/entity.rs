//! Serving an immutable entity over HTTP: conditional requests and byte ranges, one
//! path for every file the server streams (a clip's virtual MP4, a stored video).
//!
//! An [`Entity`] is what the model of http-serve calls one: a length, a strong
//! ETag, a content type, and the bytes of any range as a body. [`respond`] answers
//! GET and HEAD of one: RFC 9110 §13 (preconditions: `If-Match`, `If-None-Match`,
//! `If-Range`, in the order of §13.2.2) and §14 (`Range`, `Accept-Ranges`,
//! `Content-Range`), for a representation with no `Last-Modified`. Routing, CORS,
//! caching policy and a clip's 425/404 are not here: the caller has found the entity.
//!
//! [`decide`] is a pure function (method, request headers, length, ETag → status,
//! headers, byte range) so every branch is unit-tested and fuzzed
//! (`fuzz/fuzz_targets/range_serving.rs`). A request with several ranges is answered
//! with one range when they coalesce into one, else with the whole file (200), which
//! §14.2 allows ("A server MAY ignore the Range header field"): no multipart.

use std::convert::Infallible;
use std::future::Future;
use std::ops::{Deref, Range};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use dvrclip_fmp4::progressive::{Pieces, VirtualMp4};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};

use super::{HttpBody, HttpResponse};

/// An immutable representation served with ranges and conditional requests.
pub trait Entity {
    /// Why its bytes could not be read (a store that fails).
    type Error;
    /// Its length, bytes.
    fn len(&self) -> u64;
    /// Whether it has no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its strong entity-tag, quoted (`"abc"`).
    fn etag(&self) -> &str;
    /// Its `Content-Type`.
    fn content_type(&self) -> &str;
    /// A body yielding exactly the bytes of `range` (non-empty, inside the entity).
    fn body(&self, range: Range<u64>)
    -> impl Future<Output = Result<HttpBody, Self::Error>> + Send;
}

/// The response to a GET or HEAD of `entity`: [`decide`], then `Content-Type` and a
/// body of the chosen bytes.
pub async fn respond<E: Entity>(
    method: &Method,
    req: &HeaderMap,
    entity: &E,
) -> Result<HttpResponse, E::Error> {
    let d = decide(method, req, entity.len(), entity.etag());
    let mut headers = d.headers;
    if matches!(d.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT)
        && let Ok(v) = HeaderValue::from_str(entity.content_type())
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let body = match d.body {
        Some(r) if r.start < r.end => entity.body(r).await?,
        _ => Empty::new().boxed(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = d.status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// A clip's MP4: built once, its pieces are `Bytes` of the chunks (no copy).
impl Entity for Arc<VirtualMp4> {
    type Error = Infallible;

    fn len(&self) -> u64 {
        VirtualMp4::len(self)
    }

    fn etag(&self) -> &str {
        VirtualMp4::etag(self)
    }

    fn content_type(&self) -> &str {
        VirtualMp4::content_type(self)
    }

    async fn body(&self, range: Range<u64>) -> Result<HttpBody, Infallible> {
        Ok(Mp4Body::new(Arc::clone(self), range).boxed())
    }
}

/// More range-specs than this and the Range header is ignored (§14.2 lets a server
/// ignore "a set of many small ranges"); bounds the work per request.
const MAX_RANGES: usize = 64;

/// What to answer: status, headers (no `Content-Type`), and which bytes of the
/// representation go in the body (`None`: no body at all, as for HEAD or 304).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Response status.
    pub status: StatusCode,
    /// `ETag`, `Accept-Ranges`, `Content-Length`, `Content-Range`, `Allow` as fit.
    pub headers: HeaderMap,
    /// The representation's bytes to send.
    pub body: Option<Range<u64>>,
}

/// Evaluates a GET or HEAD of a representation of `len` bytes tagged `etag` (a
/// quoted strong entity-tag such as `"abc"`).
pub fn decide(method: &Method, req: &HeaderMap, len: u64, etag: &str) -> Decision {
    let mut headers = HeaderMap::new();
    let etag_value = HeaderValue::from_str(etag).ok();
    let is_get = method == Method::GET;
    if !is_get && method != Method::HEAD {
        // §15.5.6: "The origin server MUST generate an Allow header field in a 405
        // response containing a list of the target resource's currently supported
        // methods."
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        return Decision {
            status: StatusCode::METHOD_NOT_ALLOWED,
            headers,
            body: Some(0..0),
        };
    }
    if let Some(v) = &etag_value {
        headers.insert(header::ETAG, v.clone());
    }

    // §13.2.2 step 1, §13.1.1: If-Match is true for "*" (the representation exists)
    // or when one listed tag strongly matches; false: "MUST NOT perform the requested
    // method ... respond with a 412 (Precondition Failed) status code".
    // (Step 2, If-Unmodified-Since, is ignored: §13.1.4 "if the resource does not have
    // a modification date available".)
    if req.contains_key(header::IF_MATCH) && !list_matches(req, &header::IF_MATCH, etag, true) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        return Decision {
            status: StatusCode::PRECONDITION_FAILED,
            headers,
            body: Some(0..0),
        };
    }

    // §13.2.2 step 3, §13.1.2: If-None-Match is false when "*" is given or a listed
    // tag weakly matches; then "the origin server MUST NOT perform the requested
    // method; instead, ... respond with the 304 (Not Modified) status code" for GET
    // and HEAD. §15.4.5: a 304 carries the ETag a 200 would; no Content-Length (§8.6
    // allows it only equal to the 200's, and the body is empty either way).
    // (Step 4, If-Modified-Since, is skipped: no Last-Modified, and §13.1.3 ignores
    // it beside If-None-Match.)
    if req.contains_key(header::IF_NONE_MATCH)
        && list_matches(req, &header::IF_NONE_MATCH, etag, false)
    {
        return Decision {
            status: StatusCode::NOT_MODIFIED,
            headers,
            body: None,
        };
    }

    // §14.3: "Accept-Ranges: bytes" advertises range support.
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    // §13.2.2 step 5 and §14.2: "A server MUST ignore a Range header field received
    // with a request method that is unrecognized or for which range handling is not
    // defined. For this specification, GET is the only method for which range
    // handling is defined." An empty representation has no byte to range over.
    let range = if is_get && len > 0 && if_range_holds(req, etag) {
        parse_range(req, len)
    } else {
        RangeRequest::Full
    };

    match range {
        RangeRequest::Full => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            Decision {
                status: StatusCode::OK,
                headers,
                // §9.3.2: HEAD gets the same header fields as GET, no content.
                body: is_get.then_some(0..len),
            }
        }
        RangeRequest::Unsatisfiable => {
            // §15.5.17: "the server SHOULD send a Content-Range header field with
            // an unsatisfied-range value", i.e. `bytes */complete-length` (§14.4).
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            Decision {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                body: Some(0..0),
            }
        }
        RangeRequest::One(r) => {
            // §15.3.7.1: "If a single part is being transferred, the server
            // generating the 206 response MUST generate a Content-Range header
            // field, describing what range of the selected representation is
            // enclosed" (§14.4: `bytes first-last/complete-length`, last inclusive).
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end - 1))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            Decision {
                status: StatusCode::PARTIAL_CONTENT,
                headers,
                body: Some(r),
            }
        }
    }
}

/// A response body yielding a byte range of a [`VirtualMp4`] piece by piece. Finding
/// the first piece is a binary search; each frame is a `Bytes` slice of a segment.
/// The header's pieces are small (a chunk's `stsz` rows are a few hundred bytes, the
/// bytes between them fewer): consecutive ones are gathered into one frame by a
/// copy of header bytes, so a 7 MB `moov` goes out in 128 KiB frames rather than
/// 30,000 tiny ones (an iovec and a frame each). Media is never copied.
/// `D` is what keeps the file alive while the body is sent: an `Arc<VirtualMp4>`, or
/// a handle that also holds the file's share of the memory budget.
#[derive(Debug)]
pub struct Mp4Body<D = Arc<VirtualMp4>> {
    pieces: Option<Pieces<D>>,
    /// The rest of the current piece, handed out in frames of at most [`MAX_FRAME`].
    current: Bytes,
}

/// Largest body frame. A piece is a whole fragment's media (hundreds of KB); smaller
/// frames let one runtime thread interleave many downloads more evenly.
pub(crate) const MAX_FRAME: usize = 128 << 10;

/// Header pieces shorter than this are gathered into one frame.
const GATHER_BELOW: usize = 16 << 10;

impl<D: Deref<Target = VirtualMp4>> Mp4Body<D> {
    /// The bytes `range` of `file`; empty if the range does not lie inside it.
    pub fn new(file: D, range: Range<u64>) -> Self {
        Mp4Body {
            pieces: VirtualMp4::pieces(file, range).ok(),
            current: Bytes::new(),
        }
    }

    /// No content.
    pub fn empty() -> Self {
        Mp4Body {
            pieces: None,
            current: Bytes::new(),
        }
    }

    fn remaining(&self) -> u64 {
        self.current.len() as u64 + self.pieces.as_ref().map_or(0, Pieces::remaining)
    }
}

impl<D: Deref<Target = VirtualMp4> + Unpin> Body for Mp4Body<D> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match this.pieces.as_mut().and_then(Iterator::next) {
                Some(piece) => this.current = piece,
                None => return Poll::Ready(None),
            }
        }
        if this.current.len() < GATHER_BELOW
            && let Some(pieces) = this.pieces.as_mut()
            && pieces.in_header()
        {
            return Poll::Ready(Some(Ok(Frame::data(gather(pieces, &mut this.current)))));
        }
        // A `Bytes` split shares the same buffer: no media byte is copied.
        let n = this.current.len().min(MAX_FRAME);
        Poll::Ready(Some(Ok(Frame::data(this.current.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

/// `current` and the small header pieces after it, copied into one frame of at most
/// [`MAX_FRAME`]; a piece that does not fit is left in `current`.
fn gather<D: Deref<Target = VirtualMp4>>(pieces: &mut Pieces<D>, current: &mut Bytes) -> Bytes {
    let mut frame = BytesMut::with_capacity(MAX_FRAME);
    frame.extend_from_slice(current);
    *current = Bytes::new();
    while pieces.in_header() {
        let Some(piece) = pieces.next() else {
            break;
        };
        if piece.len() >= GATHER_BELOW || frame.len() + piece.len() > MAX_FRAME {
            *current = piece;
            break;
        }
        frame.extend_from_slice(&piece);
    }
    frame.freeze()
}

/// What the Range header asks for, once resolved against the length.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No (usable) Range: the whole representation, 200.
    Full,
    /// One range, or several that coalesce into one: 206.
    One(Range<u64>),
    /// Valid syntax, no range overlaps the representation: 416.
    Unsatisfiable,
}

/// §13.1.5: "A server MUST ignore an If-Range header field received in a request
/// that does not contain a Range header field"; otherwise the condition is true only
/// if the validator "is an entity-tag ... [that] is a strong match" (§8.8.3.2). A
/// date cannot match: there is no Last-Modified. False means "ignore the Range
/// header field and ... respond with the entire selected representation".
fn if_range_holds(req: &HeaderMap, etag: &str) -> bool {
    let mut values = req.get_all(header::IF_RANGE).iter();
    let Some(v) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false; // not a valid single validator
    }
    let v = trim_ows(v.as_bytes());
    // Strong comparison: both not weak, opaque tags equal octet by octet.
    v.first() == Some(&b'"') && v == etag.as_bytes()
}

/// Whether an `If-Match` (`strong`) or `If-None-Match` (weak) list matches `etag`.
/// Unparsable members match nothing.
fn list_matches(req: &HeaderMap, name: &header::HeaderName, etag: &str, strong: bool) -> bool {
    let ours = etag.as_bytes();
    let ours_opaque = ours.strip_prefix(b"W/").unwrap_or(ours);
    for value in req.get_all(name) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let m = trim_ows(member);
            if m == b"*" {
                return true;
            }
            let (weak, opaque) = match m.strip_prefix(b"W/") {
                Some(rest) => (true, rest),
                None => (false, m),
            };
            if !is_opaque_tag(opaque) {
                continue;
            }
            // §8.8.3.2: strong comparison needs both tags not weak; weak comparison
            // compares opaque tags only.
            let hit = opaque == ours_opaque;
            if hit && (!strong || !weak && !ours.starts_with(b"W/")) {
                return true;
            }
        }
    }
    false
}

/// `opaque-tag = DQUOTE *etagc DQUOTE` with `etagc = %x21 / %x23-7E / obs-text`.
fn is_opaque_tag(b: &[u8]) -> bool {
    b.len() >= 2
        && b[0] == b'"'
        && b[b.len() - 1] == b'"'
        && b[1..b.len() - 1]
            .iter()
            .all(|&c| c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80)
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// §14.1.1–§14.1.2: parses `bytes=` range-specs and resolves them against `len > 0`.
fn parse_range(req: &HeaderMap, len: u64) -> RangeRequest {
    let mut values = req.get_all(header::RANGE).iter();
    let Some(value) = values.next() else {
        return RangeRequest::Full;
    };
    if values.next().is_some() {
        return RangeRequest::Full; // Range is a singleton field: ignore a malformed one
    }
    let v = trim_ows(value.as_bytes());
    // §14.1: "range units are compared case-insensitively"; §14.2: "An origin
    // server MUST ignore a Range header field that contains a range unit it does not
    // understand."
    let Some(eq) = v.iter().position(|&b| b == b'=') else {
        return RangeRequest::Full;
    };
    if !trim_ows(&v[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeRequest::Full;
    }
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut specs = 0;
    for spec in v[eq + 1..].split(|&b| b == b',') {
        let spec = trim_ows(spec);
        // §5.6.1: "a recipient MUST accept empty list elements".
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeRequest::Full;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return RangeRequest::Full; // invalid ranges-specifier: §14.2 MAY ignore
        };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        if first.is_empty() {
            // suffix-range: "-" suffix-length, the last N bytes (all if N > len).
            let Some(n) = digits(last) else {
                return RangeRequest::Full;
            };
            if n > 0 {
                ranges.push(len - n.min(len)..len);
            }
        } else {
            let Some(first) = digits(first) else {
                return RangeRequest::Full;
            };
            let last = if last.is_empty() {
                None
            } else {
                match digits(last) {
                    Some(l) => Some(l),
                    None => return RangeRequest::Full,
                }
            };
            // §14.1.1: "An int-range is invalid if the last-pos value is present
            // and less than the first-pos."
            if last.is_some_and(|l| l < first) {
                return RangeRequest::Full;
            }
            // §14.1.2: a first-pos at or past the length fails to overlap; a
            // last-pos absent or past the end means "the remainder".
            if first < len {
                let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                ranges.push(first..end);
            }
        }
    }
    if specs == 0 {
        return RangeRequest::Full;
    }
    // §14.1.2: satisfiable iff some range overlaps; empty-suffix and past-the-end
    // ranges were dropped above.
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|r| r.start);
    let mut one = ranges[0].clone();
    for r in &ranges[1..] {
        if r.start > one.end {
            // Disjoint ranges would need multipart/byteranges: serve the whole file.
            return RangeRequest::Full;
        }
        one.end = one.end.max(r.end);
    }
    RangeRequest::One(one)
}

/// `1*DIGIT` as a number, saturating: a position past any length acts as infinity.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"0123abcd\"";

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn get(pairs: &[(&'static str, &'static str)]) -> Decision {
        decide(&Method::GET, &req(pairs), 1000, TAG)
    }

    fn hdr<'a>(d: &'a Decision, name: &str) -> Option<&'a str> {
        d.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn plain_get_is_200_with_length_etag_and_accept_ranges() {
        let d = get(&[]);
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(d.body, Some(0..1000));
        assert_eq!(hdr(&d, "content-length"), Some("1000"));
        assert_eq!(hdr(&d, "etag"), Some(TAG));
        assert_eq!(hdr(&d, "accept-ranges"), Some("bytes"));
    }

    #[test]
    fn head_has_get_headers_and_no_body() {
        // §9.3.2; §14.2: Range is defined for GET only, so HEAD ignores it.
        let d = decide(&Method::HEAD, &req(&[("range", "bytes=0-9")]), 1000, TAG);
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(d.body, None);
        assert_eq!(hdr(&d, "content-length"), Some("1000"));
    }

    #[test]
    fn single_ranges_are_206() {
        for (spec, want) in [
            ("bytes=0-9", 0..10),
            ("bytes=990-", 990..1000),
            ("bytes=990-5000", 990..1000),
            ("bytes=-10", 990..1000),
            ("bytes=-5000", 0..1000),
            ("BYTES = 5-5", 5..6),
            ("bytes=0-0,1-1,2-9", 0..10),
            ("bytes=, 20-29 ,", 20..30),
            ("bytes=0-99999999999999999999999", 0..1000),
        ] {
            let d = get(&[("range", spec)]);
            assert_eq!(d.status, StatusCode::PARTIAL_CONTENT, "{spec}");
            assert_eq!(d.body, Some(want.clone()), "{spec}");
            let cr = format!("bytes {}-{}/1000", want.start, want.end - 1);
            assert_eq!(hdr(&d, "content-range"), Some(cr.as_str()));
            let cl = (want.end - want.start).to_string();
            assert_eq!(hdr(&d, "content-length"), Some(cl.as_str()));
        }
    }

    #[test]
    fn unsatisfiable_is_416_with_star_length() {
        // §14.1.2: no int-range with first-pos < length and no non-zero suffix.
        for spec in [
            "bytes=1000-",
            "bytes=5000-6000",
            "bytes=-0",
            "bytes=1000-1001,-0",
        ] {
            let d = get(&[("range", spec)]);
            assert_eq!(d.status, StatusCode::RANGE_NOT_SATISFIABLE, "{spec}");
            assert_eq!(hdr(&d, "content-range"), Some("bytes */1000"));
            assert_eq!(d.body, Some(0..0));
        }
    }

    #[test]
    fn invalid_or_foreign_ranges_are_ignored() {
        // §14.2: unknown unit MUST be ignored; invalid specifier MAY be ignored;
        // disjoint ranges: we choose the whole representation over multipart.
        for spec in [
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes",
            "bytes=",
            "bytes=1-2-3",
            "bytes=0-1,5-6",
        ] {
            let d = get(&[("range", spec)]);
            assert_eq!(d.status, StatusCode::OK, "{spec}");
            assert_eq!(d.body, Some(0..1000));
        }
    }

    #[test]
    fn if_range_needs_a_strong_match() {
        let ok = get(&[("range", "bytes=0-9"), ("if-range", "\"0123abcd\"")]);
        assert_eq!(ok.status, StatusCode::PARTIAL_CONTENT);
        for v in [
            "\"other\"",
            "W/\"0123abcd\"",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            let mut h = req(&[("range", "bytes=0-9")]);
            h.insert("if-range", HeaderValue::from_str(v).unwrap());
            let d = decide(&Method::GET, &h, 1000, TAG);
            assert_eq!(d.status, StatusCode::OK, "{v}");
            assert_eq!(d.body, Some(0..1000));
        }
    }

    #[test]
    fn if_none_match_gives_304_with_etag_and_no_body() {
        for v in ["\"0123abcd\"", "W/\"0123abcd\"", "\"x\", \"0123abcd\"", "*"] {
            let mut h = HeaderMap::new();
            h.insert("if-none-match", HeaderValue::from_str(v).unwrap());
            for m in [Method::GET, Method::HEAD] {
                let d = decide(&m, &h, 1000, TAG);
                assert_eq!(d.status, StatusCode::NOT_MODIFIED, "{v}");
                assert_eq!(d.body, None);
                assert_eq!(hdr(&d, "etag"), Some(TAG));
                assert_eq!(hdr(&d, "content-length"), None);
            }
        }
        let d = get(&[("if-none-match", "\"other\"")]);
        assert_eq!(d.status, StatusCode::OK);
    }

    #[test]
    fn if_match_failure_is_412_and_beats_if_none_match() {
        assert_eq!(get(&[("if-match", "\"0123abcd\"")]).status, StatusCode::OK);
        assert_eq!(get(&[("if-match", "*")]).status, StatusCode::OK);
        for v in ["\"other\"", "W/\"0123abcd\"", "garbage"] {
            let mut h = HeaderMap::new();
            h.insert("if-match", HeaderValue::from_str(v).unwrap());
            h.insert("if-none-match", HeaderValue::from_static("*"));
            let d = decide(&Method::GET, &h, 1000, TAG);
            assert_eq!(d.status, StatusCode::PRECONDITION_FAILED, "{v}");
            assert_eq!(d.body, Some(0..0));
        }
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let d = decide(&Method::POST, &HeaderMap::new(), 1000, TAG);
        assert_eq!(d.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(hdr(&d, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn empty_representation_ignores_range() {
        let d = decide(&Method::GET, &req(&[("range", "bytes=0-1")]), 0, TAG);
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(d.body, Some(0..0));
    }

    /// A tiny clip: one video track, one segment of 3 samples.
    fn tiny_mp4() -> (Arc<VirtualMp4>, Vec<u8>) {
        clip_mp4(1, 3, false)
    }

    /// A clip of `segments` segments of `samples` video samples each (sizes and
    /// composition offsets varying), their rows summarised at ingest or not (the
    /// header then in many pieces, or one).
    fn clip_mp4(segments: u32, samples: u32, prepared: bool) -> (Arc<VirtualMp4>, Vec<u8>) {
        use dvrclip_fmp4::progressive::{Mp4Builder, Options, SegmentTables};
        use dvrclip_fmp4::*;
        let mut stsd = vec![0, 0, 0, 24, b's', b't', b's', b'd', 0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend_from_slice(&[0, 0, 0, 8, b'a', b'v', b'c', b'1']);
        let init = InitSegment {
            bytes: Bytes::from_static(b"init"),
            movie_timescale: 1000,
            tracks: vec![Track {
                track_id: 1,
                kind: TrackKind::Video,
                timescale: 90000,
                language: 0,
                defaults: TrackDefaults::default(),
                edits: vec![],
                entry: SampleEntry {
                    format: FourCC::new(b"avc1"),
                    stsd: Bytes::from(stsd),
                    config: Bytes::new(),
                    codec: "avc1.64001f".into(),
                    video: Some(VideoInfo {
                        width: 64,
                        height: 64,
                    }),
                    audio: None,
                },
            }],
        };
        let mut b = Mp4Builder::new(Options::default());
        for n in 0..segments {
            let sizes: Vec<u32> = (0..samples).map(|k| 90 - (k * 7 + n) % 40).collect();
            let len = 8 + sizes.iter().sum::<u32>();
            let media: Vec<u8> = (0..len).map(|i| (i + n) as u8).collect();
            let mut offset = 8;
            let seg = MediaSegment {
                bytes: Bytes::from(media),
                producer_time: None,
                events: vec![],
                tracks: vec![TrackSamples {
                    track_id: 1,
                    base_decode_ticks: u64::from(n * samples) * 3000,
                    sample_description_index: 1,
                    samples: (0..samples)
                        .map(|k| {
                            let s = Sample {
                                decode_ticks: u64::from(n * samples + k) * 3000,
                                duration: 3000,
                                composition_offset: [0, 6000, 3000, 0][k as usize % 4],
                                offset,
                                size: sizes[k as usize],
                                is_sync: k == 0,
                            };
                            offset += s.size;
                            s
                        })
                        .collect(),
                }],
                mdat_ranges: std::iter::once(8..len).collect(),
            };
            if prepared {
                b.push_prepared(&init, &seg, &SegmentTables::new(&seg))
                    .unwrap();
            } else {
                b.push(&init, &seg).unwrap();
            }
        }
        let mp4 = Arc::new(b.build().unwrap());
        let whole: Vec<u8> = mp4.range(0..mp4.len()).unwrap().flatten().collect();
        (mp4, whole)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn collect(body: HttpBody) -> Vec<u8> {
        block_on(body.collect()).unwrap().to_bytes().to_vec()
    }

    fn get_mp4(method: Method, h: &HeaderMap, mp4: &Arc<VirtualMp4>) -> HttpResponse {
        block_on(respond(&method, h, mp4)).unwrap()
    }

    #[test]
    fn respond_streams_the_chosen_bytes() {
        let (mp4, whole) = tiny_mp4();
        let len = mp4.len();
        assert_eq!(whole.len() as u64, len);
        let r = get_mp4(Method::GET, &HeaderMap::new(), &mp4);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "video/mp4; codecs=\"avc1.64001f\""
        );
        assert_eq!(r.body().size_hint().exact(), Some(len));
        assert_eq!(collect(r.into_body()), whole);

        // A range across the header/media boundary.
        let at = mp4.header_len() - 5;
        let mut h = HeaderMap::new();
        let spec = format!("bytes={}-{}", at, at + 99);
        h.insert("range", HeaderValue::from_str(&spec).unwrap());
        let r = get_mp4(Method::GET, &h, &mp4);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            collect(r.into_body()),
            &whole[at as usize..at as usize + 100]
        );

        let r = get_mp4(Method::HEAD, &HeaderMap::new(), &mp4);
        assert!(r.body().is_end_stream());
        assert_eq!(r.headers()["content-length"], len.to_string().as_str());
        assert!(collect(r.into_body()).is_empty());
    }

    /// A header in pieces (each chunk's encoded rows) is sent as the same bytes as
    /// one built whole, its small pieces gathered into a few frames.
    #[test]
    fn a_pieced_header_is_sent_whole_in_few_frames() {
        let (walked, whole) = clip_mp4(400, 30, false);
        let (pieced, same) = clip_mp4(400, 30, true);
        assert!(whole == same, "the same file either way");
        assert!(pieced.range(0..pieced.header_len()).unwrap().count() > 800);
        let header = pieced.header_len();
        let frames = block_on(async {
            let mut body = Mp4Body::new(Arc::clone(&pieced), 0..header);
            let mut frames = Vec::new();
            while let Some(f) = body.frame().await {
                frames.push(f.unwrap().into_data().unwrap());
            }
            frames
        });
        assert_eq!(frames.concat(), &whole[..header as usize]);
        assert!(
            frames.len() as u64 <= header / MAX_FRAME as u64 + 2,
            "{}",
            frames.len()
        );
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME));
        assert_eq!(walked.len(), pieced.len());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any range of a clip whose header is in pieces is the same bytes as that
        /// range of the whole file, however the body gathers and splits its frames.
        #[test]
        fn pieced_ranges_are_the_file(a in 0u64..200_000, b in 0u64..200_000) {
            use std::sync::OnceLock;
            static CLIP: OnceLock<(Arc<VirtualMp4>, Vec<u8>)> = OnceLock::new();
            let (mp4, whole) = CLIP.get_or_init(|| clip_mp4(60, 30, true));
            let len = mp4.len();
            let (a, b) = (a % len, b % len);
            let r = a.min(b)..a.max(b) + 1;
            let body = Mp4Body::new(Arc::clone(mp4), r.clone()).boxed();
            proptest::prop_assert!(collect(body) == whole[r.start as usize..r.end as usize]);
        }
    }

    proptest::proptest! {
        /// Whatever the headers, the body's length equals the Content-Length, and a
        /// 206's Content-Range names exactly the body's bytes.
        #[test]
        fn body_length_always_matches_headers(
            len in 0u64..5000,
            range in "[ -~]{0,40}",
            if_range in proptest::option::of("[ -~]{0,20}"),
            head in proptest::bool::ANY,
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&range) {
                h.insert("range", v);
            }
            if let Some(v) = if_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert("if-range", v);
            }
            let m = if head { Method::HEAD } else { Method::GET };
            let d = decide(&m, &h, len, TAG);
            check_consistent(&m, &d, len);
        }
    }

    /// The invariant the fuzz target asserts too.
    fn check_consistent(m: &Method, d: &Decision, len: u64) {
        let cl = hdr(d, "content-length").map(|v| v.parse::<u64>().unwrap());
        if let Some(r) = &d.body {
            assert!(r.start <= r.end && r.end <= len);
            assert_eq!(cl, Some(r.end - r.start));
        }
        match d.status {
            StatusCode::PARTIAL_CONTENT => {
                let r = d.body.clone().unwrap();
                assert!(r.start < r.end);
                let cr = format!("bytes {}-{}/{len}", r.start, r.end - 1);
                assert_eq!(hdr(d, "content-range"), Some(cr.as_str()));
            }
            StatusCode::OK if m == Method::HEAD => assert_eq!(cl, Some(len)),
            StatusCode::OK => assert_eq!(d.body, Some(0..len)),
            _ => {}
        }
    }
}

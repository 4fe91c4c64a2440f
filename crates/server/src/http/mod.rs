//! HTTP plumbing that knows no route: the accept loop and its limits ([`serve`]),
//! request bodies under a memory pool ([`body`]) placed where they are kept
//! ([`payload`]), the write timeout ([`send_timeout`]), the socket that sends payload
//! pages by reference ([`splice`]), byte-range serving of immutable entities
//! ([`entity`]), and the `Host` check every request passes ([`host`]).
//!
//! Nothing here imports the API, the public links or the application state; they
//! import this room.

pub mod body;
pub mod entity;
pub mod host;
pub mod payload;
pub mod send_timeout;
pub mod serve;
pub mod splice;

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Every response body: a full buffer or streamed pieces.
pub type HttpBody = BoxBody<Bytes, Infallible>;
/// Every response.
pub type HttpResponse = Response<HttpBody>;

/// A full-body response with a content type.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The one HEAD rule (RFC 9110 §9.3.2: "the same header fields as GET", no
/// content): a response built for GET keeps its `Content-Length` (from the body's
/// exact size when the handler set none) and loses its body. Entities
/// ([`entity::respond`]) already answer HEAD with no body and the right length.
pub fn answer_head(method: &Method, resp: &mut HttpResponse) {
    if method != Method::HEAD {
        return;
    }
    if !resp.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(len) = http_body::Body::size_hint(resp.body()).exact()
    {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *resp.body_mut() = Full::new(Bytes::new()).boxed();
}

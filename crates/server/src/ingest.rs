//! HTTP ingest (`ref/api.md` "Ingest"): the transport of named-file uploads to
//! `{base}/ingest/{key}/{rendition}/{file}`. What a file means is
//! [`dvrclip_ingest::upload`]'s business; this module reads its body.
//!
//! The upload is resolved before its body is read (a wrong key costs no bytes), the
//! body is read whole under its kind's limit straight into where it is kept, and
//! only then stored, so a refused or aborted upload leaves the ring exactly as it
//! was. Status codes follow the DASH-IF Live Media Ingest spec: 403 wrong key, 412
//! no or mismatched init, 415 unsupported codec, 413 too large, 400 anything
//! malformed. A DELETE removes nothing: the DVR window alone decides what falls off.
//! A segment another node forwarded from its RTMP door may ask for a discontinuity
//! before it ([`DISCONTINUITY`]: that door's publish started an epoch), and every
//! upload of such a publish names it ([`PUBLISH`]): the publish holds the stream's
//! one publisher slot here while its uploads come, until its end (a DELETE naming
//! it) or its forwarding node's leaving the cluster ([`crate::cluster::slots`]).

use bytes::Bytes;
use dvrclip_ingest::{FileKind, Stored, Upload};
use http::StatusCode;
use http::request::Parts;
use http_body::Body;

use crate::app::App;
use crate::cluster::forward::Forwarder;
use crate::cluster::push::DISCONTINUITY;
use crate::cluster::slots::PUBLISH;
use crate::error::ApiError;
use crate::http::body::read_request;
use crate::http::{HttpResponse, full};
use crate::route::IngestRoute;

/// Handles one ingest request.
pub async fn handle<B>(
    app: &App,
    route: IngestRoute,
    parts: &Parts,
    body: B,
) -> Result<HttpResponse, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let upload = Upload::resolve(
        &app.engine,
        &route.key,
        route.rendition.as_deref(),
        &route.file,
    )?;
    // A forwarded publish's upload (steer let it through under this node's claim).
    if let Some(cluster) = &app.cluster
        && let Some(node) = forwarded_by(&parts.headers)
        && let Some(publish) = parts.headers.get(PUBLISH).and_then(|v| v.to_str().ok())
    {
        if route.delete {
            cluster.slots.end(upload.stream, publish);
        } else {
            cluster
                .hold_slot(&app.publishers, upload.stream, publish, node)
                .await?;
        }
    }
    if route.delete {
        return Ok(full(StatusCode::NO_CONTENT, "text/plain", Bytes::new()));
    }
    let limits = &app.config.limits;
    let max_bytes = match upload.kind {
        FileKind::Segment => limits.segment_bytes,
        FileKind::Init | FileKind::Playlist => limits.small_file_bytes,
    };
    // A segment is read straight into its spool file; an init or playlist is small
    // and not kept as a file.
    let spool = match upload.kind {
        FileKind::Segment => app.spool.as_deref(),
        FileKind::Init | FileKind::Playlist => None,
    };
    let limits = limits.body(max_bytes);
    let bytes = read_request(&parts.headers, body, limits, &app.bodies, spool).await?;
    let len = bytes.len();
    if let (FileKind::Segment, Some(rendition)) = (upload.kind, upload.rendition)
        && parts.headers.contains_key(DISCONTINUITY)
        && Forwarder::is_forwarded(&parts.headers)
    {
        app.engine.break_discontinuity(upload.stream, rendition)?;
    }
    let status = status_of(upload.store(&app.engine, bytes)?);
    app.metrics.record_ingest(len);
    Ok(full(status, "text/plain", Bytes::new()))
}

/// The node that forwarded a request, if another node did.
fn forwarded_by(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(crate::cluster::forward::FORWARDED_BY)
        .and_then(|v| v.to_str().ok())
}

/// `201 Created` when something new was stored, `200 OK` for a retry of what is
/// already held (a PUT is idempotent: RFC 9110 §9.3.4).
pub fn status_of(stored: Stored) -> StatusCode {
    match stored {
        Stored::Created => StatusCode::CREATED,
        Stored::Unchanged => StatusCode::OK,
    }
}

//! Operations endpoints: `GET /healthz`, `GET /metrics` (Prometheus text
//! exposition format 0.0.4) and `GET /openapi.yaml` (the OpenAPI 3.1 document of
//! every endpoint, `ref/openapi.yaml`, compiled in). No auth, like nginx's
//! stub_status behind a firewall: they say how much, never what.
//!
//! Counters come from [`crate::metrics`]; gauges about streams, chunks, clips and
//! memory are read from the engine at scrape time, so none can drift from the truth.

use http::StatusCode;

use crate::app::App;
use crate::http::{HttpResponse, full};
use crate::route::OpsRoute;

/// Answers an ops route.
pub fn handle(app: &App, route: OpsRoute) -> HttpResponse {
    match route {
        OpsRoute::Health => full(StatusCode::OK, "text/plain", "ok\n"),
        OpsRoute::Metrics => full(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render_metrics(app),
        ),
        // RFC 9512 registers `application/yaml`.
        OpsRoute::OpenApi => full(StatusCode::OK, "application/yaml", OPENAPI),
    }
}

/// `ref/openapi.yaml`: every path, method, field and status of the server; a test
/// beside the router (`route.rs`) keeps the two in step.
pub const OPENAPI: &str = include_str!("../../../ref/openapi.yaml");

fn render_metrics(app: &App) -> String {
    let engine = &app.engine;
    let mem = engine.memory();
    let streams = engine.streams();
    let (mut renditions, mut chunks) = (0u64, 0u64);
    for s in &streams {
        if let Ok(rs) = engine.renditions(s.id) {
            renditions += rs.len() as u64;
            chunks += rs.iter().map(|r| r.chunks as u64).sum::<u64>();
        }
    }
    let clips: u64 = streams
        .iter()
        .filter_map(|s| engine.clips(s.id).ok())
        .map(|c| c.len() as u64)
        .sum();
    let bodies = app.bodies.held_bytes();
    // Reservations are connections' and built MP4s'; the cache knows its own.
    let mp4s = app.mp4_memory_bytes();
    let mut text = app.metrics.render(&[
        ("dvrclip_streams", "Streams.", streams.len() as u64),
        (
            "dvrclip_renditions",
            "Renditions with an init segment.",
            renditions,
        ),
        ("dvrclip_dvr_chunks", "Chunks held in DVR rings.", chunks),
        (
            "dvrclip_memory_bytes",
            "Bytes the budget bounds: chunks (payload and parsed tables, DVR and clips), open connections, built clip MP4 headers and request bodies still arriving.",
            mem.total_bytes + mem.reserved_bytes + bodies,
        ),
        (
            "dvrclip_clip_memory_bytes",
            "Of those, bytes of chunks held by clips.",
            mem.clip_bytes,
        ),
        (
            "dvrclip_connection_memory_bytes",
            "Of those, bytes counted for open connections.",
            mem.reserved_bytes.saturating_sub(mp4s),
        ),
        (
            "dvrclip_mp4_memory_bytes",
            "Of those, bytes of built clip MP4s (headers and piece tables; their media is the chunks').",
            mp4s,
        ),
        (
            "dvrclip_body_memory_bytes",
            "Of those, bytes of request bodies still arriving.",
            bodies,
        ),
        (
            "dvrclip_memory_budget_bytes",
            "The memory budget (the process's start-up footprint and the bodies' sixteenth are set aside from it).",
            app.config.memory_budget_bytes,
        ),
        ("dvrclip_clips", "Clips not yet expired.", clips),
    ]);
    let spliced = crate::http::splice::spliced_bytes();
    text.push_str(&format!(
        "# HELP dvrclip_http_spliced_bytes_total Response bytes sent by page reference (vmsplice) rather than copied.\n\
         # TYPE dvrclip_http_spliced_bytes_total counter\ndvrclip_http_spliced_bytes_total {spliced}\n"
    ));
    text.push_str(&app.mp4_cache.render_metrics());
    text.push_str(&app.pullers.render_metrics());
    if let Some(door) = app.rtmp.get() {
        text.push_str(&door.counters.render_metrics());
    }
    if let Some(spool) = &app.spool {
        text.push_str(&spool.render_metrics());
    }
    if let Some(door) = app.srt.get() {
        text.push_str(&door.counters.render_metrics());
    }
    if let Some(archive) = &app.archive {
        text.push_str(&archive.render_metrics());
    }
    if let Some(cluster) = &app.cluster {
        text.push_str(&cluster.render_metrics());
    }
    text
}

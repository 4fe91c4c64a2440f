//! `dvrclip-loadgen`: how many live streams one `dvrclip serve` takes.
//!
//! It pushes N live 3-rendition streams in real time over HTTP PUT (a fixture ladder
//! replayed with growing decode times: [`ladder`]; ffmpeg's upload order: [`pusher`]),
//! or publishes N single-rendition streams over RTMP (the ladder's top rendition as
//! FLV tags: [`rtmp`]), while clips are cut and downloaded through the API ([`clipper`]), and ramps N in
//! steps. Each step warms up, then measures: segment-upload and clip-creation latency
//! (p50, p99), errors, and the server's CPU time over the step from `/proc`, per
//! stream. The report is a Markdown table, one row per step, with a verdict against
//! the targets of issue 19 (upload p99 ≤ 100 ms, clip creation p99 ≤ 2 ms).
//!
//! Written in Rust, with a hand-rolled HTTP/1.1 client, so the client costs far less
//! than the server it measures (its own CPU is in the table);
//! `scripts/streams-per-node.sh` builds, starts the server and runs it.

mod clipper;
mod error;
mod http;
mod ladder;
mod procstat;
mod pusher;
mod rtmp;
mod shared;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::http::Client;
use crate::ladder::Ladder;
use crate::shared::Shared;
use crate::stats::Kind;

/// Upload p99 target, ms.
const UPLOAD_P99_MS: f64 = 100.0;
/// Clip-creation p99 target, ms.
const CLIP_P99_MS: f64 = 2.0;

#[derive(Debug, Parser)]
#[command(
    name = "dvrclip-loadgen",
    about = "Live streams per node: push N ladders, cut clips, report"
)]
struct Args {
    /// The server's address.
    #[arg(long)]
    server: SocketAddr,
    /// The server's process id, for its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// API key (`Authorization: APIKey ...`).
    #[arg(long, default_value = "demo")]
    api_key: String,
    /// A ladder directory as ffmpeg's HLS muxer writes it (master.m3u8 + renditions).
    #[arg(long, default_value = "tests/fixtures/ladder")]
    ladder: PathBuf,
    /// Streams at each step, increasing (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,1000")]
    steps: Vec<usize>,
    /// Seconds each step runs before it is measured (new streams' first minute).
    #[arg(long, default_value_t = 20)]
    warmup_secs: u64,
    /// Seconds each step is measured.
    #[arg(long, default_value_t = 30)]
    measure_secs: u64,
    /// `dvr_duration` of each stream, seconds.
    #[arg(long, default_value_t = 60)]
    dvr_secs: u32,
    /// Clips cut (and their MP4 downloaded) per second, across all streams.
    #[arg(long, default_value_t = 2.0)]
    clips_per_sec: f64,
    /// Upload bodies with `Transfer-Encoding: chunked`, as ffmpeg does.
    #[arg(long)]
    chunked: bool,
    /// Pusher threads, each its own single-threaded runtime with a share of the
    /// streams. One runtime holding 1,000 streams' sockets stalled its uploads (p50
    /// 350 ms while the server answered in 0.1 ms and both were mostly idle); two
    /// processes of 500 each saw 0.3 ms.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Stop after the first step that misses a target.
    #[arg(long)]
    stop_on_miss: bool,
    /// How the streams reach the server.
    #[arg(long, value_enum, default_value_t = Protocol::Http)]
    protocol: Protocol,
}

/// The door the streams come through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// HTTP PUT of CMAF HLS, every rendition of the ladder.
    Http,
    /// RTMP publish to the stream's `push_url`, the ladder's top rendition.
    Rtmp,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dvrclip-loadgen: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dvrclip-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let ladder = Ladder::load(&args.ladder)?;
    let flv = match args.protocol {
        Protocol::Rtmp => Some(Arc::new(rtmp::FlvPass::from_ladder(&ladder)?)),
        Protocol::Http => None,
    };
    let period = Duration::from_secs_f64(ladder.duration_secs(0).max(0.1));
    // What one stream sends per `period`: a segment per rendition over HTTP, a batch
    // of tags every 100 ms over RTMP.
    let sends_per_period = match args.protocol {
        Protocol::Http => ladder.renditions.len() as f64,
        Protocol::Rtmp => period.as_secs_f64() / 0.1,
    };
    let shared = Arc::new(Shared::new(args.server, &args.api_key, ladder));
    clipper_thread(Arc::clone(&shared), args.clips_per_sec)
        .map_err(|e| Error::Api(format!("clipper thread: {e}")))?;
    let shards = (0..args.threads.max(1))
        .map(|_| pusher_thread(Arc::clone(&shared), args.chunked, flv.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Api(format!("pusher thread: {e}")))?;
    let mut api = Client::new(args.server);
    let mut pushed = 0usize;
    let (sends, send) = match args.protocol {
        Protocol::Http => ("segment PUTs/s", "upload"),
        Protocol::Rtmp => ("RTMP tag batches/s", "batch write"),
    };
    println!(
        "| streams | {sends} | {send} p50 / p99 ms | playlist p99 ms | clips | clip p50 / p99 ms | MP4 GET p50 ms | errors | late | server CPU (% of a core) | per stream | loadgen CPU | server RSS MiB | loadavg | targets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &target in &args.steps {
        // Phases spread evenly over one segment, so uploads arrive as from
        // independent encoders.
        let adding = target.saturating_sub(pushed);
        for i in 0..adding {
            let n = pushed + i;
            let created =
                pusher::create_stream(&shared, &mut api, &format!("load-{n}"), args.dvr_secs)
                    .await?;
            let phase = period.mul_f64((i as f64 + 0.5) / adding.max(1) as f64);
            if let Some(shard) = shards.get(n % shards.len()) {
                let _ = shard.send((created, phase));
            }
        }
        pushed = pushed.max(target);
        tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
        shared.stats().take();
        let server0 = args.server_pid.and_then(|p| procstat::cpu_secs(Some(p)));
        let self0 = procstat::cpu_secs(None);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.measure_secs)).await;
        let mut s = shared.stats().take();
        let secs = t0.elapsed().as_secs_f64();
        let server_cpu = args
            .server_pid
            .and_then(|p| procstat::cpu_secs(Some(p)))
            .zip(server0)
            .map(|(b, a)| (b - a) / secs * 100.0);
        let self_cpu = procstat::cpu_secs(None)
            .zip(self0)
            .map(|(b, a)| (b - a) / secs * 100.0);
        let rss = args.server_pid.and_then(procstat::rss_mib);
        let seg_p99 = s.percentile_ms(Kind::Segment, 99.0);
        let clip_p99 = s.percentile_ms(Kind::Clip, 99.0);
        let errors: u64 = [Kind::Segment, Kind::Playlist, Kind::Clip, Kind::Download]
            .iter()
            .map(|&k| s.errors(k))
            .sum();
        let expected = pushed as f64 * sends_per_period / period.as_secs_f64();
        let seg_rate = s.count(Kind::Segment) as f64 / secs;
        // A step passes when every stream kept up and both p99s are in target.
        let pass = errors == 0
            && seg_rate >= expected * 0.97
            && seg_p99.is_some_and(|v| v <= UPLOAD_P99_MS)
            && clip_p99.is_none_or(|v| v <= CLIP_P99_MS);
        println!(
            "| {pushed} | {seg_rate:.0} (of {expected:.0}) | {} / {} | {} | {} | {} / {} | {} | {errors} | {} | {} | {} | {} | {} | {} | {} |",
            ms(s.percentile_ms(Kind::Segment, 50.0)),
            ms(seg_p99),
            ms(s.percentile_ms(Kind::Playlist, 99.0)),
            s.count(Kind::Clip),
            ms(s.percentile_ms(Kind::Clip, 50.0)),
            ms(clip_p99),
            ms(s.percentile_ms(Kind::Download, 50.0)),
            s.late,
            pct(server_cpu),
            pct(server_cpu.map(|c| c / pushed.max(1) as f64)),
            pct(self_cpu),
            rss.map_or("-".into(), |r| format!("{r:.0}")),
            procstat::loadavg_1m().map_or("-".into(), |l| format!("{l:.2}")),
            if pass { "met" } else { "missed" },
        );
        if !pass && args.stop_on_miss {
            break;
        }
    }
    let _ = shared.stop.send(true);
    Ok(())
}

/// A thread running its own runtime, pushing every stream sent to it: over RTMP
/// when given the FLV tags, else over HTTP.
/// The clip cutter on a thread and runtime of its own: a clip's answer is read as
/// soon as it arrives, not after whatever the MP4 downloads and the reporter on the
/// main runtime are doing (on a 2-core machine that queue showed in the clip p99).
fn clipper_thread(shared: Arc<Shared>, per_sec: f64) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let downloads = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("clipper".into())
        .spawn(move || runtime.block_on(clipper::run(shared, per_sec, downloads)))?;
    Ok(())
}

fn pusher_thread(
    shared: Arc<Shared>,
    chunked: bool,
    flv: Option<Arc<rtmp::FlvPass>>,
) -> std::io::Result<mpsc::UnboundedSender<(pusher::Created, Duration)>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(pusher::Created, Duration)>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pusher".into())
        .spawn(move || {
            runtime.block_on(async move {
                while let Some((created, phase)) = rx.recv().await {
                    let shared = Arc::clone(&shared);
                    match &flv {
                        Some(flv) => tokio::spawn(rtmp::push(
                            shared,
                            Arc::clone(flv),
                            created.id,
                            created.push_url,
                            phase,
                        )),
                        None => tokio::spawn(pusher::push(shared, created, phase, chunked)),
                    };
                }
            });
        })?;
    Ok(tx)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v < 1.0 {
            format!("{v:.3}%")
        } else {
            format!("{v:.1}%")
        }
    })
}

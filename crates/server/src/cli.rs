//! The `dvrclip` command line: `dvrclip serve [flags]`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dvrclip_ingest::srt::{SrtDoor, SrtLimits};
use tracing::{error, info};

use crate::config::{Config, ServeArgs};

#[derive(Debug, Parser)]
#[command(name = "dvrclip", version, about = "Instant clips from live streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server: ingest, API, clip links.
    Serve(ServeArgs),
}

/// Runs the command line; the process exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // `srt-protocol` warns once per datagram it cannot parse: a flood of garbage would
    // be a flood of lines. Its errors only, unless RUST_LOG names it.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("srt_")) {
        if let Ok(d) = "srt_protocol=error".parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve(args) = cli.command;
    let config = match Config::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            error!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // The push doors' runtime only when a push door listens.
    let has_doors = config.rtmp_listen.is_some() || config.srt_listen.is_some();
    let runtimes = runtime("dvrclip").and_then(|main| {
        let doors = has_doors.then(|| runtime("dvrclip-doors")).transpose()?;
        Ok((main, doors))
    });
    let (runtime, doors) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            error!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let doors_handle = doors.as_ref().unwrap_or(&runtime).handle().clone();
    let ran = runtime.block_on(run(config, doors_handle));
    // What the doors still run (connections being closed) gets a moment, not more.
    if let Some(doors) = doors {
        doors.shutdown_timeout(DOORS_GRACE);
    }
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// How long the doors' runtime waits for its tasks at exit.
const DOORS_GRACE: Duration = Duration::from_secs(1);

/// A multi-threaded runtime, a worker per core, its threads named `name`.
///
/// The binary runs two when a push door listens (`design/architecture.md` "Rules",
/// Runtimes): one for the HTTP
/// listener (API, links, HTTP ingest) and the cluster, one for the push doors (RTMP,
/// SRT). A thousand publishers' reads then queue behind each other, not in front
/// of a clip request: the OS scheduler, not one runtime's queue, shares the cores
/// between the two.
fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
}

/// Serves until a signal; the push doors' listeners are bound and served on `doors`.
async fn run(
    mut config: Config,
    doors: tokio::runtime::Handle,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // With `--listen ...:0` and no `--public-url`, the default public URL (made from
    // the listen address) would name port 0 in every push_url and clip link.
    if config.listen.port() == 0 && config.public_url == format!("http://{}", config.listen) {
        config.public_url = format!("http://{addr}");
    }
    // Other nodes of a cluster reach this one at the bound address unless told.
    if let Some(c) = &mut config.cluster
        && c.advertise_url.is_none()
    {
        if addr.ip().is_unspecified() {
            return Err("--advertise-url is needed when listening on a wildcard address".into());
        }
        c.advertise_url = Some(format!("http://{addr}"));
    }
    let rtmp = match config.rtmp_listen {
        Some(at) => {
            let l = doors.spawn(tokio::net::TcpListener::bind(at)).await??;
            config.rtmp_listen = Some(l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    let srt_limits = SrtLimits::default();
    let srt = match config.srt_listen {
        Some(at) => {
            let limits = srt_limits.clone();
            let s = doors
                .spawn(async move { SrtDoor::bind(at, &limits).await })
                .await??;
            config.srt_listen = Some(s.local_addr()?);
            Some(s)
        }
        None => None,
    };
    let app = crate::app::App::start(config).await?;
    // Tests and scripts read this line to find the port when listening on :0.
    println!("dvrclip listening on http://{addr}");
    // One publisher per stream, whichever push door it comes through (and, in a
    // cluster, whichever node a forwarded publish comes from).
    let publishers = app.publishers.clone();
    // In a cluster, pulled streams whose owner is gone are taken over by a live node.
    if app.cluster.is_some() {
        tokio::spawn(crate::pull_takeover::run(Arc::downgrade(&app)));
    }
    // In a cluster a publish is placed as an upload is: here, or sent to its owner.
    let router = app.cluster.as_ref().map(|c| {
        let r = crate::publish_route::ClusterRouter::new(app.engine.clone(), c.clone());
        r as Arc<dyn dvrclip_ingest::door::PublishRouter>
    });
    let rtmp_task = rtmp.map(|listener| {
        let door = dvrclip_ingest::rtmp::RtmpDoor::routed(
            app.engine.clone(),
            Default::default(),
            publishers.clone(),
            router.clone(),
        );
        let _ = app.rtmp.set(door.clone());
        info!(addr = ?app.config.rtmp_listen, "rtmp listening");
        doors.spawn(door.serve(listener, std::future::pending()))
    });
    let srt_task = match srt {
        Some(socket) => {
            let door = SrtDoor::routed(
                app.engine.clone(),
                srt_limits,
                app.config.srt_passphrase.as_deref(),
                publishers,
                router,
            )?;
            let _ = app.srt.set(door.clone());
            info!(addr = ?app.config.srt_listen, "srt listening");
            Some(doors.spawn(door.serve(socket, std::future::pending())))
        }
        None => None,
    };
    info!(%addr, public_url = %app.config.public_url, "listening");
    if let Some(c) = &app.cluster {
        println!(
            "dvrclip node {} advertised at {}",
            c.node().id,
            c.node().url
        );
    }
    if app.config.api_key_generated {
        println!(
            "API key (none configured; set --api-key to choose one): {}",
            app.config.api_key
        );
    }
    // The browser clipping console (crates/server/src/console.rs).
    println!("console: {}/console", app.config.public_url);
    if let Some(at) = app.config.rtmp_listen {
        println!("dvrclip rtmp listening on rtmp://{at}");
    }
    if let Some(at) = app.config.srt_listen {
        println!("dvrclip srt listening on srt://{at}");
    }
    // The drain: on the signal, the cluster lease is revoked first (this node's
    // streams are claimable by another at once), then serving stops.
    let draining = app.clone();
    let shutdown = async move {
        shutdown_signal().await;
        draining.leave_cluster().await;
    };
    let served = crate::service::serve(app.clone(), listener, shutdown).await;
    if let Some(t) = rtmp_task {
        t.abort();
    }
    if let Some(t) = srt_task {
        t.abort();
    }
    // Whatever ended serving: the spool is sealed before the engine can drop.
    app.shutdown().await;
    served?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

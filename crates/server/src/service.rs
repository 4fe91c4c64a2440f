//! The HTTP service: every request from its route to its response, in one place.
//!
//! [`Service`] answers the public links (clip, live, VOD), the Gcore API and HTTP
//! ingest over an [`App`], so a media server built on hyper or axum can mount it
//! under its own router (it is a `tower::Service`; `examples/embed_axum.rs`) and the
//! `dvrclip serve` binary runs the very same one ([`serve`]).
//!
//! A request first passes the `Host` rule of RFC 9112 §3.2 ([`crate::http::host`]:
//! an HTTP/1.1 request needs exactly one valid `Host`, so an embedder's in-process
//! request must carry one too); then its path is decoded once ([`crate::route`]) and
//! each arm of the nested [`Route`] goes to its room: a route without a handler does
//! not compile. Errors become responses in one place ([`ApiError::into_response`]);
//! HEAD is answered in one place ([`answer_head`]); in a cluster, a request for a
//! stream another node owns is forwarded to it ([`crate::steer`]) before any room
//! sees it, and a video of a node that is down is read from the bucket the nodes
//! share (`Service::down_video`); every request is counted, and on
//! the binary's connections gets a tracing span with its peer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use dvrclip_engine::MemoryReservation;
use http::Request;
use http::request::Parts;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tracing::{Instrument, info, info_span};

use crate::app::App;
use crate::cluster::forward::ForwardError;
use crate::error::ApiError;
use crate::http::serve::CONNECTION_BYTES;
use crate::http::{HttpResponse, answer_head, full};
use crate::route::{ApiRoute, PublicRoute, Route, route};
use crate::steer::Steer;

/// The HTTP face of an [`App`]: cheap to clone, one per router or connection.
#[derive(Clone, Debug)]
pub struct Service {
    app: Arc<App>,
}

impl Service {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> Self {
        Service { app }
    }

    /// The state it serves.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Answers one request. Never fails: errors become their HTTP response here.
    pub async fn handle<B>(&self, req: Request<B>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let app = &*self.app;
        let (parts, body) = req.into_parts();
        // RFC 9112 §3.2, before routing: no handler sees a request that a cache or
        // proxy in front would key on another host.
        let (result, public) = match crate::http::host::check(parts.version, &parts.headers) {
            Ok(()) => Self::dispatch(app, &parts, body).await,
            Err(e) => (Err(e.into()), false),
        };
        let mut resp = result.unwrap_or_else(|e| {
            if e.status().is_server_error() {
                tracing::error!(error = %e, "request failed");
            }
            e.into_response().map(BodyExt::boxed)
        });
        if public {
            crate::public::add_cors(resp.headers_mut());
        }
        answer_head(&parts.method, &mut resp);
        app.metrics.record_request(resp.status().as_u16());
        resp
    }

    /// Routes a request whose `Host` passed and runs its handler: the answer, and
    /// whether it is a public link's (which gets CORS).
    async fn dispatch<B>(
        app: &App,
        parts: &Parts,
        body: B,
    ) -> (Result<HttpResponse, ApiError>, bool)
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let route = route(&parts.method, parts.uri.path());
        let public = matches!(route, Route::Public(_));
        let mut body = body;
        if let Some(cluster) = &app.cluster {
            // Placed at most twice: a forward refused before its body was read (the
            // cached owner just died), or given up with its body unread when the
            // owner hung until its lease ended, is placed again from etcd.
            let mut tries = 0;
            loop {
                tries += 1;
                match crate::steer::steer(app, cluster, &route, parts).await {
                    Ok(Steer::Here) => break,
                    Ok(Steer::Down(node)) => {
                        return (Self::down_video(app, &node, &route, parts).await, public);
                    }
                    Ok(Steer::Forward(url, stream)) => {
                        // Given up if the node hangs until its lease ends.
                        let gone = cluster.node_gone(&url);
                        let answer = cluster.forward.send(&url, parts, body, gone).await;
                        cluster.record_forward(answer.is_ok());
                        match answer {
                            Ok(answer) => return (Ok(answer), public),
                            Err(e) => {
                                if let Some(stream) = stream {
                                    cluster.forget_owner(stream);
                                }
                                if matches!(e, ForwardError::NodeGone(..)) {
                                    cluster.record_forward_abandoned();
                                }
                                match e {
                                    ForwardError::Unsent(b, _)
                                    | ForwardError::NodeGone(Some(b), _)
                                        if tries < 2 =>
                                    {
                                        body = b
                                    }
                                    e => return (Err(e.into_error()), public),
                                }
                            }
                        }
                    }
                    Err(e) => return (Err(e), public),
                }
            }
        }
        match route {
            Route::Api(r) => (crate::api::handle(app, r, parts, body).await, false),
            Route::Public(r) => (crate::public::handle(app, r, parts).await, true),
            Route::Ingest(r) => {
                let result = crate::ingest::handle(app, r, parts, body).await;
                if result.is_err() {
                    app.metrics.record_ingest_error();
                }
                (result, false)
            }
            Route::Ops(r) => (Ok(crate::ops::handle(app, r)), false),
            Route::Console(f) => (Ok(crate::console::handle(f, parts).await), false),
            Route::MethodNotAllowed(allow) => (Err(ApiError::MethodNotAllowed(allow)), false),
            Route::NotFound => (Err(ApiError::NotFound("no such path".into())), false),
        }
    }

    /// A call on a video of `node`, which is down ([`Steer::Down`]): the Video
    /// object or a media link answered by the same code as this node's own videos,
    /// over that node's records in the bucket the nodes share.
    async fn down_video(
        app: &App,
        node: &str,
        route: &Route,
        parts: &Parts,
    ) -> Result<HttpResponse, ApiError> {
        let vod = crate::api::videos::of_down_node(app, node, route).await?;
        match route {
            Route::Api(ApiRoute::GetVideo(id)) => {
                let video = crate::api::videos::get(&vod, *id)?;
                let json = "application/json";
                Ok(full(http::StatusCode::OK, json, video.to_string()))
            }
            Route::Public(PublicRoute::Vod(id, file)) => {
                crate::public::vod::file(&vod, *id, *file, parts).await
            }
            _ => Err(ApiError::Internal(format!(
                "{route:?} steered to a down node's videos"
            ))),
        }
    }

    /// The service of one connection from `peer`: its requests are logged with the
    /// peer, and it holds the connection's share of the memory budget until it
    /// closes.
    pub fn connection(&self, peer: SocketAddr) -> Connection {
        Connection {
            service: self.clone(),
            peer,
            _memory: self.app.engine.reserve_memory(CONNECTION_BYTES),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower_service::Service<Request<B>> for Service
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(req).await) })
    }
}

/// One connection's service (hyper's): [`Service::connection`].
pub struct Connection {
    service: Service,
    peer: SocketAddr,
    _memory: MemoryReservation,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Connection {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<Result<HttpResponse, Infallible>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let span = info_span!("request", method = %req.method(), path = %req.uri().path(), peer = %self.peer);
        let service = self.service.clone();
        Box::pin(
            async move {
                let started = Instant::now();
                let resp = service.handle(req).await;
                info!(
                    status = resp.status().as_u16(),
                    micros = started.elapsed().as_micros() as u64,
                    "done"
                );
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// Serves `app` on `listener` until `shutdown` resolves (the `dvrclip serve` loop).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = Service::new(app.clone());
    let limits = app.config.connection_limits();
    crate::http::serve::serve(listener, limits, |peer| service.connection(peer), shutdown).await
}

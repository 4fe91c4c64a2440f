//! The reverse proxy a node uses to hand a request to the stream's owner: the
//! request's method, path, query and end-to-end headers go to the owner's advertised
//! URL with the body streamed as it arrives, and the owner's answer streams back,
//! so neither body is ever held whole (an upload of 50 MiB costs a few frames of
//! memory here, as a download does).
//!
//! Every forwarded request carries [`FORWARDED_BY`] naming this node; a request that
//! already carries it is never forwarded again ([`Forwarder::is_forwarded`]): when
//! ownership moves while a request is in flight, a node answers it itself rather than
//! bouncing it between two nodes that each think the other owns the stream.
//!
//! The proxy is reqwest's client (already in the tree for pulls and etcd). The body
//! of the incoming request is pumped through a channel of [`PUMP_FRAMES`] frames
//! on the request's own task, so any body type is forwarded without being `Send`;
//! the pump starts only when the upstream request first reads its body, so a
//! request whose owner is gone (connection refused: a cached owner that just died)
//! comes back whole and can be placed again ([`ForwardError::Unsent`]).
//!
//! A node that hangs (stopped, not dead) still takes connections in its kernel and
//! never answers: each forward races a future that resolves once the node is no
//! longer a member (its lease ended: `Cluster::node_gone`), and is given up when
//! the node then stays silent for [`SILENT_AFTER_GONE`] while the forward waits on
//! it: at the TTL plus a poll plus that, with the body back when none of it was
//! read ([`ForwardError::NodeGone`]), not at the read timeout. A node that drains
//! (SIGTERM: its lease revoked first, its requests in flight finished after) keeps
//! answering, so what it streams is not cut. A push door's uploads to an owner
//! ([`Forwarder::put`], and the publish's end, [`Forwarder::delete`]) race the same
//! way ([`PutError::NodeGone`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::http::HttpResponse;

/// The header naming the node that forwarded a request.
pub const FORWARDED_BY: &str = "x-dvrclip-forwarded-by";

/// Frames of a request body in flight between the client's connection and the
/// owner's: memory per forwarded upload is this many frames (hyper's are at most
/// its read buffer, ~400 KiB, typically 16 KiB).
pub const PUMP_FRAMES: usize = 4;

/// How long a node no longer a member may stay silent while a forward waits on it
/// (for the answer's head, or the next piece of its body) before the forward is
/// given up: a draining node finishing its requests answers sooner.
pub const SILENT_AFTER_GONE: Duration = Duration::from_secs(1);

/// The largest JSON answer [`Forwarder::get_json`] reads (a page of a list is a
/// few tens of KB).
pub const MAX_JSON_BYTES: usize = 4 << 20;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and
/// `host` (the owner's URL names its own).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Sends requests to other nodes.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    node: HeaderValue,
}

impl Forwarder {
    /// A forwarder that names `node_id` on what it sends.
    pub fn new(node_id: &str) -> Result<Forwarder, String> {
        let node = HeaderValue::from_str(node_id).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // A stalled owner is given up on as a stalled client is (send timeout).
            .read_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Forwarder { client, node })
    }

    /// Whether another node already forwarded this request.
    pub fn is_forwarded(headers: &HeaderMap) -> bool {
        headers.contains_key(FORWARDED_BY)
    }

    /// PUTs `body` to `url` (a push door's upload to another node) with `headers`,
    /// marked with [`FORWARDED_BY`] so the owner takes it only under its own claim;
    /// the answer's status. Raced as [`Forwarder::send`] races a forward: `gone`
    /// resolves once the node is no longer a member ([`super::Cluster::node_gone`]),
    /// and the upload is given up ([`PutError::NodeGone`]) when the node then stays
    /// silent for [`SILENT_AFTER_GONE`], not at the read timeout.
    pub async fn put<G>(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
        gone: G,
    ) -> Result<http::StatusCode, PutError>
    where
        G: Future<Output = String> + Send + 'static,
    {
        headers.insert(FORWARDED_BY, self.node.clone());
        let request = self.client.put(url).headers(headers).body(body);
        answered(request, gone).await
    }

    /// GETs `url` from another node on behalf of a request with `headers` (its
    /// end-to-end headers go along: the caller's credentials), marked with
    /// [`FORWARDED_BY`] so that node answers from what it holds: the JSON of a 200
    /// answer, at most [`MAX_JSON_BYTES`]. Anything else is a 502 naming the URL.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<serde_json::Value, ApiError> {
        let failed = |why: String| ApiError::BadGateway(format!("GET {url}: {why}"));
        let headers = self.end_to_end(headers);
        let mut answer = self
            .client
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if answer.status() != http::StatusCode::OK {
            return Err(failed(format!("answered {}", answer.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JSON_BYTES {
                return Err(failed(format!("answer over {MAX_JSON_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| failed(format!("not JSON: {e}")))
    }

    /// DELETEs `url` (the end of a forwarded publish) with `headers`, marked and
    /// raced against `gone` as [`Forwarder::put`] is; the answer's status.
    pub async fn delete<G>(
        &self,
        url: &str,
        mut headers: HeaderMap,
        gone: G,
    ) -> Result<http::StatusCode, PutError>
    where
        G: Future<Output = String> + Send + 'static,
    {
        headers.insert(FORWARDED_BY, self.node.clone());
        answered(self.client.delete(url).headers(headers), gone).await
    }

    /// What of a request's `headers` goes to another node: its end-to-end headers,
    /// and [`FORWARDED_BY`] naming this node.
    fn end_to_end(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            if !is_hop_by_hop(name) {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(FORWARDED_BY, self.node.clone());
        out
    }

    /// Sends the request to `base` (another node's advertised URL) and answers with
    /// what it answers, streaming both bodies. A failure before any of the body was
    /// read (the owner's node is gone: connection refused) gives the body back
    /// ([`ForwardError::Unsent`]), so the caller may place the request again.
    ///
    /// `gone` resolves (with the reason) once the node at `base` is no longer a
    /// member ([`super::Cluster::node_gone`]): the request is given up when the
    /// node then stays silent for [`SILENT_AFTER_GONE`], whether its answer has not
    /// begun ([`ForwardError::NodeGone`], with the body when none of it was read)
    /// or is streaming (the answer is cut), instead of waiting for the read timeout
    /// on a node that hangs.
    pub async fn send<B, G>(
        &self,
        base: &str,
        parts: &Parts,
        body: B,
        gone: G,
    ) -> Result<HttpResponse, ForwardError<B>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
        G: Future<Output = String> + Send + 'static,
    {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let headers = self.end_to_end(&parts.headers);
        let (tx, rx) = mpsc::channel(PUMP_FRAMES);
        let (start, started) = oneshot::channel();
        // An empty body (a GET) is never lost, whatever happens: no gate.
        let empty = body.is_end_stream();
        let declared = body.size_hint().exact();
        let pumped = Pumped {
            rx,
            declared,
            start: (!empty).then_some(start),
        };
        let request = self
            .client
            .request(parts.method.clone(), &url)
            .headers(headers)
            .body(reqwest::Body::wrap(pumped));
        let gated = async move {
            if empty {
                return Some(body);
            }
            // The body is read only once the upstream request asks for it, i.e.
            // once the owner's node took the connection.
            if started.await.is_err() {
                return Some(body);
            }
            pump(body, tx).await;
            None
        };
        let mut sent = Box::pin(request.send());
        let mut gated = Box::pin(gated);
        let mut give_up = GiveUp::new(Box::pin(gone));
        let mut unsent = None;
        let answer = loop {
            tokio::select! {
                answer = &mut sent => break Ok(answer),
                body = &mut gated, if unsent.is_none() => unsent = Some(body),
                reason = std::future::poll_fn(|cx| give_up.poll_waiting(cx)) => break Err(reason),
            }
        };
        // Ends the upstream request if it was given up, so the pump stops.
        drop(sent);
        let unsent = match unsent {
            Some(body) => body,
            None => gated.await,
        };
        let answer = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                let e = ApiError::BadGateway(format!("forwarding to {base}: {e}"));
                return Err(match unsent {
                    Some(body) => ForwardError::Unsent(body, e),
                    None => ForwardError::Failed(e),
                });
            }
            Err(reason) => {
                let e = ApiError::Unavailable(format!(
                    "forwarding to {base}: {reason} (the stream is being placed again); retry"
                ));
                return Err(ForwardError::NodeGone(unsent, e));
            }
        };
        let answer: http::Response<reqwest::Body> = answer.into();
        let (mut head, body) = answer.into_parts();
        for name in HOP_BY_HOP {
            head.headers.remove(name);
        }
        give_up.progress();
        let body = Upstream {
            body,
            give_up: Mutex::new(give_up),
        };
        Ok(http::Response::from_parts(head, body.boxed()))
    }
}

/// Why a push door's upload ([`Forwarder::put`]) or its end ([`Forwarder::delete`])
/// got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The request failed (connection refused or cut, the read timeout).
    #[error(transparent)]
    Failed(#[from] reqwest::Error),
    /// Given up: the node stopped being a member and stayed silent (the reason).
    #[error("{0}")]
    NodeGone(String),
}

/// The status `request` is answered with, unless the node is given up first
/// ([`GiveUp`], as a forward's head is waited for).
async fn answered<G>(
    request: reqwest::RequestBuilder,
    gone: G,
) -> Result<http::StatusCode, PutError>
where
    G: Future<Output = String> + Send + 'static,
{
    let sent = request.send();
    tokio::pin!(sent);
    let mut give_up = GiveUp::new(Box::pin(gone));
    tokio::select! {
        answer = &mut sent => Ok(answer?.status()),
        reason = std::future::poll_fn(|cx| give_up.poll_waiting(cx)) => {
            Err(PutError::NodeGone(reason))
        }
    }
}

/// What [`Forwarder::send`] races the request against.
type Gone = Pin<Box<dyn Future<Output = String> + Send>>;

/// When a forward gives up on its node: once `gone` said the node is no longer a
/// member, and the node then stayed silent for [`SILENT_AFTER_GONE`] while the
/// forward waited on it.
struct GiveUp {
    gone: Gone,
    verdict: Option<String>,
    silent: Pin<Box<tokio::time::Sleep>>,
    /// Whether `silent` runs: since the forward last waited with nothing from the
    /// node.
    armed: bool,
}

impl GiveUp {
    fn new(gone: Gone) -> GiveUp {
        GiveUp {
            gone,
            verdict: None,
            silent: Box::pin(tokio::time::sleep(SILENT_AFTER_GONE)),
            armed: false,
        }
    }

    /// Something came from the node: its silence starts over.
    fn progress(&mut self) {
        self.armed = false;
    }

    /// The forward waits on the node: ready, with the reason, once the node is gone
    /// and has been silent for [`SILENT_AFTER_GONE`] since.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        if self.verdict.is_none() {
            match self.gone.as_mut().poll(cx) {
                Poll::Ready(reason) => self.verdict = Some(reason),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.armed {
            self.armed = true;
            let until = tokio::time::Instant::now() + SILENT_AFTER_GONE;
            self.silent.as_mut().reset(until);
        }
        match self.silent.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.verdict.clone().unwrap_or_default()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Why a forward failed.
#[derive(Debug)]
pub enum ForwardError<B> {
    /// Before any of the body was read: the body, to place the request again.
    Unsent(B, ApiError),
    /// After: the request is lost (502).
    Failed(ApiError),
    /// Given up because the node stopped being a member while it did not answer
    /// (503): the body when none of it was read, to place the request again.
    NodeGone(Option<B>, ApiError),
}

impl<B> ForwardError<B> {
    /// The error to answer with.
    pub fn into_error(self) -> ApiError {
        match self {
            ForwardError::Unsent(_, e) | ForwardError::Failed(e) | ForwardError::NodeGone(_, e) => {
                e
            }
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name.as_str() == FORWARDED_BY
}

/// Moves the client's body frames into the channel the upstream request reads,
/// until the body ends, fails, or the upstream request stops reading.
async fn pump<B>(mut body: B, tx: mpsc::Sender<Result<Bytes, String>>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        // The error as text at once: the body's own error type need not be `Send`.
        let next = body.frame().await.map(|r| r.map_err(|e| e.to_string()));
        match next {
            None => return,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not forwarded
                };
                if tx.send(Ok(data)).await.is_err() {
                    return;
                }
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// The request body as the upstream request reads it.
struct Pumped {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    declared: Option<u64>,
    /// Fired at the first read: the pump may start taking the client's body.
    start: Option<oneshot::Sender<()>>,
}

impl Body for Pumped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(start) = self.start.take() {
            let _ = start.send(());
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        // The declared length goes on as `Content-Length`, so the owner can place
        // the body as it would a direct upload's.
        self.declared
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// The owner's answer body as this node's response body. A failure mid-body, or
/// the owner's node gone and silent while the body waits on it ([`GiveUp`]), ends
/// it early: with the `Content-Length` passed on, hyper then closes the connection,
/// so the client sees a cut answer, never a short one taken for whole.
struct Upstream {
    body: reqwest::Body,
    /// Behind a lock only to make the body `Sync`; used through `get_mut`.
    give_up: Mutex<GiveUp>,
}

impl Body for Upstream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    self.give_up.get_mut().progress();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(_) => Poll::Ready(None),
            },
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "forwarded answer cut");
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.give_up.get_mut().poll_waiting(cx) {
                Poll::Ready(reason) => {
                    tracing::warn!(%reason, "forwarded answer cut");
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forward gives up on a node found gone only once it has been silent for
    /// `SILENT_AFTER_GONE` while waited on; what comes from it meanwhile (a draining
    /// node finishing its answer) starts the silence over.
    #[tokio::test(start_paused = true)]
    async fn a_gone_node_is_given_up_only_when_silent() {
        let (tell, told) = oneshot::channel::<String>();
        let gone: Gone = Box::pin(async move { told.await.unwrap_or_default() });
        let mut give_up = GiveUp::new(gone);
        let waiting = |g: &mut GiveUp| {
            let waker = std::task::Waker::noop();
            g.poll_waiting(&mut Context::from_waker(waker))
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(waiting(&mut give_up).is_pending(), "still a member");
        tell.send("gone".into()).unwrap();
        assert!(waiting(&mut give_up).is_pending(), "its silence just began");
        tokio::time::sleep(SILENT_AFTER_GONE / 2).await;
        give_up.progress();
        assert!(waiting(&mut give_up).is_pending());
        tokio::time::sleep(SILENT_AFTER_GONE / 2).await;
        assert!(waiting(&mut give_up).is_pending(), "it answered since");
        tokio::time::sleep(SILENT_AFTER_GONE / 2).await;
        assert_eq!(waiting(&mut give_up), Poll::Ready("gone".to_owned()));
    }

    /// A door's upload to a node that takes the connection and never answers (a
    /// hung node's kernel) is given up once the node is gone and silent for
    /// `SILENT_AFTER_GONE`, not at the read timeout; a node that answers within
    /// the silence is not given up, gone or not.
    #[tokio::test]
    async fn a_put_to_a_hung_node_is_given_up_once_it_is_gone() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let forwarder = Forwarder::new("n2").unwrap();
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/ingest/k/rtmp/seg_0.m4s",
            hung.local_addr().unwrap()
        );
        let held = tokio::spawn(async move {
            let (socket, _) = hung.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(socket);
        });
        let started = tokio::time::Instant::now();
        let gone = async { "its lease ended".to_owned() };
        let e = forwarder
            .put(&url, HeaderMap::new(), Bytes::from_static(b"x"), gone)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PutError::NodeGone(r) if r == "its lease ended"),
            "{e}"
        );
        let took = started.elapsed();
        assert!(
            took >= SILENT_AFTER_GONE && took < 5 * SILENT_AFTER_GONE,
            "{took:?}"
        );
        held.abort();

        let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/ingest/k/rtmp/seg_1.m4s",
            slow.local_addr().unwrap()
        );
        tokio::spawn(async move {
            let (mut socket, _) = slow.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            tokio::time::sleep(SILENT_AFTER_GONE / 3).await;
            let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
            socket.write_all(answer).await.unwrap();
            std::future::pending::<()>().await;
        });
        let gone = async { "its lease ended".to_owned() };
        let status = forwarder
            .put(&url, HeaderMap::new(), Bytes::from_static(b"x"), gone)
            .await
            .unwrap();
        assert_eq!(status, http::StatusCode::CREATED);
    }

    #[test]
    fn connection_headers_and_the_loop_mark_are_not_passed_on() {
        for h in ["connection", "transfer-encoding", "host", FORWARDED_BY] {
            assert!(is_hop_by_hop(&HeaderName::from_static(h)), "{h}");
        }
        for h in ["authorization", "range", "content-length", "if-none-match"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(h)), "{h}");
        }
        let mut h = HeaderMap::new();
        assert!(!Forwarder::is_forwarded(&h));
        h.insert(FORWARDED_BY, HeaderValue::from_static("n1"));
        assert!(Forwarder::is_forwarded(&h));
    }
}

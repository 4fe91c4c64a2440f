//! A connection's socket that sends payload pages by reference: the bytes of a
//! response body that lie in a frozen payload mapping (`dvrclip_spool::frozen`: the
//! spool's chunk files, the anonymous mappings of `http::payload`) go to the socket
//! with `vmsplice` into a pipe and `splice` out of it, so the kernel never copies
//! them; everything else (hyper's response heads, an MP4's header bytes, playlists,
//! payloads on the heap) is written with `writev` as before.
//!
//! Why here, under hyper, rather than a responder of our own for the MP4 route:
//! hyper hands its write buffers to the socket as they are (`poll_write_vectored`
//! with one slice per body frame, and a body frame is a `Bytes` slice of a chunk's
//! payload, [`super::entity::Mp4Body`]), so the socket knows a payload slice by its
//! address alone. Every response that carries payload bytes (a clip's MP4, whole or
//! ranged, an HLS segment, a live segment) takes the path with no change to the
//! request handling, HTTP/1.1 framing, keep-alive, HEAD, 304 or the send timeout,
//! and the bytes on the wire are the same slices in the same order. A request
//! pre-parsed in the accept loop, or an MP4 route taken out of hyper, would be a
//! second HTTP/1.1 implementation for one route.
//!
//! Why `vmsplice` and not `sendfile` from the payload files: it needs the address
//! only, the same for the spool's files and for memory-only mode's anonymous
//! mappings, where `sendfile` needs a descriptor kept open per chunk (a 1 h DVR of
//! a ladder is 5,400 chunks, against `RLIMIT_NOFILE`) or one `open` per send, and
//! memfd-backed buffers for memory-only mode. Both hand page references to TCP the
//! same way (`splice_to_socket`); they differ in how the references are taken, and
//! on tmpfs (the spool's default home, 4 KiB pages) both pay per page: nginx
//! sending a file from tmpfs spends as much per GB looking its pages up as
//! `vmsplice` spends walking the page table (BENCHMARKS.md "Where the cycles go";
//! nginx is faster only from ext4, whose page cache holds large folios).
//!
//! Measured (the same section, `scripts/serving_ab.py`): a 20 MB clip MP4 whole
//! went from 0.24–0.39x nginx's bytes per server CPU-second (every byte through
//! `writev`, the kernel's copy 65% of the CPU) to 0.6–0.8x nginx from the disk and
//! 0.9–1.1x nginx from tmpfs; 1 MiB ranges are 0.8–1.1x and 0.9–1.3x.
//!
//! The pipe: bytes `vmsplice`d into it are the client's (hyper is told they were
//! written), so they leave it before anything else is written, flushed or shut
//! down. A connection holds a pipe only from a `vmsplice` until the pipe is empty
//! again; then it goes back to a pool shared by all connections. At most
//! [`MAX_PIPES`] pipes exist (two descriptors and a 256 KiB page ring each); past
//! that, or if the kernel refuses a pipe or a `vmsplice`, bytes are copied as
//! before. A connection waits until its socket is writable before it takes a pipe,
//! so a client that stops reading holds one only for the bytes already spliced.
//!
//! A peer that has gone makes `splice` fail with `EPIPE` (and raise `SIGPIPE`, which a
//! Rust binary ignores, as `writev` does); the connection ends as with a failed
//! `writev`.
//!
//! Frozen pages stay valid while spliced: the pipe and the socket hold references
//! to the pages, not the mapping, so the chunk can leave the DVR, its clip expire
//! and its file be unlinked while the bytes are on their way
//! (`dvrclip_spool::frozen`).

use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use parking_lot::Mutex;
use rustix::pipe::{IoSliceRaw, PipeFlags, SpliceFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Pipes alive at most, all connections together.
pub const MAX_PIPES: usize = 256;

/// A pipe's capacity: two 128 KiB body frames ([`super::entity::MAX_FRAME`]) per
/// `vmsplice`. 256 pipes of 64 pages are 16,384 pages, Linux's default
/// `pipe-user-pages-soft`; if the kernel refuses the size, the default (16 pages)
/// stays.
const PIPE_BYTES: usize = 256 << 10;

/// Slices shorter than this are copied: a page reference and an skb fragment cost
/// more than copying a few hundred bytes. Longer ones are spliced even when short
/// (an audio run between two video runs), so a run of payload slices stays one
/// `vmsplice` rather than being cut by a copy.
const SPLICE_MIN: usize = 1 << 10;

/// Slices passed to one `vmsplice` at most.
const MAX_SLICES: usize = 16;

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
static PIPES: AtomicUsize = AtomicUsize::new(0);
static SPLICED: AtomicU64 = AtomicU64::new(0);

/// Payload bytes sent by reference since the process started.
pub fn spliced_bytes() -> u64 {
    SPLICED.load(Ordering::Relaxed)
}

/// A TCP connection whose frozen payload bytes are spliced, not copied.
#[derive(Debug)]
pub struct Spliced {
    stream: TcpStream,
    /// Held while it has bytes in it.
    pipe: Option<Pipe>,
    /// The kernel refused a `vmsplice` once: this connection copies from then on.
    copy_only: bool,
}

#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in it, already reported written.
    pending: usize,
}

impl Spliced {
    /// Wraps an accepted connection.
    pub fn new(stream: TcpStream) -> Self {
        Spliced {
            stream,
            pipe: None,
            copy_only: false,
        }
    }

    /// Moves what the pipe holds into the socket; ready once it is empty (and back
    /// in the pool).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Spliced { stream, pipe, .. } = self;
        let Some(p) = pipe.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while p.pending > 0 {
            ready!(stream.poll_write_ready(cx))?;
            let moved = stream.try_io(Interest::WRITABLE, || {
                // The socket is non-blocking: a full one is `WouldBlock`, which
                // clears its readiness so the next poll waits for room.
                rustix::pipe::splice(
                    &p.read,
                    None,
                    &*stream,
                    None,
                    p.pending,
                    SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                )
                .map_err(io::Error::from)
            });
            match moved {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => p.pending -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if let Some(p) = pipe.take() {
            give_back(p);
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `buf` goes by reference.
    fn by_reference(&self, buf: &[u8]) -> bool {
        !self.copy_only && buf.len() >= SPLICE_MIN && dvrclip_spool::frozen::contains(buf)
    }
}

impl AsyncRead for Spliced {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Spliced {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes the leading run of `bufs` that goes one way: slices copied up to the
    /// first frozen one, or frozen slices spliced (what the pipe takes of them).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let bufs = &bufs[bufs.iter().take_while(|b| b.is_empty()).count()..];
        let frozen = bufs
            .iter()
            .take_while(|b| this.by_reference(b))
            .take(MAX_SLICES)
            .count();
        if frozen == 0 {
            let copied = bufs
                .iter()
                .position(|b| this.by_reference(b))
                .unwrap_or(bufs.len());
            return Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..copied]);
        }
        // Only into a socket with room: a stalled client holds no pipe.
        ready!(this.stream.poll_write_ready(cx))?;
        let Some(mut pipe) = take_pipe() else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..frozen]);
        };
        let slices: Vec<IoSliceRaw<'_>> = bufs[..frozen]
            .iter()
            .map(|b| IoSliceRaw::from_slice(b))
            .collect();
        // SAFETY: `fd` is the pipe's write end, so the kernel only reads `slices`
        // (rustix's condition for memory that must not be mutated), and no GIFT
        // flag is given. What makes the bytes the client gets right is
        // `dvrclip_spool::frozen`: every slice lies in a mapping that is never
        // written again, held alive by hyper's `Bytes` for the whole call; the pipe
        // keeps references to its pages, not the mapping.
        #[allow(unsafe_code)]
        let moved = unsafe { rustix::pipe::vmsplice(&pipe.write, &slices, SpliceFlags::NONBLOCK) };
        match moved {
            Ok(n) if n > 0 => {
                SPLICED.fetch_add(n as u64, Ordering::Relaxed);
                pipe.pending = n;
                this.pipe = Some(pipe);
                // Start it on its way; what the socket cannot take yet waits in the
                // pipe for the next write, flush or shutdown.
                if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(n))
            }
            other => {
                give_back(pipe);
                if let Err(e) = other {
                    tracing::warn!(error = %e, "vmsplice refused; this connection copies");
                }
                this.copy_only = true;
                Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..frozen])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// An empty pipe from the pool, or a new one while fewer than [`MAX_PIPES`] exist.
fn take_pipe() -> Option<Pipe> {
    if let Some(p) = POOL.lock().pop() {
        return Some(p);
    }
    PIPES
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_PIPES).then_some(n + 1)
        })
        .ok()?;
    match rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
        Ok((read, write)) => {
            // Refused past the user's pipe page limit: the default size stays.
            let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_BYTES);
            Some(Pipe {
                read,
                write,
                pending: 0,
            })
        }
        Err(_) => {
            PIPES.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

/// Returns an empty pipe to the pool; one with bytes in it (its connection failed)
/// is closed.
fn give_back(p: Pipe) {
    if p.pending == 0 {
        POOL.lock().push(p);
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use bytes::{Buf, Bytes};
    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair: the server's end spliced, the client's plain.
    async fn pair() -> (Spliced, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (Spliced::new(accepted.unwrap().0), client.unwrap())
    }

    /// Writes `frames` in order as hyper does: all of them offered in one vectored
    /// write, resumed after partial writes.
    async fn write_frames(w: &mut Spliced, frames: &[Bytes]) -> io::Result<()> {
        let mut left: VecDeque<Bytes> = frames.iter().filter(|f| !f.is_empty()).cloned().collect();
        while !left.is_empty() {
            let slices: Vec<IoSlice<'_>> = left.iter().map(|f| IoSlice::new(f)).collect();
            let mut n = w.write_vectored(&slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 {
                let Some(f) = left.front_mut() else { break };
                if n >= f.len() {
                    n -= f.len();
                    left.pop_front();
                } else {
                    f.advance(n);
                    n = 0;
                }
            }
        }
        Ok(())
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8)
            .collect()
    }

    /// The frames of a response as hyper queues them: a head on the heap, frozen
    /// payload slices (whole frames, a short tail), header bytes on the heap, more
    /// payload.
    fn frames(payload: &Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n"),
            payload.slice(..128 << 10),
            payload.slice(128 << 10..(128 << 10) + 5_000),
            Bytes::from(pattern(40_000, 9)),
            payload.slice(300_000..),
            payload.slice(7..20_000),
        ]
    }

    /// What the client reads of `frames` written through a [`Spliced`], then EOF.
    async fn serve_and_read(frames: Vec<Bytes>) -> Vec<u8> {
        let (mut server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        write_frames(&mut server, &frames).await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn frozen_and_copied_bytes_arrive_in_order() {
        let payload = crate::http::payload::keep(pattern(1 << 20, 1));
        assert!(dvrclip_spool::frozen::contains(&payload));
        let frames = frames(&payload);
        let before = spliced_bytes();
        let got = serve_and_read(frames.clone()).await;
        assert!(got == frames.concat(), "the same bytes, in order");
        assert!(spliced_bytes() > before, "the payload went by reference");
    }

    #[tokio::test]
    async fn heap_bytes_are_copied_as_before() {
        let heap = Bytes::from(pattern(1 << 20, 2));
        assert!(!dvrclip_spool::frozen::contains(&heap));
        let got = serve_and_read(frames(&heap)).await;
        assert!(got == frames(&heap).concat());
    }

    /// Writes `payload` to a client that reads nothing until the socket and the pipe
    /// are full, drops the payload (its last holder: `gone` checks it is gone), lets
    /// new payloads take the freed memory, then reads: the bytes written are the
    /// payload's as they were.
    async fn drop_mid_send(payload: Bytes, gone: impl FnOnce() -> bool) {
        let want = payload.to_vec();
        let (mut server, mut client) = pair().await;
        let mut sent = 0;
        while let Some(n) = server.write(&payload[sent..]).now_or_never() {
            sent += n.unwrap();
            assert!(
                sent < want.len(),
                "{} bytes never fit in the buffers",
                want.len()
            );
        }
        assert!(
            server.pipe.as_ref().is_some_and(|p| p.pending > 0),
            "bytes wait in the pipe as well as in the socket"
        );
        drop(payload);
        assert!(gone(), "the payload's memory (and file) are released");
        let others: Vec<Bytes> = (0..4u8)
            .map(|i| crate::http::payload::keep(vec![0xEE ^ i; want.len()]))
            .collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        server.shutdown().await.unwrap();
        drop(server);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), sent);
        assert!(got == want[..sent], "the bytes as they were when written");
        drop(others);
    }

    /// RFC 9110 §8.6: the body is exactly the representation's bytes. A payload whose
    /// last holder lets go while its pages are still in the pipe and the socket (a
    /// chunk evicted, its clip deleted, its spool file unlinked) is sent as it was.
    #[tokio::test]
    async fn a_spooled_payload_dropped_mid_send_is_sent_as_it_was() {
        let dir = std::env::temp_dir().join(format!("dvrclip-splice-{}", std::process::id()));
        let opened = dvrclip_spool::Spool::open(
            &dir,
            dvrclip_spool::SyncPolicy::Batch,
            dvrclip_engine::WallTime::from_unix_secs(1_700_000_000),
        )
        .unwrap();
        let mut writer = opened.spool.payload_writer().unwrap();
        writer.write(&pattern(16 << 20, 3)).unwrap();
        let spooled = writer.finish().unwrap();
        assert!(dvrclip_spool::frozen::contains(&spooled));
        let chunks = dir.join("chunks");
        let files = move || std::fs::read_dir(&chunks).unwrap().count();
        assert_eq!(files(), 1);
        drop_mid_send(spooled, move || files() == 0).await;
        drop(opened);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_anonymous_payload_dropped_mid_send_is_sent_as_it_was() {
        let anon = crate::http::payload::keep(pattern(16 << 20, 4));
        let (at, len) = (anon.as_ptr() as usize, anon.len());
        drop_mid_send(anon, move || {
            !dvrclip_spool::frozen::contains_range(at, len)
        })
        .await;
    }

    /// A client gone mid-body fails the write (hyper then drops the connection), and
    /// its pipe, with bytes in it, is closed rather than pooled.
    #[tokio::test]
    async fn a_client_gone_mid_body_fails_the_write() {
        let payload = crate::http::payload::keep(pattern(4 << 20, 5));
        let (mut server, mut client) = pair().await;
        let mut first = vec![0u8; 100_000];
        let frames: Vec<Bytes> = (0..64).map(|_| payload.clone()).collect();
        let writing = tokio::spawn(async move {
            let r = write_frames(&mut server, &frames).await;
            (r, server)
        });
        client.read_exact(&mut first).await.unwrap();
        assert!(first == payload[..100_000]);
        drop(client);
        let (r, server) = writing.await.unwrap();
        let e = r.expect_err("256 MiB never fit in the socket buffers");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        drop(server);
        assert!(POOL.lock().iter().all(|p| p.pending == 0));
    }
}

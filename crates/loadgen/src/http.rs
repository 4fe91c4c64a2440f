//! A minimal HTTP/1.1 client over one kept-alive connection: what an encoder's
//! `-http_persistent 1` PUTs and a player's GETs look like on the wire, at a few
//! microseconds per request so one client thread can drive thousands of streams.
//!
//! Only what the server answers is read: a status line, headers and a
//! `Content-Length` body (the server never answers these requests chunked). A head is
//! at most [`MAX_HEAD`] bytes; a body is kept only when asked for and at most
//! [`MAX_KEPT_BODY`], else counted and dropped through a fixed buffer. After any
//! error the connection is dropped and the next request opens a new one; a request
//! that finds its idle connection closed by the server is sent once more on a new one.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head read.
const MAX_HEAD: usize = 16 << 10;
/// Largest body kept in memory (JSON answers of the API).
const MAX_KEPT_BODY: u64 = 1 << 20;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Connect, write or read failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a whole answer.
    #[error("connection closed mid-answer")]
    Closed,
    /// An answer this client does not read (no length, chunked, too large, garbled).
    #[error("unreadable answer: {0}")]
    Unreadable(&'static str),
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// The body when kept, else empty.
    pub(crate) body: Vec<u8>,
    /// Body bytes received.
    pub(crate) body_len: u64,
}

/// One server, one connection at a time, opened on demand.
#[derive(Debug)]
pub(crate) struct Client {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
    /// Bytes read past the last answer's head (a body's first bytes).
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Request bodies go as one chunk of `Transfer-Encoding: chunked`, as ffmpeg's
    /// HTTP protocol sends an upload of unknown size.
    chunked: bool,
}

impl Client {
    /// A client of `addr`; no connection is opened yet.
    pub(crate) fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            host: addr.to_string(),
            conn: None,
            inbuf: Vec::with_capacity(1024),
            outbuf: Vec::new(),
            chunked: false,
        }
    }

    /// Sends request bodies chunked from now on.
    pub(crate) fn chunked(mut self, chunked: bool) -> Client {
        self.chunked = chunked;
        self
    }

    /// Sends one request and reads its answer. `headers` are extra lines, each ending
    /// in `\r\n`; `keep_body` keeps the answer's body.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
        keep_body: bool,
    ) -> Result<Response, HttpError> {
        let reused = self.conn.is_some();
        let mut outcome = self.exchange(method, path, headers, body, keep_body).await;
        if outcome.is_err() {
            self.conn = None;
            // A kept-alive connection the server closed while idle (its header
            // timeout) fails the next request at once: one retry on a new connection.
            if reused && matches!(outcome, Err(HttpError::Closed | HttpError::Io(_))) {
                outcome = self.exchange(method, path, headers, body, keep_body).await;
                if outcome.is_err() {
                    self.conn = None;
                }
            }
        }
        outcome
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
        keep_body: bool,
    ) -> Result<Response, HttpError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(self.addr).await?;
                c.set_nodelay(true)?;
                self.inbuf.clear();
                self.conn.insert(c)
            }
        };
        self.outbuf.clear();
        let host = &self.host;
        let head = if self.chunked && !body.is_empty() {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n{headers}\r\n{:x}\r\n",
                body.len()
            )
        } else {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{headers}\r\n",
                body.len()
            )
        };
        self.outbuf.extend_from_slice(head.as_bytes());
        self.outbuf.extend_from_slice(body);
        if self.chunked && !body.is_empty() {
            self.outbuf.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        conn.write_all(&self.outbuf).await?;
        read_response(conn, &mut self.inbuf, keep_body).await
    }
}

async fn read_response(
    conn: &mut TcpStream,
    inbuf: &mut Vec<u8>,
    keep_body: bool,
) -> Result<Response, HttpError> {
    let head_end = loop {
        if let Some(i) = inbuf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if inbuf.len() >= MAX_HEAD {
            return Err(HttpError::Unreadable("head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        inbuf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = std::str::from_utf8(inbuf.get(..head_end).unwrap_or_default())
        .map_err(|_| HttpError::Unreadable("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::Unreadable("status line"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<u64>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Unreadable("chunked"));
        }
    }
    // 1xx, 204 and 304 have no body (RFC 9112 §6.3).
    let length = if status < 200 || status == 204 || status == 304 {
        0
    } else {
        length.ok_or(HttpError::Unreadable("no Content-Length"))?
    };
    if keep_body && length > MAX_KEPT_BODY {
        return Err(HttpError::Unreadable("body too large to keep"));
    }
    inbuf.drain(..head_end);
    let mut body = Vec::new();
    let have = (inbuf.len() as u64).min(length) as usize;
    if keep_body {
        body.extend_from_slice(inbuf.get(..have).unwrap_or_default());
    }
    inbuf.drain(..have);
    let mut left = length - have as u64;
    let mut scratch = vec![0u8; left.min(64 << 10) as usize];
    while left > 0 {
        let want = (left as usize).min(scratch.len());
        let n = conn
            .read(scratch.get_mut(..want).unwrap_or_default())
            .await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        if keep_body {
            body.extend_from_slice(scratch.get(..n).unwrap_or_default());
        }
        left -= n as u64;
    }
    Ok(Response {
        status,
        body,
        body_len: length,
    })
}

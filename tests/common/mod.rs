//! Test support for the end-to-end tests: the real `dvrclip` binary on
//! `127.0.0.1:0`, a small blocking HTTP/1.1 client over `std::net::TcpStream`, ffmpeg
//! and ffprobe as the independent oracle (required under CI: [`require`]), and a
//! top-level ISO-BMFF box walker.
//!
//! The client sends every request on its own connection with `Connection: close`
//! and bytes exactly as given (no path normalisation), so a test can send what a
//! hostile or broken client would: `..` in a path, a lying `Content-Length`, a
//! chunked body over a limit.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

mod browser;
pub mod moto;
mod require;
#[allow(unused_imports)]
pub use browser::{browser_ready, run_browser_script};
// Not every test binary that includes this module needs a tool.
#[allow(unused_imports)]
pub use require::{require, require_tool};

/// The API key every test server runs with (Gcore's tokens look like this).
pub const KEY: &str = "1234$abcdef";
/// The `Authorization` header value for [`KEY`].
pub const AUTH: &str = "APIKey 1234$abcdef";

/// One HTTP response, body fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// The path (and query) of an absolute `http://host:port/...` URL.
pub fn path_of(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

/// Sends `raw` (a whole request, head and body) on a new connection and reads the
/// answer to EOF. Writing happens on its own thread: a server may answer (413, 403)
/// before it has read the body, and the test must still see that answer.
pub fn exchange(addr: SocketAddr, raw: Vec<u8>, head_request: bool) -> Resp {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        // The server may close early (a refused body); that is its right.
        let _ = writer.write_all(&raw);
        let _ = writer.flush();
    });
    let mut buf = Vec::new();
    let mut reader = stream;
    let read = reader.read_to_end(&mut buf);
    let _ = w.join();
    if let Err(e) = read {
        // A reset after the answer arrived (the server closed with unread body):
        // keep what was read.
        assert!(!buf.is_empty(), "reading the response: {e}");
    }
    parse_response(&buf, head_request)
}

fn parse_response(buf: &[u8], head_request: bool) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {} bytes", buf.len()));
    let head = std::str::from_utf8(&buf[..end]).expect("response head is not UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[end + 4..];
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        assert!(rest.is_empty(), "a body after a {status} / HEAD answer");
        return resp;
    }
    resp.body = if resp
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().expect("Content-Length");
        assert_eq!(rest.len(), len, "body length vs Content-Length");
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    resp
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        rest = &rest[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A request with an optional body (sent with `Content-Length`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    if let Some(b) = body {
        raw.extend_from_slice(b);
    }
    exchange(addr, raw, method == "HEAD")
}

/// A `GET` with no extra headers.
pub fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[], None)
}

/// An API call with the right key and a JSON body.
pub fn api(addr: SocketAddr, method: &str, target: &str, body: Option<&str>) -> Resp {
    let mut headers = vec![("Authorization", AUTH)];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, target, &headers, body.map(str::as_bytes))
}

/// Panics with the response unless its status is `status`; returns it.
#[track_caller]
pub fn expect(resp: Resp, status: u16) -> Resp {
    assert_eq!(
        resp.status,
        status,
        "expected {status}, got {}: {}",
        resp.status,
        resp.text()
    );
    resp
}

/// Node `id` of a cluster on `etcd`: `dvrclip serve --api-key KEY --cluster-etcd …
/// --node-id id --lease-ttl ttl` plus `extra` flags, with environment `env` (the S3
/// credentials); its data and log in a fresh directory of its own.
pub fn cluster_node(
    etcd: &EtcdServer,
    id: &str,
    ttl: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let mut args = vec![
        "--api-key",
        KEY,
        "--cluster-etcd",
        &etcd.url,
        "--node-id",
        id,
        "--lease-ttl",
        ttl,
    ];
    args.extend_from_slice(extra);
    let dir = temp_dir(&format!("cluster-{id}"));
    Server::start_env(dir.join("data"), dir, &args, env)
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dvrclip-e2e-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real `dvrclip` binary, serving on `127.0.0.1:0`; killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Starts `dvrclip serve --listen 127.0.0.1:0 --api-key KEY` plus `extra` flags and
    /// waits for its `dvrclip listening on http://ADDR` line. Logs go to a file.
    pub fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--api-key", KEY];
        args.extend_from_slice(extra);
        Server::start_with(&args)
    }

    /// Starts `dvrclip serve --listen 127.0.0.1:0` plus exactly `args`.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = temp_dir("server");
        Server::start_in(dir.join("data"), dir, args)
    }

    /// Like [`Server::start_with`] on the data directory `data` (which outlives the
    /// server: a restart test starts a second server on it); logs go to `dir`, which
    /// the server removes when dropped.
    pub fn start_in(data: PathBuf, dir: PathBuf, args: &[&str]) -> Server {
        Server::start_env(data, dir, args, &[])
    }

    /// [`Server::start_in`] with environment variables `env` set too (the S3
    /// credentials the binary reads from `AWS_*`).
    pub fn start_env(data: PathBuf, dir: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log = dir.join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dvrclip"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning dvrclip");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!(
                    "dvrclip exited before listening; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(a) = line.trim().strip_prefix("dvrclip listening on http://") {
                break a.parse().expect("listen address");
            }
        };
        Server {
            addr,
            child,
            stdout,
            dir,
            log,
        }
    }

    /// The next line the server printed on stdout (after the listening line).
    pub fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// Sends `signal` (`STOP`, `CONT`, …) with the shell's builtin `kill`.
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id();
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {pid}");
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        // The shell's builtin `kill`: no procps needed, no libc binding.
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {pid}");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "dvrclip did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    /// Kills the server; its log stays behind only when the test failed.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("dvrclip log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether ffmpeg and ffprobe run: under CI a test that needs them fails without
/// them, elsewhere it is skipped saying so ([`require`]).
#[track_caller]
pub fn have_ffmpeg() -> bool {
    require_tool("ffmpeg") && require_tool("ffprobe")
}

/// The renditions the test ladder pushes: name, width, height, video bitrate.
pub const LADDER: [(&str, u32, u32, &str); 3] = [
    ("media_3_240", 426, 240, "300k"),
    ("media_2_180", 320, 180, "200k"),
    ("media_1_144", 256, 144, "150k"),
];

/// Starts ffmpeg pushing a live 3-rendition ladder to `push_url` for `secs` seconds,
/// the command shape of `shared/tools/push_live.sh` at small sizes: H.264 + AAC,
/// 2 s keyframe-aligned fMP4 segments, chunked PUTs on persistent connections.
/// `tone_hz` picks the audio: the sources are deterministic, so a second run with
/// the same tone would send byte-identical segments (indistinguishable from retries).
pub fn push_ladder(push_url: &str, secs: u32, tone_hz: u32) -> Child {
    let [(n0, w0, h0, b0), (n1, w1, h1, b1), (n2, w2, h2, b2)] = LADDER;
    let _ = (w0, h0);
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={w0}x{h0}:rate=30"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={tone_hz}:sample_rate=48000"),
        ])
        .args(["-t", &secs.to_string()])
        .args([
            "-filter_complex",
            &format!("[0:v]split=3[a][b][c];[b]scale={w1}:{h1}[b2];[c]scale={w2}:{h2}[c2]"),
        ])
        .args(["-map", "[a]", "-map", "[b2]", "-map", "[c2]"])
        .args(["-map", "1:a", "-map", "1:a", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "high",
        ])
        .args([
            "-bf",
            "2",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
        ])
        .args(["-b:v:0", b0, "-b:v:1", b1, "-b:v:2", b2])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4"])
        .args(["-hls_list_size", "10"])
        .args(["-hls_flags", "program_date_time+independent_segments"])
        .args(["-master_pl_name", "master.m3u8"])
        .args([
            "-var_stream_map",
            &format!("v:0,a:0,name:{n0} v:1,a:1,name:{n1} v:2,a:2,name:{n2}"),
        ])
        .args(["-method", "PUT", "-http_persistent", "1"])
        .args(["-hls_fmp4_init_filename", "init.mp4"])
        .args([
            "-hls_segment_filename",
            &format!("{push_url}/%v/seg_%05d.m4s"),
        ])
        .arg(format!("{push_url}/%v/index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ffmpeg")
}

/// `ffprobe -v error -of json ARGS URL`, parsed.
pub fn ffprobe(url: &str, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(url)
        .output()
        .expect("running ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// Decodes every stream of `url` with `ffmpeg -v error ... -f null -` and returns
/// what it printed (empty when the decode was clean) and whether it exited 0.
pub fn ffmpeg_decode(url: &str) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i", url])
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Top-level boxes of an ISO-BMFF file: (type, offset, size).
pub fn top_level_boxes(file: &[u8]) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= file.len() {
        let size32 = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&file[pos + 4..pos + 8]).into_owned();
        let size = match size32 {
            0 => (file.len() - pos) as u64,
            1 => u64::from_be_bytes(file[pos + 8..pos + 16].try_into().unwrap()),
            n => n,
        };
        assert!(size >= 8, "box {kind} at {pos} has size {size}");
        out.push((kind, pos as u64, size));
        pos += size as usize;
    }
    assert_eq!(pos, file.len(), "top-level boxes do not tile the file");
    out
}

/// The workspace's committed fixtures.
pub fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Sends `raw` and then shuts the writing side, as a client that gives up (or
/// crashes) mid-body does; returns the answer if the server sent one.
pub fn send_then_half_close(addr: SocketAddr, raw: &[u8]) -> Option<Resp> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(raw).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    (!buf.is_empty()).then(|| parse_response(&buf, false))
}

/// Polls `f` every 500 ms until it returns `Some`, for at most `limit`. Used only to
/// wait on real ingest from a real encoder, where no clock can be driven.
#[track_caller]
pub fn poll<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until `dvrclip serve --demo` (API key `demo`) holds 4 chunks of its stream 1:
/// it pushes a 2 s segment every 2 s of real time, so 8 s or more are then held.
pub fn wait_for_demo_chunks(addr: SocketAddr) {
    poll("four demo chunks", Duration::from_secs(30), || {
        let auth = [("Authorization", "APIKey demo")];
        let dvr = request(addr, "GET", "/streaming/streams/1/dvr", &auth, None);
        let d = expect(dvr, 200).json();
        (d["renditions"].as_array()?.first()?["chunks"].as_u64()? >= 4).then_some(())
    });
}

/// A stream's DVR view (`GET /streaming/streams/{sid}/dvr`).
pub fn dvr(addr: SocketAddr, sid: u64) -> Value {
    expect(
        api(addr, "GET", &format!("/streaming/streams/{sid}/dvr"), None),
        200,
    )
    .json()
}

/// A stream named `name` with a 10-minute DVR, as created through the API.
pub fn create_stream(addr: SocketAddr, name: &str) -> Value {
    let body = format!(r#"{{"name": "{name}", "dvr_duration": 600}}"#);
    expect(api(addr, "POST", "/streaming/streams", Some(&body)), 201).json()
}

/// Rendition `rendition` of the DVR view, once it holds `chunks` chunks.
pub fn wait_chunks(
    addr: SocketAddr,
    sid: u64,
    rendition: &str,
    chunks: u64,
    limit: Duration,
) -> Value {
    poll(&format!("{rendition} chunks"), limit, || {
        let d = dvr(addr, sid);
        let r = d["renditions"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == rendition)?
            .clone();
        (r["chunks"].as_u64()? >= chunks).then_some(r)
    })
}

/// The value of `name` in `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = expect(get(addr, "/metrics"), 200).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// ffprobe's `nb_read_frames` of one stream (`-count_frames`), 0 when absent.
pub fn frames(s: &Value) -> u64 {
    s["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// ffmpeg sending `secs` of a `size` test picture (30 fps, a keyframe every 2 s) and
/// a tone, H.264 and AAC, as `format` (`flv`, `mpegts`) to `url`, in real time; its
/// stderr piped (errors only).
pub fn publish_test_signal(url: &str, format: &str, size: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"])
        .args(["-c:a", "aac", "-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ffmpeg")
}

/// `PUT /streaming/streams/{sid}/clip_recording` of `duration` s from `start`
/// (Unix s), which must answer a complete clip.
pub fn create_complete_clip(addr: SocketAddr, sid: u64, start: i64, duration: i64) -> Value {
    let body = format!(r#"{{"start": {start}, "duration": {duration}}}"#);
    let clip = expect(
        api(
            addr,
            "PUT",
            &format!("/streaming/streams/{sid}/clip_recording"),
            Some(&body),
        ),
        200,
    )
    .json();
    assert_eq!(clip["state"], "complete", "{clip}");
    clip
}

/// The ingest key of a stream as the API answers it (the last segment of its
/// `push_url_http`).
pub fn ingest_key(stream: &Value) -> String {
    stream["push_url_http"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_else(|| panic!("no push_url_http in {stream}"))
        .to_owned()
}

/// A free port on loopback, TCP and UDP, for a child to take (bound, then
/// released). Drawn below the kernel's ephemeral range (32768 and up here), which
/// the kernel hands to other sockets, outgoing connections included, the moment a
/// port is released: a child told an ephemeral port once found it taken and
/// failed to bind (nginx, in CI). Ports below it are handed out once per test
/// process, from a start that differs by process id.
pub fn free_port() -> u16 {
    use std::net::{TcpListener, UdpSocket};
    use std::sync::atomic::AtomicU16;
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start.wrapping_add(n)) % SPAN;
        let addr = ("127.0.0.1", port);
        if TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN);
}

/// A one-member etcd (Debian's `etcd-server`) on loopback ports with its own data
/// directory, which a stop and a start keep (a restart finds its keys and leases).
pub struct EtcdServer {
    child: Option<Child>,
    /// `http://127.0.0.1:{client port}`.
    pub url: String,
    peer_url: String,
    dir: PathBuf,
}

impl EtcdServer {
    /// A client of this etcd, as the nodes make one (2 s per request).
    pub fn client(&self) -> dvrclip::cluster::Etcd {
        dvrclip::cluster::Etcd::new(&[&self.url], Duration::from_secs(2)).unwrap()
    }

    /// Starts etcd and waits until it answers (or panics after 15 s).
    pub fn start() -> EtcdServer {
        let dir = temp_dir("etcd");
        let mut e = EtcdServer {
            child: None,
            url: format!("http://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            dir,
        };
        e.resume();
        e
    }

    /// Stops it (SIGKILL: as a crash or a partition looks to the nodes).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until it answers.
    pub fn resume(&mut self) {
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &format!("default={}", self.peer_url)])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("etcd.log")).unwrap())
            .spawn()
            .expect("spawning etcd");
        self.child = Some(child);
        let addr: SocketAddr = self.url["http://".len()..].parse().unwrap();
        poll("etcd answering", Duration::from_secs(15), || {
            let body = br#"{"key": "cmVhZHk="}"#;
            let raw = format!(
                "POST /v3/kv/range HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut raw = raw.into_bytes();
            raw.extend_from_slice(body);
            let mut s = TcpStream::connect(addr).ok()?;
            s.write_all(&raw).ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).ok()?;
            out.starts_with(b"HTTP/1.1 200").then_some(())
        });
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Debian's nginx, by path: `/usr/sbin` is not on a user's `PATH`.
pub const NGINX: &str = "/usr/sbin/nginx";

/// nginx's TCP/UDP balancer module, Debian's `libnginx-mod-stream`.
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Whether nginx and its stream module ([`NGINX_STREAM_MODULE`]) are here (under CI:
/// fails the test when not).
#[track_caller]
pub fn require_nginx_stream() -> bool {
    let module = std::path::Path::new(NGINX_STREAM_MODULE);
    let found = if module.exists() {
        Ok(())
    } else {
        Err(format!(
            "{NGINX_STREAM_MODULE} missing (libnginx-mod-stream)"
        ))
    };
    require_tool(NGINX) && require("nginx stream module", found)
}

/// nginx ([`NGINX`]) in the foreground as a round-robin HTTP balancer in
/// front of `upstreams`, with its own temp prefix and config; never as root (under
/// root it is started as `nobody` through `setpriv`). Bodies stream both ways, as a
/// production balancer in front of ingest is configured.
pub struct Nginx {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts it on `port` (from [`free_port`]) and waits until it answers.
    pub fn start(port: u16, upstreams: &[SocketAddr]) -> Nginx {
        Nginx::start_with_tcp(port, upstreams, None)
    }

    /// As [`Nginx::start`], and with `tcp` (a port and its upstreams) also a
    /// round-robin TCP balancer (the `stream` module, [`NGINX_STREAM_MODULE`]), as in
    /// front of RTMP doors.
    pub fn start_with_tcp(
        port: u16,
        upstreams: &[SocketAddr],
        tcp: Option<(u16, &[SocketAddr])>,
    ) -> Nginx {
        Nginx::start_with_streams(port, upstreams, tcp, None)
    }

    /// As [`Nginx::start_with_tcp`], with `udp` a round-robin UDP balancer too, as
    /// in front of SRT doors: a UDP session (a client's address and port) keeps its
    /// upstream until silent for 30 s.
    pub fn start_with_streams(
        port: u16,
        upstreams: &[SocketAddr],
        tcp: Option<(u16, &[SocketAddr])>,
        udp: Option<(u16, &[SocketAddr])>,
    ) -> Nginx {
        let dir = temp_dir("nginx");
        let block = |name: &str, listen: String, ups: &[SocketAddr], extra: &str| {
            let servers: String = ups.iter().map(|a| format!("    server {a};\n")).collect();
            format!(
                "  upstream {name} {{\n{servers}  }}\n  server {{\n    listen {listen};\n\
                 proxy_pass {name};\n{extra}  }}\n"
            )
        };
        let mut blocks = String::new();
        if let Some((p, ups)) = tcp {
            blocks += &block(
                "doors",
                format!("127.0.0.1:{p}"),
                ups,
                "    proxy_connect_timeout 1s;\n",
            );
        }
        if let Some((p, ups)) = udp {
            blocks += &block(
                "udp_doors",
                format!("127.0.0.1:{p} udp"),
                ups,
                "    proxy_timeout 30s;\n",
            );
        }
        let (load, stream) = if blocks.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!("load_module {NGINX_STREAM_MODULE};\n"),
                format!("stream {{\n{blocks}}}\n"),
            )
        };
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=1 fail_timeout=30s;\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            "{load}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream nodes {{\n{servers}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 client_max_body_size 0;\n    proxy_request_buffering off;\n    proxy_buffering off;\n\
                 proxy_http_version 1.1;\n    proxy_set_header Host $http_host;\n\
                 proxy_set_header Connection \"\";\n\
                 proxy_connect_timeout 1s;\n\
                 proxy_next_upstream error timeout non_idempotent;\n\
                 location / {{ proxy_pass http://nodes; }}\n  }}\n}}\n{stream}"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            // nobody must own what nginx writes.
            Command::new("chmod")
                .args(["-R", "a+rwx"])
                .arg(&dir)
                .status()
                .unwrap();
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", NGINX]);
            c
        } else {
            Command::new(NGINX)
        };
        let child = cmd
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nginx = Nginx { child, addr, dir };
        poll("nginx listening", Duration::from_secs(10), || {
            TcpStream::connect(addr).ok().map(|_| ())
        });
        nginx
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (a SIGKILLed master leaves them
    /// holding the port), then SIGKILL if it lingers.
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("nginx log: {}/error.log", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills a child process when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg writing a live 2-rendition fMP4 HLS ladder (`v0` 426x240, `v1` 256x144,
/// H.264 + AAC, 2 s segments, dated) into `dir` for `secs` seconds of real time.
pub fn write_hls_ladder(dir: &Path, secs: u32) -> ChildGuard {
    let d = dir.display();
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-filter_complex", "[0:v]split=2[a][b];[b]scale=256:144[b2]"])
        .args(["-map", "[a]", "-map", "[b2]", "-map", "1:a", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
        .args(["-keyint_min", "60", "-sc_threshold", "0"])
        .args([
            "-b:v:0", "300k", "-b:v:1", "150k", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4"])
        .args(["-hls_list_size", "6"])
        .args(["-hls_flags", "program_date_time+independent_segments"])
        .args(["-master_pl_name", "master.m3u8"])
        .args(["-var_stream_map", "v:0,a:0,name:v0 v:1,a:1,name:v1"])
        .args(["-hls_fmp4_init_filename", "init.mp4"])
        .args(["-hls_segment_filename", &format!("{d}/%v/seg_%05d.m4s")])
        .arg(format!("{d}/%v/index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning ffmpeg");
    ChildGuard(child)
}

/// `python3 -m http.server` on `127.0.0.1:0` serving `dir` (an HLS origin); returns
/// it and its port.
pub fn http_origin(dir: &Path) -> (ChildGuard, u16) {
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning python3 -m http.server");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (ChildGuard(child), port)
}

/// A current-thread Tokio runtime, for a test's few async calls (an etcd client).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A moto S3 server holding bucket `bucket`, or `None` when moto does not run (the
/// test then returns; with `CI` set it fails instead, as [`require`] says).
pub fn require_moto(bucket: &str) -> Option<moto::Moto> {
    match moto::start_moto() {
        Ok(moto) => {
            moto.create_bucket(bucket);
            Some(moto)
        }
        Err(why) => {
            require("moto (python3 -m pip install 'moto[server]')", Err(why));
            None
        }
    }
}

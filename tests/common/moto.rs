//! A moto S3 server on 127.0.0.1 for the tests that need an S3-compatible store
//! (`pip install 'moto[server]'`, done by `.ci/run`): started on a free port, killed
//! when dropped. Included by path where a test crate has no `tests/common` (the
//! server crate's `vod_s3`), so there is one copy.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials moto takes (any), as the environment of a server using it.
pub const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// A moto server; killed when dropped.
pub struct Moto {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Moto {
    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates bucket `name` (moto needs no credentials for it); panics when refused.
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(self.addr).expect("connecting to moto");
        let req = format!(
            "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {out}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto on a free port, or says why it could not.
pub fn start_moto() -> Result<Moto, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
    let spawn = |cmd: &mut Command| cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let child = spawn(Command::new("moto_server").args(args))
        .or_else(|_| {
            spawn(
                Command::new("python3")
                    .args(["-m", "moto.server"])
                    .args(args),
            )
        })
        .map_err(|e| format!("neither moto_server nor python3 -m moto.server runs: {e}"))?;
    let mut moto = Moto { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!(
                "moto exited at start-up ({status}); is 'moto[server]' installed?"
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(moto);
        }
        if Instant::now() > deadline {
            let _ = moto.child.kill();
            return Err("moto did not listen within 60 s".into());
        }
        // Waiting for another process to come up: there is no clock to drive.
        std::thread::sleep(Duration::from_millis(100));
    }
}

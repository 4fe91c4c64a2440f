#!/usr/bin/env python3
"""What one open connection costs `dvrclip serve`, in RSS: the figure behind
`CONNECTION_BYTES` (crates/server/src/serve.rs), which each open connection reserves
from the memory budget.

Starts the release binary with no streams, opens N connections of each kind and
reads the server's RSS before and after each batch:
- idle: connected, nothing sent;
- partial: half a request head sent (hyper's read buffer allocated);
- served: one whole request answered, the connection kept alive (read and write
  buffers both used, as a keep-alive client between requests).

    python3 scripts/connection_cost.py [--connections 1000] [--binary target/release/dvrclip]

Prints JSON: bytes per connection of each kind. Loopback only, about 10 seconds.
"""

import argparse
import json
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_bytes(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024


def settle(pid):
    """RSS once it stopped moving (the server has handled what was sent)."""
    last = -1
    for _ in range(50):
        time.sleep(0.2)
        now = rss_bytes(pid)
        if now == last:
            return now
        last = now
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/release/dvrclip"))
    ap.add_argument("--connections", type=int, default=1000)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="dvrclip-conn-")
    server = subprocess.Popen(
        [a.binary, "serve", "--listen", "127.0.0.1:0", "--api-key", "k", "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = None
        for line in server.stdout:
            m = re.search(r"listening.*127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "the server did not say where it listens"
        held = []

        def batch(send):
            before = settle(server.pid)
            for _ in range(a.connections):
                s = socket.create_connection(("127.0.0.1", port))
                if send:
                    s.sendall(send)
                held.append(s)
            if send and send.endswith(b"\r\n\r\n"):
                for s in held[-a.connections :]:
                    s.settimeout(5)
                    s.recv(65536)
            return (settle(server.pid) - before) / a.connections

        out = {
            "connections": a.connections,
            "idle": batch(b""),
            "partial": batch(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            "served": batch(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        }
        out = {k: round(v) if isinstance(v, float) else v for k, v in out.items()}
        print(json.dumps(out, indent=2))
        for s in held:
            s.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

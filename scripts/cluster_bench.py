#!/usr/bin/env python3
"""What a cluster costs on loopback (design/cluster.md "Measured"): the forward
overhead per request and the failover time.

    cargo build --release --bin dvrclip && python3 scripts/cluster_bench.py
    python3 scripts/cluster_bench.py --bin target/debug/dvrclip --requests 300 --ttl 2

Starts etcd (Debian's etcd-server) on free loopback ports in a temp directory and two
`dvrclip serve` nodes joined to it (A and B). A stream is created and its DVR filled
on A (tests/fixtures/ladder's top rendition, PUT to A: A claims it), then:

- forward overhead: the same request sent to A (the owner: answered in place) and
  to B (which forwards it to A), interleaved one by one on one kept-alive connection
  each, --requests of each; p50 and p99 in ms of `GET /streaming/streams/{id}/dvr`
  and of `PUT .../clip_recording` (a 2 s clip cut from the DVR);
- failover: A is SIGKILLed and an upload for the stream is sent to B every 10 ms
  until B takes it (not 502/503): the time from the kill, --rounds times (A is
  started again under its id between rounds, and A then takes the stream back in the
  same way, so each round kills the owner).

Prints a Markdown table. Not part of CI; numbers depend on the machine's load (the
loadavg before is printed).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LADDER = os.path.join(ROOT, "tests", "fixtures", "ladder", "media_3_240")
KEY = "bench"
AUTH = {"Authorization": f"APIKey {KEY}"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, limit, f):
    until = time.time() + limit
    while time.time() < until:
        try:
            if f():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers={**AUTH, **(headers or {})})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class Node:
    def __init__(self, binary, etcd_url, node_id, ttl, tmp):
        self.port = free_port()
        self.args = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--api-key", KEY,
                     "--data-dir", os.path.join(tmp, node_id), "--spool-dir", "off",
                     "--cluster-etcd", etcd_url, "--node-id", node_id, "--lease-ttl", str(ttl)]
        self.log = open(os.path.join(tmp, f"{node_id}.log"), "w")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log)
        wait("node listening", 20, lambda: call(self.port, "GET", "/healthz")[0] == 200)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def fill(port, key):
    """PUT the fixture's init and segments to the node at `port`."""
    files = sorted(os.listdir(LADDER))
    for name in [f for f in files if f.startswith("init")] + [f for f in files if f.endswith(".m4s")]:
        with open(os.path.join(LADDER, name), "rb") as f:
            st, data = call(port, "PUT", f"/ingest/{key}/v/{name}", f.read())
        assert st in (200, 201), (name, st, data)


def timed(conn, method, path, body):
    t = time.perf_counter()
    conn.request(method, path, body=body, headers={**AUTH, "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    dt = time.perf_counter() - t
    assert r.status == 200, (method, path, r.status)
    return dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def overhead(a, b, sid, start, n):
    rows = []
    for label, method, path, body in [
        ("DVR view", "GET", f"/streaming/streams/{sid}/dvr", None),
        ("clip create", "PUT", f"/streaming/streams/{sid}/clip_recording",
         json.dumps({"start": start, "duration": 2})),
    ]:
        direct, forwarded = [], []
        ca = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
        cb = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
        for _ in range(20):  # warm both connections and B's owner cache
            timed(ca, method, path, body)
            timed(cb, method, path, body)
        for _ in range(n):
            direct.append(timed(ca, method, path, body))
            forwarded.append(timed(cb, method, path, body))
        rows.append((label, direct, forwarded))
    return rows


def failover(owner, other, key):
    owner.kill()
    t = time.perf_counter()
    while True:
        st, _ = call(other.port, "PUT", f"/ingest/{key}/master.m3u8", b"")
        if st not in (502, 503):
            return time.perf_counter() - t
        time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "dvrclip"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--ttl", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dvrclip-cluster-bench-")
    cport, pport = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{cport}"
    peer = f"http://127.0.0.1:{pport}"
    etcd = subprocess.Popen(
        ["etcd", "--data-dir", os.path.join(tmp, "etcd"), "--listen-client-urls", etcd_url,
         "--advertise-client-urls", etcd_url, "--listen-peer-urls", peer,
         "--initial-advertise-peer-urls", peer, "--initial-cluster", f"default={peer}"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "etcd.log"), "w"))
    nodes = []
    try:
        wait("etcd", 20, lambda: subprocess.run(
            ["curl", "-sf", "-X", "POST", "-d", "{}", f"{etcd_url}/v3/maintenance/status"],
            stdout=subprocess.DEVNULL).returncode == 0)
        a = Node(args.bin, etcd_url, "a", args.ttl, tmp)
        b = Node(args.bin, etcd_url, "b", args.ttl, tmp)
        nodes = [a, b]
        print(f"loadavg before: {open('/proc/loadavg').read().split()[:3]}, {os.cpu_count()} cores,"
              f" binary {args.bin}")
        st, data = call(a.port, "POST", "/streaming/streams",
                        json.dumps({"name": "bench", "dvr_duration": 600}))
        assert st == 201, data
        s = json.loads(data)
        sid, key = s["id"], s["push_url_http"].rsplit("/", 1)[1]
        fill(a.port, key)
        st, data = call(a.port, "GET", f"/streaming/streams/{sid}/dvr")
        first = json.loads(data)["renditions"][0]["ranges"][0]["start"]
        time.sleep(max(0.0, first + 8.5 - time.time()))  # the fixture's 8 s are past
        rows = overhead(a, b, sid, int(first) + 1, args.requests)
        print(f"| request ({args.requests} each, interleaved) | direct p50 | direct p99 "
              "| through a non-owner p50 | p99 | added p50 |")
        print("|---|---|---|---|---|---|")
        for label, d, f in rows:
            print(f"| {label} | {pct(d, 50):.3f} ms | {pct(d, 99):.3f} ms | {pct(f, 50):.3f} ms "
                  f"| {pct(f, 99):.3f} ms | {pct(f, 50) - pct(d, 50):.3f} ms |")
        times = []
        owner, other = a, b
        for _ in range(args.rounds):
            times.append(failover(owner, other, key))
            owner.start()  # rejoins under its id (its old record went with its lease)
            owner, other = other, owner
        print()
        print(f"failover, SIGKILL of the owner -> the stream claimed by the other node"
              f" (lease TTL {args.ttl} s, {args.rounds} rounds): "
              + ", ".join(f"{t * 1000:.0f} ms" for t in times)
              + f"; median {statistics.median(times) * 1000:.0f} ms")
    finally:
        for n in nodes:
            n.stop()
        etcd.terminate()
        etcd.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()

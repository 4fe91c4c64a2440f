#!/usr/bin/env python3
"""Load and slow-client test of a running-from-scratch `dvrclip serve` (issue 10).

Loopback only, bounded in time, not run in CI. Run through scripts/load-test.sh.

What it does, on one release binary it starts itself:
1. N streams, each ingesting the 3-rendition ladder of tests/fixtures/ladder in real
   time (one 2 s segment per rendition every 2 s, persistent connections, like
   ffmpeg's -http_persistent). The fixture's 4 segments are pushed in a loop with
   shifted names (seg_L_N.m4s) and their tfdt moved forward by the loop's length, so
   every upload is new media, not a retry.
2. One clip per stream, then `wrk -c CONCURRENCY` downloading the clips' MP4s.
3. SLOW idle/slow connections: a third send their headers one byte at a time and
   never finish, a third start an upload and trickle its body, a third request an MP4
   and read nothing. They hold on for a while, then leave.
Checked: good clients (pushers and wrk) see 0 errors; wrk's p99; the server's RSS
stays within the memory budget + 10%; open file descriptors come back to the
baseline once the slow clients have left.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LADDER = ROOT / "tests/fixtures/ladder"
RENDITIONS = [("media_3_240", 0), ("media_2_180", 1), ("media_1_144", 2)]
SEGMENT_SECS = 2.0
SEGMENTS = 4
KEY = "load-test-key"


def boxes(buf, start, end):
    """(type, offset, header length, size) of the boxes in buf[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos : pos + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", buf[pos + 8 : pos + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        yield kind.decode("latin1"), pos, hdr, size
        pos += size


def timescales(init):
    """track_ID -> mdhd timescale, from an init segment."""
    out = {}
    for kind, pos, hdr, size in boxes(init, 0, len(init)):
        if kind != "moov":
            continue
        for k, p, h, s in boxes(init, pos + hdr, pos + size):
            if k != "trak":
                continue
            track = scale = None
            for k2, p2, h2, s2 in boxes(init, p + h, p + s):
                if k2 == "tkhd":
                    v = init[p2 + 8]
                    track = struct.unpack(">I", init[p2 + (28 if v == 1 else 20) : p2 + (32 if v == 1 else 24)])[0]
                if k2 == "mdia":
                    for k3, p3, h3, s3 in boxes(init, p2 + h2, p2 + s2):
                        if k3 == "mdhd":
                            v = init[p3 + 8]
                            o = p3 + (28 if v == 1 else 20)
                            scale = struct.unpack(">I", init[o : o + 4])[0]
            out[track] = scale
    return out


def shift_tfdt(seg, scales, secs, ticks=None):
    """A copy of a media segment with every tfdt moved `secs` later, or each track's
    by `ticks[track_ID]` ticks when `ticks` is given."""
    out = bytearray(seg)
    for kind, pos, hdr, size in boxes(seg, 0, len(seg)):
        if kind != "moof":
            continue
        for k, p, h, s in boxes(seg, pos + hdr, pos + size):
            if k != "traf":
                continue
            track = None
            for k2, p2, h2, s2 in boxes(seg, p + h, p + s):
                if k2 == "tfhd":
                    track = struct.unpack(">I", seg[p2 + 12 : p2 + 16])[0]
                elif k2 == "tfdt":
                    add = ticks[track] if ticks else int(round(secs * scales[track]))
                    if seg[p2 + 8] == 1:
                        v = struct.unpack(">Q", seg[p2 + 12 : p2 + 20])[0]
                        out[p2 + 12 : p2 + 20] = struct.pack(">Q", v + add)
                    else:
                        v = struct.unpack(">I", seg[p2 + 12 : p2 + 16])[0]
                        out[p2 + 12 : p2 + 16] = struct.pack(">I", (v + add) & 0xFFFFFFFF)
    return bytes(out)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = []

    def record(self, ok, what=""):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.errors.append(what)


def api(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"APIKey {KEY}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


CHUNKED = False


def pusher(port, ingest, rendition, idx, stop, stats, t0):
    """One rendition of one stream, pushed in real time on a persistent connection."""
    d = LADDER / rendition
    init = (d / f"init_{idx}.mp4").read_bytes()
    scales = timescales(init)
    segs = [(d / f"seg_{n:05d}.m4s").read_bytes() for n in range(SEGMENTS)]
    conn = None

    def put(name, body):
        nonlocal conn
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if CHUNKED:
                    # As ffmpeg sends: Transfer-Encoding: chunked, 64 KiB pieces.
                    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
                    conn.request("PUT", f"{ingest}/{rendition}/{name}", body=iter(pieces), encode_chunked=True)
                else:
                    conn.request("PUT", f"{ingest}/{rendition}/{name}", body=body)
                r = conn.getresponse()
                r.read()
                stats.record(r.status in (200, 201), f"{rendition}/{name}: {r.status}")
                return
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                # A keep-alive connection the server closed is retried once, as
                # an encoder would; a second failure counts.
                conn = None
                if attempt == 1:
                    stats.record(False, f"{rendition}/{name}: {e!r}")

    put(f"init_{idx}.mp4", init)
    k = 0
    while not stop.is_set():
        loop, n = divmod(k, SEGMENTS)
        due = t0 + (k + 1) * SEGMENT_SECS
        delay = due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        body = shift_tfdt(segs[n], scales, loop * SEGMENTS * SEGMENT_SECS)
        put(f"seg_{loop}_{n}.m4s", body)
        k += 1
    if conn:
        conn.close()


async def slow_client(kind, port, hold, path_upload, path_mp4, counts):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["connect_failed"] += 1
        return
    counts["open"] += 1
    end = time.monotonic() + hold
    try:
        if kind == 0:
            # Slow headers: one byte every 2 s, never the blank line.
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
            for b in head:
                if time.monotonic() > end:
                    break
                writer.write(bytes([b]))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1), 2)
                    if not data:
                        counts["closed_by_server"] += 1
                        return
                except asyncio.TimeoutError:
                    pass
        elif kind == 1:
            # Slow body: an upload declaring 1 MiB, one byte every 2 s.
            writer.write(
                f"PUT {path_upload} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n".encode()
            )
            while time.monotonic() < end:
                writer.write(b"\0")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1), 2)
                    if not data:
                        counts["closed_by_server"] += 1
                        return
                    counts["answered"] += 1
                    return
                except asyncio.TimeoutError:
                    pass
        else:
            # Slow reader: ask for an MP4 and read nothing until leaving.
            writer.write(f"GET {path_mp4} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            await asyncio.sleep(max(0, end - time.monotonic()))
    except (ConnectionError, OSError):
        counts["closed_by_server"] += 1
        return
    finally:
        writer.close()
    counts["held_to_the_end"] += 1


def slow_clients(n, port, hold, path_upload, path_mp4, out):
    counts = {k: 0 for k in ("open", "connect_failed", "closed_by_server", "answered", "held_to_the_end")}

    async def main():
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(slow_client(i % 3, port, hold, path_upload, path_mp4, counts)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    out.update(counts)


def proc_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/release/dvrclip"))
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=240, help="whole run, seconds")
    ap.add_argument("--budget-mib", type=int, default=128)
    ap.add_argument("--chunked", action="store_true", help="upload segments chunked, as ffmpeg does")
    a = ap.parse_args()
    global CHUNKED
    CHUNKED = a.chunked

    warmup = 24  # seconds of ingest before clips are cut
    wrk_secs = max(30, a.duration - warmup - 60)
    slow_hold = max(20, wrk_secs - 40)

    data = tempfile.mkdtemp(prefix="dvrclip-load-")
    log = open(Path(data) / "server.log", "w")
    server = subprocess.Popen(
        [a.binary, "serve", "--listen", "127.0.0.1:0", "--api-key", KEY, "--data-dir", f"{data}/data",
         "--memory-budget-mib", str(a.budget_mib), "--header-timeout-secs", "30"],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    port = None
    for line in server.stdout:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "server did not start"
    pid = server.pid
    print(f"server pid {pid} on port {port}, data {data}", flush=True)

    samples = []  # (t, rss MiB, fds, MiB the engine accounts: payload + tables)
    stop_sampling = threading.Event()
    t_start = time.monotonic()

    def accounted_mib():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^dvrclip_memory_bytes (\d+)", text, re.M)
        return int(m.group(1)) / 2**20 if m else 0.0

    def sampler():
        while not stop_sampling.is_set():
            try:
                samples.append((time.monotonic() - t_start, proc_rss_mib(pid), proc_fds(pid), accounted_mib()))
            except (OSError, http.client.HTTPException):
                pass
            stop_sampling.wait(1)

    threading.Thread(target=sampler, daemon=True).start()
    fds_idle = proc_fds(pid)

    streams = []
    for i in range(a.streams):
        status, body = api(port, "POST", "/streaming/streams", {"name": f"load {i}"})
        assert status == 201, (status, body)
        s = json.loads(body)
        ingest = "/" + s["push_url"].split("/", 3)[3]
        streams.append((s["id"], ingest))

    stop = threading.Event()
    ingest_stats = Stats()
    threads = []
    t0 = time.monotonic()
    for sid, ingest in streams:
        for rendition, idx in RENDITIONS:
            t = threading.Thread(target=pusher, args=(port, ingest, rendition, idx, stop, ingest_stats, t0), daemon=True)
            t.start()
            threads.append(t)
    print(f"{len(threads)} pushers started; warming up {warmup} s", flush=True)
    time.sleep(warmup)
    fds_baseline = proc_fds(pid)

    # One clip per stream: the 16 s that ended 4 s ago (complete at once).
    mp4s = []
    now = int(time.time())
    for sid, _ in streams:
        status, body = api(port, "PUT", f"/streaming/streams/{sid}/clip_recording", {"start": now - 20, "duration": 16})
        assert status == 200, (status, body)
        c = json.loads(body)
        mp4s.append("/" + c["mp4_master"].split("/", 3)[3])
    for p in mp4s:
        for _ in range(100):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("HEAD", p)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                break
            time.sleep(0.2)
        else:
            sys.exit(f"clip {p} never became ready")
    lua = Path(data) / "paths.lua"
    lua.write_text(
        "local paths = {" + ",".join(f'"{p}"' for p in mp4s) + "}\n"
        "local i = 0\n"
        "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
    )

    slow_out = {}
    upload_path = f"{streams[0][1]}/media_3_240/slow.m4s"
    slow = threading.Thread(target=slow_clients, args=(a.slow, port, slow_hold, upload_path, mp4s[0], slow_out), daemon=True)
    slow.start()
    time.sleep(2)
    peak_fds_during = proc_fds(pid)
    print(f"{a.slow} slow clients for {slow_hold} s; wrk -t2 -c{a.concurrency} for {wrk_secs} s", flush=True)
    wrk = subprocess.run(
        ["wrk", "-t2", f"-c{a.concurrency}", f"-d{wrk_secs}s", "--timeout", "10s", "--latency",
         "-s", str(lua), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True,
    )
    slow.join(timeout=120)
    # After the slow clients left: fds back to the baseline (allow a few seconds for
    # the server to notice closed sockets).
    fds_after = None
    for _ in range(30):
        fds_after = proc_fds(pid)
        if fds_after <= fds_baseline + 2:
            break
        time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    stop_sampling.set()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()

    print(wrk.stdout)
    if wrk.returncode != 0:
        print(wrk.stderr)
    out = wrk.stdout
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock_errors = sum(int(x) for x in sock.groups()) if sock else 0
    p99 = m.group(1) if (m := re.search(r"\s99%\s+(\S+)", out)) else "?"
    reqs = m.group(1) if (m := re.search(r"(\d+) requests in", out)) else "?"
    rps = m.group(1) if (m := re.search(r"Requests/sec:\s+(\S+)", out)) else "?"
    peak_rss = max(s[1] for s in samples)
    peak_accounted = max(s[3] for s in samples)
    at_peak = max(samples, key=lambda s: s[1])
    peak_fds = max(s[2] for s in samples)
    limit = a.budget_mib * 1.1
    result = {
        "streams": a.streams,
        "pushers": len(threads),
        "uploads_ok": ingest_stats.ok,
        "upload_errors": len(ingest_stats.errors),
        "upload_error_examples": ingest_stats.errors[:5],
        "wrk_requests": reqs,
        "wrk_requests_per_sec": rps,
        "wrk_p99": p99,
        "wrk_non2xx": non2xx,
        "wrk_socket_errors": sock_errors,
        "slow_clients": slow_out,
        "rss_peak_mib": round(peak_rss, 1),
        "rss_peak_at_s": round(at_peak[0]),
        "rss_steady_median_mib": round(sorted(x[1] for x in samples if x[0] > 60)[len([x for x in samples if x[0] > 60]) // 2], 1) if any(x[0] > 60 for x in samples) else None,
        "rss_limit_mib": round(limit, 1),
        "accounted_peak_mib": round(peak_accounted, 1),
        "accounted_at_rss_peak_mib": round(at_peak[3], 1),
        "rss_timeline_mib": [round(s[1]) for s in samples[::15]],
        "accounted_timeline_mib": [round(s[3]) for s in samples[::15]],
        "fds_idle": fds_idle,
        "fds_baseline": fds_baseline,
        "fds_with_slow_clients": peak_fds_during,
        "fds_peak": peak_fds,
        "fds_after_slow_clients_left": fds_after,
        "seconds": round(time.monotonic() - t_start),
        "server_log": str(Path(data) / "server.log"),
    }
    checks = {
        "good clients saw 0 errors": result["upload_errors"] == 0 and non2xx == 0 and sock_errors == 0,
        "RSS within budget + 10%": peak_rss <= limit,
        "fds back to baseline": fds_after is not None and fds_after <= fds_baseline + 2,
    }
    result["checks"] = checks
    print(json.dumps(result, indent=2))
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()

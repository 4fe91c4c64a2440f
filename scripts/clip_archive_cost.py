#!/usr/bin/env python3
"""What archiving a clip costs: S3 bytes written beside the clip's MP4, and the time
from the clip complete to its manifest written, against moto on loopback.

  python3 scripts/clip_archive_cost.py [BIN]      # default target/debug/dvrclip

ffmpeg encodes SECONDS (ARCHIVE_SECONDS, default 40) of 1280x720 H.264 at 5 Mb/s with
AAC 128 kb/s once, then pushes it in real time as fMP4 HLS (2 s segments, one
rendition) by HTTP PUT into `dvrclip serve --clip-archive s3://clips` on a moto server
started here. Clips of 10 s and of SECONDS-10 s are then cut from the DVR, one after
the other (each complete at once); for each, the server's own counters
(`dvrclip_archive_bytes_total`, `dvrclip_archive_write_micros_total`) give what it
wrote and how long it took, beside the size of the MP4 its link serves. Then a
second server on the same archive, holding no stream, serves the longer clip's MP4
from S3: DOWNLOADS (default 5) whole GETs and as many 1 MiB ranges from the middle
of its media, each timed to the first byte and to the last (medians), beside the
same from the recording server's memory. Not part of CI: it runs in real time.
Needs `moto_server` (pip install 'moto[server]').
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "dvrclip")
SECONDS = int(os.environ.get("ARCHIVE_SECONDS", "40"))
KEY = "cost$key"
DOWNLOADS = int(os.environ.get("DOWNLOADS", "5"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"APIKey {KEY}"})
    with urllib.request.urlopen(req) as r:
        return r


def api(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"APIKey {KEY}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def metric(base, name):
    with urllib.request.urlopen(base + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
    raise KeyError(name)


def start_server(work, name, endpoint):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    srv = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--api-key", KEY,
                            "--data-dir", os.path.join(work, name),
                            "--clip-archive", "s3://clips", "--s3-endpoint", endpoint,
                            "--s3-region", "us-east-1"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    while True:
        line = srv.stdout.readline()
        assert line, "the server stopped before listening"
        if line.startswith("dvrclip listening on "):
            return srv, line.split()[-1]


def timed_get(url, headers=None):
    """(seconds to the first body byte, seconds to the last, bytes, sha256)."""
    t0 = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
        first = r.read(1)
        t1 = time.monotonic()
        h = hashlib.sha256(first)
        n = len(first)
        while True:
            b = r.read(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
    return t1 - t0, time.monotonic() - t0, n, h.hexdigest()


def downloads(base, mp4, size):
    """Medians of DOWNLOADS whole GETs and of as many 1 MiB ranges from the middle."""
    mid = size // 2
    rows = []
    for what, headers in (("whole", None),
                          ("1 MiB range", {"Range": f"bytes={mid}-{mid + (1 << 20) - 1}"})):
        runs = sorted((timed_get(base + mp4, headers) for _ in range(DOWNLOADS)),
                      key=lambda r: r[1])
        first = sorted(r[0] for r in runs)[len(runs) // 2]
        last = runs[len(runs) // 2][1]
        n, digest = runs[0][2], runs[0][3]
        assert all(r[3] == digest for r in runs)
        rows.append((what, first, last, n, digest))
    return rows


def main():
    work = tempfile.mkdtemp(prefix="dvrclip-archive-cost-")
    src = os.path.join(work, "src.flv")
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS),
        "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "5M", "-maxrate", "5M",
        "-bufsize", "10M", "-c:a", "aac", "-b:a", "128k", src], check=True)
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = None
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(urllib.request.Request(endpoint + "/clips", method="PUT"))
                break
            except OSError:
                time.sleep(0.1)
        srv, base = start_server(work, "data", endpoint)
        stream = api(base, "POST", "/streaming/streams", {"name": "cost", "dvr_duration": 600})
        subprocess.run(["ffmpeg", "-v", "error", "-re", "-i", src, "-c", "copy", "-f", "hls",
                        "-hls_time", "2", "-hls_segment_type", "fmp4", "-method", "PUT",
                        "-http_persistent", "1", "-hls_flags", "program_date_time",
                        stream["push_url_http"] + "/v/index.m3u8"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        dvr = api(base, "GET", f"/streaming/streams/{stream['id']}/dvr")
        first = int(dvr["renditions"][0]["ranges"][0]["start"]) + 1
        print("| clip | its MP4 | S3 bytes written | ratio | complete → archived |")
        print("|---|---|---|---|---|")
        for duration in (10, SECONDS - 10):
            before = (metric(base, "dvrclip_archive_clips_total"),
                      metric(base, "dvrclip_archive_bytes_total"),
                      metric(base, "dvrclip_archive_write_micros_total"))
            clip = api(base, "PUT", f"/streaming/streams/{stream['id']}/clip_recording",
                       {"start": first, "duration": duration})
            while metric(base, "dvrclip_archive_clips_total") == before[0]:
                time.sleep(0.05)
            written = metric(base, "dvrclip_archive_bytes_total") - before[1]
            micros = metric(base, "dvrclip_archive_write_micros_total") - before[2]
            mp4 = "/" + clip["mp4_master"].split("/", 3)[3]
            size = int(call(base, "HEAD", mp4).headers["Content-Length"])
            print(f"| {duration} s | {size:,} | {written:,} | {written / size:.2f}x "
                  f"| {micros / 1000:.0f} ms |")
        other, other_base = start_server(work, "other", endpoint)
        try:
            live = downloads(base, mp4, size)
            archived = downloads(other_base, mp4, size)
        finally:
            other.terminate()
            other.wait(timeout=30)
        print(f"\nthe {SECONDS - 10} s clip's MP4, medians of {DOWNLOADS}:\n")
        print("| GET | from | first byte | last byte | throughput |")
        print("|---|---|---|---|---|")
        for (what, *l), (_, *a) in zip(live, archived):
            assert l[3] == a[3], f"{what}: the archive served other bytes"
            for name, (first, last, n, _) in (("memory", l), ("archive (S3)", a)):
                print(f"| {what} | {name} | {first * 1000:.1f} ms | {last * 1000:.1f} ms "
                      f"| {n / last / 1e6:.0f} MB/s |")
    finally:
        if srv:
            srv.terminate()
            srv.wait(timeout=30)
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

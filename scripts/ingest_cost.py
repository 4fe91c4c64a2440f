#!/usr/bin/env python3
"""What ingesting one live stream costs the server, RTMP and SRT beside HTTP PUT.

  python3 scripts/ingest_cost.py [BIN]      # default target/release/dvrclip

ffmpeg encodes SECONDS (INGEST_SECONDS, default 30) of 1280x720 H.264 at 5 Mb/s with
AAC into an FLV once; the same bytes are then pushed in real time (`-re -c copy`) into
one `dvrclip serve`, first over RTMP to `push_url`, then as MPEG-TS over SRT to
`push_url_srt`, then as fMP4 HLS by HTTP PUT to `push_url_http`. The server's CPU time (utime + stime from /proc) over each push,
divided by the seconds of media, is the cost per stream as a share of one core; the
DVR's bytes check that the media arrived. Not part of CI: it runs in real time.
INGEST_SERVER_ARGS adds flags to the server (e.g. `--spool-dir /dev/shm/cost`: the
server listens on port 0, so it keeps no spool unless told).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "dvrclip")
SECONDS = int(os.environ.get("INGEST_SECONDS", "30"))
KEY = "cost$key"


def cpu_secs(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"APIKey {KEY}"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def push(pid, cmd):
    before = cpu_secs(pid)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cpu_secs(pid) - before


def main():
    work = tempfile.mkdtemp(prefix="dvrclip-cost-")
    src = os.path.join(work, "src.flv")
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS),
        "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "5M", "-maxrate", "5M",
        "-bufsize", "10M", "-c:a", "aac", "-b:a", "128k", src], check=True)
    srv = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--rtmp-listen",
                            "127.0.0.1:0", "--srt-listen", "127.0.0.1:0", "--api-key", KEY,
                            "--data-dir", os.path.join(work, "data")]
                           + os.environ.get("INGEST_SERVER_ARGS", "").split(),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base, rtmp = None, False
        while base is None or not rtmp:
            line = srv.stdout.readline()
            assert line, "the server stopped before listening"
            if line.startswith("dvrclip listening on "):
                base = line.split()[-1]
            rtmp = rtmp or line.startswith("dvrclip rtmp listening on ")
        rows = []
        for door in ("rtmp", "srt", "http"):
            stream = api(base, "POST", "/streaming/streams", {"name": door})
            if door == "rtmp":
                cmd = ["ffmpeg", "-v", "error", "-re", "-i", src, "-c", "copy", "-f", "flv",
                       stream["push_url"]]
            elif door == "srt":
                cmd = ["ffmpeg", "-v", "error", "-re", "-i", src, "-c", "copy", "-f", "mpegts",
                       stream["push_url_srt"]]
            else:
                cmd = ["ffmpeg", "-v", "error", "-re", "-i", src, "-c", "copy", "-f", "hls",
                       "-hls_time", "2", "-hls_segment_type", "fmp4", "-method", "PUT",
                       "-http_persistent", "1", "-hls_flags", "program_date_time",
                       stream["push_url_http"] + "/v/index.m3u8"]
            cpu = push(srv.pid, cmd)
            # The last fragment is stored when the server sees the sender close: over
            # SRT that is after its latency and shutdown, a moment after ffmpeg exits.
            media, last = 0, -1
            while media != last:
                time.sleep(1)
                held = api(base, "GET", f"/streaming/streams/{stream['id']}/dvr")
                media, last = sum(r["bytes"] for r in held["renditions"]), media
            rows.append((door, cpu, media))
        print(f"| door | server CPU for {SECONDS} s of 5 Mb/s | share of one core | bytes held |")
        print("|---|---|---|---|")
        for door, cpu, media in rows:
            print(f"| {door} | {cpu:.2f} s | {100 * cpu / SECONDS:.2f}% | {media:,} |")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    main()

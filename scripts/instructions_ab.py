#!/usr/bin/env python3
"""Instructions one fixed workload costs two `dvrclip` binaries: an A/B that a busy
machine cannot blur.

  python3 scripts/instructions_ab.py BIN_A BIN_B [BIN_A BIN_B ...]

Each binary runs under `valgrind --tool=callgrind`, which counts instructions rather
than seconds (repeatable whatever else the machine does). The workload, the same for
every binary: the bench ladder of scripts/bench_compare.py (BENCH_SECONDS long, made
by ffmpeg on first use) uploaded by HTTP PUT with Content-Length, one 60 s clip cut
from it, its MP4 downloaded whole 3 times and as 20 ranges of 1 MiB. Counts are
dumped per phase (`callgrind_control --dump`): ingest, clip (API + MP4 header
build), serving. Prints one table row per binary and the ratios to the first.
"""
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BENCH_SECONDS", "120")
import bench_compare as bc  # noqa: E402


def total_ir(path):
    """The `summary:` (or `totals:`) instruction count of one callgrind dump."""
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def dump(pid, tmp, phase):
    subprocess.run(["callgrind_control", "--dump=" + phase, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)
    # The dump lands as callgrind.out.PID.N; wait until it is written.
    for _ in range(200):
        done = [f for f in os.listdir(tmp) if re.fullmatch(r"callgrind\.out\.\d+\.\d+", f)]
        if len(done) >= {"ingest": 1, "clip": 2, "serving": 3}[phase]:
            return
        time.sleep(0.1)


def run(binary):
    tmp = tempfile.mkdtemp(prefix="dvrclip-ir-")
    wrapper = os.path.join(tmp, "dvrclip")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --dump-instr=no "
                f"--callgrind-out-file={tmp}/callgrind.out.%p {binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    bc.BIN = wrapper
    srv = bc.Server()
    pid = srv.proc.pid
    try:
        stream = srv.api("POST", "/streaming/streams", {"name": "ab", "dvr_duration": 3600})
        bc.push_ladder(srv, stream["push_url"])
        dump(pid, tmp, "ingest")
        dvr = srv.api("GET", f"/streaming/streams/{stream['id']}/dvr")
        start = int(min(r["ranges"][0]["start"] for r in dvr["renditions"])) + 30
        clip = srv.api("PUT", f"/streaming/streams/{stream['id']}/clip_recording",
                       {"duration": 60, "start": start})
        path = clip["mp4_master"].split(str(srv.port), 1)[1]
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)

        def get(headers):
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            assert r.status in (200, 206), r.status
            return len(body), r.getheader("Content-Length")

        size, _ = get({"Range": "bytes=0-0"})
        dump(pid, tmp, "clip")
        length = int(get({})[1])
        for _ in range(2):
            get({})
        for i in range(20):
            first = (i * 7919 * 65536) % max(length - (1 << 20), 1)
            get({"Range": f"bytes={first}-{first + (1 << 20) - 1}"})
        dump(pid, tmp, "serving")
    finally:
        srv.stop()
    dumps = sorted((f for f in os.listdir(tmp) if re.fullmatch(r"callgrind\.out\.\d+\.\d+", f)),
                   key=lambda f: int(f.rsplit(".", 1)[1]))
    ir = [total_ir(os.path.join(tmp, f)) for f in dumps[:3]]
    return {"ingest": ir[0], "clip": ir[1], "serving": ir[2], "mp4_bytes": length}


def main():
    bins = sys.argv[1:]
    if not bins:
        sys.exit(__doc__)
    bc.make_ladder()
    rows = [(b, run(b)) for b in bins]
    base = rows[0][1]
    print("| binary | ingest Ir | clip Ir | serving Ir | vs first (ingest, clip, serving) |")
    print("|---|---|---|---|---|")
    for b, r in rows:
        ratios = ", ".join(f"{r[k] / base[k]:.3f}" for k in ("ingest", "clip", "serving"))
        print(f"| {b} | {r['ingest']:,} | {r['clip']:,} | {r['serving']:,} | {ratios} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Bytes per server CPU-second serving one clip MP4: dvrclip binaries against nginx
(sendfile on) in one sitting, alternated round by round so a busy machine blurs them
alike; optionally a `perf` profile and flame graph of each server.

nginx serves the same file twice: from the build's disk (the issue's baseline; ext4's
page cache holds large folios) and from tmpfs, the storage dvrclip's spool keeps
payloads in by default (4 KiB pages). Taking a page reference costs per page, so the
second is the same-storage comparison (BENCHMARKS.md "Where the cycles go").

  python3 scripts/serving_ab.py                       # target/release/dvrclip vs nginx
  python3 scripts/serving_ab.py A=/tmp/old B=target/release/dvrclip   # an A/B of builds
  PERF=1 python3 scripts/serving_ab.py                # + benches/results/flame-serve-*.svg

The ladder, the server set-up, wrk and nginx's configuration are those of
scripts/bench_compare.py (BENCH_SECONDS defaults to 120 here: a 60 s clip of the
720p rendition, about 19 MB). ROUNDS (default 3) rounds of wrk -t2 -c16 for
BENCH_WRK_SECS (default 10) s per server and request kind (whole file, 1 MiB range
from the middle). Prints per-round figures and the medians, as Markdown.
PERF=1 records `perf record -e cpu-clock -g --call-graph dwarf` of each server during
one whole-file run (and one range run) and folds them with inferno
(`cargo install inferno`).
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("BENCH_SECONDS", "120")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compare as bc  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
PERF = os.environ.get("PERF") == "1"
RESULTS = os.path.join(bc.ROOT, "benches", "results")


def dvrclip_server(binary):
    bc.BIN = binary
    srv = bc.Server()
    stream = srv.api("POST", "/streaming/streams", {"name": "bench", "dvr_duration": 3600})
    bc.push_ladder(srv, stream["push_url"])
    dvr = srv.api("GET", f"/streaming/streams/{stream['id']}/dvr")
    start = int(min(r["ranges"][0]["start"] for r in dvr["renditions"])) + 30
    clip = srv.api("PUT", f"/streaming/streams/{stream['id']}/clip_recording",
                   {"start": start, "duration": 60})
    url = clip["mp4_master"]
    for _ in range(50):
        try:
            with urllib.request.urlopen(url) as r:
                return srv, url, r.read()
        except urllib.error.HTTPError as e:
            if e.code != 425:
                raise
            time.sleep(0.2)
    raise RuntimeError("clip never completed")


def start_nginx(body, d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "www"))
    open(os.path.join(d, "www", "clip.mp4"), "wb").write(body)
    port = bc.free_port()
    conf = os.path.join(d, "nginx.conf")
    open(conf, "w").write(bc.NGINX_CONF.format(dir=d, port=port, sendfile="on"))
    subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
    time.sleep(0.5)
    return d, conf, f"http://127.0.0.1:{port}/clip.mp4"


def perf_record(pids, name, url, lua):
    data = os.path.join(bc.OUT, f"perf-{name}.data")
    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
                            "--call-graph", "dwarf,16384", "-o", data,
                            "-p", ",".join(map(str, pids))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    bc.wrk(url, lua)
    rec.send_signal(2)
    rec.wait()
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True, check=True).stdout
    folded = subprocess.run(["inferno-collapse-perf"], input=script, capture_output=True,
                            check=True).stdout
    open(os.path.join(bc.OUT, f"{name}.folded"), "wb").write(folded)
    svg = subprocess.run(["inferno-flamegraph", "--title", name], input=folded,
                         capture_output=True, check=True).stdout
    os.makedirs(RESULTS, exist_ok=True)
    open(os.path.join(RESULTS, f"{name}.svg"), "wb").write(svg)
    bc.log(f"flame graph: benches/results/{name}.svg")


def main():
    bins = [a.split("=", 1) for a in sys.argv[1:]] or [["dvrclip", bc.BIN]]
    os.makedirs(bc.OUT, exist_ok=True)
    bc.make_ladder()
    servers = {}
    body = None
    try:
        for name, binary in bins:
            srv, url, body = dvrclip_server(binary)
            servers[name] = (srv, url)
        size = len(body)
        # nginx from a file on the build's disk (ext4 here: its page cache holds large
        # folios), and from tmpfs, where dvrclip's spool keeps payloads (4 KiB pages).
        ndir, conf, nurl = start_nginx(body, os.path.join(bc.OUT, "nginx_ab"))
        tdir, tconf, turl = start_nginx(body, "/dev/shm/dvrclip-bench-nginx")
        lua = os.path.join(bc.OUT, "range.lua")
        mid = size // 2
        open(lua, "w").write(bc.WRK_RANGE_LUA.format(first=mid, last=mid + (1 << 20) - 1))
        targets = {n: (url, srv.cpu_secs) for n, (srv, url) in servers.items()}
        targets["nginx"] = (nurl, lambda: bc.nginx_cpu(ndir))
        targets["nginx tmpfs"] = (turl, lambda: bc.nginx_cpu(tdir))
        rows = {}
        for rnd in range(ROUNDS):
            for kind, script in (("whole", None), ("range", lua)):
                for name, (url, cpu) in targets.items():
                    c0 = cpu()
                    r = bc.wrk(url, script)
                    spent = cpu() - c0
                    per_cpu = r["bytes_per_s"] * bc.WRK_SECS / max(spent, 1e-9) / 1e9
                    rows.setdefault((name, kind), []).append((r["bytes_per_s"] / 1e9, per_cpu, r["p99_ms"]))
                    bc.log(f"round {rnd} {kind:5s} {name:10s} {r['bytes_per_s'] / 1e9:5.2f} GB/s "
                           f"{per_cpu:5.2f} GB/CPU-s p99 {r['p99_ms']:.1f} ms non-2xx {r['non_2xx']}")
        load = open("/proc/loadavg").read().split()[:3]
        print(f"MP4 {size} bytes; wrk -t2 -c16 -d{bc.WRK_SECS}s x {ROUNDS} rounds; loadavg {' '.join(load)}")
        print("| server | request | GB/s (median) | GB per server CPU-s (median) | vs nginx per CPU-s, by round | vs nginx on tmpfs, by round | p99 ms (median) |")
        print("|---|---|---|---|---|---|---|")
        for (name, kind), v in rows.items():
            ratios = [" / ".join(f"{a[1] / b[1]:.2f}x" for a, b in zip(v, rows[(base, kind)]))
                      for base in ("nginx", "nginx tmpfs")]
            print(f"| {name} | {kind} | {statistics.median(x[0] for x in v):.2f} | "
                  f"{statistics.median(x[1] for x in v):.2f} | {ratios[0]} | {ratios[1]} | "
                  f"{statistics.median(x[2] for x in v):.1f} |")
        if PERF:
            for name, (srv, url) in servers.items():
                perf_record([srv.proc.pid], f"flame-serve-{name}-whole", url, None)
            for name, d, url in (("nginx", ndir, nurl), ("nginx-tmpfs", tdir, turl)):
                master = int(open(os.path.join(d, "nginx.pid")).read())
                workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                         text=True).stdout.split()
                perf_record([int(w) for w in workers], f"flame-serve-{name}-whole", url, None)
    finally:
        for srv, _ in servers.values():
            srv.stop()
        if body is not None:
            subprocess.run(["nginx", "-c", conf, "-p", ndir, "-s", "stop"])
            subprocess.run(["nginx", "-c", tconf, "-p", tdir, "-s", "stop"])
            shutil.rmtree(tdir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Side-by-side measurements of dvrclip against the tools a user has today.

Run through scripts/bench-compare.sh (it installs ffmpeg, nginx, wrk, matplotlib and
builds the release binary). Everything binds to 127.0.0.1; every figure is reported
beside a baseline measured in the same run, as a ratio.

  1. writes a 10-minute 3-rendition fMP4 ladder to disk with ffmpeg and pushes the
     same files into `dvrclip serve` (faster than real time; the playlists' dates
     anchor the wall clock);
  2. "60 s from T" for T at 1, 4 and 9 minutes: ffmpeg reading the whole playlist,
     ffmpeg reading a sub-playlist of exactly the clip's segments, and dvrclip's
     create-clip call plus the first byte of its MP4; every output's frame count is
     checked;
  3. the same MP4 bytes served by nginx (sendfile on and off) and by dvrclip under
     wrk -t2 -c16, whole file and 1 MiB ranges: GB/s, p99, bytes per server CPU-second;
  4. dvrclip's RSS against the media bytes it holds;
  5. a 4 h window (scripts/bench_playlists.py): its live and clip playlists against
     nginx serving the same bytes, and the first byte of a 14,360 s clip's MP4.

Writes target/bench-compare/results.json, BENCHMARKS-run.md (the tables) and two PNG
plots next to it. DVRCLIP_BIN runs another binary (an A/B of two builds);
BENCH_SECONDS, BENCH_REPEATS and BENCH_WRK_SECS shorten a run.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench-compare")
LADDER = os.path.join(OUT, "ladder")
BIN = os.environ.get("DVRCLIP_BIN", os.path.join(ROOT, "target", "release", "dvrclip"))
KEY = "bench$key"
SECONDS = int(os.environ.get("BENCH_SECONDS", "600"))
RENDITIONS = ["media_3_720", "media_2_480", "media_1_360"]
CLIP_SECS = 60
# Clip starts, minutes into the ladder: those a shortened ladder (BENCH_SECONDS) holds
# whole, so every clip is cut from the DVR rather than recorded.
CLIP_AT_MIN = [m for m in (1, 4, 9) if m * 60 + CLIP_SECS <= SECONDS] or [0]
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
WRK_SECS = int(os.environ.get("BENCH_WRK_SECS", "10"))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ladder():
    done = os.path.join(LADDER, "done")
    # The playlists date the media from when it was encoded, and a clip expires an
    # hour after its end by default: an older ladder would cut clips born expired.
    fresh = os.path.exists(done) and time.time() - os.path.getmtime(done) < 30 * 60
    if fresh and open(done).read().strip() == str(SECONDS):
        log("ladder: reusing", LADDER)
        return
    shutil.rmtree(LADDER, ignore_errors=True)
    os.makedirs(LADDER)
    log(f"ladder: encoding {SECONDS} s x 3 renditions with ffmpeg")
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS),
        "-filter_complex", "[0:v]split=3[a][b][c];[b]scale=854:480[b2];[c]scale=640:360[c2]",
        "-map", "[a]", "-map", "[b2]", "-map", "[c2]", "-map", "1:a", "-map", "1:a", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-g", "60",
        "-keyint_min", "60", "-sc_threshold", "0",
        "-b:v:0", "2500k", "-b:v:1", "1200k", "-b:v:2", "700k", "-c:a", "aac", "-b:a", "96k",
        "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_list_size", "0",
        "-hls_flags", "program_date_time+independent_segments",
        "-master_pl_name", "master.m3u8",
        "-var_stream_map", " ".join(f"v:{i},a:{i},name:{n}" for i, n in enumerate(RENDITIONS)),
        "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", f"{LADDER}/%v/seg_%05d.m4s", f"{LADDER}/%v/index.m3u8",
    ], check=True)
    with open(done, "w") as f:
        f.write(str(SECONDS))


def playlist(rendition):
    """[(file, duration, pdt_text)] and the init file name of a rendition."""
    text = open(os.path.join(LADDER, rendition, "index.m3u8")).read()
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text).group(1)
    segs, dur, pdt = [], None, None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            dur = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = line.split(":", 1)[1]
        elif line and not line.startswith("#"):
            segs.append((line, dur, pdt))
            pdt = None
    return init, segs


class Server:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--api-key", KEY,
             "--data-dir", os.path.join(OUT, "data"), "--memory-budget-mib", "8192"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert "listening" in line, line
        self.base = f"http://127.0.0.1:{self.port}"

    def api(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"APIKey {KEY}"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")

    def cpu_secs(self):
        return proc_cpu_secs(self.proc.pid)

    def rss_bytes(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def push_ladder(srv, push_url):
    path = push_url.split(str(srv.port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    sent = 0

    def put(p, body):
        nonlocal sent
        conn.request("PUT", p, body=body)
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 201), (p, r.status)
        sent += len(body)

    lists = {r: playlist(r) for r in RENDITIONS}
    for r, (init, _) in lists.items():
        put(f"{path}/{r}/init.mp4", open(os.path.join(LADDER, r, init), "rb").read())
    t0 = time.perf_counter()
    n = min(len(s) for _, s in lists.values())
    for i in range(n):
        for r, (_, segs) in lists.items():
            put(f"{path}/{r}/{segs[i][0]}", open(os.path.join(LADDER, r, segs[i][0]), "rb").read())
    for r in RENDITIONS:
        put(f"{path}/{r}/index.m3u8", open(os.path.join(LADDER, r, "index.m3u8"), "rb").read())
    elapsed = time.perf_counter() - t0
    log(f"push: {n} segments x {len(RENDITIONS)} renditions, {sent / 1e6:.0f} MB in {elapsed:.1f} s")
    return {"segments": n, "bytes": sent, "secs": elapsed}


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def first_byte_secs(url):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-r", "0-0", "-w", "%{time_starttransfer}", url],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def clip_latency(srv, stream_id, dvr_start):
    top = RENDITIONS[0]
    init, segs = playlist(top)
    rows = []
    for minute in CLIP_AT_MIN:
        start = int(dvr_start) + minute * 60
        offset = start - dvr_start
        # ffmpeg, reading everything before T and dropping it.
        full_out = os.path.join(OUT, f"ffmpeg_full_{minute}.mp4")
        t_full = [timed(["ffmpeg", "-y", "-v", "error", "-i", os.path.join(LADDER, top, "index.m3u8"),
                         "-ss", f"{offset:.3f}", "-t", str(CLIP_SECS), "-c", "copy",
                         "-movflags", "+faststart", full_out]) for _ in range(REPEATS)]
        # ffmpeg, over a sub-playlist listing exactly the chunks dvrclip cuts.
        t = 0.0
        first = last = None
        for i, (_, d, _) in enumerate(segs):
            if first is None and t + d > offset:
                first = i
            if t < offset + CLIP_SECS:
                last = i
            t += d
        sub = os.path.join(LADDER, top, f"clip_{minute}.m3u8")
        with open(sub, "w") as f:
            f.write("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n")
            f.write(f'#EXT-X-MAP:URI="{init}"\n')
            for name, d, _ in segs[first:last + 1]:
                f.write(f"#EXTINF:{d:.6f},\n{name}\n")
            f.write("#EXT-X-ENDLIST\n")
        sub_out = os.path.join(OUT, f"ffmpeg_sub_{minute}.mp4")
        t_sub = [timed(["ffmpeg", "-y", "-v", "error", "-i", sub, "-c", "copy",
                        "-movflags", "+faststart", sub_out]) for _ in range(REPEATS)]
        # dvrclip: the API call, then the first byte of the MP4.
        t_api, t_fb, mp4 = [], [], None
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            clip = srv.api("PUT", f"/streaming/streams/{stream_id}/clip_recording",
                           {"duration": CLIP_SECS, "start": start})
            t_api.append(time.perf_counter() - t0)
            t_fb.append(first_byte_secs(clip["mp4_master"]))
            mp4 = clip["mp4_master"]
        ours = os.path.join(OUT, f"dvrclip_{minute}.mp4")
        urllib.request.urlretrieve(mp4, ours)
        row = {
            "minute": minute,
            "ffmpeg_full_s": statistics.median(t_full),
            "ffmpeg_sub_s": statistics.median(t_sub),
            "dvrclip_api_s": statistics.median(t_api),
            "dvrclip_first_byte_s": statistics.median(t_fb),
            "frames": {"ffmpeg_full": frames(full_out), "ffmpeg_sub": frames(sub_out),
                       "dvrclip": frames(ours), "expected_min": CLIP_SECS * 30},
            "mp4": ours,
        }
        row["dvrclip_total_s"] = row["dvrclip_api_s"] + row["dvrclip_first_byte_s"]
        log(f"clip at {minute} min: ffmpeg full {row['ffmpeg_full_s'] * 1e3:.0f} ms, "
            f"sub-playlist {row['ffmpeg_sub_s'] * 1e3:.0f} ms, dvrclip {row['dvrclip_total_s'] * 1e3:.2f} ms; "
            f"frames {row['frames']}")
        rows.append(row)
    return rows


NGINX_CONF = """
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile {sendfile};
  tcp_nopush on;
  keepalive_requests 1000000;
  types {{ video/mp4 mp4; }}
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
  }}
}}
"""

WRK_RANGE_LUA = """
wrk.headers["Range"] = "bytes={first}-{last}"
"""


def wrk(url, lua=None):
    cmd = ["wrk", "-t2", "-c16", f"-d{WRK_SECS}s", "--latency"]
    if lua:
        cmd += ["-s", lua]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[rate.group(2)]
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    p99_ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"bytes_per_s": float(rate.group(1)) * scale, "p99_ms": p99_ms,
            "requests_per_s": float(rps.group(1)) if rps else 0.0,
            "non_2xx": int(errors.group(1)) if errors else 0}


def proc_cpu_secs(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def nginx_cpu(dir_):
    """CPU seconds of an nginx master and its workers (found from its pid file)."""
    master = int(open(os.path.join(dir_, "nginx.pid")).read())
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return sum(proc_cpu_secs(p) for p in [master, *map(int, workers)])


def serving(srv, mp4_url, mp4_file):
    size = os.path.getsize(mp4_file)
    mid = size // 2
    lua = os.path.join(OUT, "range.lua")
    open(lua, "w").write(WRK_RANGE_LUA.format(first=mid, last=mid + (1 << 20) - 1))
    results = {}
    # dvrclip
    for kind, script in (("full", None), ("range_1MiB", lua)):
        c0 = srv.cpu_secs()
        r = wrk(mp4_url, script)
        r["server_cpu_s"] = srv.cpu_secs() - c0
        r["bytes_per_cpu_s"] = r["bytes_per_s"] * WRK_SECS / max(r["server_cpu_s"], 1e-9)
        results[("dvrclip", kind)] = r
    # nginx, sendfile on and off
    for sendfile in ("on", "off"):
        d = os.path.join(OUT, f"nginx_{sendfile}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "www"))
        shutil.copy(mp4_file, os.path.join(d, "www", "clip.mp4"))
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        open(conf, "w").write(NGINX_CONF.format(dir=d, port=port, sendfile=sendfile))
        subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
        time.sleep(0.5)
        try:
            for kind, script in (("full", None), ("range_1MiB", lua)):
                c0 = nginx_cpu(d)
                r = wrk(f"http://127.0.0.1:{port}/clip.mp4", script)
                r["server_cpu_s"] = nginx_cpu(d) - c0
                r["bytes_per_cpu_s"] = r["bytes_per_s"] * WRK_SECS / max(r["server_cpu_s"], 1e-9)
                results[(f"nginx_sendfile_{sendfile}", kind)] = r
        finally:
            subprocess.run(["nginx", "-c", conf, "-p", d, "-s", "stop"])
    for (server, kind), r in results.items():
        log(f"serve {server:20s} {kind:10s} {r['bytes_per_s'] / 1e9:6.2f} GB/s  p99 {r['p99_ms']:7.2f} ms  "
            f"{r['bytes_per_cpu_s'] / 1e9:6.2f} GB per CPU-s  non-2xx {r['non_2xx']}")
    return {"size": size, "results": {f"{s}/{k}": v for (s, k), v in results.items()}}


def memcpy_baseline(path):
    """GB/s of copying the MP4's bytes in memory once (the floor any server pays)."""
    data = open(path, "rb").read()
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        bytearray(data)
        best = max(best, len(data) / (time.perf_counter() - t0))
    return best


def plot(results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return
    rows = results["clips"]
    mins = [r["minute"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(mins, [r["ffmpeg_full_s"] * 1e3 for r in rows], "o-", label="ffmpeg -i index.m3u8 -ss T")
    ax.plot(mins, [r["ffmpeg_sub_s"] * 1e3 for r in rows], "s-", label="ffmpeg over a sub-playlist")
    ax.plot(mins, [r["dvrclip_total_s"] * 1e3 for r in rows], "^-", label="dvrclip: API call + first MP4 byte")
    ax.set_yscale("log")
    ax.set_xlabel("clip start, minutes into the 10-minute DVR")
    ax.set_ylabel("time to a playable 60 s clip, ms (log)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "benches", "results", "clip-latency.png"), dpi=110)
    res = results["serving"]["results"]
    servers = ["dvrclip", "nginx_sendfile_on", "nginx_sendfile_off"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, metric, label in ((axes[0], "bytes_per_s", "GB/s"), (axes[1], "bytes_per_cpu_s", "GB per server CPU-second")):
        for i, kind in enumerate(["full", "range_1MiB"]):
            vals = [res[f"{s}/{kind}"][metric] / 1e9 for s in servers]
            ax.bar([x + i * 0.4 for x in range(len(servers))], vals, width=0.4, label=kind)
        ax.set_xticks([x + 0.2 for x in range(len(servers))], ["dvrclip", "nginx sf on", "nginx sf off"])
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("Serving the same MP4 over loopback, wrk -t2 -c16")
    fig.tight_layout()
    fig.savefig(os.path.join(ROOT, "benches", "results", "serving.png"), dpi=110)


def report(results):
    lines = ["| clip start | ffmpeg, whole playlist | ffmpeg, sub-playlist | dvrclip API + first byte | ratio (sub-playlist / dvrclip) | video frames ffmpeg / dvrclip |",
             "|---|---|---|---|---|---|"]
    for r in results["clips"]:
        f = r["frames"]
        lines.append(f"| {r['minute']} min | {r['ffmpeg_full_s'] * 1e3:.0f} ms | {r['ffmpeg_sub_s'] * 1e3:.0f} ms | "
                     f"{r['dvrclip_total_s'] * 1e3:.2f} ms ({r['dvrclip_api_s'] * 1e3:.2f} + {r['dvrclip_first_byte_s'] * 1e3:.2f}) | "
                     f"{r['ffmpeg_sub_s'] / r['dvrclip_total_s']:.0f}x | {f['ffmpeg_full']} / {f['ffmpeg_sub']} / {f['dvrclip']} |")
    lines += ["", "| server | request | GB/s | p99 | GB per server CPU-s | vs best nginx (GB/s, per CPU-s) |", "|---|---|---|---|---|---|"]
    res = results["serving"]["results"]
    for kind in ("full", "range_1MiB"):
        anchor = max((res[f"nginx_sendfile_{s}/{kind}"] for s in ("on", "off")), key=lambda r: r["bytes_per_s"])
        for s in ("dvrclip", "nginx_sendfile_on", "nginx_sendfile_off"):
            r = res[f"{s}/{kind}"]
            lines.append(f"| {s} | {kind} | {r['bytes_per_s'] / 1e9:.2f} | {r['p99_ms']:.2f} ms | {r['bytes_per_cpu_s'] / 1e9:.2f} | "
                         f"{r['bytes_per_s'] / anchor['bytes_per_s']:.2f}x, {r['bytes_per_cpu_s'] / anchor['bytes_per_cpu_s']:.2f}x |")
    m = results["memory"]
    lines += ["", f"memcpy of the same MP4 in Python: {results['memcpy_bytes_per_s'] / 1e9:.2f} GB/s (one core).",
              "", f"RSS {m['rss_bytes'] / 2**20:.0f} MiB for {m['media_bytes'] / 2**20:.0f} MiB of media held: "
              f"{m['rss_bytes'] / max(m['media_bytes'], 1):.3f}x (target <= 1.05x + 64 MiB = {(1.05 * m['media_bytes'] + (64 << 20)) / 2**20:.0f} MiB)."]
    if "playlists_4h" in results:
        import bench_playlists
        lines += ["", *bench_playlists.report_lines(results["playlists_4h"])]
    text = "\n".join(lines) + "\n"
    open(os.path.join(OUT, "BENCHMARKS-run.md"), "w").write(text)
    print(text)


def main():
    os.makedirs(OUT, exist_ok=True)
    make_ladder()
    srv = Server()
    try:
        stream = srv.api("POST", "/streaming/streams", {"name": "bench", "dvr_duration": 3600})
        push = push_ladder(srv, stream["push_url"])
        dvr = srv.api("GET", f"/streaming/streams/{stream['id']}/dvr")
        start = min(r["ranges"][0]["start"] for r in dvr["renditions"])
        clips = clip_latency(srv, stream["id"], start)
        # The media itself: the segments' bytes the rings hold (the memory metric also
        # counts their parsed tables).
        held = srv.api("GET", f"/streaming/streams/{stream['id']}/dvr")
        media = sum(r["bytes"] for r in held["renditions"])
        memory = {"rss_bytes": srv.rss_bytes(), "media_bytes": media}
        last = clips[-1]
        clip = srv.api("GET", f"/streaming/streams/{stream['id']}/clip_recording")[-1]
        serve = serving(srv, clip["mp4_master"], last["mp4"])
        results = {"push": push, "clips": clips, "serving": serve, "memory": memory,
                   "memcpy_bytes_per_s": memcpy_baseline(last["mp4"]),
                   "machine": {"nproc": os.cpu_count(), "uname": " ".join(os.uname())}}
        # A 4 h window's playlists against nginx, and a 4 h clip's first MP4 byte.
        import bench_playlists
        results["playlists_4h"] = bench_playlists.run(srv)
        json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=1, default=str)
        report(results)
        plot(results)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()

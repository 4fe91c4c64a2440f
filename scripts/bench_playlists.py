#!/usr/bin/env python3
"""A 4 h DVR window in `dvrclip serve`: its playlists served beside nginx serving the
same bytes from a file, and the first byte of a 14,360 s clip's MP4 (issue 19).

Part of scripts/bench-compare.sh (bench_compare.py calls `run`); alone:

  cargo build --release --bin dvrclip && python3 scripts/bench_playlists.py

One stream, one rendition: tests/fixtures/ladder/media_1_144's 4 segments (2 s of
30 fps H.264 + AAC each) pushed 7,200 times over HTTP PUT, tfdt shifted, so the ring
holds 4 h of real sample tables (the moov's cost is per sample, not per byte); a
playlist then dates the first segment 4 h ago, which moves the whole window into the
past so a clip of it is complete. Then, with wrk -t2 -c16 on 127.0.0.1:
  - the live media playlist (7,200 entries, about 280 KB), plain and with
    If-None-Match (304s), against nginx serving the same bytes from a file;
  - the 14,360 s clip's media playlist, the same way;
  - the first byte of the clip's MP4 (curl -r 0-0): uncached (a new clip each
    time, so a new header) and cached.
Every figure is a median of BENCH_REPEATS (default 5) beside its baseline of the
same run; the ratio is dvrclip / nginx.
"""
import datetime
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compare as bc  # noqa: E402
from load_test import shift_tfdt, timescales  # noqa: E402

FIXTURE = os.path.join(bc.ROOT, "tests", "fixtures", "ladder", "media_1_144")
RENDITION = "media_1_144"
SEGMENTS = 7200
SEG_SECS = 2
CLIP_SECS = 14360

NGINX_CONF = """
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types {{ application/vnd.apple.mpegurl m3u8; }}
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
  }}
}}
"""

INM_LUA = 'wrk.headers["If-None-Match"] = \'{etag}\'\n'


def push_window(srv):
    """A stream whose ring holds SEGMENTS chunks, dated so that they end now."""
    stream = srv.api("POST", "/streaming/streams", {"name": "window4h", "dvr_duration": 14400})
    path = stream["push_url"].split(str(srv.port), 1)[1]
    init = open(os.path.join(FIXTURE, "init_2.mp4"), "rb").read()
    segs = [open(os.path.join(FIXTURE, f"seg_{i:05d}.m4s"), "rb").read() for i in range(4)]
    scales = timescales(init)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)

    def put(p, body):
        conn.request("PUT", p, body=body)
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 201), (p, r.status)

    put(f"{path}/{RENDITION}/init_2.mp4", init)
    t0 = time.perf_counter()
    for n in range(SEGMENTS):
        loop, k = divmod(n, len(segs))
        body = shift_tfdt(segs[k], scales, loop * len(segs) * SEG_SECS) if loop else segs[k]
        put(f"{path}/{RENDITION}/w_{n:05d}.m4s", body)
    # The first segment's date: the window then ends about now.
    first = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=SEGMENTS * SEG_SECS + 5)
    pdt = first.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    put(f"{path}/{RENDITION}/index.m3u8",
        f"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_2.mp4\"\n"
        f"#EXTINF:2.000000,\n#EXT-X-PROGRAM-DATE-TIME:{pdt}\nw_00000.m4s\n".encode())
    bc.log(f"window: {SEGMENTS} segments pushed in {time.perf_counter() - t0:.1f} s")
    return stream


def get(url, headers=None):
    """(status, headers, body) of one GET."""
    host, rest = url.split("://", 1)[1].split("/", 1)
    h, p = host.split(":")
    c = http.client.HTTPConnection(h, int(p))
    c.request("GET", "/" + rest, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    return r.status, dict(r.getheaders()), body


def nginx_for(files):
    """An nginx (sendfile on) serving `files` {name: bytes}; returns (port, dir)."""
    d = os.path.join(bc.OUT, "nginx_playlists")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "www"))
    for name, data in files.items():
        open(os.path.join(d, "www", name), "wb").write(data)
    port = bc.free_port()
    conf = os.path.join(d, "nginx.conf")
    open(conf, "w").write(NGINX_CONF.format(dir=d, port=port))
    subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
    time.sleep(0.5)
    return port, d, conf


def first_bytes(srv, stream_id, start):
    """First MP4 byte of a new 14,360 s clip (uncached), then of the same (cached)."""
    uncached, cached = [], []
    for _ in range(bc.REPEATS):
        clip = srv.api("PUT", f"/streaming/streams/{stream_id}/clip_recording",
                       {"duration": CLIP_SECS, "start": start})
        uncached.append(bc.first_byte_secs(clip["mp4_master"]))
        cached.append(bc.first_byte_secs(clip["mp4_master"]))
    return clip, statistics.median(uncached), statistics.median(cached)


def run(srv):
    stream = push_window(srv)
    sid = stream["id"]
    dvr = srv.api("GET", f"/streaming/streams/{sid}/dvr")
    start = int(dvr["renditions"][0]["ranges"][0]["start"]) + 1
    live_url = stream["hls_cmaf_url"].rsplit("/", 1)[0] + f"/{RENDITION}.m3u8"
    clip, fb_uncached, fb_cached = first_bytes(srv, sid, start)
    clip_url = clip["hls_master"].replace("_master.m3u8", f"_{RENDITION}.m3u8")
    bc.log(f"4 h clip first MP4 byte: uncached {fb_uncached * 1e3:.2f} ms, cached {fb_cached * 1e3:.2f} ms")

    rows = []
    pages = {"live": live_url, "clip": clip_url}
    bodies = {}
    for name, url in pages.items():
        status, headers, body = get(url)
        assert status == 200, (url, status)
        bodies[name] = (body, headers.get("ETag") or headers.get("etag"))
    port, d, conf = nginx_for({f"{n}.m3u8": b for n, (b, _) in bodies.items()})
    try:
        for name, url in pages.items():
            body, etag = bodies[name]
            lua = os.path.join(bc.OUT, f"inm_{name}.lua")
            open(lua, "w").write(INM_LUA.format(etag=etag))
            ours = bc.wrk(url)
            ours_304 = bc.wrk(url, lua)
            n_url = f"http://127.0.0.1:{port}/{name}.m3u8"
            _, nh, _ = get(n_url)
            open(lua + ".nginx", "w").write(INM_LUA.format(etag=nh.get("ETag", "")))
            theirs = bc.wrk(n_url)
            theirs_304 = bc.wrk(n_url, lua + ".nginx")
            row = {"playlist": name, "bytes": len(body), "entries": body.count(b"#EXTINF"),
                   "dvrclip_rps": ours["requests_per_s"], "nginx_rps": theirs["requests_per_s"],
                   "dvrclip_304_rps": ours_304["requests_per_s"], "nginx_304_rps": theirs_304["requests_per_s"],
                   "dvrclip_p99_ms": ours["p99_ms"], "nginx_p99_ms": theirs["p99_ms"]}
            bc.log(f"playlist {name}: {row['bytes']} B, dvrclip {row['dvrclip_rps']:.0f} req/s "
                   f"(304: {row['dvrclip_304_rps']:.0f}), nginx {row['nginx_rps']:.0f} req/s "
                   f"(304: {row['nginx_304_rps']:.0f})")
            rows.append(row)
    finally:
        subprocess.run(["nginx", "-c", conf, "-p", d, "-s", "stop"])
    return {"playlists": rows, "first_byte_4h": {"uncached_s": fb_uncached, "cached_s": fb_cached,
                                                 "clip_secs": CLIP_SECS}}


def report_lines(res):
    lines = ["| playlist (4 h window) | bytes | entries | dvrclip req/s | nginx req/s | ratio | "
             "with If-None-Match: dvrclip / nginx 304/s | ratio | p99 dvrclip / nginx |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["playlists"]:
        lines.append(f"| {r['playlist']} | {r['bytes']} | {r['entries']} | {r['dvrclip_rps']:.0f} | "
                     f"{r['nginx_rps']:.0f} | {r['dvrclip_rps'] / max(r['nginx_rps'], 1):.2f}x | "
                     f"{r['dvrclip_304_rps']:.0f} / {r['nginx_304_rps']:.0f} | "
                     f"{r['dvrclip_304_rps'] / max(r['nginx_304_rps'], 1):.2f}x | "
                     f"{r['dvrclip_p99_ms']:.2f} / {r['nginx_p99_ms']:.2f} ms |")
    fb = res["first_byte_4h"]
    lines += ["", f"First MP4 byte of a {fb['clip_secs']} s clip of the 4 h window (curl -r 0-0, median): "
              f"uncached {fb['uncached_s'] * 1e3:.2f} ms, cached {fb['cached_s'] * 1e3:.2f} ms."]
    return lines


def main():
    os.makedirs(bc.OUT, exist_ok=True)
    srv = bc.Server()
    try:
        res = run(srv)
        print("\n".join(report_lines(res)))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()

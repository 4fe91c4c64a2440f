#!/usr/bin/env python3
"""A 4 h DVR window in `dvrclip serve`: its playlists served beside nginx serving the
same bytes from a file, and the first byte of a 14,360 s clip's MP4 (issue 19).

Part of scripts/bench-compare.sh (bench_compare.py calls `run`); alone:

  cargo build --release --bin dvrclip && python3 scripts/bench_playlists.py

One stream, one rendition: tests/fixtures/ladder/media_1_144's 4 segments (2 s of
30 fps H.264 + AAC each) pushed 7,200 times over HTTP PUT, tfdt shifted, so the ring
holds 4 h of real sample tables (the moov's cost is per sample, not per byte); each
track is shifted by its own span of the 4 segments (video 8 s, AAC 376 frames =
8.021 s), so every track continues across the loops as an encoder's would (audio
then drifts 21 ms per loop from the video, which no benchmark here looks at; shifted
by 8 s, each loop's first audio frame overlapped the last one: a seam every 8 s,
which a clip's MP4 header must stitch sample by sample); a
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
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compare as bc  # noqa: E402
from load_test import boxes, shift_tfdt, timescales  # noqa: E402

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


def track_durations(seg, init_defaults):
    """track_ID -> sum of its sample durations in a media segment (ISO/IEC 14496-12
    §8.8.7 tfhd default, §8.8.8 trun; `init_defaults` the trex defaults)."""
    out = {}
    for kind, pos, hdr, size in boxes(seg, 0, len(seg)):
        if kind != "moof":
            continue
        for k, p, h, sz in boxes(seg, pos + hdr, pos + size):
            if k != "traf":
                continue
            track, default = None, None
            for k2, p2, h2, s2 in boxes(seg, p + h, p + sz):
                if k2 == "tfhd":
                    flags = struct.unpack(">I", seg[p2 + 8 : p2 + 12])[0] & 0xFFFFFF
                    track = struct.unpack(">I", seg[p2 + 12 : p2 + 16])[0]
                    at = p2 + 16 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0)
                    default = (struct.unpack(">I", seg[at : at + 4])[0] if flags & 8
                               else init_defaults.get(track, 0))
                elif k2 == "trun":
                    flags = struct.unpack(">I", seg[p2 + 8 : p2 + 12])[0] & 0xFFFFFF
                    count = struct.unpack(">I", seg[p2 + 12 : p2 + 16])[0]
                    at = p2 + 16 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
                    width = 4 * bin(flags & 0xF00).count("1")
                    total = 0
                    for i in range(count):
                        if flags & 0x100:
                            total += struct.unpack(">I", seg[at + i * width : at + i * width + 4])[0]
                        else:
                            total += default
                    out[track] = out.get(track, 0) + total
    return out


def trex_defaults(init):
    """track_ID -> default_sample_duration of its trex (§8.8.3)."""
    out = {}
    for kind, pos, hdr, size in boxes(init, 0, len(init)):
        if kind != "moov":
            continue
        for k, p, h, s in boxes(init, pos + hdr, pos + size):
            if k != "mvex":
                continue
            for k2, p2, h2, s2 in boxes(init, p + h, p + s):
                if k2 == "trex":
                    track, _, duration = struct.unpack(">III", init[p2 + 12 : p2 + 24])
                    out[track] = duration
    return out


def push_window(srv):
    """A stream whose ring holds SEGMENTS chunks, dated so that they end now."""
    stream = srv.api("POST", "/streaming/streams", {"name": "window4h", "dvr_duration": 14400})
    path = stream["push_url"].split(str(srv.port), 1)[1]
    init = open(os.path.join(FIXTURE, "init_2.mp4"), "rb").read()
    segs = [open(os.path.join(FIXTURE, f"seg_{i:05d}.m4s"), "rb").read() for i in range(4)]
    defaults = trex_defaults(init)
    # Each track's span of the 4 segments: a loop continues every track.
    span = {}
    for seg in segs:
        for track, ticks in track_durations(seg, defaults).items():
            span[track] = span.get(track, 0) + ticks
    scales = timescales(init)
    assert set(span) == set(scales), (span, scales)
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
        body = shift_tfdt(segs[k], scales, 0, {t: loop * d for t, d in span.items()}) if loop else segs[k]
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

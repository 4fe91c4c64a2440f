#!/usr/bin/env python3
"""First MP4 byte of a 4 h clip, two or more dvrclip binaries side by side (issue 19).

  python3 scripts/first_byte_ab.py before=/tmp/dvrclip-before after=target/release/dvrclip

Each binary gets the 4 h window of scripts/bench_playlists.py (tests/fixtures/ladder's
media_1_144 pushed 7,200 times, dated 4 h back), then ROUNDS rounds alternate between
the servers, each round cutting new 14,360 s clips per server, BENCH_REPEATS times:

- (a) a clip, and `GET mp4_master` with `Range: bytes=0-0` sent on an open keep-alive
  connection the moment the create call returns (the script's own client, so no
  process start between them), timed to the response; then the same again (cached);
- (b) another clip, the same request 100 ms after the create call returns;
- (c) another clip, `curl -r 0-0` right after the create call (what this script
  measured before (a) existed; curl's start adds a few milliseconds before it asks).

Beside them, the server's own mean header build time over the run, from
`dvrclip_mp4_build_micros_total / dvrclip_mp4_builds_total` in /metrics (binaries
before those counters: "-"). Medians per binary, with min-max. Data directories go
under BENCH_OUT (default target/bench-compare; a 4 h window spools about 300 MB).
"""
import http.client
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compare as bc  # noqa: E402
import bench_playlists as bp  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
LATER_SECS = 0.1


def metrics(srv):
    req = urllib.request.Request(srv.base + "/metrics", headers={"Authorization": f"APIKey {bc.KEY}"})
    with urllib.request.urlopen(req) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def first_byte_on(conn, path):
    """Seconds from sending a 0-0 range request on `conn` to its response."""
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Range": "bytes=0-0"})
    r = conn.getresponse()
    took = time.perf_counter() - t0
    r.read()
    assert r.status == 206, (path, r.status)
    return took


def clip_path(srv, sid, start):
    clip = srv.api("PUT", f"/streaming/streams/{sid}/clip_recording",
                   {"duration": bp.CLIP_SECS, "start": start})
    url = clip["mp4_master"]
    return url, url.split(str(srv.port), 1)[1]


def ms(v):
    return f"{statistics.median(v) * 1e3:.2f} ms ({min(v) * 1e3:.2f}-{max(v) * 1e3:.2f})"


def main():
    binaries = [a.split("=", 1) for a in sys.argv[1:]]
    if not binaries:
        sys.exit(__doc__)
    out = os.environ.get("BENCH_OUT", bc.OUT)
    os.makedirs(out, exist_ok=True)
    servers = {}
    try:
        for name, path in binaries:
            # Each server its own binary and data directory.
            bc.BIN, bc.OUT = os.path.abspath(path), os.path.join(out, f"first_byte_{name}")
            os.makedirs(bc.OUT, exist_ok=True)
            srv = bc.Server()
            bc.OUT = out
            stream = bp.push_window(srv)
            dvr = srv.api("GET", f"/streaming/streams/{stream['id']}/dvr")
            start = int(dvr["renditions"][0]["ranges"][0]["start"]) + 1
            servers[name] = (srv, stream["id"], start)
            bc.log(f"{name}: 4 h window pushed")
        res = {name: {"a": [], "cached": [], "b": [], "curl": []} for name in servers}
        before = {name: metrics(srv) for name, (srv, _, _) in servers.items()}
        for r in range(ROUNDS):
            for name, (srv, sid, start) in servers.items():
                conn = http.client.HTTPConnection("127.0.0.1", srv.port)
                conn.connect()  # open before the first (a): no connect in its time
                for _ in range(bc.REPEATS):
                    _, path = clip_path(srv, sid, start)
                    res[name]["a"].append(first_byte_on(conn, path))
                    res[name]["cached"].append(first_byte_on(conn, path))
                    _, path = clip_path(srv, sid, start)
                    time.sleep(LATER_SECS)
                    res[name]["b"].append(first_byte_on(conn, path))
                    url, _ = clip_path(srv, sid, start)
                    res[name]["curl"].append(bc.first_byte_secs(url))
                conn.close()
            bc.log(f"round {r + 1} of {ROUNDS} done")
        print("| binary | (a) first byte right after the create | (b) 100 ms after | "
              "curl -r 0-0 right after | cached | server's mean header build |")
        print("|---|---|---|---|---|---|")
        for name, v in res.items():
            m0, m1 = before[name], metrics(servers[name][0])
            builds = m1.get("dvrclip_mp4_builds_total", 0) - m0.get("dvrclip_mp4_builds_total", 0)
            micros = m1.get("dvrclip_mp4_build_micros_total", 0) - m0.get("dvrclip_mp4_build_micros_total", 0)
            prebuilt = m1.get("dvrclip_mp4_prebuilt_total", 0) - m0.get("dvrclip_mp4_prebuilt_total", 0)
            build = (f"{micros / builds / 1e3:.1f} ms over {builds:.0f} builds, {prebuilt:.0f} in the background"
                     if builds else "-")
            print(f"| {name} | {ms(v['a'])} | {ms(v['b'])} | {ms(v['curl'])} "
                  f"| {ms(v['cached'])} | {build} |")
    finally:
        for srv, _, _ in servers.values():
            srv.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""First MP4 byte of a 4 h clip, two or more dvrclip binaries side by side (issue 19).

  python3 scripts/first_byte_ab.py before=/tmp/dvrclip-before after=target/release/dvrclip

Each binary gets the 4 h window of scripts/bench_playlists.py (tests/fixtures/ladder's
media_1_144 pushed 7,200 times, dated 4 h back), then ROUNDS rounds alternate between
the servers, each round cutting BENCH_REPEATS new 14,360 s clips per server and
timing `curl -r 0-0` on each clip's MP4: uncached (a new clip, so a new header),
then cached. Beside the wall time, the server's own CPU time over the uncached
request (from /proc), which a loaded machine blurs less. Medians per binary.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_compare as bc  # noqa: E402
import bench_playlists as bp  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))


def main():
    binaries = [a.split("=", 1) for a in sys.argv[1:]]
    if not binaries:
        sys.exit(__doc__)
    os.makedirs(bc.OUT, exist_ok=True)
    servers = {}
    try:
        out = bc.OUT
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
        res = {name: {"uncached": [], "cpu": [], "cached": []} for name in servers}
        for r in range(ROUNDS):
            for name, (srv, sid, start) in servers.items():
                for _ in range(bc.REPEATS):
                    clip = srv.api("PUT", f"/streaming/streams/{sid}/clip_recording",
                                   {"duration": bp.CLIP_SECS, "start": start})
                    cpu0 = srv.cpu_secs()
                    res[name]["uncached"].append(bc.first_byte_secs(clip["mp4_master"]))
                    res[name]["cpu"].append(srv.cpu_secs() - cpu0)
                    res[name]["cached"].append(bc.first_byte_secs(clip["mp4_master"]))
            bc.log(f"round {r + 1} of {ROUNDS} done")
        print("| binary | uncached first byte, median (min-max) | server CPU over it | cached first byte |")
        print("|---|---|---|---|")
        for name, v in res.items():
            u = v["uncached"]
            print(f"| {name} | {statistics.median(u) * 1e3:.2f} ms ({min(u) * 1e3:.2f}-{max(u) * 1e3:.2f}) "
                  f"| {statistics.median(v['cpu']) * 1e3:.0f} ms "
                  f"| {statistics.median(v['cached']) * 1e3:.2f} ms |")
    finally:
        for srv, _, _ in servers.values():
            srv.stop()


if __name__ == "__main__":
    main()

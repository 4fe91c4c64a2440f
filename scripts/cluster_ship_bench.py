#!/usr/bin/env python3
"""What shipping a stream's DVR to the object store costs, and what restoring it on a
takeover takes (design/cluster.md "DVR shipping"), on loopback against moto.

    cargo build --release --bin dvrclip && python3 scripts/cluster_ship_bench.py
    python3 scripts/cluster_ship_bench.py --secs 120 --bitrate 5M
    # A DVR past what the claim's 10 s bound reads (4 GB; moto keeps objects past
    # 5 MB in TMPDIR, so a tmpfs keeps them off the disk): what is back.
    TMPDIR=/dev/shm python3 scripts/cluster_ship_bench.py --secs 200 --source-secs 20 \
        --bitrate 40M --renditions 4 --noise --tmp /dev/shm --budget-mib 6144
    # 1 GB restored by a node whose memory budget holds half of it.
    TMPDIR=/dev/shm python3 scripts/cluster_ship_bench.py --secs 100 --source-secs 20 \
        --bitrate 40M --renditions 2 --noise --tmp /dev/shm --budget-mib 2048 \
        --restore-budget-mib 512

Starts moto (bucket `clips`), etcd and two nodes A and B with `--cluster-etcd` and
`--clip-archive s3://clips` (so A ships its DVR). A source of --secs seconds at
--bitrate (1280x720 H.264 + 128 kb/s AAC) is encoded first, then pushed into A in
real time by ffmpeg (HLS fMP4, 2 s segments, HTTP PUT). Then, from A's /metrics:

- shipping lag: mean and max time from a chunk admitted to its batch object stored
  (`dvrclip_ship_lag_micros_total / _chunks_total`, `_lag_max_micros`): what a
  SIGKILL loses, at most;
- S3 bytes written per second of DVR against the media's own bytes per second (the
  baseline, measured in the same run: the chunks' payloads): the ratio is the
  format's overhead (records, inits named again in each batch);
- objects written per second of DVR.

A is SIGKILLed once nothing is pending; an upload to B claims the stream, which
restores A's shipped DVR: the claim's time (SIGKILL to claim, lease TTL included),
and B's restore time for that DVR size (`dvrclip_ship_restore_micros_total`), beside
the time to read the same objects from moto with one plain GET each in sequence (the
baseline, skipped past 500 MB). With a DVR larger than the claim's bound can read
(`restore::TIMEOUT`), the restore keeps the newest part: printed per rendition, the
chunks and seconds back against the dead node's, and whether the newest chunk is.

--renditions N pushes the source to N renditions at once (one ffmpeg each), --noise
adds grain so x264 reaches a high --bitrate, --source-secs encodes that much and
loops it to --secs, --tmp puts the source there (a tmpfs keeps a large one off the
disk), --budget-mib sets the nodes' memory budget (the dead node must hold the
whole DVR), --restore-budget-mib B's alone (a restore cut by the budget instead of
the time). Prints a Markdown table. Not part of CI; numbers depend on the machine's
load (printed).
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_bench import AUTH, KEY, ROOT, call, free_port, wait  # noqa: E402


def claim(port, path):
    """An upload that may claim the stream: waits out a restore (up to its 10 s
    bound, and the parse after it)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("PUT", path, body=b"", headers=AUTH)
    status = c.getresponse().status
    c.close()
    return status


def metric(port, name):
    st, data = call(port, "GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise KeyError(name)


def s3_client(endpoint):
    import boto3  # moto's own dependency
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "dvrclip"))
    ap.add_argument("--secs", type=int, default=60)
    ap.add_argument("--bitrate", default="5M")
    ap.add_argument("--ttl", type=int, default=2)
    ap.add_argument("--renditions", type=int, default=1)
    ap.add_argument("--source-secs", type=int, default=0, help="0: --secs")
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--budget-mib", type=int, default=0, help="the nodes' memory budget")
    ap.add_argument("--restore-budget-mib", type=int, default=0,
                    help="B's memory budget, if other than --budget-mib")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dvrclip-ship-bench-", dir=args.tmp)
    src = os.path.join(tmp, "src.flv")
    video = ["-vf", "noise=alls=40:allf=t"] if args.noise else []
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(args.source_secs or args.secs), *video,
        "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", args.bitrate,
        "-maxrate", args.bitrate, "-bufsize", "10M", "-c:a", "aac", "-b:a", "128k", src],
        check=True)
    mport, cport, pport = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{mport}"
    procs = []
    nodes = {}
    try:
        procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(mport)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait("moto", 30, lambda: urllib.request.urlopen(
            urllib.request.Request(endpoint + "/clips", method="PUT")).status == 200)
        etcd_url, peer = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
        procs.append(subprocess.Popen(
            ["etcd", "--data-dir", os.path.join(tmp, "etcd"), "--listen-client-urls", etcd_url,
             "--advertise-client-urls", etcd_url, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"default={peer}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "etcd.log"), "w")))
        wait("etcd", 20, lambda: subprocess.run(
            ["curl", "-sf", "-X", "POST", "-d", "{}", f"{etcd_url}/v3/maintenance/status"],
            stdout=subprocess.DEVNULL).returncode == 0)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        for nid in ("a", "b"):
            port = free_port()
            budget = args.restore_budget_mib if nid == "b" and args.restore_budget_mib \
                else args.budget_mib
            p = subprocess.Popen(
                [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--api-key", KEY,
                 "--data-dir", os.path.join(tmp, nid), "--spool-dir", "off",
                 "--cluster-etcd", etcd_url, "--node-id", nid, "--lease-ttl", str(args.ttl),
                 "--clip-archive", "s3://clips", "--s3-endpoint", endpoint,
                 "--s3-region", "us-east-1",
                 *(["--memory-budget-mib", str(budget)] if budget else [])],
                env=env, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, f"{nid}.log"), "w"))
            nodes[nid] = (port, p)
            wait("node listening", 20, lambda: call(port, "GET", "/healthz")[0] == 200)
        a, b = nodes["a"][0], nodes["b"][0]
        print(f"loadavg before: {open('/proc/loadavg').read().split()[:3]}, {os.cpu_count()}"
              f" cores, binary {args.bin}")
        st, data = call(a, "POST", "/streaming/streams",
                        json.dumps({"name": "ship", "dvr_duration": 3600}))
        assert st == 201, data
        s = json.loads(data)
        sid, key = s["id"], s["push_url_http"].rsplit("/", 1)[1]
        st, _ = call(a, "PUT", f"/ingest/{key}/master.m3u8", b"")  # A claims it
        loop = ["-stream_loop", "-1"] if args.source_secs else []
        pushes = []
        for i in range(args.renditions):
            push = f"http://127.0.0.1:{a}/ingest/{key}/v{i}"
            pushes.append(subprocess.Popen(
                ["ffmpeg", "-v", "error", "-re", *loop, "-i", src, "-t", str(args.secs),
                 "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4",
                 "-method", "PUT", "-http_persistent", "1", "-hls_flags", "program_date_time",
                 "-hls_fmp4_init_filename", "init.mp4", push + "/index.m3u8"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in pushes:
            assert p.wait() == 0, "ffmpeg push failed"
        wait("nothing pending", 30, lambda: metric(a, "dvrclip_ship_pending_records") == 0)
        m = {n: metric(a, f"dvrclip_ship_{n}") for n in (
            "chunks_total", "chunk_bytes_total", "bytes_total", "objects_total",
            "lag_micros_total", "lag_max_micros", "dropped_chunks_total", "failures_total")}
        chunks = m["chunks_total"]
        print()
        print(f"| {args.secs} s pushed at {args.bitrate} (720p) | value |")
        print("|---|---|")
        print(f"| chunks shipped | {chunks} (dropped {m['dropped_chunks_total']}, "
              f"failed writes {m['failures_total']}) |")
        print(f"| shipping lag, admitted -> stored | mean {m['lag_micros_total'] / chunks / 1000:.0f}"
              f" ms, max {m['lag_max_micros'] / 1000:.0f} ms |")
        media_bps = m["chunk_bytes_total"] / args.secs
        s3_bps = m["bytes_total"] / args.secs
        print(f"| media (chunk payloads) per s of DVR | {media_bps * 8 / 1e6:.2f} Mb/s |")
        print(f"| S3 bytes written per s of DVR | {s3_bps * 8 / 1e6:.2f} Mb/s "
              f"({s3_bps / media_bps:.4f}x the media) |")
        print(f"| objects written per s of DVR | {m['objects_total'] / args.secs:.2f} |")
        s3 = s3_client(endpoint)
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket="clips", Prefix=f"dvr/{sid}/"):
            keys.extend((o["Key"], o["Size"]) for o in page.get("Contents", []))
        size = sum(n for _, n in keys)
        plain = None
        if size <= 500e6:
            t = time.perf_counter()
            for k, _ in keys:
                s3.get_object(Bucket="clips", Key=k)["Body"].read()
            plain = time.perf_counter() - t
        st, data = call(a, "GET", f"/streaming/streams/{sid}/dvr")
        before = {r["name"]: r for r in json.loads(data)["renditions"]}
        os.kill(nodes["a"][1].pid, signal.SIGKILL)
        nodes["a"][1].wait()
        t = time.perf_counter()
        while True:
            st = claim(b, f"/ingest/{key}/master.m3u8")
            if st not in (502, 503):
                break
            time.sleep(0.01)
        claimed = time.perf_counter() - t
        restore_ms = metric(b, "dvrclip_ship_restore_micros_total") / 1000
        restored = metric(b, "dvrclip_ship_restored_chunks_total")
        partial = metric(b, "dvrclip_ship_restores_partial_total")
        unread = metric(b, "dvrclip_ship_restore_unread_objects_total")
        baseline = (f"plain sequential GETs of the same objects: {plain * 1000:.0f} ms"
                    if plain is not None else "no sequential baseline past 500 MB")
        print(f"| restore on B of {restored} chunks, {len(keys)} objects, {size / 1e6:.1f} MB"
              f" | {restore_ms:.0f} ms ({baseline}) |")
        print(f"| cut short (time or memory bound) | {'yes' if partial else 'no'}: {unread}"
              f" of {len(keys)} objects not read |")
        mem = {n: metric(b, f"dvrclip_memory_{n}") for n in ("budget_bytes", "bytes")}
        print(f"| B's memory after the claim | {mem['bytes'] / 1e6:.0f} MB of its "
              f"{mem['budget_bytes'] / 1e6:.0f} MB budget |")
        print(f"| SIGKILL of A -> B's claim done, restore included (TTL {args.ttl} s) "
              f"| {claimed * 1000:.0f} ms |")
        st, data = call(b, "GET", f"/streaming/streams/{sid}/dvr")
        for r in json.loads(data)["renditions"]:
            a_r = before.get(r["name"], {})
            span = lambda x: (x["ranges"][-1]["end"] - x["ranges"][0]["start"]) if x.get("ranges") else 0
            same_end = bool(r["ranges"] and a_r.get("ranges")
                            and abs(r["ranges"][-1]["end"] - a_r["ranges"][-1]["end"]) < 0.01)
            print(f"| B's DVR of {r['name']} after the claim | {r['chunks']} of "
                  f"{a_r.get('chunks', 0)} chunks ({r['chunks'] / max(a_r.get('chunks', 1), 1):.0%}),"
                  f" {span(r):.0f} of {span(a_r):.0f} s, ranges {len(r['ranges'])}, "
                  f"ends at A's newest: {same_end} |")
    finally:
        for _, p in nodes.values():
            if p.poll() is None:
                p.terminate()
                p.wait()
        for p in reversed(procs):
            p.terminate()
            p.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()

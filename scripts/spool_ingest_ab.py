#!/usr/bin/env python3
"""The spool's ingest cost against memory only, settled by repetition (issue 20's
target: the spool on tmpfs costs at most 10% more CPU per ingested byte).

Runs `cargo bench --bench spool -- ingest_segment` RUNS times (default 6), swapping
which arm goes first on every other run (`SPOOL_BENCH_SPOOL_FIRST`), so drift on a
shared machine falls on both arms alike. Each run measures both arms twice: in wall
time (`ingest_segment`) and in the whole process's CPU time (`ingest_segment_cpu`,
background threads included). Prints each run's spool/memory ratios, then the
median, minimum and maximum of each ratio over the runs.

  python3 scripts/spool_ingest_ab.py          # 6 runs
  RUNS=10 python3 scripts/spool_ingest_ab.py
"""
import os
import re
import statistics
import subprocess
import sys

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
LINE = re.compile(
    r"(ingest_segment(?:_cpu)?)/(memory_only|spool_tmpfs)\s+time:\s+\[\S+ \S+ ([\d.]+) (\S+) \S+ \S+\]"
)


def run(spool_first):
    env = dict(os.environ)
    env.setdefault("CARGO_BUILD_JOBS", "2")
    if spool_first:
        env["SPOOL_BENCH_SPOOL_FIRST"] = "1"
    else:
        env.pop("SPOOL_BENCH_SPOOL_FIRST", None)
    out = subprocess.run(
        ["cargo", "bench", "--bench", "spool", "--", "ingest_segment"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    found = {}
    for group, arm, value, unit in LINE.findall(out):
        found[(group, arm)] = float(value) * UNITS[unit]
    if len(found) != 4:
        sys.exit(f"could not read four estimates from:\n{out}")
    return found


def main():
    runs = int(os.environ.get("RUNS", "6"))
    ratios = {"ingest_segment": [], "ingest_segment_cpu": []}
    arms = {}
    for i in range(runs):
        spool_first = i % 2 == 1
        found = run(spool_first)
        line = [f"run {i + 1} ({'spool' if spool_first else 'memory'} first):"]
        for group in ratios:
            mem, spool = found[(group, "memory_only")], found[(group, "spool_tmpfs")]
            ratios[group].append(spool / mem)
            arms.setdefault(group, {"memory_only": [], "spool_tmpfs": []})
            arms[group]["memory_only"].append(mem)
            arms[group]["spool_tmpfs"].append(spool)
            line.append(f"{group} {mem / 1e3:.0f} µs vs spool {spool / 1e3:.0f} µs = {spool / mem:.3f}x")
        print("  ".join(line), flush=True)
    for group, rs in ratios.items():
        mem = statistics.median(arms[group]["memory_only"]) / 1e3
        spool = statistics.median(arms[group]["spool_tmpfs"]) / 1e3
        print(
            f"{group}: spool/memory median {statistics.median(rs):.3f}x "
            f"(min {min(rs):.3f}x, max {max(rs):.3f}x, {len(rs)} runs); "
            f"medians {mem:.0f} µs memory only, {spool:.0f} µs spool"
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# dvrclip against ffmpeg, nginx and memcpy on this machine, in one run (see
# BENCHMARKS.md). Installs Debian's ffmpeg, nginx and wrk and Python's matplotlib when
# missing, builds the release binary, then runs scripts/bench_compare.py.
#   scripts/bench-compare.sh                 # 10-minute ladder, 5 repeats, 10 s wrk runs
#   BENCH_SECONDS=120 BENCH_WRK_SECS=5 scripts/bench-compare.sh   # a quicker look
# Not part of CI: it takes several minutes and wants the machine to itself.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib
cargo build --release --locked --bin dvrclip
exec python3 scripts/bench_compare.py "$@"

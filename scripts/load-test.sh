#!/usr/bin/env bash
# Load and slow-client test (issue 10): N streams ingesting the fixture ladder in real
# time, wrk downloading clips with 200 connections, 1,000 slow or idle connections;
# checks 0 errors for good clients, RSS within the memory budget + 10%, and open file
# descriptors back to baseline after the slow clients leave. Loopback only, bounded
# in time, not part of CI. Needs python3 and wrk (Debian: apt-get install wrk).
#
#   scripts/load-test.sh                      # 20 streams, 200 + 1000 clients, ~4 min
#   scripts/load-test.sh --duration 600       # the issue's 10 minutes
#   scripts/load-test.sh --streams 5 --slow 100 --duration 60   # a quick smoke run
#   scripts/load-test.sh --chunked            # segments uploaded chunked, as ffmpeg does
#
# Exit status 0 when every check passed; the figures are printed as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/dvrclip
if [[ ! -x $bin ]]; then
  cargo build --release --bin dvrclip
fi
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
# 1,000 slow clients + 200 wrk connections + the server's own: more than 1024 fds.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 scripts/load_test.py --binary "$bin" "$@"

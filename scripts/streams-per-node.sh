#!/usr/bin/env bash
# Streams per node (issue 19): how many live 3-rendition streams one `dvrclip serve`
# takes on this machine with segment-upload p99 <= 100 ms and clip-creation p99 <= 2 ms.
# Builds the release binaries, starts the server on a free loopback port, runs
# dvrclip-loadgen over a ramp of stream counts and prints its table (Markdown).
#
#   scripts/streams-per-node.sh                                 # 250..1500 streams
#   STEPS=100,200 MEASURE_SECS=10 scripts/streams-per-node.sh   # a quick look
#   LOADGEN_ARGS=--chunked scripts/streams-per-node.sh          # uploads chunked, as ffmpeg
#   NICE="nice -n -10" scripts/streams-per-node.sh             # (root) ahead of concurrent builds
#   PROTOCOL=rtmp scripts/streams-per-node.sh                   # RTMP publishes instead
#   SERVER_BIN=/tmp/dvrclip-before scripts/streams-per-node.sh  # another build's server (A/B)
#
# Each stream is tests/fixtures/ladder (3 renditions, 2 s segments, ~0.7 Mb/s in all)
# replayed in real time (over RTMP: its top rendition as FLV tags, sent every 100 ms) with a DVR of DVR_SECS (default 60); clips are cut at
# CLIPS_PER_SEC (default 2) and their MP4s downloaded. Not part of CI: it wants the
# machine to itself (the table's loadavg column says how quiet it was).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-250,500,750,1000,1250,1500}
dvr=${DVR_SECS:-60}
budget=${MEMORY_BUDGET_MIB:-12288}
cargo build --release --locked -p dvrclip -p dvrclip-loadgen --bin dvrclip --bin dvrclip-loadgen >&2
bin=${CARGO_TARGET_DIR:-target}/release
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
data=$(mktemp -d)
out=$(mktemp)
${NICE:-} "${SERVER_BIN:-$bin/dvrclip}" serve --listen 127.0.0.1:0 --rtmp-listen 127.0.0.1:0 \
  --api-key demo --data-dir "$data" --memory-budget-mib "$budget" >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://||p' "$out" | head -1)
echo "server $addr (pid $pid), loadavg before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
# shellcheck disable=SC2086
${NICE:-} "$bin/dvrclip-loadgen" --server "$addr" --server-pid "$pid" --steps "$steps" \
  --dvr-secs "$dvr" --clips-per-sec "${CLIPS_PER_SEC:-2}" \
  --warmup-secs "${WARMUP_SECS:-20}" --measure-secs "${MEASURE_SECS:-30}" \
  --protocol "${PROTOCOL:-http}" ${LOADGEN_ARGS:-}

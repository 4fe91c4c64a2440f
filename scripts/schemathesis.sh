#!/usr/bin/env bash
# ref/openapi.yaml against the real binary: Schemathesis sends every documented
# operation a bounded number of generated requests, valid and invalid (examples,
# boundary values, then random ones), and fails on any 5xx and on any answer the
# document does not describe (status, content type, headers, body schema). It reads
# the document the binary serves at /openapi.yaml, so it tests what users get.
#
# The binary runs with --demo on 127.0.0.1, a fresh data directory and its own
# port; it is stopped at the end. DVRCLIP_BIN picks the binary (default: built
# here); ST_MAX_EXAMPLES the cases per operation (default 20: about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v st >/dev/null; then
  for try in 1 2 3; do
    python3 -m pip install -q 'schemathesis==4.32.5' && break
    [ "$try" = 3 ] && { echo "schemathesis: cannot install it" >&2; exit 1; }
    sleep 5
  done
fi

bin=${DVRCLIP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --locked --quiet --bin dvrclip
  bin="${CARGO_TARGET_DIR:-target}/debug/dvrclip"
fi

work=$(mktemp -d)
"$bin" serve --demo --listen 127.0.0.1:0 --api-key demo --data-dir "$work/data" \
  --memory-budget-mib 512 >"$work/stdout" 2>"$work/stderr" &
pid=$!
stop() {
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT

addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's|^dvrclip listening on http://||p' "$work/stdout")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; echo "dvrclip exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "dvrclip did not start listening" >&2; exit 1; }

st run "http://$addr/openapi.yaml" --url "http://$addr" \
  --header "Authorization: APIKey demo" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${ST_MAX_EXAMPLES:-20}" \
  --request-timeout 30 \
  --warnings off \
  --no-color

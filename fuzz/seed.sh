#!/usr/bin/env bash
# Seed the fuzz corpora from the ffmpeg fixtures (and ffmpeg itself for rtmp):
# - parse_init: every init segment;
# - parse_segment: every media segment up to 128 KiB (bigger ones are mostly mdat
#   payload, which the parser never reads, and slow each run down), in the target's
#   input format: 0x80, the init's length (16-bit big-endian), the init, the segment.
#   cargo +nightly fuzz run parse_segment -- -dict=fuzz/boxes.dict
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
mkdir -p corpus/parse_init corpus/parse_segment
find "$fixtures" -name index.m3u8 | while read -r playlist; do
  dir=$(dirname "$playlist")
  name=$(echo "${dir#$fixtures/}" | tr / _)
  init="$dir/$(sed -n 's/^#EXT-X-MAP:URI="\([^"]*\)".*/\1/p' "$playlist")"
  cp "$init" "corpus/parse_init/$name"
  n=$(stat -c %s "$init")
  for seg in $(find "$dir" -maxdepth 1 -name '*.m4s' ! -name 'init*' -size -128k); do
    out="corpus/parse_segment/${name}_$(basename "$seg")"
    { printf "\\x80\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"; cat "$init" "$seg"; } >"$out"
  done
done
echo "parse_init: $(ls corpus/parse_init | wc -l) seeds, parse_segment: $(ls corpus/parse_segment | wc -l) seeds"

# - rtmp (mode 0, media): a short ffmpeg FLV (H.264 + AAC, 1 s) as the target's
#   messages: kind (0 video, 1 audio), 32-bit timestamp, 16-bit length, tag body.
if command -v ffmpeg >/dev/null; then
  mkdir -p corpus/rtmp
  flv=$(mktemp --suffix=.flv)
  ffmpeg -v error -y -f lavfi -i testsrc2=size=64x64:rate=10 -f lavfi -i sine -t 1 \
    -c:v libx264 -g 5 -c:a aac -f flv "$flv"
  python3 - "$flv" corpus/rtmp/ffmpeg_flv <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
at, out = 9 + 4, bytearray([0])
while at + 11 <= len(d):
    kind, size = d[at], int.from_bytes(d[at + 1:at + 4], "big")
    ts = int.from_bytes(d[at + 4:at + 7], "big") | d[at + 7] << 24
    body = d[at + 11:at + 11 + size][:65535]
    if kind in (8, 9):
        out += bytes([0 if kind == 9 else 1]) + struct.pack(">IH", ts, len(body)) + body
    at += 11 + size + 4
open(sys.argv[2], "wb").write(out)
PY
  rm -f "$flv"
  echo "rtmp: $(ls corpus/rtmp | wc -l) seeds"
fi

#!/usr/bin/env bash
# Seed the fuzz corpora from the ffmpeg fixtures:
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

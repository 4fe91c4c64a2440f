#!/usr/bin/env bash
# Seed the fuzz corpora from the ffmpeg fixtures: every init segment for parse_init,
# every media segment up to 128 KiB for parse_segment (bigger ones are mostly mdat
# payload, which the parser never reads, and slow each run down).
#   fuzz/seed.sh && cargo +nightly fuzz run parse_segment -- -dict=fuzz/boxes.dict
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
mkdir -p corpus/parse_init corpus/parse_segment
find "$fixtures" -name 'init*.mp4' | while read -r f; do
  cp "$f" "corpus/parse_init/$(echo "${f#$fixtures/}" | tr / _)"
done
find "$fixtures" -name '*.m4s' -size -128k | while read -r f; do
  cp "$f" "corpus/parse_segment/$(echo "${f#$fixtures/}" | tr / _)"
done
echo "parse_init: $(ls corpus/parse_init | wc -l) seeds, parse_segment: $(ls corpus/parse_segment | wc -l) seeds"

#!/usr/bin/env bash
# The test command: formatting, lints, then every unit, property, fixture, end-to-end
# and doc test of the workspace (criterion benches run once each as smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

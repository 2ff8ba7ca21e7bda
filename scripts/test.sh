#!/usr/bin/env bash
# The test command: installs the servers if needed, builds the shop's
# binaries (the integration tests start them as processes), then runs every
# test of the workspace with cargo-nextest (cargo test if nextest is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked "$@"
else
  echo "test: cargo-nextest not found; using cargo test" >&2
  cargo test --workspace --locked "$@"
fi

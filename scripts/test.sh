#!/usr/bin/env bash
# The test command: installs the servers and the Python tools if needed
# (moto's server stands in for AWS in the aws platform's tests), builds the
# shop's binaries (the integration tests start them as processes), then runs
# every test of the workspace with cargo-nextest (cargo test if nextest is
# absent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
GAMEDAY_VENV="$(scripts/venv.sh)"
export GAMEDAY_VENV
# Bins and tests in one build: the tests' dev-dependencies change the
# features of shared crates, so building the bins alone first would compile
# the AWS SDK and the rest a second time with other features.
cargo build --workspace --bins --tests --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked "$@"
else
  echo "test: cargo-nextest not found; using cargo test" >&2
  cargo test --workspace --locked "$@"
fi

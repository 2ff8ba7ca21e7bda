#!/usr/bin/env bash
# The test command: installs the servers, cargo-nextest and the Python tools
# if needed (moto's server stands in for AWS in the aws platform's tests),
# builds the shop's binaries (the integration tests start them as
# processes), then runs every test of the workspace with cargo-nextest
# (.config/nextest.toml: a test that runs a scenario runs alone).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
GAMEDAY_VENV="$(scripts/venv.sh)"
export GAMEDAY_VENV
# Bins and tests in one build: the tests' dev-dependencies change the
# features of shared crates, so building the bins alone first would compile
# the AWS SDK and the rest a second time with other features.
cargo build --workspace --bins --tests --locked
cargo nextest run --workspace --locked "$@"

#!/usr/bin/env bash
# The test command: installs the servers, cargo-nextest and the Python tools
# if needed (moto's server stands in for AWS in the aws platform's tests),
# builds the shop's binaries (the integration tests start them as
# processes), then runs every test of the workspace with cargo-nextest
# (.config/nextest.toml: a test that runs a scenario runs alone), and the
# tests on a real cluster when GAMEDAY_TEST_KUBECONTEXT names one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
GAMEDAY_VENV="$(scripts/venv.sh)"
export GAMEDAY_VENV
# The Debian 12 root the boot-path test boots (tests/it/boot.rs): built once
# and cached outside the clone, here rather than under the test's timeout.
scripts/bootroot.sh >/dev/null
# Bins and tests in one build: the tests' dev-dependencies change the
# features of shared crates, so building the bins alone first would compile
# the AWS SDK and the rest a second time with other features.
cargo build --workspace --bins --tests --locked
# The tests that need a Kubernetes cluster are ignored unless one is named
# (scripts/cluster.sh up gives the context gameday-local).
ignored=()
if [ -n "${GAMEDAY_TEST_KUBECONTEXT:-}" ]; then
  echo "test: GAMEDAY_TEST_KUBECONTEXT=$GAMEDAY_TEST_KUBECONTEXT: the tests on a real cluster run too"
  ignored=(--run-ignored all)
fi
cargo nextest run --workspace --locked "${ignored[@]}" "$@"

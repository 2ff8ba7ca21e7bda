#!/usr/bin/env bash
# Builds Toxiproxy's server (the user-space proxy gameday's local platform
# puts between the shop's parts when a scenario has network faults) from its
# Go module, at a pinned version, into a cache outside the clone. Idempotent:
# does nothing when the pinned binary is already there. Prints its path.
#
#   GAMEDAY_TOOLS  where built tools go (default /var/tmp/gameday-tools)
#   GOPATH         Go's module cache (default /var/tmp/gameday-go)
set -euo pipefail

version="v2.12.0"
tools="${GAMEDAY_TOOLS:-/var/tmp/gameday-tools}"
bin="$tools/bin/toxiproxy-server"
stamp="$bin.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "toxiproxy: go is missing (Debian: apt-get install golang-go, or https://go.dev/dl/)" >&2
  exit 1
fi

mkdir -p "$tools/bin"
build="$(mktemp -d "$tools/build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
echo "toxiproxy: building github.com/Shopify/toxiproxy/v2/cmd/server@$version (about 30 s, once)" >&2
GOPATH="${GOPATH:-/var/tmp/gameday-go}" GOBIN="$build" GOFLAGS=-buildvcs=false \
  nice -n 19 go install "github.com/Shopify/toxiproxy/v2/cmd/server@$version"
mv -f "$build/server" "$bin"
echo "$version" >"$stamp"
echo "$bin"

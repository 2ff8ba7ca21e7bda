#!/usr/bin/env bash
# Installs what gameday and its tests need on this machine: the real servers
# it runs the shop on (Debian/Ubuntu packages: redis-server, rabbitmq-server,
# mariadb-server, haproxy), cargo-nextest (the test runner, from crates.io)
# and Toxiproxy (network faults; built by scripts/toxiproxy.sh when Go is
# there). Idempotent: does nothing when they are all there. The packages
# try to start system services; that may fail harmlessly - gameday starts its
# own private servers.
set -euo pipefail

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest (cargo install cargo-nextest --locked; a few minutes, once)"
  cargo install cargo-nextest --locked
fi

# Toxiproxy, for network faults: built from its Go module at a pinned
# version into a cache outside the clone (does nothing once it is there).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if command -v go >/dev/null 2>&1; then
  "$here/toxiproxy.sh" >/dev/null
else
  echo "setup: go is missing, so Toxiproxy is not built and network faults cannot run locally;" \
    "install Go 1.23 or later (https://go.dev/dl/; Debian 12's golang-go is too old) and run scripts/toxiproxy.sh" >&2
fi

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "$2" ]; }
have redis-server /usr/bin/redis-server || missing+=(redis-server)
have rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmq-server || missing+=(rabbitmq-server)
have mariadbd /usr/sbin/mariadbd || missing+=(mariadb-server)
have haproxy /usr/sbin/haproxy || missing+=(haproxy)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: redis-server, rabbitmq-server, mariadb-server and haproxy are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# The packages' own service starts may fail in containers; that is expected.
$sudo apt-get install -y -q "${missing[@]}" || {
  echo "setup: apt-get reported an error; checking whether the programs are usable anyway" >&2
}
for p in redis-server mariadbd haproxy; do
  command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { echo "setup: $p is still missing" >&2; exit 1; }
done
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "setup: rabbitmq-server is still missing" >&2; exit 1; }
echo "setup: done"

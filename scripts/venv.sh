#!/usr/bin/env bash
# The Python tools the checks use, in one virtualenv outside the clone:
# $GAMEDAY_VENV (default /var/tmp/gameday-venv). Idempotent: creates the
# virtualenv if it is missing and installs only the packages of
# scripts/venv-packages.txt that are not there at their pinned version.
# To add a tool, add a `name==version` line to that file.
# Prints the virtualenv's path on stdout; messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${GAMEDAY_VENV:-/var/tmp/gameday-venv}"
list=scripts/venv-packages.txt

if [ ! -x "$venv/bin/python" ]; then
  echo "venv: creating $venv" >&2
  if ! python3 -m venv "$venv" >&2; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "venv: python3 -m venv failed; installing python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3-venv >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  fi
fi

# `name==version` pins, lower-cased with `_` as `-`, as pip freeze says them.
normalise() { tr 'A-Z_' 'a-z-'; }
installed=$("$venv/bin/python" -m pip freeze --all 2>/dev/null | normalise)
missing=()
while read -r line; do
  package="${line%%#*}"
  package="$(echo "$package" | tr -d '[:space:]')"
  [ -z "$package" ] && continue
  # An extra such as moto[server] is checked by its base name.
  pin="$(echo "$package" | sed 's/\[[^]]*\]//' | normalise)"
  grep -qxF "$pin" <<<"$installed" || missing+=("$package")
done <"$list"

if [ ${#missing[@]} -gt 0 ]; then
  echo "venv: installing ${missing[*]}" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" >&2
else
  echo "venv: every package of $list is installed in $venv" >&2
fi
echo "$venv"

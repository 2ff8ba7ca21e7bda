#!/usr/bin/env bash
# Builds the root filesystem of the infra image (MariaDB, Redis, RabbitMQ
# from Debian's packages) with debootstrap, into $1. Called by
# scripts/cluster.sh images; the result is cached and reused.
set -euo pipefail
out=$1 suite=${2:-bookworm} mirror=${3:-http://deb.debian.org/debian}
packages=${INFRA_PACKAGES:-mariadb-server redis-server rabbitmq-server}
tmp=$out.tmp
if mountpoint -q "$tmp/proc" 2>/dev/null; then umount "$tmp/proc"; fi
rm -rf "$tmp"
mkdir -p "$tmp"
cleanup() { if mountpoint -q "$tmp/proc" 2>/dev/null; then umount "$tmp/proc"; fi; }
trap cleanup EXIT
nice -n 19 debootstrap --variant=minbase "$suite" "$tmp" "$mirror"
# No service starts inside the chroot while the packages install.
printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
chmod +x "$tmp/usr/sbin/policy-rc.d"
mount -t proc proc "$tmp/proc"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive nice -n 19 chroot "$tmp" apt-get install -y -q --no-install-recommends $packages
chroot "$tmp" apt-get clean
umount "$tmp/proc"
rm -f "$tmp/usr/sbin/policy-rc.d"
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/log/*.log \
  "$tmp"/var/lib/mysql/* "$tmp"/var/lib/rabbitmq/mnesia "$tmp"/var/lib/redis/*
# uid 999 runs the servers in the manifests (the official images' user).
grep -q '^server:' "$tmp/etc/passwd" || echo 'server:x:999:999:gameday infra server:/var/lib/server:/usr/sbin/nologin' >> "$tmp/etc/passwd"
grep -q '^server:' "$tmp/etc/group" || echo 'server:x:999:' >> "$tmp/etc/group"
mkdir -p "$tmp/var/lib/server" && chown 999:999 "$tmp/var/lib/server"
rm -rf "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/*
# The servers' data directories: whatever user a pod runs them as may write
# there (the manifests mount volumes over them).
mkdir -p "$tmp/var/lib/mysql" "$tmp/var/lib/redis" "$tmp/var/lib/rabbitmq" "$tmp/data" "$tmp/run/mysqld"
chmod 1777 "$tmp/run/mysqld"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT

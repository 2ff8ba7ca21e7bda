#!/usr/bin/env bash
# A Debian 12 root filesystem like the shop's AWS instances' (Debian's AMI
# has systemd, curl, python3 and ca-certificates; the user data installs
# awscli and stunnel4 when they are missing, so they are installed here
# too: the boot test has no mirror inside its network namespace), for the
# boot-path test (tests/it/boot.rs) to run the template's user data in,
# under systemd-nspawn. Cached outside the clone; idempotent.
#
#   scripts/bootroot.sh          # builds it once, prints its path
#   GAMEDAY_BOOTROOT=/path ...   # where (default /var/tmp/gameday-bootroot)
set -euo pipefail

root_dir=${GAMEDAY_BOOTROOT:-/var/tmp/gameday-bootroot}
rootfs=$root_dir/rootfs
# What the root filesystem holds; a change rebuilds it.
packages=systemd,systemd-sysv,dbus,iproute2,curl,ca-certificates,python3
# What the user data installs (debootstrap does not resolve their virtual
# dependencies, so apt does, in the root filesystem).
user_data_packages="awscli stunnel4"
stamp="bookworm minbase $packages $user_data_packages cloud-init-stand-in-v2"
mirror=${GAMEDAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -f "$root_dir/stamp" ] && [ "$(cat "$root_dir/stamp")" = "$stamp" ]; then
  echo "$rootfs"
  exit 0
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need debootstrap || ! need systemd-nspawn; then
  echo "bootroot: installing debootstrap and systemd-container" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >&2
fi

rm -rf "$root_dir.tmp"
mkdir -p "$root_dir.tmp"
echo "bootroot: debootstrap bookworm into $root_dir (a few minutes)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$root_dir.tmp/rootfs" "$mirror" >&2
cp /etc/resolv.conf "$root_dir.tmp/rootfs/etc/resolv.conf"
# apt in the root filesystem, with its own /proc, in a mount namespace of
# its own (nothing stays mounted).
unshare --mount --propagation private sh -c "
  mount -t proc proc '$root_dir.tmp/rootfs/proc' &&
  DEBIAN_FRONTEND=noninteractive chroot '$root_dir.tmp/rootfs' apt-get install -y -q \
    --no-install-recommends $user_data_packages &&
  chroot '$root_dir.tmp/rootfs' apt-get clean" >&2

# The stand-in for cloud-init: once the network is up, run the user data
# the test binds at /etc/gameday-boot/user-data, as root, as cloud-init's
# final stage does.
cat > "$root_dir.tmp/rootfs/etc/systemd/system/gameday-user-data.service" <<'UNIT'
[Unit]
Description=gameday boot test: run the user data (cloud-init's stand-in)
After=network-online.target
Wants=network-online.target
ConditionPathExists=/etc/gameday-boot/user-data
[Service]
Type=oneshot
ExecStart=/bin/bash /etc/gameday-boot/user-data
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/gameday-user-data.service \
  "$root_dir.tmp/rootfs/etc/systemd/system/multi-user.target.wants/gameday-user-data.service"
# No getty on a console nobody reads.
rm -f "$root_dir.tmp/rootfs/etc/systemd/system/getty.target.wants/"*
echo gameday-boot > "$root_dir.tmp/rootfs/etc/hostname"

rm -rf "$root_dir"
mv "$root_dir.tmp" "$root_dir"
echo "$stamp" > "$root_dir/stamp"
echo "$rootfs"

#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, from real components:
#
#   control plane on the host: etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler (built from the k8s.io/kubernetes Go module at the
#     version in scripts/cluster/versions.env);
#   three worker nodes, kind-style: each its own network and mount namespace
#     and cgroup, with its own containerd (Debian's), runc, kubelet,
#     kube-proxy (iptables) and CNI bridge, in zones a, b and c;
#   add-ons as pods: CoreDNS, metrics-server, a default StorageClass whose
#     volumes outlive a node;
#   HAProxy on 127.0.0.1 in front of every node's NodePort, health-checking
#     each node's kube-proxy as a cloud load balancer does.
#
# Usage: scripts/cluster.sh COMMAND
#   up                  build what is not cached, start the cluster (idempotent)
#   down                stop everything and remove all it made (check-clean after)
#   status              nodes (zone, readiness), add-ons, entry URL
#   terminate NODE      lose NODE at once (SIGKILL); a replacement joins later
#   check-clean         exit 1 listing anything a cluster left behind
#   build               build everything not cached, each step timed (CI: the
#                       whole build in one command; as root, it installs the
#                       missing HOST_PACKAGES too); images is the same
#   packages            install the missing HOST_PACKAGES (apt-get; build does too)
#   shop-image [DIR]    rebuild gameday-shop:0.1.0 from DIR's shop-* binaries
#                       (and gameday, for load.generators shards) and import
#                       it into every running node
#   kubeconfig          print the kubeconfig path and how to use it
#   env                 print the versions, paths and addresses it uses
#   pin                 rewrite scripts/cluster/go.mod from versions.env
#
# Everything it builds is cached in ${GAMEDAY_CLUSTER_CACHE:-/var/tmp/gameday-cluster};
# the running cluster's state is in its run/ directory. Needs root, Linux
# with cgroup v1 or v2 hybrid, Go, and the Debian packages in versions.env
# (installed with apt-get when missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CLDIR=$HERE/cluster
# shellcheck source=cluster/versions.env
. "$CLDIR/versions.env"

CACHE=${GAMEDAY_CLUSTER_CACHE:-/var/tmp/gameday-cluster}
RUN=$CACHE/run
BIN=$CACHE/bin/kubernetes-$KUBERNETES_VERSION
ADDON_BIN=$CACHE/bin/addons
IMAGES=$CACHE/images
LOGS=$RUN/log
PKI=$RUN/pki
KUBECONFIG_FILE=$CACHE/kubeconfig
CONTEXT=gameday-local

# Addresses: all inside namespaces this script creates, or loopback.
BRIDGE=gdc0
HOST_IP=10.250.0.1
NODE_PREFIX=10.250.0
NODE_NET=$NODE_PREFIX.0/24
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
API_PORT=${GAMEDAY_CLUSTER_API_PORT:-6443}
ETCD_PORT=${GAMEDAY_CLUSTER_ETCD_PORT:-12379}
ENTRY_PORT=${GAMEDAY_CLUSTER_ENTRY_PORT:-30080}
WEB_NODE_PORT=30080
ZONES=${GAMEDAY_CLUSTER_ZONES:-a b c}
REGION=local
BOOT_DELAY=${GAMEDAY_CLUSTER_BOOT_DELAY:-20}
DELETE_LOST_NODES=${GAMEDAY_CLUSTER_DELETE_LOST_NODES:-true}
CGROUP=gameday-cluster
FW_CHAIN=GAMEDAY-CLUSTER

PAUSE_IMAGE=localhost/gameday-pause:$PAUSE_VERSION
COREDNS_IMAGE=localhost/gameday-coredns:${COREDNS_VERSION#v}
METRICS_SERVER_IMAGE=localhost/gameday-metrics-server:${METRICS_SERVER_VERSION#v}
SHOP_IMAGE=docker.io/library/gameday-shop:0.1.0
INFRA_TAG=bookworm
MARIADB_IMAGE=localhost/gameday-mariadb:10.11-$INFRA_TAG
REDIS_IMAGE=localhost/gameday-redis:7.0-$INFRA_TAG
RABBITMQ_IMAGE=localhost/gameday-rabbitmq:3.10-$INFRA_TAG

export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin
export GOPATH=$CACHE/go GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/cache
export GOTOOLCHAIN=local

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$RUN/kubectl-cache" "$@"; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (it creates namespaces, cgroups and iptables rules)"; }

# ---------------------------------------------------------------- build

# Each build step logs its wall time and the CPU time (user + sys) of what it
# ran, as one line, for CI's log.
cpu_ticks() { # sets CPU_USER CPU_SYS: this shell's and its waited-for children's, in clock ticks
  local s a
  read -r s < "/proc/$BASHPID/stat"
  read -r -a a <<<"${s##*) }"
  CPU_USER=$((a[11] + a[13])) CPU_SYS=$((a[12] + a[14]))
}

step() { # NAME COMMAND...
  local name=$1 t0=$SECONDS u0 s0 hz=${CLK_TCK:-100}; shift
  cpu_ticks; u0=$CPU_USER s0=$CPU_SYS
  "$@"
  cpu_ticks
  say "$(printf 'step %-16s %5ds wall %6ds CPU (user %ds, sys %ds)' "$name" $((SECONDS - t0)) \
    $(((CPU_USER - u0 + CPU_SYS - s0) / hz)) $(((CPU_USER - u0) / hz)) $(((CPU_SYS - s0) / hz)))"
}

# The Debian packages in versions.env's HOST_PACKAGES that are not installed.
missing_host_packages() {
  # shellcheck disable=SC2086
  for p in $HOST_PACKAGES; do echo "$p"; done | sort -u |
    comm -23 - <(dpkg-query -W -f '${Package} ${Status}\n' $HOST_PACKAGES 2>/dev/null | awk '$NF == "installed" {print $1}' | sort -u)
}

host_packages() { # MISSING...: apt-get install them (a fresh machine)
  local missing="$*"
  need_root
  mkdir -p "$CACHE/log"
  say "installing the host packages missing here: $(echo $missing)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; } >"$CACHE/log/apt-get.log" 2>&1 ||
    { tail -20 "$CACHE/log/apt-get.log" >&2; die "apt-get failed (log: $CACHE/log/apt-get.log)"; }
}

# Every Go program, from scripts/cluster/go.mod, in ONE `go build`: the
# Kubernetes components, etcd, metrics-server and a CoreDNS with only the
# Corefile's plugins (scripts/cluster/coredns), so that what they share
# (client-go, apimachinery, grpc, protobuf, ...) compiles once, at one version.
K8S_PROGRAMS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
ETCD_BIN=$CACHE/bin/etcd-$ETCD_VERSION
COREDNS_BIN=$ADDON_BIN/coredns-$COREDNS_VERSION
METRICS_SERVER_BIN=$ADDON_BIN/metrics-server-$METRICS_SERVER_VERSION
PAUSE_BIN=$ADDON_BIN/pause-$PAUSE_VERSION
GO_STAMP=$CACHE/bin/go-build.stamp

go_packages() {
  local p
  for p in $K8S_PROGRAMS; do echo "k8s.io/kubernetes/cmd/$p"; done
  echo go.etcd.io/etcd/server/v3 sigs.k8s.io/metrics-server/cmd/metrics-server ./coredns
}

go_outputs() { # NAME-GO-BUILD-GIVES DESTINATION
  local p
  for p in $K8S_PROGRAMS; do echo "$p $BIN/$p"; done
  echo "server $ETCD_BIN"   # go.etcd.io/etcd/server/v3 (go build names it after "server")
  echo "metrics-server $METRICS_SERVER_BIN"
  echo "coredns $COREDNS_BIN"
}

# The version each program reports, as its own release build sets it. For
# a link, the last -ldflags pattern that matches its main package counts.
go_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local p=k8s.io/component-base/version c=k8s.io/client-go/pkg/version ms=${METRICS_SERVER_VERSION#v}
  echo "-ldflags=-s -w"
  echo "-ldflags=k8s.io/kubernetes/cmd/...=-s -w -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor" \
       "-X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z" \
       "-X $c.gitVersion=$KUBERNETES_VERSION -X $c.gitMajor=1 -X $c.gitMinor=$minor"
  echo "-ldflags=sigs.k8s.io/metrics-server/cmd/metrics-server=-s -w -X $c.gitVersion=$METRICS_SERVER_VERSION" \
       "-X $c.gitMajor=${ms%%.*} -X $c.gitMinor=$(echo "$ms" | cut -d. -f2) -X $c.buildDate=1970-01-01T00:00:00Z"
  echo "-ldflags=gameday.local/cluster/coredns=-s -w -X github.com/coredns/coredns/coremain.GitCommit=gameday"
}

# Go on PATH, at least GO_MIN_VERSION (versions.env).
check_go() {
  command -v go >/dev/null || die "Go is missing: install Go $GO_MIN_VERSION or newer (https://go.dev/dl/) and put it on PATH"
  local have
  have=$(go env GOVERSION); have=${have#go}
  [ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$have" | sort -V | head -1)" = "$GO_MIN_VERSION" ] ||
    die "Go $have is older than $GO_MIN_VERSION (versions.env GO_MIN_VERSION)"
}

go_env() {
  export CGO_ENABLED=0 GOFLAGS="${GAMEDAY_CLUSTER_GO_JOBS:+-p=$GAMEDAY_CLUSTER_GO_JOBS }-buildvcs=false -mod=readonly"
}

# What the binaries are built from: a change to any of it rebuilds them.
go_stamp() {
  { go env GOVERSION; go_packages; go_ldflags; cat "$CLDIR/go.mod" "$CLDIR/go.sum" "$CLDIR"/coredns/*.go; } | sha256sum | cut -c1-16
}

have_go_programs() {
  local name dest
  while read -r name dest; do [ -x "$dest" ] || return 1; done < <(go_outputs)
  [ -f "$GO_STAMP" ] && command -v go >/dev/null && [ "$(cat "$GO_STAMP")" = "$(go_stamp)" ]
}

# The modules the build needs, from the Go module proxy (network).
go_modules() {
  (cd "$CLDIR" && go_env && go list -deps $(go_packages) >/dev/null 2>"$CACHE/log/go-modules.log") ||
    { grep -v '^go: downloading' "$CACHE/log/go-modules.log" | tail -30 >&2; die "go list failed (log: $CACHE/log/go-modules.log)"; }
  say "$(grep -c '^go: downloading' "$CACHE/log/go-modules.log" || true) Go modules downloaded (log: $CACHE/log/go-modules.log)"
}

go_programs() {
  local part=$CACHE/bin/go-build.part name dest ldflags=()
  mapfile -t ldflags < <(go_ldflags)
  rm -rf "$part"; mkdir -p "$part" "$BIN" "$ADDON_BIN"
  (cd "$CLDIR" && go_env && nice -n "${GAMEDAY_CLUSTER_NICE:-19}" go build -trimpath "${ldflags[@]}" -o "$part/" $(go_packages) >"$CACHE/log/go-build.log" 2>&1) ||
    { tail -40 "$CACHE/log/go-build.log" >&2; die "go build failed (log: $CACHE/log/go-build.log)"; }
  while read -r name dest; do mv -f "$part/$name" "$dest"; done < <(go_outputs)
  rmdir "$part"
  go_stamp > "$GO_STAMP"
}

build_pause() {
  local src=$GOMODCACHE/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c
  [ -f "$src" ] || (cd "$CLDIR" && go mod download k8s.io/kubernetes)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-gameday" -o "$PAUSE_BIN.part" "$src"
  mv "$PAUSE_BIN.part" "$PAUSE_BIN"
}

# The whole build, each step timed and cached: host packages, the Go
# programs (the infra image's Debian root filesystem is made meanwhile: that
# is mostly network and disk), pause, the image archives. Needs root for the
# packages and images; without root it builds the programs only.
build() {
  local t0=$SECONDS bg="" u0 s0 hz=${CLK_TCK:-100} root=false built=false missing
  [ "$(id -u)" = 0 ] && root=true
  cpu_ticks; u0=$CPU_USER s0=$CPU_SYS
  mkdir -p "$CACHE/log" "$CACHE/bin" "$IMAGES" "$CACHE/rootfs"
  missing=$(missing_host_packages)
  # shellcheck disable=SC2086
  [ -z "$missing" ] || { step "host packages" host_packages $missing; built=true; }
  if $root && [ ! -f "$IMAGES/infra-$INFRA_TAG.tar" ]; then
    ( [ -d "$CACHE/rootfs/infra-$DEBIAN_SUITE" ] || step "infra rootfs" infra_rootfs
      step "infra image" infra_image ) & bg=$!
    # if a step below fails, the job still ends before the script does
    trap 'say "waiting for the infra image job ($CACHE/log/infra-rootfs.log)"; wait '"$bg"' || true' EXIT
    built=true
  fi
  if ! have_go_programs; then
    check_go
    say "building $(go_outputs | awk '{print $1}' | sed 's/^server$/etcd/' | tr '\n' ' ')from $CLDIR/go.mod into $CACHE/bin"
    step "go modules" go_modules
    step "go build" go_programs
    built=true
  fi
  [ -x "$PAUSE_BIN" ] || { step "pause" build_pause; built=true; }
  if $root; then
    addon_images_current || { step "add-on images" addon_images; built=true; }
    if [ -n "$bg" ]; then
      wait "$bg" || { trap - EXIT; die "the infra image failed (log: $CACHE/log/infra-rootfs.log)"; }
      trap - EXIT
    fi
    if [ -x "$(shop_bin_dir)/shop-web" ]; then
      shop_image_current "$(shop_bin_dir)" || { step "shop image" build_shop_image; built=true; }
    elif [ ! -f "$IMAGES/shop.tar" ]; then
      say "no shop binaries in $(shop_bin_dir): the cluster starts without $SHOP_IMAGE (scripts/cluster.sh shop-image DIR imports it later)"
    fi
  else
    say "the host packages and the image archives need root: sudo scripts/cluster.sh build"
  fi
  cpu_ticks
  if $built; then
    say "$(printf 'build total %15ds wall %6ds CPU (user %ds, sys %ds)' $((SECONDS - t0)) \
      $(((CPU_USER - u0 + CPU_SYS - s0) / hz)) $(((CPU_USER - u0) / hz)) $(((CPU_SYS - s0) / hz)))"
  fi
}

pin() {
  check_go
  local mod
  mod=$(cd "$CLDIR" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  (cd "$CLDIR" &&
    go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION" -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
      -require="github.com/coredns/coredns@$COREDNS_VERSION" -require="sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" &&
    grep -E '=> \./staging' "$mod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@$KUBERNETES_STAGING_VERSION"
    done &&
    # -e: a test of a dependency (prometheus's config, under metrics-server)
    # imports cloud.google.com/go/compute/metadata, which two modules of the
    # graph hold; nothing built here imports it.
    nice -n 19 go mod tidy -e &&
    go_env && go list -deps $(go_packages) >/dev/null)
}

# ---------------------------------------------------------------- images

# The shop's binaries: GAMEDAY_SHOP_BIN, else the release build, else the
# debug build, under CARGO_TARGET_DIR (default /var/tmp/gameday-target).
shop_bin_dir() {
  local want=${1:-${GAMEDAY_SHOP_BIN:-}} target=${CARGO_TARGET_DIR:-/var/tmp/gameday-target} d
  if [ -n "$want" ]; then echo "$want"; return; fi
  for d in "$target/release" "$target/debug"; do
    [ -x "$d/shop-web" ] && { echo "$d"; return; }
  done
  echo "$target/release"
}

SHOP_SERVICES="web user catalogue cart orders shipping"

shop_stamp() { # DIR
  local s
  { for s in $SHOP_SERVICES; do stat -c '%n %s %Y' "$1/shop-$s"; done
    [ -x "$1/gameday" ] && stat -c '%n %s %Y' "$1/gameday"; } | sha256sum | cut -c1-16
}

shop_image_current() { # DIR
  [ -f "$IMAGES/shop.tar" ] && [ "$(cat "$IMAGES/shop.stamp" 2>/dev/null)" = "$(shop_stamp "$1")" ]
}

build_shop_image() { # [DIR]
  local dir out=$IMAGES/shop.tar s stamp
  dir=$(shop_bin_dir "${1:-}")
  for s in $SHOP_SERVICES; do
    [ -x "$dir/shop-$s" ] || die "no $dir/shop-$s: build the shop first (cargo build --release -p shop-web ... or give the directory: scripts/cluster.sh shop-image DIR)"
  done
  stamp=$(shop_stamp "$dir")
  say "building $SHOP_IMAGE from $dir"
  local root=$CACHE/rootfs/shop.tmp lib
  rm -rf "$root"; mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/bin"
  chmod 1777 "$root/tmp"
  local bins=""
  for s in $SHOP_SERVICES; do cp "$dir/shop-$s" "$root/usr/local/bin/"; bins="$bins $dir/shop-$s"; done
  # gameday itself, for the shards of load.generators (platform: kubernetes),
  # without its debug info (a debug build's is most of its size).
  if [ -x "$dir/gameday" ]; then
    strip --strip-debug -o "$root/usr/local/bin/gameday" "$dir/gameday"
    bins="$bins $dir/gameday"
  else
    say "no $dir/gameday: $SHOP_IMAGE has no gameday, so it cannot run load.generators shards"
  fi
  # The libraries the binaries link (ldd), at the paths they are found.
  for lib in $(for s in $bins; do ldd "$s"; done | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
  # A shell for the image's default command (as debian:bookworm-slim has).
  cp /bin/busybox "$root/bin/busybox"; ln -s busybox "$root/bin/sh"
  cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
shop:x:10001:10001::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  printf 'root:x:0:\nshop:x:10001:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  # The CA bundle: gameday's HTTP client (rustls with the platform's roots)
  # will not build without one, and an https:// entry needs it.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/etc/ssl/certs"; cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  python3 "$CLDIR/oci-image.py" -o "$out" --tag "$SHOP_IMAGE" --layer "$root" \
    --user 10001:10001 --env SHOP_BIND=0.0.0.0 \
    --expose 8080 --expose 8081 --expose 8082 --expose 8083 --expose 8084 --expose 8085 \
    --cmd sh -c "echo 'gameday-shop: give the service to run as the command: shop-web, shop-user, shop-catalogue, shop-cart, shop-orders or shop-shipping' >&2; exit 64" >&2
  echo "$stamp" > "$IMAGES/shop.stamp"
  rm -rf "$root"
}

# (an archive older than its binary is made again)
single_binary_image() { # OUT TAG BINARY NAME USER ARGS...
  local out=$1 tag=$2 binary=$3 name=$4 user=$5; shift 5
  [ "$out" -nt "$binary" ] && return 0
  local root=$CACHE/rootfs/single.tmp
  rm -rf "$root"; mkdir -p "$root/etc" "$root/tmp"; chmod 1777 "$root/tmp"
  cp "$binary" "$root/$name"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  python3 "$CLDIR/oci-image.py" -o "$out" --tag "$tag" --layer "$root" --user "$user" \
    --entrypoint "/$name" "$@" >&2
  rm -rf "$root"
}

infra_rootfs() {
  local root=$CACHE/rootfs/infra-$DEBIAN_SUITE
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  say "making the infra root filesystem (debootstrap $DEBIAN_SUITE + $INFRA_PACKAGES; log: $CACHE/log/infra-rootfs.log)"
  INFRA_PACKAGES=$INFRA_PACKAGES "$CLDIR/infra-rootfs.sh" "$root" "$DEBIAN_SUITE" "$DEBIAN_MIRROR" >"$CACHE/log/infra-rootfs.log" 2>&1 ||
    die "debootstrap failed, see $CACHE/log/infra-rootfs.log"
}

infra_image() {
  local out=$IMAGES/infra-$INFRA_TAG.tar root=$CACHE/rootfs/infra-$DEBIAN_SUITE
  say "writing the infra image ($MARIADB_IMAGE, $REDIS_IMAGE, $RABBITMQ_IMAGE)"
  python3 "$CLDIR/oci-image.py" -o "$out" \
    --tag "$MARIADB_IMAGE" --tag "$REDIS_IMAGE" --tag "$RABBITMQ_IMAGE" \
    --layer "$root" --user 999:999 --env HOME=/var/lib/server \
    --label org.opencontainers.image.description="MariADB, Redis and RabbitMQ from Debian $DEBIAN_SUITE" \
    --cmd sh -c "echo 'gameday infra image: run mariadbd, redis-server or rabbitmq-server as the command' >&2; exit 64" >&2
}

addon_images() {
  single_binary_image "$IMAGES/pause-$PAUSE_VERSION.tar" "$PAUSE_IMAGE" "$PAUSE_BIN" pause 65535:65535
  single_binary_image "$IMAGES/coredns-$COREDNS_VERSION.tar" "$COREDNS_IMAGE" "$COREDNS_BIN" coredns 0:0 --expose 53/udp --expose 53/tcp --expose 9153
  single_binary_image "$IMAGES/metrics-server-$METRICS_SERVER_VERSION.tar" "$METRICS_SERVER_IMAGE" "$METRICS_SERVER_BIN" metrics-server 65534:65534
}

addon_images_current() {
  [ "$IMAGES/pause-$PAUSE_VERSION.tar" -nt "$PAUSE_BIN" ] && [ "$IMAGES/coredns-$COREDNS_VERSION.tar" -nt "$COREDNS_BIN" ] &&
    [ "$IMAGES/metrics-server-$METRICS_SERVER_VERSION.tar" -nt "$METRICS_SERVER_BIN" ]
}

# The archives every node imports: the versions in versions.env only.
image_archives() {
  echo "$IMAGES/pause-$PAUSE_VERSION.tar" "$IMAGES/coredns-$COREDNS_VERSION.tar" \
       "$IMAGES/metrics-server-$METRICS_SERVER_VERSION.tar" "$IMAGES/infra-$INFRA_TAG.tar"
  [ -f "$IMAGES/shop.tar" ] && echo "$IMAGES/shop.tar"
  return 0
}

# ---------------------------------------------------------------- certificates

cert() { # NAME CN ORG SANS(comma list or "") [CA]
  local name=$1 cn=$2 org=$3 sans=$4 ca=${5:-ca} subj
  [ -f "$PKI/$name.crt" ] && return 0
  subj="/CN=$cn"; [ -n "$org" ] && subj="/O=$org$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

ca() { # NAME CN
  [ -f "$PKI/$1.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

kubeconfig() { # FILE USER(cert name) SERVER [CONTEXT]
  local file=$1 user=$2 server=$3 context=${4:-$CONTEXT}
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $context
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $context
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$user.crt")
    client-key-data: $(base64 -w0 < "$PKI/$user.key")
contexts:
- name: $context
  context: { cluster: $context, user: $context }
current-context: $context
EOF
  chmod 600 "$file"
}

pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  ca ca gameday-cluster-ca
  ca front-proxy-ca gameday-cluster-front-proxy-ca
  cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$HOST_IP,IP:$API_SERVICE_IP"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  cert front-proxy-client front-proxy-client "" "" front-proxy-ca
  cert admin gameday-admin system:masters ""
  cert controller-manager system:kube-controller-manager "" ""
  cert scheduler system:kube-scheduler "" ""
  cert kube-proxy system:kube-proxy "" ""
  [ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  kubeconfig "$RUN/controller-manager.kubeconfig" controller-manager "https://127.0.0.1:$API_PORT"
  kubeconfig "$RUN/scheduler.kubeconfig" scheduler "https://127.0.0.1:$API_PORT"
  kubeconfig "$RUN/kube-proxy.kubeconfig" kube-proxy "https://$HOST_IP:$API_PORT"
  kubeconfig "$KUBECONFIG_FILE" admin "https://127.0.0.1:$API_PORT"
}

# ---------------------------------------------------------------- cgroups

controllers() { # the cgroup v1 hierarchies (named ones too); the v2 one in hybrid mode
  local d
  for d in /sys/fs/cgroup/*/; do
    d=${d%/}
    [ -f "$d/cgroup.procs" ] && echo "$d"
  done
}

cgroup_make() { # REL: the group in every hierarchy, cpuset filled in
  local rel=$1 c part path
  for c in $(controllers); do
    path=$c
    for part in ${rel//\// }; do
      path=$path/$part
      [ -d "$path" ] || mkdir "$path"
      if [ -f "$path/cpuset.cpus" ] && [ -z "$(cat "$path/cpuset.cpus")" ]; then
        cat "$(dirname "$path")/cpuset.cpus" > "$path/cpuset.cpus"
        cat "$(dirname "$path")/cpuset.mems" > "$path/cpuset.mems"
      fi
    done
  done
}

cgroup_join() { # REL PID
  local c
  for c in $(controllers); do echo "$2" > "$c/$1/cgroup.procs"; done
}

cgroup_pids() { # REL: every process in the group and below
  local c
  for c in $(controllers); do
    if [ -d "$c/$1" ]; then find "$c/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -un
}

# Kill every process in the group at once: freeze it, SIGKILL all, thaw.
cgroup_kill() { # REL
  local rel=$1 f=/sys/fs/cgroup/freezer/$1 i pids
  if [ -f "$f/freezer.state" ]; then
    echo FROZEN > "$f/freezer.state"
    for i in $(seq 50); do [ "$(cat "$f/freezer.state")" = FROZEN ] && break; sleep 0.1; done
  fi
  pids=$(cgroup_pids "$rel")
  # shellcheck disable=SC2086
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  [ -f "$f/freezer.state" ] && echo THAWED > "$f/freezer.state"
  for i in $(seq 100); do
    [ -z "$(cgroup_pids "$rel")" ] && return 0
    pids=$(cgroup_pids "$rel")
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  say "processes left in cgroup $rel: $(cgroup_pids "$rel" | tr '\n' ' ')"
}

cgroup_remove() { # REL
  local c
  for c in $(controllers); do
    if [ -d "$c/$1" ]; then find "$c/$1" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  return 0
}

# Run a program in the background inside a cgroup (and namespaces), logging.
spawn() { # CGROUP-REL LOG NSENTER-ARGS(string) PROGRAM ARGS...
  local rel=$1 log=$2 ns=$3; shift 3
  cgroup_make "$rel"
  # shellcheck disable=SC2086
  setsid $ns bash -c 'rel=$1; shift; for c in /sys/fs/cgroup/*/; do [ -f "$c$rel/cgroup.procs" ] && echo $$ > "$c$rel/cgroup.procs"; done; exec "$@"' \
    spawn "$rel" "$@" >>"$log" 2>&1 </dev/null &
  echo $!
}

wait_for() { # SECONDS WHAT COMMAND...
  local limit=$1 what=$2 i; shift 2
  for ((i = 0; i < limit * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$what did not come up in ${limit}s (logs in $LOGS)"
}

# ---------------------------------------------------------------- host network

host_net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  sysctl -qw "net.ipv4.conf.$BRIDGE.send_redirects=0"
  # Nothing for the cluster's ranges may take the default route off the box.
  ip route replace unreachable "$POD_CIDR"
  ip route replace unreachable "$SERVICE_CIDR"
  # The host does not route for the cluster: nodes reach each other on the
  # bridge. Bridged traffic passes FORWARD (br_netfilter): accept the
  # bridge's own, drop anything between it and another interface.
  if ! iptables -w -nL "$FW_CHAIN" >/dev/null 2>&1; then
    iptables -w -N "$FW_CHAIN"
    iptables -w -A "$FW_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
    iptables -w -A "$FW_CHAIN" -i "$BRIDGE" -j DROP
    iptables -w -A "$FW_CHAIN" -o "$BRIDGE" -j DROP
  fi
  iptables -w -C FORWARD -j "$FW_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$FW_CHAIN"
}

# Routes to every node's pod CIDR: on the host (the API server reaches pods,
# e.g. metrics-server) and in every node (pod to pod across nodes).
sync_routes() {
  local want=() n ip cidr
  for n in "$RUN"/nodes/*/; do
    n=${n%/}
    [ -f "$n/podcidr" ] && [ -e "/run/netns/$(basename "$n")" ] || continue
    want+=("$(cat "$n/podcidr") $(cat "$n/ip") $(basename "$n")")
  done
  # host
  for entry in "${want[@]}"; do
    read -r cidr ip _ <<<"$entry"
    ip route replace "$cidr" via "$ip" dev "$BRIDGE"
  done
  ip -4 route show dev "$BRIDGE" | awk '$1 ~ /^10\.244\./ {print $1}' | while read -r cidr; do
    printf '%s\n' "${want[@]}" | grep -q "^$cidr " || ip route del "$cidr" dev "$BRIDGE" 2>/dev/null || true
  done
  # nodes
  local node entry other
  for node in "${want[@]}"; do
    read -r _ _ n <<<"$node"
    for entry in "${want[@]}"; do
      read -r cidr ip other <<<"$entry"
      [ "$other" = "$n" ] && continue
      ip -n "$n" route replace "$cidr" via "$ip" dev eth0
    done
    ip -n "$n" -4 route show dev eth0 | awk '$1 ~ /^10\.244\./ {print $1}' | while read -r cidr; do
      printf '%s\n' "${want[@]}" | grep -v " $n\$" | grep -q "^$cidr " || ip -n "$n" route del "$cidr" dev eth0 2>/dev/null || true
    done
  done
}

# ---------------------------------------------------------------- control plane


control_plane_up() {
  mkdir -p "$RUN/etcd" "$LOGS"; chmod 700 "$RUN/etcd"
  local cg=$CGROUP/control
  if ! curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; then
    spawn "$cg" "$LOGS/etcd.log" "" "$ETCD_BIN" --name gameday-cluster --data-dir "$RUN/etcd" \
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
      --initial-cluster "gameday-cluster=http://127.0.0.1:$((ETCD_PORT + 1))" --listen-metrics-urls "" \
      --quota-backend-bytes 2147483648 --snapshot-count 10000 >"$RUN/etcd.pid"
    wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  fi
  if ! curl -sfk "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    spawn "$cg" "$LOGS/kube-apiserver.log" "" "$BIN/kube-apiserver" \
      --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
      --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$HOST_IP" \
      --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
      --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
      --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
      --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
      --service-account-issuer https://kubernetes.default.svc.cluster.local \
      --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
      --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
      --allow-privileged=true --enable-aggregator-routing=true \
      --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
      --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
      --requestheader-allowed-names front-proxy-client --requestheader-extra-headers-prefix X-Remote-Extra- \
      --requestheader-group-headers X-Remote-Group --requestheader-username-headers X-Remote-User \
      --profiling=false --event-ttl 1h >"$RUN/kube-apiserver.pid"
    wait_for 90 kube-apiserver curl -sf --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz"
  fi
  if ! curl -sfk "https://127.0.0.1:10257/healthz" >/dev/null 2>&1; then
    spawn "$cg" "$LOGS/kube-controller-manager.log" "" "$BIN/kube-controller-manager" \
      --kubeconfig "$RUN/controller-manager.kubeconfig" \
      --authentication-kubeconfig "$RUN/controller-manager.kubeconfig" \
      --authorization-kubeconfig "$RUN/controller-manager.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false --cluster-name gameday-local \
      --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
      --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
      --use-service-account-credentials=true \
      --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
      --service-cluster-ip-range "$SERVICE_CIDR" \
      --enable-hostpath-provisioner=true --profiling=false >"$RUN/kube-controller-manager.pid"
  fi
  if ! curl -sfk "https://127.0.0.1:10259/healthz" >/dev/null 2>&1; then
    spawn "$cg" "$LOGS/kube-scheduler.log" "" "$BIN/kube-scheduler" \
      --kubeconfig "$RUN/scheduler.kubeconfig" \
      --authentication-kubeconfig "$RUN/scheduler.kubeconfig" \
      --authorization-kubeconfig "$RUN/scheduler.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false >"$RUN/kube-scheduler.pid"
  fi
  wait_for 60 kube-controller-manager curl -sfk "https://127.0.0.1:10257/healthz"
  wait_for 60 kube-scheduler curl -sfk "https://127.0.0.1:10259/healthz"
}

# ---------------------------------------------------------------- load balancer

haproxy_config() {
  local n
  cat <<EOF
# Written by scripts/cluster.sh: the cluster's load balancer. Each node's
# NodePort $WEB_NODE_PORT (Service web), health-checked on the node's
# kube-proxy (/healthz on 10256), as a cloud load balancer checks nodes.
global
    pidfile $RUN/haproxy.pid
    stats socket $RUN/haproxy.sock mode 600 level admin
    # two descriptors a connection, under this machine's hard limit (root
    # may not raise it here: no CAP_SYS_RESOURCE)
    maxconn $(( ($(ulimit -Hn) - 100) / 2 > 20000 ? 20000 : ($(ulimit -Hn) - 100) / 2 ))
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 10s
    retries 2
    option redispatch
frontend entry
    bind 127.0.0.1:$ENTRY_PORT
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check port 10256 inter 2s fall 2 rise 2
EOF
  for n in "$RUN"/nodes/*/; do
    n=${n%/}
    [ -f "$n/podcidr" ] && [ -e "/run/netns/$(basename "$n")" ] || continue
    echo "    server $(basename "$n") $(cat "$n/ip"):$WEB_NODE_PORT"
  done
}

haproxy_sync() {
  mkdir -p "$LOGS"
  haproxy_config > "$RUN/haproxy.cfg.new"
  haproxy -c -q -f "$RUN/haproxy.cfg.new" || die "haproxy rejected $RUN/haproxy.cfg.new"
  if cmp -s "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg" 2>/dev/null && haproxy_running; then
    rm -f "$RUN/haproxy.cfg.new"; return 0
  fi
  mv "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg"
  if haproxy_running; then
    kill -USR2 "$(cat "$RUN/haproxy.master.pid")"
  else
    spawn "$CGROUP/control" "$LOGS/haproxy.log" "" haproxy -W -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.master.pid"
    wait_for 10 "haproxy on 127.0.0.1:$ENTRY_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$ENTRY_PORT"
  fi
}

haproxy_running() { [ -f "$RUN/haproxy.master.pid" ] && kill -0 "$(cat "$RUN/haproxy.master.pid")" 2>/dev/null; }

# ---------------------------------------------------------------- nodes

node_ns() { echo "--mount=$RUN/ns/$1 --net=/run/netns/$1"; }

next_index() {
  local i
  i=$(( $(cat "$RUN/next-index" 2>/dev/null || echo 1) ))
  echo $((i + 1)) > "$RUN/next-index"
  echo "$i"
}

# Start one node: namespaces, containerd, images, kubelet, kube-proxy.
node_up() { # ZONE [INDEX]
  local zone=$1 index=${2:-$(next_index)}
  local name=gameday-$zone-$index ip=$NODE_PREFIX.$((10 + index)) N=$RUN/nodes/gameday-$zone-$index
  local cg=$CGROUP/$name
  [ "$index" -lt 240 ] || die "node index $index is past the node network's end"
  mkdir -p "$N/varlib" "$N/varlog" "$N/cni" "$LOGS"
  echo "$zone" > "$N/zone"; echo "$ip" > "$N/ip"; echo "$index" > "$N/index"
  say "node $name (zone $zone, $ip) starting"

  # certificates: the kubelet's client (Node authorizer) and serving ones
  cert "node-$name" "system:node:$name" system:nodes ""
  cert "node-$name-serving" "$name" "" "DNS:$name,IP:$ip"
  kubeconfig "$N/kubelet.kubeconfig" "node-$name" "https://$HOST_IP:$API_PORT"

  # network namespace, joined to the host bridge by a veth
  if [ ! -e "/run/netns/$name" ]; then
    ip netns add "$name"
    ip link add "gdcv$index" type veth peer name eth0 netns "$name"
    ip link set "gdcv$index" master "$BRIDGE" up
    ip -n "$name" addr add "$ip/24" dev eth0
    ip -n "$name" link set lo up
    ip -n "$name" link set eth0 up
    # Service addresses: a route for the node's own processes (kube-proxy
    # DNATs them before they leave); no default route, nothing leaves.
    ip -n "$name" route add "$SERVICE_CIDR" via "$HOST_IP" dev eth0
    ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$name" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  fi

  # mount namespace: /var/lib, /var/log and /run of its own
  mkdir -p "$RUN/ns"
  if ! mountpoint -q "$RUN/ns"; then mount --bind "$RUN/ns" "$RUN/ns"; mount --make-private "$RUN/ns"; fi
  if ! mountpoint -q "$RUN/ns/$name" 2>/dev/null; then
    touch "$RUN/ns/$name"
    unshare --mount="$RUN/ns/$name" --propagation slave sh -c "
      mount --bind '$N/varlib' /var/lib && mount --bind '$N/varlog' /var/log &&
      mount -t tmpfs -o mode=0755,size=256m gameday-node-run /run"
  fi

  # containerd
  cat > "$N/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$N/containerd.sock"
[ttrpc]
  address = "$N/containerd.sock.ttrpc"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process
  # may lower its OOM score below its parent's: containers get at least
  # containerd's (0) instead of the kubelet's -998 for the pause container.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni"
    max_conf_num = 1
EOF
  if ! ctr -a "$N/containerd.sock" version >/dev/null 2>&1; then
    spawn "$cg/system" "$LOGS/$name-containerd.log" "nsenter $(node_ns "$name") --" \
      containerd --config "$N/containerd.toml" >"$N/containerd.pid"
    wait_for 30 "containerd on $name" ctr -a "$N/containerd.sock" version
  fi

  # the images, as a registry would have given them
  local tar
  for tar in $(image_archives); do
    ctr -a "$N/containerd.sock" -n k8s.io images import "$tar" >/dev/null ||
      die "importing $tar into $name failed"
  done

  # kubelet
  cat > "$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI/ca.crt }
authorization: { mode: Webhook }
tlsCertFile: $PKI/node-$name-serving.crt
tlsPrivateKeyFile: $PKI/node-$name-serving.key
containerRuntimeEndpoint: unix://$N/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$cg
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
providerID: gameday-cluster://$REGION/$zone/$name
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  nodefs.inodesFree: 2%
  imagefs.available: 2%
serializeImagePulls: false
maxPods: 110
shutdownGracePeriod: 0s
EOF
  if ! nsenter --net="/run/netns/$name" curl -sf http://127.0.0.1:10248/healthz >/dev/null 2>&1; then
    spawn "$cg/system" "$LOGS/$name-kubelet.log" "nsenter $(node_ns "$name") --" \
      "$BIN/kubelet" --config "$N/kubelet.yaml" --kubeconfig "$N/kubelet.kubeconfig" \
      --hostname-override "$name" --node-ip "$ip" --root-dir /var/lib/kubelet --v 1 \
      --node-labels "topology.kubernetes.io/zone=$zone,topology.kubernetes.io/region=$REGION" >"$N/kubelet.pid"
  fi

  # kube-proxy (iptables, in the node's network namespace)
  cat > "$N/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $RUN/kube-proxy.kubeconfig }
hostnameOverride: $name
bindAddress: $ip
healthzBindAddress: $ip:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: $POD_CIDR
detectLocalMode: ClusterCIDR
conntrack: { maxPerCore: 0, min: 0 }
EOF
  if ! nsenter --net="/run/netns/$name" curl -s -o /dev/null "http://$ip:10256/healthz" 2>/dev/null; then
    spawn "$cg/system" "$LOGS/$name-kube-proxy.log" "nsenter $(node_ns "$name") --" \
      "$BIN/kube-proxy" --config "$N/kube-proxy.yaml" >"$N/kube-proxy.pid"
  fi
}

# After a node registered: its pod CIDR (from the controller manager's node
# IPAM) becomes its CNI bridge's range and a route everywhere.
node_network() { # NAME
  local name=$1 N=$RUN/nodes/$1 cidr="" i
  for i in $(seq 240); do
    cidr=$(kc get node "$name" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null || true)
    [ -n "$cidr" ] && break
    sleep 0.5
  done
  [ -n "$cidr" ] || die "node $name has no pod CIDR after 120s (kubelet log: $LOGS/$name-kubelet.log)"
  cat > "$N/cni/10-gameday.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "gameday-$name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$cidr" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  echo "$cidr" > "$N/podcidr"
}

live_nodes() {
  local n
  for n in "$RUN"/nodes/*/; do
    n=${n%/}; n=$(basename "$n")
    [ -e "/run/netns/$n" ] && echo "$n"
  done
  return 0
}

wait_nodes_ready() { # SECONDS NAMES...
  local limit=$1 i n ready; shift
  for ((i = 0; i < limit; i += 2)); do
    ready=1
    for n in "$@"; do
      [ "$(kc get node "$n" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] || ready=0
    done
    [ $ready = 1 ] && return 0
    sleep 2
  done
  die "nodes not Ready after ${limit}s: $* (see $LOGS/<node>-kubelet.log)"
}

# Lose a node: everything in its cgroup gets SIGKILL at once, then its
# namespaces and its disk go. Nothing is drained and the Node object stays.
node_kill() { # NAME
  local name=$1 N=$RUN/nodes/$1
  cgroup_kill "$CGROUP/$name"
  if mountpoint -q "$RUN/ns/$name" 2>/dev/null; then umount "$RUN/ns/$name" || umount -l "$RUN/ns/$name"; fi
  rm -f "$RUN/ns/$name"
  [ -e "/run/netns/$name" ] && ip netns del "$name"
  ip link del "gdcv$(cat "$N/index" 2>/dev/null || echo x)" 2>/dev/null || true
  cgroup_remove "$CGROUP/$name"
  rm -rf "$N"
}

# ---------------------------------------------------------------- add-ons

render() { # FILE
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@METRICS_SERVER_IMAGE@|$METRICS_SERVER_IMAGE|g" \
      -e "s|@DNS_IP@|$DNS_IP|g" "$1"
}

addons_up() {
  local f
  for f in storage coredns metrics-server; do
    render "$CLDIR/addons/$f.yaml" | kc apply --server-side --force-conflicts --field-manager gameday-cluster -f - >/dev/null
  done
}

addons_ready() {
  kc -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null &&
  kc -n kube-system rollout status deployment/metrics-server --timeout=180s >/dev/null &&
  wait_for 120 "the metrics API" kc get --raw /apis/metrics.k8s.io/v1beta1/nodes
}

# ---------------------------------------------------------------- kubeconfig

merge_kubeconfig() {
  local home=${HOME:-/root} target
  target=$home/.kube/config
  # ~/.kube made here (kubectl adds its cache to it) goes again at down
  [ -d "$home/.kube" ] || { mkdir -p "$home/.kube"; touch "$home/.kube/.gameday-cluster-made-dir"; }
  if [ -f "$target" ]; then
    KUBECONFIG=$KUBECONFIG_FILE:$target "$BIN/kubectl" config view --flatten --raw > "$target.gameday-new"
    # keep the user's current context if they had one
    local current; current=$("$BIN/kubectl" --kubeconfig "$target" config current-context 2>/dev/null || true)
    [ -n "$current" ] && "$BIN/kubectl" --kubeconfig "$target.gameday-new" config use-context "$current" >/dev/null
    mv "$target.gameday-new" "$target"
  else
    cp "$KUBECONFIG_FILE" "$target"
    touch "$home/.kube/.gameday-cluster-created"
  fi
  chmod 600 "$target"
  if [ -w /usr/local/bin ] && { [ ! -e /usr/local/bin/kubectl ] || [ -L /usr/local/bin/kubectl ]; }; then
    ln -sfn "$BIN/kubectl" /usr/local/bin/kubectl
  fi
}

unmerge_kubeconfig() {
  local home=${HOME:-/root} target
  target=$home/.kube/config
  if [ -f "$home/.kube/.gameday-cluster-made-dir" ] && [ -f "$home/.kube/.gameday-cluster-created" ]; then
    rm -rf "$home/.kube"
  elif [ -f "$home/.kube/.gameday-cluster-created" ]; then
    rm -f "$target" "$home/.kube/.gameday-cluster-created"
  elif [ -f "$target" ] && [ -x "$BIN/kubectl" ]; then
    local k="$BIN/kubectl --kubeconfig $target"
    if [ "$($k config current-context 2>/dev/null)" = "$CONTEXT" ]; then $k config unset current-context >/dev/null; fi
    $k config delete-context "$CONTEXT" >/dev/null 2>&1 || true
    $k config delete-cluster "$CONTEXT" >/dev/null 2>&1 || true
    $k config delete-user "$CONTEXT" >/dev/null 2>&1 || true
  fi
  if [ -L /usr/local/bin/kubectl ] && [ "$(readlink /usr/local/bin/kubectl)" = "$BIN/kubectl" ]; then
    rm -f /usr/local/bin/kubectl
  fi
}

# ---------------------------------------------------------------- commands

host_sysctls="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

save_sysctls() {
  # the kubelet tunes these host-wide; down puts them back
  [ -f "$CACHE/host-sysctl.orig" ] && return 0
  local s
  for s in $host_sysctls; do echo "$s=$(sysctl -n "$s")"; done > "$CACHE/host-sysctl.orig"
}

restore_sysctls() {
  [ -f "$CACHE/host-sysctl.orig" ] || return 0
  sysctl -qw $(cat "$CACHE/host-sysctl.orig") >/dev/null || true
}

cmd_up() {
  need_root
  local start=$SECONDS z names=() n built
  build
  built=$((SECONDS - start))
  mkdir -p "$RUN" "$LOGS"
  save_sysctls
  pki
  host_net_up
  cgroup_make "$CGROUP/control"
  control_plane_up
  if [ -z "$(live_nodes)" ]; then
    local starting=()
    for z in $ZONES; do n=$(next_index); node_up "$z" "$n" & starting+=($!); done
    wait_all_or_die "${starting[@]}"
  fi
  for n in $(live_nodes); do names+=("$n"); [ -f "$RUN/nodes/$n/podcidr" ] || node_network "$n"; done
  sync_routes
  haproxy_sync
  addons_up
  merge_kubeconfig
  wait_nodes_ready 180 "${names[@]}"
  addons_ready
  say "up in $((SECONDS - start))s (build ${built}s, start $((SECONDS - start - built))s)"
  cmd_status
}

wait_all_or_die() { # PIDS...
  local failed=0 pid
  for pid in "$@"; do wait "$pid" || failed=1; done
  [ $failed = 0 ] || die "a node did not start (logs in $LOGS)"
}

cmd_down() {
  need_root
  say "stopping the cluster"
  unmerge_kubeconfig
  # every process: control plane, load balancer, node groups, nodes
  local n
  for n in $(ls "$RUN/nodes" 2>/dev/null); do node_kill "$n"; done
  cgroup_kill "$CGROUP"
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^gameday-' || true); do ip netns del "$n"; done
  if [ -d "$RUN/ns" ]; then
    for n in "$RUN"/ns/*; do [ -e "$n" ] && { umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null || true; }; done
    mountpoint -q "$RUN/ns" && umount "$RUN/ns"
  fi
  # mounts anything left under the run directory (none expected)
  { grep " $RUN" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" || true; done
  cgroup_remove "$CGROUP"
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  { ip link show | grep -o 'gdcv[0-9]*' || true; } | sort -u | while read -r v; do ip link del "$v" 2>/dev/null || true; done
  ip route del unreachable "$POD_CIDR" 2>/dev/null || true
  ip route del unreachable "$SERVICE_CIDR" 2>/dev/null || true
  while iptables -w -D FORWARD -j "$FW_CHAIN" 2>/dev/null; do :; done
  if iptables -w -nL "$FW_CHAIN" >/dev/null 2>&1; then iptables -w -F "$FW_CHAIN"; iptables -w -X "$FW_CHAIN"; fi
  restore_sysctls
  # the volumes (the host-path provisioner's directories) and all state
  rm -rf /tmp/hostpath_pv "$RUN" "$KUBECONFIG_FILE"
  say "down"
}

cmd_check_clean() {
  local left=()
  local pids; pids=$(cgroup_pids "$CGROUP" | tr '\n' ' ')
  [ -n "${pids// /}" ] && left+=("processes in cgroup $CGROUP: $pids")
  local p
  # (a zombie, already dead and waiting for PID 1 to reap it, is not counted)
  for p in $({ pgrep -x 'kube-apiserver|kube-controller|kube-scheduler|kubelet|kube-proxy|coredns|metrics-server' 2>/dev/null
               pgrep -f "$RUN|$CACHE/bin" 2>/dev/null; } | sort -un); do
    [ "$p" = $$ ] && continue
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && continue
    [ -e "/proc/$p" ] || continue
    left+=("process $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-120)")
  done
  local c
  for c in $(controllers); do [ -d "$c/$CGROUP" ] && left+=("cgroup $c/$CGROUP"); done
  while read -r m; do left+=("mount $m"); done < <(awk -v r="$RUN" -v c="$CACHE" '$2 ~ "^"r || $2 ~ "^"c || $1 == "gameday-node-run" || $2 ~ "^/tmp/hostpath_pv" {print $2}' /proc/self/mounts)
  while read -r n; do [ -n "$n" ] && left+=("network namespace $n"); done < <(ip netns list 2>/dev/null | awk '$1 ~ /^gameday-/ {print $1}')
  ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
  while read -r v; do [ -n "$v" ] && left+=("interface $v"); done < <(ip -o link show | { grep -o 'gdcv[0-9]*' || true; } | sort -u)
  while read -r r; do [ -n "$r" ] && left+=("route $r"); done < <(ip route show | grep -E "^(unreachable )?(10\.244\.|10\.96\.)|$BRIDGE" || true)
  while read -r r; do [ -n "$r" ] && left+=("iptables $r"); done < <(iptables-save 2>/dev/null | grep -E "$FW_CHAIN|$BRIDGE|$NODE_PREFIX\." || true)
  [ -e /tmp/hostpath_pv ] && left+=("volumes /tmp/hostpath_pv")
  [ -e "$RUN" ] && left+=("run directory $RUN")
  if [ -f "${HOME:-/root}/.kube/config" ] && grep -q "name: $CONTEXT\$" "${HOME:-/root}/.kube/config"; then
    left+=("context $CONTEXT in ${HOME:-/root}/.kube/config")
  fi
  if [ -f "$CACHE/host-sysctl.orig" ]; then
    local kv
    for kv in $(cat "$CACHE/host-sysctl.orig"); do
      [ "$(sysctl -n "${kv%%=*}")" = "${kv#*=}" ] || left+=("sysctl ${kv%%=*} is $(sysctl -n "${kv%%=*}"), was ${kv#*=}")
    done
  fi
  if [ ${#left[@]} -gt 0 ]; then
    printf 'left behind: %s\n' "${left[@]}"
    return 1
  fi
  echo "clean: no process, mount, namespace, interface, route, iptables rule or cgroup of the cluster"
}

cmd_status() {
  if ! curl -sf --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    echo "cluster: not running (scripts/cluster.sh up)"; return 1
  fi
  echo "context:   $CONTEXT (kubeconfig $KUBECONFIG_FILE, merged into ${HOME:-/root}/.kube/config)"
  echo "api:       https://127.0.0.1:$API_PORT  Kubernetes $KUBERNETES_VERSION"
  echo "entry URL: http://127.0.0.1:$ENTRY_PORT  (HAProxy -> NodePort $WEB_NODE_PORT of Service web on every node)"
  echo
  kc get nodes -L topology.kubernetes.io/zone -o wide 2>/dev/null |
    awk '{printf "%-16s %-9s %-6s %-12s %-10s\n", $1, $2, $NF, $6, $5}'
  echo
  kc -n kube-system get deployments coredns metrics-server 2>/dev/null || true
  kc get storageclass 2>/dev/null || true
  echo
  echo "load balancer (haproxy):"
  if [ -S "$RUN/haproxy.sock" ] && command -v socat >/dev/null; then
    echo "show stat" | socat - "UNIX-CONNECT:$RUN/haproxy.sock" | awk -F, '$1=="nodes" && $2!="BACKEND" {print "  "$2" "$18}'
  else
    grep '^    server' "$RUN/haproxy.cfg" 2>/dev/null | awk '{print "  "$2" "$3}'
  fi
}

cmd_terminate() {
  need_root
  local name=${1:?terminate NODE}
  [ -d "$RUN/nodes/$name" ] || die "no node $name here (nodes: $(live_nodes | tr '\n' ' '))"
  local zone; zone=$(cat "$RUN/nodes/$name/zone")
  say "terminating $name (zone $zone): SIGKILL to its kubelet, containerd, shims and containers"
  node_kill "$name"
  sync_routes
  haproxy_sync
  # The node group: a replacement with a new name boots in the same zone;
  # the cloud's node lifecycle deletes the lost Node once it is NotReady.
  local at; at=$(date +%s)
  spawn "$CGROUP/control" "$LOGS/node-group.log" "" "$HERE/cluster.sh" _replace "$zone" "$((at + BOOT_DELAY))" >/dev/null
  if [ "$DELETE_LOST_NODES" = true ]; then
    spawn "$CGROUP/control" "$LOGS/node-group.log" "" "$HERE/cluster.sh" _forget "$name" >/dev/null
  fi
  say "a replacement joins zone $zone in ${BOOT_DELAY}s (log: $LOGS/node-group.log)"
}

cmd_replace() { # ZONE AT
  local zone=$1 at=$2 now index name
  now=$(date +%s)
  [ "$at" -gt "$now" ] && sleep $((at - now))
  index=$(next_index)
  name=gameday-$zone-$index
  echo "$(date -Is) launching $name in zone $zone"
  node_up "$zone" "$index"
  node_network "$name"
  sync_routes
  haproxy_sync
  wait_nodes_ready 180 "$name"
  echo "$(date -Is) $name Ready"
}

cmd_forget() { # NAME: as a cloud controller manager's node lifecycle does
  local name=$1 i status
  for i in $(seq 300); do
    status=$(kc get node "$name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || echo gone)
    case $status in
      gone) return 0 ;;
      True) sleep 2 ;;
      *) echo "$(date -Is) $name is NotReady ($status) and its instance is gone: deleting the Node"
         kc delete node "$name" --wait=false; return 0 ;;
    esac
  done
}

cmd_shop_image() {
  need_root
  mkdir -p "$IMAGES"
  if shop_image_current "$(shop_bin_dir "${1:-}")"; then say "$SHOP_IMAGE is up to date"; else build_shop_image "${1:-}"; fi
  local n
  for n in $(live_nodes); do
    ctr -a "$RUN/nodes/$n/containerd.sock" -n k8s.io images import "$IMAGES/shop.tar" >/dev/null
    say "imported $SHOP_IMAGE into $n"
  done
}

cmd_env() {
  cat <<EOF
KUBERNETES_VERSION=$KUBERNETES_VERSION
ETCD_VERSION=$ETCD_VERSION
COREDNS_VERSION=$COREDNS_VERSION
METRICS_SERVER_VERSION=$METRICS_SERVER_VERSION
PAUSE_VERSION=$PAUSE_VERSION
CACHE=$CACHE
KUBECONFIG=$KUBECONFIG_FILE
CONTEXT=$CONTEXT
KUBECTL=$BIN/kubectl
ENTRY_URL=http://127.0.0.1:$ENTRY_PORT
SHOP_IMAGE=gameday-shop:0.1.0
MARIADB_IMAGE=$MARIADB_IMAGE
REDIS_IMAGE=$REDIS_IMAGE
RABBITMQ_IMAGE=$RABBITMQ_IMAGE
PROVIDER_ID=gameday-cluster://$REGION/<zone>/<node>
EOF
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  terminate) shift; cmd_terminate "$@" ;;
  check-clean) cmd_check_clean ;;
  build|images) build ;;
  packages) missing=$(missing_host_packages)
    # shellcheck disable=SC2086
    if [ -n "$missing" ]; then host_packages $missing; else say "the host packages are installed"; fi ;;
  shop-image) shift; cmd_shop_image "$@" ;;
  kubeconfig)
    echo "$KUBECONFIG_FILE (context $CONTEXT; up merges it into ${HOME:-/root}/.kube/config)"
    echo "export KUBECONFIG=$KUBECONFIG_FILE   # to use it alone" ;;
  env) cmd_env ;;
  pin) pin ;;
  _replace) shift; cmd_replace "$@" ;;
  _forget) shift; cmd_forget "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 2 ;;
esac

# podman-env.sh: what deploy/run-local.sh and deploy/run-local-cluster.sh share — podman and
# buildah as this machine runs them (runc, explicit ulimits, storage under the cache), and the
# shoal image built from build/'s binaries on a debootstrapped bookworm base.
#
#   cd "$(dirname "$0")/.." && source deploy/podman-env.sh   # sets ROOT, CACHE, WORK
#   build_image                                                # localhost/shoal:latest
#
# Run as root. SHOAL_CACHE (default /var/cache/shoal) keeps the base image between runs.
# shellcheck shell=bash
ROOT=$(pwd)
CACHE=${SHOAL_CACHE:-/var/cache/shoal}
# The base image comes from the mirror this machine's apt uses (its bookworm/main source, in either
# sources format, as apt itself reads them); DEBIAN_MIRROR overrides it.
machine_mirror() {
  { apt-cache policy 2>/dev/null || true; } |
    awk '$3 == "bookworm/main" && $2 ~ /^https?:/ { print $2; exit }'
}
MIRROR=${DEBIAN_MIRROR:-$(machine_mirror)}
WORK=$(mktemp -d /tmp/shoal-kube.XXXXXX)
start=$(date +%s)

# podman 4.3 here: crun fails on this cgroup setup (runc works), and containers need explicit
# ulimits (no higher than this shell's hard limits); the storage lives under the cache so images
# survive between runs.
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
STORE=(--root "$CACHE/storage" --runroot /run/shoal-containers --storage-driver overlay)
podman() { command podman "${STORE[@]}" "$@"; }
buildah() { command buildah "${STORE[@]}" "$@"; }

log() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
fail() { echo "${0##*/}: FAIL: $*" >&2; exit 1; }

# The tools, the base image (cached) and the shoal image (layers cached).
build_image() {
  log "tools"
  tools=(podman buildah runc catatonit debootstrap)
  missing=()
  for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi

  log "base image"
  if ! podman image exists localhost/debian:bookworm-slim; then
    if [ ! -f "$CACHE/bookworm-minbase.tar" ]; then
      [[ -n $MIRROR ]] || { echo "${0##*/}: no bookworm/main source in apt's sources; set DEBIAN_MIRROR" >&2; exit 1; }
      rm -rf "$CACHE/rootfs"
      debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$CACHE/debootstrap.log"
      tar -C "$CACHE/rootfs" -cf "$CACHE/bookworm-minbase.tar" .
    fi
    podman import "$CACHE/bookworm-minbase.tar" localhost/debian:bookworm-slim >/dev/null
  fi

  log "image (from build/)"
  [ -x build/service/shoald ] || fail "build/service/shoald is missing: run scripts/dev.sh build"
  buildah bud --isolation chroot --pull=never --layers \
    --build-arg BASE=localhost/debian:bookworm-slim \
    -f deploy/Dockerfile --target prebuilt -t localhost/shoal:latest . >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; fail "image build"; }
}

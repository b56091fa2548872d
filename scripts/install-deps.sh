#!/usr/bin/env bash
# Installs what Shoal needs from Debian 12's packages, and nothing when it is all there already.
# Run as root (or through sudo). Idempotent.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  # gRPC, protobuf, abseil (the runtime and the service)
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  grpc-proto
  # TLS and token hashes (libcrypto), and the throwaway CAs of tests and the local deploy run
  libssl-dev openssl
  # replication: Raft (the library under dqlite) on libuv
  libraft-dev libuv1-dev
  # shoald's allocator and its metrics endpoint
  libjemalloc-dev prometheus-cpp-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the Python and Node clients and their tests
  python3-grpcio python3-protobuf nodejs
  # the Python package, installed as users do (a venv, pip, setuptools' build backend)
  python3-venv python3-pip python3-setuptools python3-wheel
  # the deployment checks (deploy/check.sh)
  yamllint
  # sanitizers' runtimes for clang, and clang for the thread-safety check
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm (its own package); other builds of nodejs bundle it, and
# Debian's npm would conflict with them.
command -v npm >/dev/null || missing+=(npm)
# deploy/check.sh renders the manifests with kubectl: Debian's (kubernetes-client, 1.20) where
# the machine has none. It also unpacks Debian's beside its tools when PATH has another.
command -v kubectl >/dev/null || missing+=(kubernetes-client)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Shoal's developer entry point.
#
#   scripts/dev.sh run     install what is missing, build (Release), start shoald on 127.0.0.1:50051
#                          (extra arguments go to shoald, e.g. --listen=0.0.0.0:50051)
#   scripts/dev.sh test    install what is missing, build and run the whole test suite:
#                          Release, ASan+UBSan, TSan, clang's thread-safety analysis and the
#                          fuzz targets (FUZZ_SECONDS of fuzzing, default 200), and the
#                          deployment (manifests checked, the image run with podman)
#   scripts/dev.sh soak    the soak test (Release): mixed load for a fixed count of operations
#                          (tests/e2e/soak.cc; arguments: operations, RSS bound in MiB)
#   scripts/dev.sh build   build the Release tree only
#
# Build trees live under build/ (release), build-asan/, build-tsan/ and build-clang/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}
# Fuzzing's share of the suite, in seconds, across all targets (tests/fuzz/run.sh).
FUZZ_SECONDS=${FUZZ_SECONDS:-200}

log() { printf '\n== %s\n' "$*"; }

deps() {
  if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
    scripts/install-deps.sh
  fi
  # The Node client's packages, as its lockfile pins them (only when the lockfile changed).
  if [ ! -f clients/node/node_modules/.package-lock.json ] ||
    [ clients/node/package-lock.json -nt clients/node/node_modules/.package-lock.json ]; then
    npm ci --prefix clients/node --no-audit --no-fund --loglevel=error
  fi
}

configure() {  # dir, extra cmake args...
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
}

build_release() {
  configure build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$JOBS"
}

test_release() {
  log "Release: build and run every test"
  build_release
  ctest --test-dir build --output-on-failure -j 1
}

test_asan() {
  log "ASan+UBSan: runtime, service and end-to-end tests (shoald itself runs sanitized)"
  configure build-asan -DCMAKE_BUILD_TYPE=Debug -DSHOAL_SANITIZE=address -DSHOAL_BUILD_BENCHMARKS=OFF
  cmake --build build-asan -j "$JOBS"
  ctest --test-dir build-asan --output-on-failure -j 1
}

test_tsan() {
  log "TSan: runtime and store tests"
  configure build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_SANITIZE=thread \
    -DSHOAL_BUILD_BENCHMARKS=OFF
  cmake --build build-tsan -j "$JOBS" --target runtime_tests service_tests
  ctest --test-dir build-tsan --output-on-failure -j 1 -R '^(runtime|service)_tests$'
}

# One clang tree for both: clang's thread-safety analysis over everything that takes a lock
# (compile only), and the libFuzzer targets (tests/fuzz), built with ASan+UBSan at -O1.
test_clang() {
  log "clang: -Wthread-safety (compile only), then the fuzz targets: their corpora, then ${FUZZ_SECONDS} s of fuzzing"
  configure build-clang -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g -O1" \
    -DCMAKE_CXX_COMPILER=clang++ -DSHOAL_THREAD_SAFETY=ON -DSHOAL_SANITIZE=fuzz \
    -DSHOAL_BUILD_BENCHMARKS=OFF
  cmake --build build-clang -j "$JOBS" --target shoal_thread_safety_check shoal_fuzz
  ctest --test-dir build-clang --output-on-failure -j 1 -L fuzz
  tests/fuzz/run.sh build-clang "$FUZZ_SECONDS"
}

test_deploy() {
  log "deploy: manifests and Dockerfile checked offline, then the dev and cluster overlays run with podman"
  deploy/check.sh
  deploy/run-local.sh
  deploy/run-local-cluster.sh
}

case "${1:-}" in
  run)
    deps
    build_release
    data_dir=${SHOAL_DATA_DIR:-/var/lib/shoal}
    log "starting shoald, durable in $data_dir (Ctrl-C stops it; SHOAL_DATA_DIR picks another)"
    exec build/service/shoald --data_dir="$data_dir" "${@:2}"
    ;;
  build)
    deps
    build_release
    ;;
  test)
    deps
    start=$(date +%s)
    test_release
    test_asan
    test_tsan
    test_clang
    test_deploy
    log "all tests passed in $(( $(date +%s) - start )) s"
    ;;
  soak)
    deps
    build_release
    cmake --build build -j "$JOBS" --target soak
    build/tests/e2e/soak "${@:2}"
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac

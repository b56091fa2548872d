#!/usr/bin/env bash
# The C++ client as a user builds against it:
#   1. the tree configured for the client alone needs neither prometheus-cpp nor jemalloc;
#   2. `cmake --install` of a built tree gives headers, libraries, a CMake package and a
#      pkg-config file;
#   3. a project outside the tree builds with find_package(Shoal), another with pkg-config, and
#      both put and get through a real shoald.
#
#   tests/clients/cpp_package_test.sh BUILD_DIR      (a built tree: build/ for Release)
set -euo pipefail

build=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
shoald=$build/service/shoald
tmp=$(mktemp -d /tmp/shoal-cpp-package.XXXXXX)
pid=
cleanup() {
  [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL $*" >&2
  exit 1
}
# shellcheck source=tests/clients/start_shoald.sh
source "$(dirname "$0")/start_shoald.sh"

# 1. Client only: prometheus-cpp made unfindable, and nothing may look for jemalloc.
cmake -S "$root" -B "$tmp/client-only" -G Ninja -DSHOAL_BUILD_SERVICE=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_prometheus-cpp=ON >"$tmp/client-only.log" 2>&1 ||
  fail "the client-only configure failed: $(tail -20 "$tmp/client-only.log")"
grep -q "pkgcfg_lib_JEMALLOC\|^JEMALLOC_" "$tmp/client-only/CMakeCache.txt" && fail "the client-only configure looked for jemalloc"
grep -q "shoal_client" "$tmp/client-only/build.ninja" || fail "the client-only tree has no shoal_client"
grep -q "service/shoald" "$tmp/client-only/build.ninja" && fail "the client-only tree builds shoald"
echo "client-only configure: no prometheus-cpp, no jemalloc, shoal_client and no shoald"

# 2. Install.
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" ||
  fail "cmake --install failed: $(cat "$tmp/install.log")"
for f in include/shoal/clients/cpp/client.h include/shoal/runtime/task.h \
  include/shoal/shoal/v1/kv.grpc.pb.h lib/libshoal_client.a lib/cmake/Shoal/ShoalConfig.cmake \
  lib/pkgconfig/shoal.pc; do
  [[ -f $tmp/prefix/$f ]] || fail "the install lacks $f"
done
echo "cmake --install: headers, libraries, CMake package, pkg-config file"

# 3. Consumers.
mkdir -p "$tmp/consumer"
cat >"$tmp/consumer/main.cc" <<'CC'
#include <cstdio>
#include <string>

#include "clients/cpp/client.h"

int main(int argc, char** argv) {
  shoal::client::client kv({.target = argv[1]});
  const std::string key = argc > 2 ? argv[2] : "package/k";
  if (auto put = kv.put(key, "from a consumer"); !put.ok()) {
    std::fprintf(stderr, "put: %s\n", put.status().ToString().c_str());
    return 1;
  }
  auto got = kv.get(key);
  if (!got.ok() || !got->has_value()) return 1;
  std::printf("%s\n", (*got)->value().c_str());
  return 0;
}
CC
cat >"$tmp/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.22)
project(consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(Shoal 0.1 REQUIRED)
add_executable(consumer main.cc)
target_link_libraries(consumer PRIVATE Shoal::client)
CMAKE
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/consumer.log" 2>&1 ||
  fail "find_package(Shoal) failed: $(tail -20 "$tmp/consumer.log")"
cmake --build "$tmp/consumer/build" >>"$tmp/consumer.log" 2>&1 ||
  fail "the find_package consumer does not build: $(tail -30 "$tmp/consumer.log")"
# shellcheck disable=SC2046  # pkg-config's flags are words
PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig g++ -O1 -o "$tmp/consumer/with-pkg-config" \
  "$tmp/consumer/main.cc" $(PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig pkg-config --cflags --libs shoal) \
  2>"$tmp/pkg-config.log" || fail "the pkg-config consumer does not build: $(tail -30 "$tmp/pkg-config.log")"
echo "consumers built: find_package(Shoal) and pkg-config"

start_shoald "$shoald" "$tmp"
[[ $("$tmp/consumer/build/consumer" "$address" cmake/k) == "from a consumer" ]] ||
  fail "the find_package consumer did not read back its put"
[[ $("$tmp/consumer/with-pkg-config" "$address" pkg-config/k) == "from a consumer" ]] ||
  fail "the pkg-config consumer did not read back its put"
kill -TERM "$pid"
wait "$pid" || fail "shoald did not exit 0 on SIGTERM"
pid=
echo "PASS both consumers, built outside the tree, put and got through shoald"

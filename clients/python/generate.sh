#!/bin/sh
# Generates the Python modules for proto/shoal/v1 into OUTDIR, laid out as the package shoal.v1
# (namespace packages: put OUTDIR on sys.path, then `from shoal.v1 import kv_pb2`).
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}

mkdir -p "$out"
protoc -I "$root/proto" --python_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$plugin" \
  shoal/v1/kv.proto shoal/v1/admin.proto

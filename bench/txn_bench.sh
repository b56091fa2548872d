#!/usr/bin/env bash
# Txn throughput and latency next to plain Puts, on one shoald, interleaved rounds.
#   bench/txn_bench.sh [rounds] [seconds]
# txn_keys=1: a Txn with one compare and one increment (one shard);
# txn_keys=2: a transfer between two keys (two shards, 3 times in 4 with shoald's 4 shards).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
build/service/shoald --listen=127.0.0.1:0 --workers=2 >/tmp/txn-bench.out 2>/dev/null &
server=$!
trap 'kill -TERM $server; wait $server' EXIT
sleep 0.5
target=$(grep -o '127.0.0.1:[0-9]*' /tmp/txn-bench.out | head -1)
for r in $(seq 1 "$rounds"); do
  for what in "put" "txn --txn_keys=1" "txn --txn_keys=2"; do
    # shellcheck disable=SC2086
    line=$(build/clients/shoal-bench --target="$target" --mode=$what --keys=10000 \
      --duration="$seconds" --workers=2 2>/dev/null | tail -1)
    echo "round $r | $what | $line"
  done
done

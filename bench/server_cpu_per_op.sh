#!/usr/bin/env bash
# Server CPU per operation: runs shoal-bench against a shoald already running on --target and
# divides the CPU time shoald used meanwhile (from /proc) by the operations done.
#   bench/server_cpu_per_op.sh PID TARGET [shoal-bench flags...]
# e.g. build/service/shoald --listen=127.0.0.1:50061 --workers=1 &
#      bench/server_cpu_per_op.sh $! 127.0.0.1:50061 --mode=pipeline --pipeline_op=set \
#        --workers=1 --connections=2 --streams=8 --depth=16 --duration=5
set -euo pipefail
cd "$(dirname "$0")/.."
pid=$1 target=$2
shift 2
ticks() { awk '{print $14 + $15, $15}' "/proc/$pid/stat"; }
read -r before before_sys < <(ticks)
out=$(build/clients/shoal-bench --target="$target" --warmup=0 "$@" 2>/dev/null | tail -1)
read -r after after_sys < <(ticks)
ops=$(grep -o '"ops":[0-9]*' <<<"$out" | cut -d: -f2)
if [[ -z "$ops" || "$ops" == 0 ]]; then
  echo "shoal-bench did no operations against $target: $out" >&2
  exit 1
fi
hz=$(getconf CLK_TCK)
awk -v t=$((after - before)) -v s=$((after_sys - before_sys)) -v n="$ops" -v hz="$hz" \
  -v line="$out" 'BEGIN {
    printf "%s\nserver CPU per op: %.3f us (system %.3f us)\n", line, t / hz / n * 1e6,
      s / hz / n * 1e6 }'

#!/usr/bin/env bash
# Fuzzes every libFuzzer target of a SHOAL_SANITIZE=fuzz build for a share of a time budget.
#
#   tests/fuzz/run.sh <build dir> [seconds in all, default 200] [--merge]
#
# The committed corpora (tests/fuzz/corpus/<target>) are read, never written: what a run finds
# goes to a scratch directory, and with --merge the inputs that add coverage are merged into the
# committed corpora (commit them). A crash stops the run with the input's path; copy it into the
# target's corpus as a regression entry once it is fixed (the fuzz_<target>_corpus tests run every
# entry).
set -euo pipefail

build=${1:?usage: run.sh <build dir> [seconds] [--merge]}
budget=${2:-200}
merge=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
targets=(kv_calls pipeline_frame config store_model wal_files auth replica_entry)
share=$(( budget / ${#targets[@]} ))
scratch=$(mktemp -d /tmp/shoal-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# The largest input each target is given: a few calls, one frame, one config file, a short log.
declare -A max_len=([kv_calls]=8192 [pipeline_frame]=4096 [config]=4096 [store_model]=2048
  [wal_files]=4096 [auth]=512 [replica_entry]=1024)

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/${t}_fuzz"
  mkdir -p "$scratch/$t" "$scratch/crashes"
  echo "== fuzzing $t for ${share} s"
  if ! "$bin" -max_total_time="$share" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$scratch/crashes/$t-" \
      "$scratch/$t" "$here/corpus/$t" >"$scratch/$t.log" 2>&1; then
    tail -60 "$scratch/$t.log"
    mkdir -p /tmp/shoal-fuzz-crashes
    cp "$scratch"/crashes/* /tmp/shoal-fuzz-crashes/ 2>/dev/null || true
    echo "run.sh: $t failed; the input is in /tmp/shoal-fuzz-crashes (reproduce: $bin <file>)"
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$scratch/$t.log" | tail -2
  if [ "$merge" = "--merge" ]; then
    "$bin" -merge=1 -max_len="${max_len[$t]}" "$here/corpus/$t" "$scratch/$t" >/dev/null 2>&1
  fi
done
echo "run.sh: no target failed in ${budget} s"

# start_shoald BINARY DIR: sourced by the package tests. Starts shoald on ephemeral ports (gRPC
# and metrics) with its output in DIR, and waits, polling its first line (at most 10 s), until it
# says where it listens. Sets `pid` and `address`; calls the sourcing script's `fail` if shoald
# exits or stays silent.
start_shoald() {
  local binary=$1 dir=$2 line i
  : >"$dir/shoald.out"  # made before shoald starts, so that the first read finds it
  "$binary" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 >"$dir/shoald.out" \
    2>"$dir/shoald.err" &
  pid=$!
  address=
  for ((i = 0; i < 100; i++)); do
    line=
    IFS= read -r line <"$dir/shoald.out" || true
    if [[ $line == 'shoald listening on '* ]]; then
      address=${line#shoald listening on }
      return
    fi
    kill -0 "$pid" 2>/dev/null || fail "shoald did not start: $(cat "$dir/shoald.err")"
    sleep 0.1
  done
  fail "shoald printed no listening line within 10 s"
}

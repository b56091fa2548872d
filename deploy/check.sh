#!/usr/bin/env bash
# Offline checks of deploy/, no cluster needed:
#   - every overlay renders with Debian 12's kubectl (1.20: kustomize 2.0.3) and with the kubectl
#     on PATH when that is another (a current one), to the same objects (tools/same-objects.js);
#     its objects match the Kubernetes schemas with no
#     unknown field (tools/check-manifests.js), and the config file its pod would read is
#     accepted by shoald itself;
#   - yamllint, on the sources and on each rendering;
#   - the Grafana dashboard (grafana/shoal.json) queries only metrics a running shoald exports;
#   - every case in testdata/broken makes check-manifests.js fail, for the expected reason;
#   - the Dockerfile lints clean (dockerfilelint).
#
#   deploy/check.sh              (from any directory)
#   SHOALD=/path/to/shoald deploy/check.sh     (default: build/service/shoald)
set -euo pipefail

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$deploy")
tools=$deploy/tools
shoald=${SHOALD:-$repo/build/service/shoald}
shoalctl=${SHOALCTL:-$repo/build/clients/cli/shoalctl}
yamllint_config=$tools/yamllint.yaml

fail() {
  echo "check.sh: $*" >&2
  exit 1
}

for tool in kubectl yamllint node npm apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
[[ -x $shoald ]] || fail "no shoald at $shoald: build it (scripts/dev.sh) or set SHOALD"
[[ -x $shoalctl ]] || fail "no shoalctl at $shoalctl: build it (scripts/dev.sh) or set SHOALCTL"

tmp=$(mktemp -d)
shoald_pid=
replica_pid=
cleanup() {
  local pid
  for pid in $shoald_pid $replica_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# npm writes node_modules/.package-lock.json on every install: older than the lockfile means
# the lockfile changed since.
if [[ ! $tools/node_modules/.package-lock.json -nt $tools/package-lock.json ]]; then
  echo "== npm ci (deploy/tools)"
  # No dependency needs an install script; running none is one less way for a package to act.
  npm ci --prefix "$tools" --no-audit --no-fund --ignore-scripts
fi

# Debian 12's kubectl (package kubernetes-client), the oldest the overlays must render with. When
# the kubectl on PATH is another one (install-deps installs Debian's only where there is none),
# Debian's is unpacked beside the tools, not installed: it would replace the one on PATH.
find_debian_kubectl() {
  local dir=$tools/kubectl-debian
  if dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null | grep -q "install ok installed"; then
    debian_kubectl=$(command -v kubectl)
    return
  fi
  if [[ ! -x $dir/usr/bin/kubectl ]]; then
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get download -qq kubernetes-client 2>/dev/null) ||
      fail "cannot download Debian's kubernetes-client (apt-get download)"
    dpkg-deb -x "$dir"/kubernetes-client_*.deb "$dir"
  fi
  debian_kubectl=$dir/usr/bin/kubectl
}
find_debian_kubectl
kubectls=("$debian_kubectl")
[[ $(command -v kubectl) == "${kubectls[0]}" ]] || kubectls+=("$(command -v kubectl)")
for k in "${kubectls[@]}"; do
  echo "kubectl: $k ($("$k" version --client 2>/dev/null | grep -o 'v1\.[0-9]*\.[0-9]*' | head -n 1))"
done

# Renders an overlay with every kubectl to dir/out.yaml, and fails unless all give the same
# objects. Current kubectls warn on stderr of the fields Debian's needs; only failures are shown.
render() {  # overlay, out
  local overlay=$1 out=$2 i
  for i in "${!kubectls[@]}"; do
    "${kubectls[$i]}" kustomize "$overlay" >"$out.$i" 2>"$out.err" ||
      fail "${kubectls[$i]} cannot render $overlay: $(grep -v '^# Warning' "$out.err")"
    ((i == 0)) || node "$tools/same-objects.js" "$out.0" "$out.$i" >"$out.diff" ||
      fail "$overlay renders differently with ${kubectls[0]} and ${kubectls[$i]}:"$'\n'"$(cat "$out.diff")"
  done
  cp "$out.0" "$out"
}

# Runs shoald on a config file until it prints its "listening" line (the config was accepted) or
# exits (it was not: shoald says why on stderr and exits 2), then stops it with SIGTERM.
check_config_accepted() {
  local config=$1 out=$1.out err=$1.err status=0 first i
  # Files of its own, made before it starts: a read must never see an earlier run's line.
  : >"$out"
  "$shoald" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --config="$config" >"$out" 2>"$err" &
  shoald_pid=$!
  for ((i = 0; i < 100; i++)); do
    first=
    IFS= read -r first <"$out" || true
    if [[ $first == 'shoald listening on '* ]]; then
      kill -TERM "$shoald_pid" 2>/dev/null || true
      wait "$shoald_pid" || status=$?
      shoald_pid=
      ((status == 0)) || fail "shoald exited $status on SIGTERM: $(cat "$err")"
      echo "shoald accepts it: $first"
      return
    fi
    if ! kill -0 "$shoald_pid" 2>/dev/null; then
      wait "$shoald_pid" || status=$?
      shoald_pid=
      fail "shoald rejects $config (exit $status): $(cat "$err")"
    fi
    sleep 0.1
  done
  fail "shoald printed no listening line within 10 s: $(cat "$out" "$err")"
}

shopt -s nullglob
overlays=("$deploy"/k8s/overlays/*/)
((${#overlays[@]} > 0)) || fail "no overlay in $deploy/k8s/overlays"
for overlay in "${overlays[@]}"; do
  name=$(basename "$overlay")
  rendered=$tmp/$name.yaml
  echo "== overlay $name"
  render "$overlay" "$rendered"
  node "$tools/check-manifests.js" <"$rendered"
  yamllint --strict -c "$yamllint_config" "$rendered"
  node "$tools/mounted-config.js" "$rendered" >"$tmp/$name.config.json"
  check_config_accepted "$tmp/$name.config.json"
done

# Starts shoald with "$@" after --metrics_listen, and waits for its two lines: started_pid,
# started_addr and started_url (its /metrics) say where it is.
start_for_metrics() {
  local out=$tmp/started-$RANDOM.out first='' second='' i
  : >"$out"
  "$shoald" --metrics_listen=127.0.0.1:0 "$@" >"$out" 2>"$out.err" &
  started_pid=$!
  for ((i = 0; i < 100; i++)); do
    first='' second=''
    { IFS= read -r first && IFS= read -r second; } <"$out" || true
    [[ $second == 'shoald metrics on '* ]] && break
    kill -0 "$started_pid" 2>/dev/null || fail "shoald did not start: $(cat "$out.err")"
    sleep 0.1
  done
  [[ $second == 'shoald metrics on '* ]] || fail "shoald printed no metrics line within 10 s"
  started_addr=${first#shoald listening on }
  started_url="http://${second#shoald metrics on }/metrics"
}

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
    console.log(s.address().port); s.close(); });'
}

# The Grafana dashboard queries only metrics that running shoalds export, and the check fails on
# one that none does. Two of them: durable (a data directory of its own, after a put and a get,
# so that the per-call and log series exist), and a replicated one (a cluster of one member), for
# the Raft panels.
check_dashboard() {
  start_for_metrics --listen=127.0.0.1:0 --data_dir="$tmp/dashboard-data"
  shoald_pid=$started_pid
  local durable=$started_url
  "$shoalctl" --addr="$started_addr" put dashboard/k v >/dev/null
  "$shoalctl" --addr="$started_addr" get dashboard/k >/dev/null
  local client peer
  client=127.0.0.1:$(free_port)
  peer=127.0.0.1:$(free_port)
  start_for_metrics --listen="$client" --data_dir="$tmp/dashboard-replica" --raft_id=1 \
    --raft_members="1=$peer/$client" --raft_bootstrap
  replica_pid=$started_pid
  local replicated=$started_url
  node "$tools/dashboard-metrics.js" "$deploy/grafana/shoal.json" "$durable" "$replicated"
  sed 's/shoal_watch_history_events/shoal_watch_history_evnts/' "$deploy/grafana/shoal.json" \
    >"$tmp/misspelt.json"
  if node "$tools/dashboard-metrics.js" "$tmp/misspelt.json" "$durable" "$replicated" \
    >"$tmp/misspelt.out"; then
    fail "a dashboard querying a metric shoald does not export passed: the check cannot fail"
  fi
  grep -q 'shoal_watch_history_evnts is not exported' "$tmp/misspelt.out" ||
    fail "the misspelt dashboard failed for another reason: $(cat "$tmp/misspelt.out")"
  # The Raft panels need the replicated one: without it, the check fails on them.
  if node "$tools/dashboard-metrics.js" "$deploy/grafana/shoal.json" "$durable" \
    >"$tmp/durable-only.out"; then
    fail "the Raft panels passed on a shoald that does not replicate: the check cannot fail"
  fi
  grep -q 'shoal_raft_term is not exported' "$tmp/durable-only.out" ||
    fail "the dashboard failed on a durable shoald for another reason: $(cat "$tmp/durable-only.out")"
  local pid
  for pid in $shoald_pid $replica_pid; do
    kill -TERM "$pid"
    wait "$pid" || fail "shoald did not exit 0 on SIGTERM"
  done
  shoald_pid='' replica_pid=''
}
echo "== grafana dashboard"
check_dashboard

echo "== yamllint"
yamllint --strict -c "$yamllint_config" "$deploy/k8s" "$deploy/testdata" "$yamllint_config"

echo "== broken cases (each must fail)"
cases=("$deploy"/testdata/broken/*/)
((${#cases[@]} > 0)) || fail "no case in $deploy/testdata/broken: the check cannot be shown to fail"
for case in "${cases[@]}"; do
  name=$(basename "$case")
  expected=$case/expected-errors
  [[ -s $expected ]] || fail "broken/$name has no expected-errors file"
  render "$case" "$tmp/broken.yaml"
  status=0
  node "$tools/check-manifests.js" <"$tmp/broken.yaml" >"$tmp/broken.out" || status=$?
  ((status != 0)) || fail "broken/$name passed: the check cannot fail"
  ((status == 1)) || fail "broken/$name: check-manifests.js broke (exit $status)"
  while IFS= read -r line; do
    grep -qF -- "$line" "$tmp/broken.out" ||
      fail "broken/$name failed, but not with: $line"$'\n'"$(cat "$tmp/broken.out")"
  done <"$expected"
  echo "broken/$name: fails as expected ($(head -n 1 "$expected"))"
done

echo "== dockerfilelint"
# Given a path that does not exist, dockerfilelint lints the path itself as a Dockerfile.
[[ -f $deploy/Dockerfile ]] || fail "no $deploy/Dockerfile"
# It reads .dockerfilelintrc from the Dockerfile's directory.
"$tools/node_modules/.bin/dockerfilelint" "$deploy/Dockerfile"

echo "check.sh: all checks passed"

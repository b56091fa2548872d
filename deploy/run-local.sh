#!/usr/bin/env bash
# The real deployment, run on this machine without a Docker daemon or a cluster:
#   1. a bookworm base image from debootstrap (cached), the shoal image built with buildah from
#      the binaries in build/ (scripts/dev.sh build first);
#   2. the rendered dev overlay started with `podman kube play` — minus what podman 4.3 lacks:
#      no Service (the dev overlay publishes hostPorts), probes run by this script, and the
#      ConfigMap volume replaced by a directory laid out as the kubelet does (..data symlink), so
#      that a config change can be made the way the kubelet makes it;
#   3. checks: liveness and readiness SERVING, a put and a get through the published port, a
#      ..data swap reaching the server (Admin/GetConfig), /metrics answering, `podman kube
#      down` draining the server (readiness NOT_SERVING, exit code 0 within the grace period),
#      and the store surviving the pod's restart and a SIGKILL: the StatefulSet's volume claim
#      is a host directory here, and the StatefulSet a Deployment (podman runs no StatefulSet);
#   4. the pod again with what the prod overlay adds: TLS from files laid out as the kubelet
#      mounts the shoal-tls Secret (a throwaway CA made by openssl), auth on, probes on the
#      plaintext port; a TLS call with a token and one with a client certificate through the
#      published port, one without credentials and a plaintext one refused.
# Run as root. SHOAL_CACHE (default /var/cache/shoal) keeps the base image between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/podman-env.sh
source deploy/podman-env.sh
CTL="$ROOT/build/clients/cli/shoalctl --addr=127.0.0.1:50051"

cleanup() {
  podman kube down "$WORK/pod.yaml" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

build_image

log "manifests: the dev overlay, as podman can run it"
mkdir -p "$WORK/config/..v1"
kubectl kustomize deploy/k8s/overlays/dev >"$WORK/rendered.yaml"
/usr/bin/python3 - "$WORK" <<'PY'
import sys, yaml
work = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(f"{work}/rendered.yaml")) if d]
config = next(d for d in docs if d["kind"] == "ConfigMap")
open(f"{work}/config/..v1/config.json", "w").write(config["data"]["config.json"])
# podman 4.3 runs no StatefulSet: the same pod as a Deployment, and its volume claim as a host
# directory (what a PersistentVolume is on a node), owned by the pod's fsGroup as the kubelet
# would make it.
sts = next(d for d in docs if d["kind"] == "StatefulSet")
deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": sts["metadata"],
              "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                       "selector": sts["spec"]["selector"], "template": sts["spec"]["template"]}}
volumes = deployment["spec"]["template"]["spec"]["volumes"]
for v in volumes:
    if v["name"] == "config":  # the kubelet's ConfigMap volume: a directory we swap ourselves
        v.pop("configMap")
        v["hostPath"] = {"path": f"{work}/config", "type": "Directory"}
for claim in sts["spec"]["volumeClaimTemplates"]:
    volumes.append({"name": claim["metadata"]["name"],
                    "hostPath": {"path": f"{work}/{claim['metadata']['name']}", "type": "Directory"}})
yaml.safe_dump(deployment, open(f"{work}/pod.yaml", "w"))
PY
ln -s ..v1 "$WORK/config/..data"
ln -s ..data/config.json "$WORK/config/config.json"
chmod -R a+rX "$WORK"
mkdir -p "$WORK/data"
chown 10001:10001 "$WORK/data"  # the pod's fsGroup (and user), as the kubelet prepares a volume

# Starts the pod ($POD, default pod.yaml) and waits for its probes (startup, liveness,
# readiness) at $PROBES; sets $container.
POD=$WORK/pod.yaml
PROBES=127.0.0.1:50051
play() {
  podman kube play "$POD" >"$WORK/play.log" 2>&1 || { cat "$WORK/play.log"; fail "kube play"; }
  container=$(podman ps --filter label=app.kubernetes.io/name=shoal --format '{{.Names}}' | grep shoald | head -1)
  [ -n "$container" ] || container=$(podman ps --format '{{.Names}}' | grep shoald | head -1)
  [ -n "$container" ] || fail "no shoald container is running"
  for i in $(seq 1 60); do
    deploy/probe.py check "$PROBES" "" >/dev/null 2>&1 && break
    [ "$i" -lt 60 ] || { podman logs "$container"; fail "liveness never SERVING"; }
    sleep 0.5
  done
  [ "$(deploy/probe.py check "$PROBES" "")" = SERVING ] || fail "liveness"
  [ "$(deploy/probe.py check "$PROBES" shoal.v1.KV)" = SERVING ] || fail "readiness"
}
# Stops the pod as the kubelet would (the manifest's grace period), then takes it down.
stop_pod() {
  local pod
  pod=$(podman pod ps --format '{{.Name}}' | grep '^shoal' | head -1)
  podman pod stop -t "$grace" "$pod" >/dev/null
  podman kube down "$POD" >/dev/null
}
store_id() { $CTL --json status | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["storeId"])'; }

log "podman kube play, probes"
play

log "a put and a get through the published port"
$CTL put deployed yes >/dev/null
[ "$($CTL get deployed)" = yes ] || fail "get after put"

log "a config change through a ..data swap"
before=$($CTL config)
echo "$before" | grep -q '"maxKeys":"100000"' || fail "the overlay's config is not the running one: $before"
mkdir "$WORK/config/..v2"
sed 's/"maxKeys": "100000"/"maxKeys": "12345"/' "$WORK/config/..v1/config.json" >"$WORK/config/..v2/config.json"
chmod -R a+rX "$WORK/config/..v2"
ln -s ..v2 "$WORK/config/..data_tmp"
mv -T "$WORK/config/..data_tmp" "$WORK/config/..data"  # the kubelet's atomic swap
for i in $(seq 1 50); do
  $CTL config | grep -q '"maxKeys":"12345"' && break
  [ "$i" -lt 50 ] || fail "the new config never reached the server"
  sleep 0.2
done

log "/metrics"
curl -sf http://127.0.0.1:9090/metrics | grep -q '^shoal_keys 1$' || fail "/metrics"

id_first=$(store_id)

log "podman kube down drains the server"
deploy/probe.py watch 127.0.0.1:50051 shoal.v1.KV >"$WORK/readiness.log" 2>&1 &
watcher=$!
sleep 0.5
podman wait "$container" >"$WORK/exit.log" 2>&1 &
waiter=$!
down_start=$(date +%s)
# podman 4.3's kube down does not wait terminationGracePeriodSeconds (it kills within seconds):
# stop the pod first with the manifest's grace period, as the kubelet does, then take it down.
grace=$(/usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])' "$WORK/pod.yaml")
stop_pod
wait "$waiter" || true
wait "$watcher" || true
took=$(( $(date +%s) - down_start ))
echo "readiness during the drain: $(tr '\n' ' ' <"$WORK/readiness.log")"
echo "shoald exit code: $(tr '\n' ' ' <"$WORK/exit.log")after ${took}s"
grep -q NOT_SERVING "$WORK/readiness.log" || fail "readiness never went NOT_SERVING"
[ "$(tail -1 "$WORK/exit.log")" = 0 ] || fail "shoald exit code: $(cat "$WORK/exit.log")"
[ "$took" -le "$grace" ] || fail "took ${took}s to stop (grace period ${grace}s)"

log "the pod started again keeps its data (a clean stop: the same store id)"
play
[ "$($CTL get deployed)" = yes ] || fail "the key put before the restart is gone"
[ "$(store_id)" = "$id_first" ] || fail "the store id changed across a clean restart"
ls "$WORK/data/wal" | grep -q '^wal-' || fail "no log in the volume: $(ls -R "$WORK/data")"

log "killed (SIGKILL), then started again: the data and the store id survive"
$CTL put killed yes >/dev/null
id_before=$(store_id)
podman kill -s KILL "$container" >/dev/null
podman kube down "$WORK/pod.yaml" >/dev/null
play
[ "$($CTL get killed)" = yes ] || fail "a write acknowledged before the kill is gone"
[ "$(store_id)" = "$id_before" ] || fail "the store id changed across the kill"

log "TLS and auth as the prod overlay wires them: a Secret's files, a token, plaintext probes"
# A throwaway CA, server and client certificates, tokens and an auth config (the clients' tests
# make the same); the files laid out as the kubelet mounts the shoal-tls Secret.
tests/clients/make_test_certs.sh "$WORK/certs"
mkdir -p "$WORK/tls/..v1"
cp "$WORK/certs/server.crt" "$WORK/tls/..v1/tls.crt"
cp "$WORK/certs/server.key" "$WORK/tls/..v1/tls.key"
cp "$WORK/certs/ca.crt" "$WORK/tls/..v1/ca.crt"
ln -s ..v1 "$WORK/tls/..data"
for f in tls.crt tls.key ca.crt; do ln -s "..data/$f" "$WORK/tls/$f"; done
mkdir -p "$WORK/client-ca/..v1"  # the shoal-client-ca Secret (here the same throwaway CA)
cp "$WORK/certs/ca.crt" "$WORK/client-ca/..v1/ca.crt"
ln -s ..v1 "$WORK/client-ca/..data"
ln -s ..data/ca.crt "$WORK/client-ca/ca.crt"
chmod -R a+rX "$WORK/tls" "$WORK/client-ca"
kubectl kustomize deploy/k8s/overlays/prod >"$WORK/prod.yaml"
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys, yaml
work = sys.argv[1]
# The dev pod, with what the prod overlay adds for TLS: its shoald flags (TLS and the probe port),
# the Secret's mount, and probes on the plaintext port, published on the host like the others.
prod = next(d for d in yaml.safe_load_all(open(f"{work}/prod.yaml")) if d and d["kind"] == "StatefulSet")
prod_c = next(c for c in prod["spec"]["template"]["spec"]["containers"] if c["name"] == "shoald")
pod = yaml.safe_load(open(f"{work}/pod.yaml"))
spec = pod["spec"]["template"]["spec"]
c = next(c for c in spec["containers"] if c["name"] == "shoald")
c["args"] += [a for a in prod_c["args"] if a.startswith(("--tls_", "--probe_listen"))]
c["volumeMounts"] += [m for m in prod_c["volumeMounts"] if m["name"] in ("tls", "client-ca")]
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    c[probe] = prod_c[probe]
c["ports"].append({"name": "probes", "containerPort": 50052, "hostPort": 50052})
for name in ("tls", "client-ca"):
    spec["volumes"].append({"name": name, "hostPath": {"path": f"{work}/{name}", "type": "Directory"}})
yaml.safe_dump(pod, open(f"{work}/pod-tls.yaml", "w"))
# The running config, with auth on: the tokens' hashes in place of the prod overlay's.
config = json.load(open(f"{work}/config/..v2/config.json"))
config["live"]["auth"] = json.load(open(f"{work}/certs/auth.json"))["live"]["auth"]
json.dump(config, open(f"{work}/config/..v3.json", "w"))
PY
mkdir "$WORK/config/..v3"
mv "$WORK/config/..v3.json" "$WORK/config/..v3/config.json"
chmod -R a+rX "$WORK/config/..v3"
ln -s ..v3 "$WORK/config/..data_tmp"
mv -T "$WORK/config/..data_tmp" "$WORK/config/..data"
stop_pod
POD=$WORK/pod-tls.yaml
PROBES=127.0.0.1:50052
play
SECURE="$ROOT/build/clients/cli/shoalctl --addr=127.0.0.1:50051 --cacert=$WORK/certs/ca.crt"
[ "$(SHOAL_TOKEN=$(cat "$WORK/certs/root.token") $SECURE get deployed)" = yes ] ||
  fail "a TLS call with the root token did not read the store"
SHOAL_TOKEN=$(cat "$WORK/certs/root.token") $SECURE put app/tls yes >/dev/null
status=0
$SECURE get deployed >/dev/null 2>&1 || status=$?
[ "$status" = 11 ] || fail "a TLS call without a token: exit $status, not 11 (unauthenticated)"
[ "$($SECURE --cert="$WORK/certs/client.crt" --key="$WORK/certs/client.key" get app/tls)" = yes ] ||
  fail "client-one's certificate did not read app/tls"
status=0
$CTL get deployed >/dev/null 2>&1 || status=$?
[ "$status" = 9 ] || fail "a plaintext call to the TLS port: exit $status, not 9 (unavailable)"
echo "TLS with a token, and with a client certificate: ok; no token: refused; plaintext: refused"

log "all checks passed"

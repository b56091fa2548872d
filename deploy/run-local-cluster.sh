#!/usr/bin/env bash
# The cluster overlay (three replicas on Raft) run on this machine with podman:
#   1. the shoal image from build/ (deploy/podman-env.sh, shared with run-local.sh);
#   2. the rendered StatefulSet as podman 4.3 can run it: three Pods named as the StatefulSet names
#      them (shoal-0..2: the hostname each takes its Raft id from), on a podman network of their
#      own with fixed addresses, the headless Service's names (shoal-N.shoal-headless) given to
#      every pod as host aliases (this machine's CNI has no DNS plugin), each volume claim a host
#      directory, the shoal-peer-tls Secret's files laid out as the kubelet mounts them (a
#      throwaway CA from openssl), and each client port published on the host (50061..50063);
#   3. checks: all three ready (caught up) under one leader, peers on mutual TLS with no problem
#      reported; writes through the leader; the leader's container killed (SIGKILL): another
#      replica leads and takes writes, and every write acknowledged before the kill is there; the
#      killed pod started again on its volume is ready only once caught up, and its own store
#      (a serializable read there) holds every write.
# Run as root, after scripts/dev.sh build. SHOAL_CACHE as for run-local.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/podman-env.sh
source deploy/podman-env.sh
NET=shoal-cluster-local
SUBNET=10.89.77.0/24
IPS=(10.89.77.10 10.89.77.11 10.89.77.12)
PORTS=(50061 50062 50063)
SHOALCTL="$ROOT/build/clients/cli/shoalctl"

cleanup() {
  for i in 0 1 2; do podman kube down "$WORK/pod-$i.yaml" >/dev/null 2>&1 || true; done
  podman network rm -f "$NET" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

build_image

log "manifests: the cluster overlay as three pods"
kubectl kustomize deploy/k8s/overlays/cluster >"$WORK/rendered.yaml"
mkdir -p "$WORK/config" "$WORK/peer-tls/..v1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=peers CA" \
  -keyout "$WORK/peer-ca.key" -out "$WORK/peer-tls/..v1/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=shoal peer" \
  -keyout "$WORK/peer-tls/..v1/tls.key" -out "$WORK/peer.csr" 2>/dev/null
printf '%s\n' \
  'subjectAltName=DNS:shoal-0.shoal-headless,DNS:shoal-1.shoal-headless,DNS:shoal-2.shoal-headless' \
  'extendedKeyUsage=serverAuth,clientAuth' >"$WORK/peer.ext"
openssl x509 -req -in "$WORK/peer.csr" -CA "$WORK/peer-tls/..v1/ca.crt" -CAkey "$WORK/peer-ca.key" \
  -CAcreateserial -days 1 -extfile "$WORK/peer.ext" -out "$WORK/peer-tls/..v1/tls.crt" 2>/dev/null
ln -s ..v1 "$WORK/peer-tls/..data"
for f in tls.crt tls.key ca.crt; do ln -s "..data/$f" "$WORK/peer-tls/$f"; done
/usr/bin/python3 - "$WORK" "${IPS[*]}" "${PORTS[*]}" <<'PY'
import copy, sys, yaml
work, ips, ports = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
docs = [d for d in yaml.safe_load_all(open(f"{work}/rendered.yaml")) if d]
config = next(d for d in docs if d["kind"] == "ConfigMap")
open(f"{work}/config/config.json", "w").write(config["data"]["config.json"])
sts = next(d for d in docs if d["kind"] == "StatefulSet")
aliases = [{"ip": ip, "hostnames": [f"shoal-{i}.shoal-headless"]} for i, ip in enumerate(ips)]
for i in range(3):
    spec = copy.deepcopy(sts["spec"]["template"]["spec"])
    spec["hostname"] = f"shoal-{i}"
    spec["hostAliases"] = aliases
    for v in spec["volumes"]:
        for kind in ("configMap", "secret"):
            v.pop(kind, None)
        v["hostPath"] = {"path": f"{work}/{'config' if v['name'] == 'config' else v['name']}",
                         "type": "Directory"}
    for claim in sts["spec"]["volumeClaimTemplates"]:
        name = claim["metadata"]["name"]
        spec["volumes"].append({"name": name,
                                "hostPath": {"path": f"{work}/{name}-{i}", "type": "Directory"}})
    c = next(c for c in spec["containers"] if c["name"] == "shoald")
    for p in c["ports"]:
        if p["containerPort"] == 50051:
            p["hostPort"] = int(ports[i])
    # Only the client port is published (podman publishes every port listed); the replicas
    # reach each other on the network.
    c["ports"] = [p for p in c["ports"] if p["containerPort"] == 50051]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"shoal-{i}", "labels": sts["spec"]["selector"]["matchLabels"]},
           "spec": spec}
    yaml.safe_dump(pod, open(f"{work}/pod-{i}.yaml", "w"))
PY
for i in 0 1 2; do
  mkdir -p "$WORK/data-$i"
  chown 10001:10001 "$WORK/data-$i"  # the pod's fsGroup (and user), as the kubelet prepares it
done
chmod -R a+rX "$WORK"

podman network rm -f "$NET" >/dev/null 2>&1 || true
podman network create --subnet "$SUBNET" "$NET" >/dev/null

# Starts pod $1 on its fixed address (not waiting for it).
play() {
  podman kube play --network "$NET" --ip "${IPS[$1]}" "$WORK/pod-$1.yaml" >"$WORK/play-$1.log" 2>&1 ||
    { cat "$WORK/play-$1.log"; fail "kube play shoal-$1"; }
}
# Waits until pod $1 is ready: shoal.v1.KV SERVING, which a replica says once caught up.
wait_ready() {
  for n in $(seq 1 120); do
    [ "$(deploy/probe.py check "127.0.0.1:${PORTS[$1]}" shoal.v1.KV 2>/dev/null)" = SERVING ] && return 0
    sleep 0.5
  done
  podman logs "shoal-$1-shoald" 2>&1 | tail -20
  fail "shoal-$1 never ready"
}
status_of() { $SHOALCTL --addr="127.0.0.1:${PORTS[$1]}" --json status 2>/dev/null || true; }
field() { /usr/bin/python3 -c "import json, sys; d = json.loads(sys.stdin.read() or '{}'); print($1)"; }
# The index of the pod that leads, once one does.
leader() {
  for n in $(seq 1 120); do
    for i in 0 1 2; do
      [ "$(status_of "$i" | field 'd.get("replication", {}).get("role", "")')" = leader ] &&
        { echo "$i"; return 0; }
    done
    sleep 0.5
  done
  fail "no replica leads"
}

log "three pods, started together; each ready once caught up"
for i in 0 1 2; do play "$i"; done
for i in 0 1 2; do wait_ready "$i"; done
l=$(leader)
echo "shoal-$l leads"
for i in 0 1 2; do
  problems=$(status_of "$i" | field 'd["replication"].get("peerProblems", [])')
  [ "$problems" = "[]" ] || fail "shoal-$i reports peer problems: $problems"
done

log "writes through the leader"
for k in 1 2 3 4 5; do
  $SHOALCTL --addr="127.0.0.1:${PORTS[$l]}" put "before/$k" "v$k" >/dev/null
done

log "the leader killed (SIGKILL): another leads and writes"
killed_at=$(date +%s%N)
podman kill -s KILL "shoal-$l-shoald" >/dev/null
old=$l
for n in $(seq 1 120); do
  l=$(leader)
  [ "$l" != "$old" ] && break
  sleep 0.5
done
[ "$l" != "$old" ] || fail "the killed leader still leads"
until $SHOALCTL --addr="127.0.0.1:${PORTS[$l]}" put after yes >/dev/null 2>&1; do sleep 0.2; done
echo "shoal-$l leads; the first write after the kill took $(( ($(date +%s%N) - killed_at) / 1000000 )) ms"
for k in 1 2 3 4 5; do
  # From the host, through the new leader's published port: a follower's hint names the leader
  # as the pods know it (shoal-N.shoal-headless), which this host does not resolve.
  [ "$($SHOALCTL --addr="127.0.0.1:${PORTS[$l]}" get "before/$k")" = "v$k" ] ||
    fail "before/$k was lost"
done

log "the killed pod back on its volume: ready once caught up, its store whole"
podman kube down "$WORK/pod-$old.yaml" >/dev/null
play "$old"
wait_ready "$old"
for k in 1 2 3 4 5; do
  [ "$($SHOALCTL --addr="127.0.0.1:${PORTS[$old]}" get --serializable "before/$k")" = "v$k" ] ||
    fail "shoal-$old lacks before/$k once ready"
done
[ "$($SHOALCTL --addr="127.0.0.1:${PORTS[$old]}" get --serializable after)" = yes ] ||
  fail "shoal-$old lacks the write made while it was down, once ready"

log "all checks passed"

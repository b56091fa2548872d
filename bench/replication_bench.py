#!/usr/bin/python3
"""Three shoald replicas beside a three-member etcd 3.4 cluster, interleaved, on one machine
(issue 18's benchmarks).

    bench/replication_bench.py [--rounds 3] [--seconds 5] [--only put,get,failover,pipeline]
                               [--peer-tls]

put       Put through h2load on the leader, 16 connections x 8 streams, one framed body for both
          (shoal.v1.PutRequest and etcdserverpb.PutRequest share fields 1 and 2).
get       A linearizable read on the leader, the same load: shoal.v1.KV/Get (through a Raft
          barrier, batched) and etcdserverpb.KV/Range (etcd's ReadIndex), one framed body with the
          key only (field 1 in both); the key exists.
failover  SIGKILL of the leader, then the same framed Put to the surviving members in turn (one
          curl call each, at most 1 s, its grpc-status read) until one succeeds: the time from
          the kill to that success. Both with a 1,000 ms election timeout and a 100 ms heartbeat
          (etcd's defaults).

pipeline  shoald only (etcd has no pipelined API): writes on the leader through shoal-bench,
          interleaved in one cluster: unary Put (16 connections, 128 in flight), Pipeline of
          single Puts (8 streams x 16 deep), Pipeline of 64-Put Batches (4 streams x 4 deep); in
          keys written per second.

--peer-tls  Replicas talk mutual TLS for both (shoald's raft_tls_*, etcd's --peer-*-file with
          --peer-client-cert-auth; one P-256 certificate for 127.0.0.1 from a throwaway CA), and
          a third cluster, shoald with plaintext peers, runs beside them for TLS's own cost.

Each round starts fresh clusters (new data directories under --work) on 127.0.0.1. The tables
show medians and ranges of the rounds, and the ratios the issue asks for.
"""

import argparse
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import free_port, grpc_body, grpc_ok, h2load, table, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOALD = ROOT / "build/service/shoald"
SHOALCTL = ROOT / "build/clients/cli/shoalctl"
SHOAL_BENCH = ROOT / "build/clients/shoal-bench"
PIPELINE_SHAPES = {
    "unary Put, 128 in flight": ["--mode=put"],
    "Pipeline of Puts, 8 streams x 16": ["--mode=pipeline", "--pipeline_op=set", "--streams=8",
                                         "--depth=16", "--batch=1"],
    "Pipeline of 64-Put Batches, 4 x 4": ["--mode=pipeline", "--pipeline_op=set", "--streams=4",
                                          "--depth=4", "--batch=64"],
}


class cluster:
    """Three server processes: kill one for real, stop the rest."""
    procs = []

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = None

    def stop(self):
        for p in self.procs:
            if p is not None:
                p.terminate()
                p.wait()


def make_peer_certs(work):
    """A throwaway CA and one certificate for 127.0.0.1 (server and client): its directory."""
    d = work / "peer-tls"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", *ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.crt",
        "-subj", "/CN=bench peers CA")
    run("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=bench peer")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "tls.crt", "-extfile", "ext")
    return d


class shoal_cluster(cluster):
    def __init__(self, work, tls=None):
        self.dirs = [work / f"shoal-{i}" for i in (1, 2, 3)]
        self.clients = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        peers = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        members = ",".join(f"{i + 1}={peers[i]}/{self.clients[i]}" for i in range(3))
        self.procs = []
        for i in range(3):
            shutil.rmtree(self.dirs[i], ignore_errors=True)
            self.procs.append(subprocess.Popen(
                [str(SHOALD), f"--listen={self.clients[i]}", "--metrics_listen=",
                 f"--data_dir={self.dirs[i]}", f"--raft_id={i + 1}", f"--raft_members={members}",
                 "--raft_bootstrap", "--raft_election_ms=1000", "--raft_heartbeat_ms=100"] +
                ([f"--raft_tls_ca_file={tls}/ca.crt", f"--raft_tls_cert_file={tls}/tls.crt",
                  f"--raft_tls_key_file={tls}/tls.key"] if tls else []),
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for p in self.procs:
            p.stdout.readline()  # "listening on": the cluster has its store id

    def leader(self):
        for i, addr in enumerate(self.clients):
            if self.procs[i] is None:
                continue
            out = subprocess.run([str(SHOALCTL), f"--addr={addr}", "--json", "status"],
                                 capture_output=True, text=True).stdout
            if out and json.loads(out).get("replication", {}).get("role") == "leader":
                return i
        return None



class etcd_cluster(cluster):
    def __init__(self, work, tls=None):
        self.clients = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        scheme = "https" if tls else "http"
        peers = [f"{scheme}://127.0.0.1:{free_port()}" for _ in range(3)]
        peer_tls = (["--peer-cert-file", f"{tls}/tls.crt", "--peer-key-file", f"{tls}/tls.key",
                     "--peer-trusted-ca-file", f"{tls}/ca.crt", "--peer-client-cert-auth"]
                    if tls else [])
        initial = ",".join(f"n{i + 1}={peers[i]}" for i in range(3))
        token = f"bench-{time.time_ns()}"  # one cluster: the same token on every member
        self.procs = []
        for i in range(3):
            d = work / f"etcd-{i + 1}"
            shutil.rmtree(d, ignore_errors=True)
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", f"n{i + 1}", "--data-dir", str(d),
                 "--listen-client-urls", f"http://{self.clients[i]}",
                 "--advertise-client-urls", f"http://{self.clients[i]}",
                 "--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", token,
                 "--election-timeout", "1000", "--heartbeat-interval", "100"] + peer_tls,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: self.leader() is not None, what="an etcd leader")

    def leader(self):
        out = subprocess.run(["etcdctl", f"--endpoints={','.join(self.clients)}", "endpoint",
                              "status", "-w", "json"], capture_output=True, text=True).stdout
        try:
            for s in json.loads(out):
                st = s["Status"]
                if st["header"]["member_id"] == st["leader"]:
                    return self.clients.index(s["Endpoint"].replace("http://", ""))
        except (ValueError, KeyError):
            pass
        return None



def throughput(c, path_shoal, path_etcd, body, seconds, is_shoal):
    wait_for(lambda: c.leader() is not None, what="a leader")
    leader = c.leader()
    url = f"http://{c.clients[leader]}/{path_shoal if is_shoal else path_etcd}"
    wait_for(lambda: grpc_ok(url, body), what="a call on the leader")
    return h2load(url, body, seconds)


def pipelined_writes(c, seconds):
    """Keys written per second on the leader, for each of PIPELINE_SHAPES."""
    wait_for(lambda: c.leader() is not None, what="a leader")
    target = c.clients[c.leader()]
    out = {}
    for name, args in PIPELINE_SHAPES.items():
        run = subprocess.run([str(SHOAL_BENCH), f"--target={target}", f"--duration={seconds}",
                              "--prefill=false", *args], capture_output=True, text=True)
        m = re.search(r"ops/s=(\d+).* errors=(\d+)", run.stdout)
        if not m or int(m.group(2)) > 0:
            sys.exit(f"shoal-bench failed on {target}:\n{run.stdout}{run.stderr}")
        out[name] = float(m.group(1))
    return out


def put_once(url, body):
    out = subprocess.run(
        ["curl", "-s", "--max-time", "1", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "--data-binary", f"@{body}", url], capture_output=True, text=True).stdout
    return "grpc-status: 0" in out


def failover(c, path, body):
    wait_for(lambda: c.leader() is not None, what="a leader")
    leader = c.leader()
    urls = [f"http://{c.clients[i]}/{path}" for i in range(3) if i != leader]
    t0 = time.monotonic()
    c.kill(leader)
    n = 0
    while time.monotonic() - t0 < 30:
        if put_once(urls[n % 2], body):
            return (time.monotonic() - t0) * 1000
        n += 1
    sys.exit("no write succeeded within 30 s of the leader's death")




def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", default="put,get,failover")
    ap.add_argument("--work", default="/tmp/shoal-replication-bench")
    ap.add_argument("--peer-tls", action="store_true",
                    help="replicas talk mutual TLS; shoald with plaintext peers runs beside")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    print(f"# replication benchmarks ({args.rounds} rounds, {args.seconds} s each, "
          f"{time.strftime('%Y-%m-%d %H:%M')})")
    put_body = grpc_body(b"bench/0000000001", b"0123456789abcdef")
    # The read body: field 1 (key) only.
    key = b"bench/0000000001"
    msg = bytes([1 << 3 | 2, len(key)]) + key
    get_body = str(work / "get.grpc")
    Path(get_body).write_bytes(b"\x00" + len(msg).to_bytes(4, "big") + msg)

    if args.peer_tls:
        tls = make_peer_certs(work)
        shoal, etcd = "shoald, 3 replicas, peer mTLS", "etcd 3.4, 3 members, peer mTLS"
        plain = "shoald, 3 replicas, plaintext peers"
        systems = [(shoal, shoal_cluster, tls), (etcd, etcd_cluster, tls),
                   (plain, shoal_cluster, None)]
        pairs = [(shoal, etcd), (shoal, plain)]
    else:
        shoal, etcd = "shoald, 3 replicas", "etcd 3.4, 3 members"
        systems = [(shoal, shoal_cluster, None), (etcd, etcd_cluster, None)]
        pairs = [(shoal, etcd)]
    results = {"put": [], "get": [], "failover": []}
    pipelined = []
    for _ in range(args.rounds):
        for name, make, peer_certs in systems:
            is_shoal = make is shoal_cluster
            if only == {"pipeline"} and (name, make, peer_certs) != systems[0]:
                continue  # the pipeline rows are the first cluster's alone
            c = make(work, peer_certs)
            try:
                row = {}
                if "put" in only or "get" in only:
                    row["put"] = throughput(c, "shoal.v1.KV/Put", "etcdserverpb.KV/Put", put_body,
                                            args.seconds, is_shoal)
                if "get" in only:
                    row["get"] = throughput(c, "shoal.v1.KV/Get", "etcdserverpb.KV/Range",
                                            get_body, args.seconds, is_shoal)
                if "pipeline" in only and is_shoal and peer_certs == systems[0][2]:
                    pipelined.append(pipelined_writes(c, args.seconds))
                if "failover" in only:
                    row["failover"] = failover(
                        c, "shoal.v1.KV/Put" if is_shoal else "etcdserverpb.KV/Put", put_body)
            finally:
                c.stop()
            for k, v in row.items():
                results[k].append((name, v))

    def rounds_of(kind):
        out = []
        n = len(systems)
        for r in range(args.rounds):
            out.append(dict(results[kind][n * r:n * r + n]))
        return out

    if "put" in only:
        table("Put on the leader, h2load 16 connections x 8 streams", rounds_of("put"), "calls/s",
              pairs)
    if "get" in only:
        table("Linearizable read on the leader (Get / Range), h2load 16 x 8", rounds_of("get"),
              "calls/s", pairs)
    if "pipeline" in only:
        shapes = list(PIPELINE_SHAPES)
        table(f"Writes on the leader of {systems[0][0]}, shoal-bench", pipelined, "keys/s",
              [(shapes[1], shapes[0]), (shapes[2], shapes[0])])
    if "failover" in only:
        table("SIGKILL of the leader to the next successful write", rounds_of("failover"), "ms",
              pairs)


if __name__ == "__main__":
    main()

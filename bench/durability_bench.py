#!/usr/bin/python3
"""Durable shoald beside its anchors, in interleaved rounds on one machine (issue 16's benchmarks).

    bench/durability_bench.py [--rounds 3] [--seconds 5] [--keys 1000000] [--only unary,pipeline,recovery]

unary     Put through h2load, 16 connections x 8 streams, one framed body for all three servers
          (shoal.v1.PutRequest and etcdserverpb.PutRequest share fields 1 and 2): shoald in
          memory, shoald --data_dir with fsync always, and etcd 3.4 (Debian's etcd-server, which
          syncs its WAL before each reply too). Each on a fresh server and data directory.
pipeline  Pipelined writes at 800 operations in flight, the load of `redis-benchmark -P 16 -c 50`
          (50 connections, each sending 16 SETs and waiting for their replies): redis-benchmark
          -t set against Redis 7 with appendonly yes and appendfsync always, then everysec;
          shoal-bench with 50 Pipeline streams on 50 connections, each with one Batch of 16 Puts
          in flight (--shape 50,1,16,50; --shape 8,2,50,2 puts the same 800 on 8 streams of 2
          connections), against shoald in memory, with fsync always, and with fsync interval
          (100 ms).
recovery  --keys keys of 16 bytes with 100-byte values: the time from a process's start to its
          first successful answer (shoald: health SERVING; Redis: PING) with the data on disk
          (shoald: its data directory after a clean stop; Redis: an RDB file saved with SAVE).
          Also the data directory's size beside the live keys and values.
snapshot  On that data directory: unary Put p99 (100-byte values over 1M keys) while snapshots
          are made throughout (a 16 MiB threshold) against the same server with none (1 TiB).

Every server listens on 127.0.0.1 and is started and stopped here; data lives under --work.
The tables show medians and ranges of the rounds, and the ratios the issue asks for.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOALD = ROOT / "build/service/shoald"
SHOALCTL = ROOT / "build/clients/cli/shoalctl"
BENCH = ROOT / "build/clients/shoal-bench"
PROBE = ROOT / "deploy/probe.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=60, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


def start_shoald(data_dir=None, extra=()):
    args = [str(SHOALD), "--listen=127.0.0.1:0", "--metrics_listen="]
    if data_dir:
        args.append(f"--data_dir={data_dir}")
    p = subprocess.Popen([*args, *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        sys.exit(f"shoald did not start: {line}")
    return p, m.group(1)


def stop(p):
    p.terminate()
    p.wait()


def grpc_body(key: bytes, value: bytes) -> str:
    def field(num, data):
        return bytes([num << 3 | 2, len(data)]) + data
    msg = field(1, key) + field(2, value)
    path = tempfile.mktemp(prefix="durability-put-", suffix=".grpc")
    Path(path).write_bytes(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    return path


def h2load(url, body, seconds, conns=16, streams=8):
    out = subprocess.run(
        ["h2load", "-D", str(seconds), "-c", str(conns), "-m", str(streams), "-t", "1", "-d", body,
         "-H", "content-type: application/grpc", "-H", "te: trailers", url],
        capture_output=True, text=True).stdout
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if not m or not ok or int(ok.group(2)) > 0:
        sys.exit(f"h2load failed on {url}:\n{out}")
    return float(m.group(1))


def grpc_ok(url, body):
    """h2load counts HTTP 200 as success even when the call failed: check one call's trailers."""
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "--data-binary", f"@{body}", url], capture_output=True, text=True).stdout
    return "grpc-status: 0" in out


def unary_round(work, seconds, body, baseline):
    out = {}
    if baseline:  # the bare gRPC server: the limit of a unary call on this machine
        port = free_port()
        base = subprocess.Popen([baseline, f"--port={port}", "--threads=2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/baseline.Baseline/Get"
            wait_for(lambda: grpc_ok(url, body), what="the gRPC baseline")
            out["bare gRPC server (anchor)"] = h2load(url, body, seconds)
        finally:
            stop(base)
    for name, data_dir in (("shoald in memory", None), ("shoald fsync always", work / "unary")):
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        p, addr = start_shoald(data_dir)
        try:
            url = f"http://{addr}/shoal.v1.KV/Put"
            assert grpc_ok(url, body), f"{name}: Put fails"
            out[name] = h2load(url, body, seconds)
        finally:
            stop(p)
    etcd_dir = work / "etcd"
    shutil.rmtree(etcd_dir, ignore_errors=True)
    port, peer = free_port(), free_port()
    etcd = subprocess.Popen(
        ["etcd", "--data-dir", str(etcd_dir), "--listen-client-urls", f"http://127.0.0.1:{port}",
         "--advertise-client-urls", f"http://127.0.0.1:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/etcdserverpb.KV/Put"
        wait_for(lambda: grpc_ok(url, body), what="etcd")
        out["etcd 3.4"] = h2load(url, body, seconds)
    finally:
        stop(etcd)
    return out


def redis_set(work, fsync):
    port = free_port()
    d = work / "redis"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--dir", str(d), "--save", "",
                               "--appendonly", "yes", "--appendfsync", fsync],
                              stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 what="redis")
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-P", "16", "-c", "50", "-d", "16",
                              "-n", "1000000", "-t", "set", "-r", "100000", "--csv"],
                             capture_output=True, text=True, check=True).stdout
        row = out.strip().splitlines()[-1].replace('"', "").split(",")
        return float(row[1])
    finally:
        stop(server)


def shoal_pipeline(work, seconds, data_dir_flags, shape):
    data_dir = None
    extra = []
    if data_dir_flags is not None:
        data_dir = work / "pipeline"
        shutil.rmtree(data_dir, ignore_errors=True)
        extra = data_dir_flags
    p, addr = start_shoald(data_dir, extra)
    try:
        out = subprocess.run(
            [str(BENCH), f"--target={addr}", f"--duration={seconds}", "--mode=pipeline",
             "--pipeline_op=set", f"--streams={shape[0]}", f"--depth={shape[1]}",
             f"--batch={shape[2]}", f"--connections={shape[3]}", "--value_size=16",
             "--keys=100000", "--workers=1"],
            capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if result["errors"]:
            sys.exit(f"shoal-bench: {result['errors']} errors")
        return result["ops_per_s"]
    finally:
        stop(p)


def pipeline_round(work, seconds, shape):
    return {
        "Redis appendfsync always": redis_set(work, "always"),
        "Redis appendfsync everysec": redis_set(work, "everysec"),
        "shoald in memory": shoal_pipeline(work, seconds, None, shape),
        "shoald fsync always": shoal_pipeline(work, seconds, ["--fsync=always"], shape),
        "shoald fsync interval": shoal_pipeline(
            work, seconds, ["--fsync=interval", "--fsync_interval_ms=100"], shape),
    }


def key(i):
    return f"k{i:015d}"  # 16 bytes


def value(i):
    return f"{i:0100d}"  # 100 bytes


def load_shoal(data_dir, keys):
    """Fills a data directory through one Pipeline stream (shoalctl pipe), then stops cleanly."""
    shutil.rmtree(data_dir, ignore_errors=True)
    p, addr = start_shoald(data_dir)
    try:
        lines = "".join(f"put {key(i)} {value(i)}\n" for i in range(keys))
        subprocess.run([str(SHOALCTL), f"--addr={addr}", "pipe", "--window=256"], input=lines,
                       text=True, stdout=subprocess.DEVNULL, check=True)
    finally:
        stop(p)


def load_redis(d, keys):
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--dir", str(d),
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 what="redis")
        proto = "".join(f"*3\r\n$3\r\nSET\r\n$16\r\n{key(i)}\r\n$100\r\n{value(i)}\r\n"
                        for i in range(keys))
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=proto, text=True,
                       stdout=subprocess.DEVNULL, check=True)
        subprocess.run(["redis-cli", "-p", str(port), "save"], stdout=subprocess.DEVNULL, check=True)
    finally:
        stop(server)


def shoal_recovery(data_dir):
    began = time.monotonic()
    p, addr = start_shoald(data_dir)
    try:
        wait_for(lambda: subprocess.run([sys.executable, str(PROBE), "check", addr, "shoal.v1.KV"],
                                        capture_output=True, text=True).stdout.strip() == "SERVING",
                 what="shoald SERVING")
        took = time.monotonic() - began
        status = json.loads(subprocess.run([str(SHOALCTL), f"--addr={addr}", "--json", "status"],
                                           capture_output=True, text=True, check=True).stdout)
        return took, int(status.get("keys", 0))
    finally:
        stop(p)


def redis_recovery(d):
    port = free_port()
    began = time.monotonic()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--dir", str(d), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 what="redis PONG")
        took = time.monotonic() - began
        keys = int(subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True,
                                  text=True).stdout.strip())
        return took, keys
    finally:
        stop(server)


def put_p99(data_dir, seconds, snapshot_log_bytes):
    """Unary Puts of 100-byte values over 1M keys (shoal-bench, 16 connections x 128 in flight)."""
    p, addr = start_shoald(data_dir, [f"--snapshot_log_bytes={snapshot_log_bytes}",
                                      "--wal_segment_bytes=4194304"])
    try:
        out = subprocess.run(
            [str(BENCH), f"--target={addr}", f"--duration={seconds}", "--mode=put",
             "--value_size=100", "--keys=1000000", "--workers=1"],
            capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        status = json.loads(subprocess.run([str(SHOALCTL), f"--addr={addr}", "--json", "status"],
                                           capture_output=True, text=True, check=True).stdout)
        return result["p99_us"], result["ops_per_s"], status
    finally:
        stop(p)


def dir_bytes(d):
    return sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file())


def table(title, rounds, unit, ratios=()):
    print(f"\n### {title}\n")
    print(f"| | median {unit} | range |")
    print("|---|---|---|")
    med = {}
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        med[name] = statistics.median(values)
        print(f"| {name} | {med[name]:,.0f} | {min(values):,.0f}–{max(values):,.0f} |")
    for a, b in ratios:
        per_round = [r[a] / r[b] for r in rounds]
        print(f"\n{a} / {b}: median {statistics.median(per_round):.2f}x "
              f"(range {min(per_round):.2f}–{max(per_round):.2f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--only", default="unary,pipeline,recovery,snapshot")
    ap.add_argument("--work", default="/tmp/shoal-durability-bench")
    ap.add_argument("--baseline", default="",
                    help="unary: also the bare gRPC server of ../shared/anchors/grpc-baseline "
                         "(its Get takes the same framed body)")
    ap.add_argument("--shape", default="50,1,16,50",
                    help="pipeline: streams,depth,batch,connections (800 operations in flight); "
                         "8,2,50,2 multiplexes them as gRPC clients do")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    print(f"# durability benchmarks ({args.rounds} rounds, {args.seconds} s each, "
          f"{time.strftime('%Y-%m-%d %H:%M')})")

    if "unary" in only:
        body = grpc_body(b"bench/0000000001", b"0123456789abcdef")
        rounds = [unary_round(work, args.seconds, body, args.baseline) for _ in range(args.rounds)]
        table("Unary Put, h2load 16 connections x 8 streams", rounds, "calls/s",
              [("shoald fsync always", "etcd 3.4"), ("shoald fsync always", "shoald in memory")])

    if "pipeline" in only:
        shape = [int(x) for x in args.shape.split(",")]
        assert len(shape) == 4 and shape[0] * shape[1] * shape[2] == 800, "800 in flight"
        rounds = [pipeline_round(work, args.seconds, shape) for _ in range(args.rounds)]
        table(f"Pipelined writes, 800 in flight (shoald: {shape[0]} streams x {shape[1]} Batches "
              f"of {shape[2]} Puts, {shape[3]} connections)", rounds, "ops/s",
              [("shoald fsync always", "Redis appendfsync always"),
               ("shoald fsync interval", "Redis appendfsync everysec"),
               ("shoald fsync interval", "shoald in memory")])

    if "recovery" in only:
        shoal_dir, redis_dir = work / "recovery-shoal", work / "recovery-redis"
        load_shoal(shoal_dir, args.keys)
        load_redis(redis_dir, args.keys)
        rounds = []
        for _ in range(args.rounds):
            s_took, s_keys = shoal_recovery(shoal_dir)
            r_took, r_keys = redis_recovery(redis_dir)
            assert s_keys == args.keys and r_keys == args.keys, (s_keys, r_keys)
            rounds.append({"shoald (start to SERVING)": s_took * 1000,
                           "Redis RDB (start to PONG)": r_took * 1000})
        table(f"Recovery of {args.keys:,} keys (16 B keys, 100 B values)", rounds, "ms",
              [("shoald (start to SERVING)", "Redis RDB (start to PONG)")])
        live = args.keys * (16 + 100)
        disk = dir_bytes(shoal_dir)
        files = sorted(f.name for f in (shoal_dir / "wal").iterdir())
        print(f"\nshoald's data directory: {disk:,} bytes for {live:,} bytes of keys and values "
              f"({disk / live:.2f}x; files: {', '.join(files)})")

    if "snapshot" in only:
        # The recovery section's data directory (1M keys): Put p99 with snapshots made all
        # through the run (a 16 MiB threshold, each fold a copy of 1M+ keys) against the same
        # server where no snapshot can start (1 TiB).
        shoal_dir = work / "recovery-shoal"
        if not shoal_dir.exists():
            load_shoal(shoal_dir, args.keys)
        rounds = []
        for _ in range(args.rounds):
            quiet = put_p99(shoal_dir, args.seconds * 2, 1 << 40)
            busy = put_p99(shoal_dir, args.seconds * 2, 16 << 20)
            taken = int(busy[2].get("durability", {}).get("snapshotRevision", "0"))
            rounds.append({"Put p99 us, no snapshot": quiet[0],
                           "Put p99 us, snapshots throughout": busy[0],
                           "Put/s, no snapshot": quiet[1],
                           "Put/s, snapshots throughout": busy[1]})
            print(f"(round: the busy run's newest snapshot is at revision {taken:,})",
                  file=sys.stderr)
        table("Unary Put p99 while snapshots of 1M+ keys are made", rounds, "",
              [("Put p99 us, snapshots throughout", "Put p99 us, no snapshot")])


if __name__ == "__main__":
    main()

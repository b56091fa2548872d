#!/usr/bin/python3
"""Pipelined throughput, side by side: Redis 7 with redis-benchmark -P 16, Shoal with Pipeline.

    bench/pipeline_vs_redis.py [--rounds 3] [--seconds 5]

Each round starts a fresh redis-server (no persistence) and runs, exactly,
`redis-benchmark -P 16 -c 50 -d 16 -n 2000000 -t get,set`; then a fresh shoald (default
configuration, then --workers=1) and shoal-bench: Pipeline streams carrying Batches of 64 operations with 16-byte
values (set, then get), and the unary Get and Put loops for the "times unary" ratios. The rounds
interleave the two servers, so both see the same machine; the table shows medians.
"""

import argparse
import csv
import io
import json
import socket
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOALD = ROOT / "build/service/shoald"
BENCH = ROOT / "build/clients/shoal-bench"
REDIS_ARGS = ["-P", "16", "-c", "50", "-d", "16", "-n", "2000000", "-t", "get,set"]
# shoald as it starts by default (a worker per core), and with one worker, as redis-server
# serves its clients from one thread (the load generator then has the other core to itself).
SERVERS = {"default": [], "--workers=1": ["--workers=1"]}
# One client thread, as redis-benchmark has; 2 connections, 8 streams each with up to --depth
# Batches of 64 in flight (16: 8,192 operations in flight; 2: 1,024, where redis-benchmark keeps
# 50 x 16 = 800).
PIPELINE_ARGS = ["--mode=pipeline", "--batch=64", "--value_size=16", "--workers=1",
                 "--connections=2", "--streams=8", "--keys=10000"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_round():
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        out = subprocess.run(["redis-benchmark", "-p", str(port), *REDIS_ARGS, "--csv"],
                             capture_output=True, text=True, check=True).stdout
        rows = {r["test"]: r for r in csv.DictReader(io.StringIO(out))}
        return {op: (float(rows[op.upper()]["rps"]), float(rows[op.upper()]["p99_latency_ms"]))
                for op in ("get", "set")}
    finally:
        server.terminate()
        server.wait()


def shoal_bench(target, args, seconds):
    out = subprocess.run([str(BENCH), f"--target={target}", f"--duration={seconds}", *args],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"shoal-bench {' '.join(args)}: {result['errors']} errors")
    return result["ops_per_s"], result["p99_us"] / 1000


def shoal_round(shoald, seconds, server_args, depth):
    server = subprocess.Popen([shoald, "--listen=127.0.0.1:0", *server_args],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        target = server.stdout.readline().split("listening on ")[1].split()[0]
        pipeline = [*PIPELINE_ARGS, f"--depth={depth}"]
        return {
            "set": shoal_bench(target, [*pipeline, "--pipeline_op=set"], seconds),
            "get": shoal_bench(target, [*pipeline, "--pipeline_op=get", "--prefill=false"],
                               seconds),
            "unary put": shoal_bench(target, ["--mode=put", "--workers=2"], seconds),
            "unary get": shoal_bench(target, ["--mode=get", "--workers=2", "--prefill=false"],
                                     seconds),
        }
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--depth", type=int, default=16, help="Batches in flight per stream")
    parser.add_argument("--shoald", default=str(SHOALD),
                        help="the shoald to run (e.g. an older build, for a before/after)")
    args = parser.parse_args()
    redis, shoal = [], {name: [] for name in SERVERS}
    for r in range(args.rounds):
        redis.append(redis_round())
        print(f"round {r + 1}: redis {redis[-1]}", flush=True)
        for name, server_args in SERVERS.items():
            shoal[name].append(shoal_round(args.shoald, args.seconds, server_args, args.depth))
            print(f"round {r + 1}: shoald {name} {shoal[name][-1]}", flush=True)

    def median(rounds, key, index=0):
        return statistics.median(x[key][index] for x in rounds)

    print(f"\nmedians of {args.rounds} rounds (ops/s; p99 in ms: Redis per command, Shoal per "
          "Batch of 64)")
    print("| | Redis -P 16 | shoald | Shoal Pipeline, Batches of 64 | Shoal / Redis | "
          "Shoal unary | Pipeline / unary |")
    print("|---|---|---|---|---|---|---|")
    for op, unary in (("get", "unary get"), ("set", "unary put")):
        rr = median(redis, op)
        for name in SERVERS:
            sr, ur = median(shoal[name], op), median(shoal[name], unary)
            print(f"| {op} | {rr:,.0f} (p99 {median(redis, op, 1):.2f}) | {name} | {sr:,.0f} "
                  f"(p99 {median(shoal[name], op, 1):.2f}) | {sr / rr:.2f}x | {ur:,.0f} | "
                  f"{sr / ur:.1f}x |")


if __name__ == "__main__":
    main()

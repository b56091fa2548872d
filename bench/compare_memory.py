#!/usr/bin/env python3
"""Resident memory per entry: shoald vs Debian's redis-server 7, loaded with the same data.

Both servers start empty; each is loaded with the same N entries (16-byte keys bench/0000000000...,
100-byte values); the growth of each process's resident set (VmRSS), divided by N, minus the 116
bytes of key and value, is the overhead per entry. shoald runs with its defaults, so its ordered
index and its watch history (100,000 events) are present. shoald is loaded by shoal-bench's
prefill (gRPC Puts), Redis by `redis-cli --pipe` (SET commands), one after the other in this run.

    bench/compare_memory.py --entries 1000000

Needs redis-server and redis-tools (apt-get install redis-server redis-tools).
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_BYTES, VALUE_BYTES = 16, 100


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def settle(pid):
    """The resident set once it stops moving (allocators return memory lazily)."""
    last = rss_bytes(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = rss_bytes(pid)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def measure_shoald(args):
    p = subprocess.Popen([args.shoald, "--listen=127.0.0.1:0"] + args.extra.split(), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    port = re.search(r":(\d+)\s*$", p.stdout.readline()).group(1)
    try:
        before = settle(p.pid)
        # mode=get with prefill puts every key once; --count=1 then ends the run.
        subprocess.run([args.bench, f"--target=127.0.0.1:{port}", "--mode=get", "--prefill",
                        f"--keys={args.entries}", f"--value_size={VALUE_BYTES}", "--count=1",
                        "--warmup=0"], check=True, capture_output=True)
        after = settle(p.pid)
    finally:
        p.terminate()
        p.wait()
    return before, after


def redis_commands(n):
    value = b"v" * VALUE_BYTES
    out = bytearray()
    for i in range(n):
        key = b"bench/%010d" % i
        out += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
    return bytes(out)


def measure_redis(args):
    port = "47379"
    p = subprocess.Popen(["redis-server", "--port", port, "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        before = settle(p.pid)
        subprocess.run(["redis-cli", "-p", port, "--pipe"], input=redis_commands(args.entries),
                       check=True, capture_output=True)
        keys = int(subprocess.run(["redis-cli", "-p", port, "dbsize"], capture_output=True,
                                  text=True).stdout)
        if keys != args.entries:
            sys.exit(f"redis holds {keys} keys, not {args.entries}")
        after = settle(p.pid)
    finally:
        p.terminate()
        p.wait()
    return before, after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoald", default=os.path.join(ROOT, "build/service/shoald"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/clients/shoal-bench"))
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--extra", default="", help="extra shoald flags, space-separated")
    args = ap.parse_args()

    rows = []
    for name, fn in (("shoald", measure_shoald), ("redis-server 7", measure_redis)):
        before, after = fn(args)
        per_entry = (after - before) / args.entries
        rows.append((name, before, after, per_entry, per_entry - KEY_BYTES - VALUE_BYTES))
    print(f"\n{args.entries:,} entries, {KEY_BYTES}-byte keys, {VALUE_BYTES}-byte values\n")
    print("| server | RSS empty (MiB) | RSS loaded (MiB) | bytes/entry | overhead bytes/entry |")
    print("|---|---|---|---|---|")
    for name, before, after, per, over in rows:
        print(f"| {name} | {before / 2**20:.1f} | {after / 2**20:.1f} | {per:.1f} | {over:.1f} |")
    print(f"\nshoald overhead / Redis overhead: {rows[0][4] / rows[1][4]:.2f}")


if __name__ == "__main__":
    main()

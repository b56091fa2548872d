#!/usr/bin/env python3
"""shoald vs the bare completion-queue gRPC server (../shared/anchors/grpc-baseline), side by side.

Drives both with h2load (the same framed request body, HTTP/2, 16 connections x 8 streams unless
told otherwise), interleaving rounds so that both see the same machine weather, and measures each
server's CPU time per call from /proc. Then measures latency with shoal-bench's generic mode (the
same request to both). Prints a markdown table of medians and ratios.

    bench/compare_unary.py --shoald build/service/shoald --baseline /tmp/grpc-baseline/baseline_server \
        --bench build/clients/shoal-bench --rounds 3 --seconds 10

The baseline's Get and Shoal's Get have the same request shape (bytes key = 1), so one framed body
serves both. Shoal's Put is compared with the baseline's Get too: the baseline is the limit of a
unary call here, whatever the call does.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def encode(type_name, text):
    out = subprocess.run(
        ["protoc", "-I", os.path.join(ROOT, "proto"), f"--encode={type_name}",
         os.path.join(ROOT, "proto/shoal/v1/kv.proto")],
        input=text.encode(), capture_output=True, check=True)
    return out.stdout


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def start(cmd, port_regex):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(port_regex, line)
    if not m:
        sys.exit(f"could not start {cmd}: {line}")
    time.sleep(0.3)
    return p, m.group(1)


def h2load(url, body_path, seconds, conns, streams):
    out = subprocess.run(
        ["h2load", "-D", str(seconds), "-c", str(conns), "-m", str(streams), "-t", "1",
         "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers", url],
        capture_output=True, text=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    done, succeeded = int(m.group(3)), int(m.group(4))
    return rps, done, succeeded, out


def grpc_status(url, body_path):
    """h2load counts HTTP 200 as success even when the call failed: check one call's trailers."""
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "--data-binary", f"@{body_path}", url], capture_output=True, text=True).stdout
    m = re.search(r"grpc-status: (\d+)", out)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoald", default=os.path.join(ROOT, "build/service/shoald"))
    ap.add_argument("--baseline", default="/tmp/grpc-baseline/baseline_server")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/clients/shoal-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--flavor", choices=["multi_thread", "current_thread"], default="multi_thread")
    ap.add_argument("--extra", default="", help="extra shoald flags, space-separated")
    ap.add_argument("--scrape", action="store_true",
                    help="shoald serves /metrics and is scraped every second throughout")
    ap.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure latency with shoal-bench")
    args = ap.parse_args()

    threads = 2 if args.flavor == "multi_thread" else 1
    bodies = {}
    for name, (typ, text) in {
        "get": ("shoal.v1.GetRequest", 'key: "bench/0000000001"'),
        "put": ("shoal.v1.PutRequest", 'key: "bench/0000000001" value: "0123456789abcdef"'),
    }.items():
        path = f"/tmp/shoal-{name}.grpc"
        with open(path, "wb") as f:
            f.write(frame(encode(typ, text)))
        bodies[name] = path

    base, base_port = start([args.baseline, "--port=47051", f"--threads={threads}"], r":(\d+),")
    shoal, shoal_port = start(
        [args.shoald, "--listen=127.0.0.1:0", f"--runtime={args.flavor}", f"--workers={threads}"]
        + (["--metrics_listen=127.0.0.1:0"] if args.scrape else []) + args.extra.split(),
        r":(\d+)\s*$")
    scrapes = []
    if args.scrape:
        metrics_port = re.search(r":(\d+)\s*$", shoal.stdout.readline()).group(1)
        stop_scraping = threading.Event()

        def scrape_every_second():
            while not stop_scraping.wait(1.0):
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                    scrapes.append(len(r.read()))
        scraper = threading.Thread(target=scrape_every_second)
        scraper.start()
    targets = {
        "baseline Get": (base, f"http://127.0.0.1:{base_port}/baseline.Baseline/Get", "get"),
        "shoald Get": (shoal, f"http://127.0.0.1:{shoal_port}/shoal.v1.KV/Get", "get"),
        "shoald Put": (shoal, f"http://127.0.0.1:{shoal_port}/shoal.v1.KV/Put", "put"),
    }
    for name, (_, url, body) in targets.items():
        st = grpc_status(url, bodies[body])
        if st != 0:
            sys.exit(f"{name}: grpc-status {st}, not 0: the load would measure failures")

    results = {name: {"rps": [], "cpu_us": []} for name in targets}
    for r in range(args.rounds):
        for name, (proc, url, body) in targets.items():
            c0 = cpu_seconds(proc.pid)
            rps, done, ok, out = h2load(url, bodies[body], args.seconds, args.connections, args.streams)
            c1 = cpu_seconds(proc.pid)
            if ok != done:
                sys.exit(f"{name}: {done - ok} of {done} requests failed\n{out}")
            results[name]["rps"].append(rps)
            results[name]["cpu_us"].append((c1 - c0) / max(done, 1) * 1e6)
            print(f"round {r + 1}: {name}: {rps:.0f} calls/s, {results[name]['cpu_us'][-1]:.1f} us CPU/call",
                  file=sys.stderr)

    # Latency: shoal-bench's generic mode, the same request to both, interleaved.
    lat = {"baseline Get": [], "shoald Get": []}
    for r in range(args.rounds if args.latency else 0):
        for name, port, method in [("baseline Get", base_port, "/baseline.Baseline/Get"),
                                   ("shoald Get", shoal_port, "/shoal.v1.KV/Get")]:
            out = subprocess.run(
                [args.bench, f"--target=127.0.0.1:{port}", f"--method={method}", "--duration=5",
                 f"--connections={args.connections}", f"--concurrency={args.connections * args.streams}",
                 f"--workers={threads}"], capture_output=True, text=True).stdout
            m = re.search(r'"ops_per_s":([\d.]+),"p50_us":([\d.]+),"p99_us":([\d.]+)', out)
            lat[name].append((float(m.group(1)), float(m.group(2)), float(m.group(3))))

    if args.scrape:
        stop_scraping.set()
        scraper.join()
        print(f"scraped /metrics {len(scrapes)} times ({statistics.median(scrapes)} bytes each)",
              file=sys.stderr)
    for p in (base, shoal):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)

    med = lambda xs: statistics.median(xs)
    base_rps = med(results["baseline Get"]["rps"])
    print(f"\n{args.flavor} shoald (--workers={threads}) vs baseline_server --threads={threads}; "
          f"h2load -c {args.connections} -m {args.streams} -D {args.seconds}, {args.rounds} rounds, medians\n")
    print("| server / call | calls/s | vs baseline | server CPU per call |")
    print("|---|---:|---:|---:|")
    for name in targets:
        rps = med(results[name]["rps"])
        print(f"| {name} | {rps:.0f} | {rps / base_rps * 100:.1f} % | {med(results[name]['cpu_us']):.1f} us |")
    if not args.latency:
        return
    print("\nLatency (shoal-bench --method, generic Get, same request to both):\n")
    print("| server | calls/s | p50 | p99 |")
    print("|---|---:|---:|---:|")
    for name, rows in lat.items():
        print(f"| {name} | {med([r[0] for r in rows]):.0f} | {med([r[1] for r in rows]):.0f} us | "
              f"{med([r[2] for r in rows]):.0f} us |")
    b99 = med([r[2] for r in lat["baseline Get"]])
    s99 = med([r[2] for r in lat["shoald Get"]])
    print(f"\np99 ratio shoald / baseline: {s99 / b99:.2f}x")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs Shoal's runtime benchmark and Tokio's side by side, interleaved, and prints a markdown
table of medians and ranges with the Shoal/Tokio ratio of the medians for each metric both report.

    bench/compare_runtime.py --shoal build/bench/shoal-rt-bench \
        --tokio /tmp/tokio-bench/target/release/tokio-bench \
        --tokio /tmp/tokio-cases/target/release/tokio-cases --rounds 5 [--filter mpsc]

--tokio may be given more than once (the shared anchor, and bench/tokio-cases for the cases Shoal
adds); each case runs on the first Tokio program that lists it. Each round runs every case of
both sides once, each case in a fresh process (the programs' own `one <case>`), Tokio first then
Shoal, so that both see the same machine weather.
"""
import argparse
import statistics
import subprocess
import sys

# Metrics where a larger number is better (the rest: smaller is better).
HIGHER_IS_BETTER = ("throughput", "rate", "fraction")


def run_one(exe, case):
    out = subprocess.run([exe, "one", case], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"{exe} one {case} failed:\n{out.stderr}")
    metrics = {}
    for line in out.stdout.splitlines():
        name, rest = line.split(": ", 1)
        value, unit = rest.split(" ", 1)
        metrics[name] = (float(value), unit)
    return metrics


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--tokio", required=True, action="append")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--filter", default="")
    ap.add_argument("--names", default="Tokio 1.24,Shoal",
                    help="column names: what --tokio runs, then what --shoal runs (for an A/B of two "
                         "builds of Shoal, pass the older build as --tokio)")
    args = ap.parse_args()

    shoal_cases = set(subprocess.run([args.shoal, "list"], capture_output=True, text=True).stdout.split())
    tokio_of = {}
    cases = []
    for exe in args.tokio:
        for c in subprocess.run([exe, "list"], capture_output=True, text=True).stdout.split():
            if c in shoal_cases and args.filter in c and c not in tokio_of:
                tokio_of[c] = exe
                cases.append(c)

    values = {"tokio": {}, "shoal": {}}
    units = {}
    order = []
    for r in range(args.rounds):
        for case in cases:
            for who, exe in (("tokio", tokio_of[case]), ("shoal", args.shoal)):
                for name, (v, unit) in run_one(exe, case).items():
                    if name not in units:
                        units[name] = unit
                        order.append(name)
                    values[who].setdefault(name, []).append(v)
            print(f"round {r + 1}: {case} done", file=sys.stderr)

    print(f"{args.rounds} interleaved rounds; median [min-max]")
    print()
    first, second = args.names.split(",")
    print(f"| metric | {first} | {second} | unit | {second} vs {first} (medians) |")
    print("|---|---:|---:|---|---|")
    for name in order:
        t = values["tokio"].get(name)
        s = values["shoal"].get(name)
        if not t or not s:
            continue
        tm, sm = statistics.median(t), statistics.median(s)
        unit = units[name]
        verdict = ""
        if "c2c" not in name and tm > 0 and sm > 0:
            better_high = any(k in name for k in HIGHER_IS_BETTER)
            ratio = sm / tm if better_high else tm / sm
            verdict = f"{ratio:.2f}x {'faster' if ratio >= 1 else 'slower'}"
            if "rss" in name or "allocations" in name:
                verdict = f"{sm / tm:.2f}x of Tokio's"
        print(f"| {name} | {tm:.4g} [{min(t):.4g}-{max(t):.4g}] | {sm:.4g} [{min(s):.4g}-{max(s):.4g}] "
              f"| {unit} | {verdict} |")


if __name__ == "__main__":
    main()

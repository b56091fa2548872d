#!/usr/bin/python3
"""shoald with TLS, with and without auth, beside the bare gRPC server with TLS (issue 17).

    bench/security_bench.py --baseline /tmp/grpc-baseline/baseline_server [--rounds 3] [--seconds 5]

Unary Get of a 16-byte value through h2load over TLS (https, ALPN h2), 16 connections x 8
streams, one framed body for all (the baseline's GetRequest and shoal.v1.GetRequest share field
1), the same certificate and key (tests/clients/make_test_certs.sh), each server with 2 threads:

  baseline TLS        ../shared/anchors/grpc-baseline with --tls_cert/--tls_key
  shoald TLS          --tls_cert_file/--tls_key_file, auth off
  shoald TLS + token  the same with live.auth on: every call carries `authorization: Bearer`,
                      hashed and checked against the users, then the key against the user's
                      permissions (read on app/)

and, for reference, the baseline and shoald in plaintext. Rounds interleave the servers (odd
rounds in the reverse order); the tables show medians and ranges, and per-round ratios, of
calls/s and of the server's CPU time per call. Before each measurement one call's
grpc-status is checked with curl (h2load counts an HTTP 200 carrying a gRPC error as a success).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import ROOT, SHOALCTL, SHOALD, free_port, stop, table, wait_for  # noqa: E402


def h2load(url, body, seconds, headers=(), conns=16, streams=8):
    args = ["h2load", "-D", str(seconds), "-c", str(conns), "-m", str(streams), "-t", "1", "-d",
            body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run([*args, url], capture_output=True, text=True).stdout
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if not m or not ok or int(ok.group(2)) > 0:
        sys.exit(f"h2load failed on {url}:\n{out}")
    return float(m.group(1)), int(ok.group(1))


def cpu_seconds(pid):
    """The process's user and system CPU time so far (its threads' included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_ok(url, body, headers=()):
    tls = url.startswith("https")
    args = ["curl", "-s", *(["-k", "--http2"] if tls else ["--http2-prior-knowledge"]), "-D", "-",
            "-o", "/dev/null", "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--data-binary", f"@{body}"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run([*args, url], capture_output=True, text=True).stdout
    return "grpc-status: 0" in out


def measure(name, cmd, url, body, seconds, headers=(), setup=None):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (setup is None or setup()) and grpc_ok(url, body, headers),
                 what=f"{name} to answer")
        before = cpu_seconds(p.pid)
        rate, calls = h2load(url, body, seconds, headers)
        return rate, (cpu_seconds(p.pid) - before) / calls * 1e6
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="the grpc-baseline anchor's server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-security-bench-"))
    certs = work / "certs"
    subprocess.run([str(ROOT / "tests/clients/make_test_certs.sh"), str(certs)], check=True)
    token = (certs / "root.token").read_text().strip()
    # The token's user writes (and reads) app/ only: each call's check is the token's hash, the
    # users' comparison and the key against a permission, as for any user but an admin.
    auth = json.loads((certs / "auth.json").read_text())
    auth["live"]["auth"]["roles"].append(
        {"name": "app-write", "permissions": [{"prefix": "app/", "access": "write"}]})
    for u in auth["live"]["auth"]["users"]:
        if u["name"] == "root":
            u["roles"] = ["app-write"]
    (work / "auth.json").write_text(json.dumps(auth))
    key = b"app/bench-key-01"
    message = bytes([1 << 3 | 2, len(key)]) + key  # GetRequest{key}: field 1, as the baseline's
    body = str(work / "get.grpc")
    Path(body).write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    tls = [f"--tls_cert_file={certs}/server.crt", f"--tls_key_file={certs}/server.key"]
    header = [f"authorization: Bearer {token}"]

    rounds = []
    for r in range(args.rounds):
        out = {}
        port = free_port()

        def shoald(extra):
            return [str(SHOALD), f"--listen=127.0.0.1:{port}", "--metrics_listen=", "--workers=2",
                    *extra]

        def put_value(extra_ctl):
            # The key exists (a found Get, as the baseline answers) before the load.
            return subprocess.run([str(SHOALCTL), f"--addr=127.0.0.1:{port}", *extra_ctl, "put",
                                   "app/bench-key-01", "0123456789abcdef"],
                                  capture_output=True).returncode == 0

        base = [args.baseline, f"--port={port}", "--threads=2"]
        get_base = f"127.0.0.1:{port}/baseline.Baseline/Get"
        get_shoal = f"127.0.0.1:{port}/shoal.v1.KV/Get"
        ctl_tls = [f"--cacert={certs}/ca.crt"]
        runs = {
            "baseline plaintext": lambda: measure("baseline", base, f"http://{get_base}", body,
                                                  args.seconds),
            "shoald plaintext": lambda: measure("shoald", shoald([]), f"http://{get_shoal}", body,
                                                args.seconds, setup=lambda: put_value([])),
            "baseline TLS": lambda: measure(
                "baseline TLS", [*base, f"--tls_cert={certs}/server.crt",
                                 f"--tls_key={certs}/server.key"],
                f"https://{get_base}", body, args.seconds),
            "shoald TLS": lambda: measure("shoald TLS", shoald(tls), f"https://{get_shoal}", body,
                                          args.seconds, setup=lambda: put_value(ctl_tls)),
            "shoald TLS + token": lambda: measure(
                "shoald TLS + token", shoald([*tls, f"--config={work}/auth.json"]),
                f"https://{get_shoal}", body, args.seconds, headers=header,
                setup=lambda: put_value([*ctl_tls, f"--token={token}"])),
        }
        # Odd rounds run the servers in the reverse order: a drift in the machine's speed falls
        # on each of them alike.
        for name in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            out[name] = runs[name]()
        out = {name: out[name] for name in runs}  # the tables' order
        rounds.append(out)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[0]:,.0f}/s {v[1]:.1f} us" for k, v in
                                              out.items()), file=sys.stderr)

    table("Unary Get, h2load 16 connections x 8 streams, 2 server threads: calls/s",
          [{k: v[0] for k, v in r.items()} for r in rounds], "calls/s",
          [("shoald TLS", "baseline TLS"), ("shoald TLS + token", "baseline TLS"),
           ("shoald TLS + token", "shoald TLS"), ("baseline TLS", "baseline plaintext"),
           ("shoald plaintext", "baseline plaintext")])
    # CPU per call depends less on what else the machine runs than calls/s does.
    table("The same runs: server CPU per call (user + system, all threads)",
          [{k: v[1] for k, v in r.items()} for r in rounds], "µs",
          [("shoald TLS", "baseline TLS"), ("shoald TLS + token", "shoald TLS"),
           ("shoald plaintext", "baseline plaintext")])


if __name__ == "__main__":
    main()

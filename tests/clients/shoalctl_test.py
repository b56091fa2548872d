#!/usr/bin/python3
"""shoalctl against a fresh shoald: the shared scenario (through --json), exit codes, value
escaping and @file / stdin values, --help on every command, and a clear message when the server
is down.

    /usr/bin/python3 tests/clients/shoalctl_test.py --shoald build/service/shoald --shoalctl build/clients/cli/shoalctl
"""

import argparse
import base64
import json
import os
import pty
import random
import select
import signal
import subprocess
import tempfile
import time

from scenario_support import (
    Mismatch,
    check,
    load_steps,
    run_against_server,
    run_scenario,
    secured_server_args,
)

EXIT = {"ok": 0, "usage": 2, "not_found": 3, "not_applied": 4, "invalid_argument": 5,
        "failed_precondition": 6, "out_of_range": 8, "unavailable": 9, "unauthenticated": 11,
        "permission_denied": 12}


class Ctl:
    def __init__(self, binary, address):
        self.binary, self.address = binary, address

    def run(self, *args, stdin=None, timeout=20):
        return subprocess.run([self.binary, f"--addr={self.address}", *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def json(self, *args):
        """Runs a command with --json; returns (exit code, the JSON objects it printed)."""
        p = self.run("--json", *args)
        return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line]


def text(b64):
    return base64.b64decode(b64 or "").decode()


def observe(ctl, step):
    op = step["op"]
    if op == "put":
        args = ["put", step["key"], step["value"]]
        if "ttl_ms" in step:
            args.append(f"--ttl={step['ttl_ms']}")
        if step.get("if_absent"):
            args.append("--if-absent")
        if "if_revision" in step:
            args.append(f"--if-revision={step['if_revision']}")
        code, [out] = ctl.json(*args)
        check("exit code", EXIT["ok"] if out["applied"] else EXIT["not_applied"], code)
        current = None if out["applied"] else text(out["entry"].get("value"))
        return {"applied": out["applied"], "revision": int(out["revision"]), "current_value": current}
    if op == "get":
        code, [out] = ctl.json("get", step["key"])
        if code == EXIT["not_found"]:
            return {"found": False}
        check("exit code", EXIT["ok"], code)
        return {"found": True, "value": text(out["value"]), "version": int(out["version"]),
                "create_revision": int(out["createRevision"]),
                "mod_revision": int(out["modRevision"])}
    if op == "incr":
        code, [out] = ctl.json("incr", step["key"], str(step["delta"]))
        check("exit code", EXIT["ok"], code)
        _, [entry] = ctl.json("get", step["key"])
        return {"value": int(out["value"]), "revision": int(entry["modRevision"])}
    if op == "range":
        code, entries = ctl.json("range", step["prefix"], f"--page-size={step['page_size']}")
        check("exit code", EXIT["ok"], code)
        return {"keys": [text(e["key"]) for e in entries], "values": [text(e["value"]) for e in entries]}
    if op == "delete":
        code, [out] = ctl.json("del", step["key"])
        check("exit code", EXIT["ok"] if int(out["deleted"]) else EXIT["not_found"], code)
        return {"deleted": int(out["deleted"])}
    if op == "delete_prefix":
        code, [out] = ctl.json("del", step["prefix"], "--prefix")
        check("exit code", EXIT["ok"], code)
        return {"deleted": int(out["deleted"])}
    if op == "sleep_ms":
        time.sleep(step["ms"] / 1000)
        return {}
    if op == "watch":
        # shoalctl watch streams until interrupted: read the events the step wants, then stop it.
        p = subprocess.Popen([ctl.binary, f"--addr={ctl.address}", "--json", "watch", step["prefix"],
                              "--prefix", f"--from-revision={step['from_revision']}"],
                             stdout=subprocess.PIPE, text=True)
        events = []
        while len(events) < step["count"]:
            line = p.stdout.readline()
            if not line:
                break
            e = json.loads(line)
            events.append([e.get("type", "PUT"), text(e["entry"]["key"]), int(e["revision"])])
        p.send_signal(2)  # Ctrl-C
        check("watch exit code after Ctrl-C", 0, p.wait(timeout=10))
        return {"events": events}
    raise Mismatch(f"unknown op {op!r}")


def run_checks(ctl, binary):
    """What the scenario does not cover: exit codes, escaping, value sources, help, server down."""
    def expect(what, want_code, p, out_has=None, err_has=None):
        check(f"{what}: exit code (stderr {p.stderr.strip()!r})", want_code, p.returncode)
        if out_has is not None and out_has not in p.stdout:
            raise Mismatch(f"{what}: {out_has!r} not in output {p.stdout!r}")
        if err_has is not None and err_has not in p.stderr:
            raise Mismatch(f"{what}: {err_has!r} not in stderr {p.stderr!r}")
        print(f"{what}: ok")

    expect("put", 0, ctl.run("put", "ctl/a", "hello"), out_has="OK revision")
    expect("get prints the value", 0, ctl.run("get", "ctl/a"), out_has="hello")
    expect("get of a missing key", EXIT["not_found"], ctl.run("get", "ctl/none"), err_has="not found")
    expect("a condition that fails", EXIT["not_applied"], ctl.run("put", "ctl/a", "x", "--if-absent"))
    expect("an empty key", EXIT["invalid_argument"], ctl.run("put", "", "x"), err_has="INVALID_ARGUMENT")
    expect("increment of text", EXIT["failed_precondition"], ctl.run("incr", "ctl/a"))
    expect("increment overflow", EXIT["out_of_range"],
           (ctl.run("put", "ctl/big", "9223372036854775807"), ctl.run("incr", "ctl/big"))[1])
    expect("an unknown command", EXIT["usage"], ctl.run("frobnicate"))
    expect("an unknown flag", EXIT["usage"], ctl.run("get", "k", "--nope"))
    expect("a missing argument", EXIT["usage"], ctl.run("put", "k"))

    expect("binary value from stdin", 0, ctl.run("put", "ctl/bin", "-", stdin="\x01\x02ok\n"))
    expect("binary value shown escaped", 0, ctl.run("get", "ctl/bin", "--escaped"),
           out_has="\\001\\002ok\\n")
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("from a file")
    expect("value from @file", 0, ctl.run("put", "ctl/file", "@" + f.name))
    os.unlink(f.name)
    expect("@file read back", 0, ctl.run("get", "ctl/file"), out_has="from a file")
    expect("utf-8 shown as is", 0, (ctl.run("put", "ctl/u", "héllo ✓"), ctl.run("get", "ctl/u"))[1],
           out_has="héllo ✓")
    # txn: a put only if the key is absent; the second time the failure branch runs (exit 4).
    # Keys and values are text by default; --base64 takes protobuf's JSON mapping as it is.
    txn = json.dumps({"compares": [{"key": "ctl/t", "target": "EXISTS", "exists": False}],
                      "success": [{"put": {"key": "ctl/t", "value": "first"}}],
                      "failure": [{"get": {"key": "ctl/t"}}]})
    expect("txn applies", 0, ctl.run("txn", txn), out_has="succeeded, revision")
    expect("txn from stdin, failure branch", EXIT["not_applied"], ctl.run("txn", "-", stdin=txn),
           out_has="Zmlyc3Q=")
    _, [got] = ctl.json("get", "ctl/t")
    check("txn text keys and values reach the store as text", "first", text(got["value"]))
    b64 = lambda t: base64.b64encode(t.encode()).decode()
    txn64 = json.dumps({"success": [{"put": {"key": b64("ctl/t64"), "value": b64("wire")}}]})
    expect("txn --base64", 0, ctl.run("txn", "--base64", txn64), out_has="succeeded")
    _, [got] = ctl.json("get", "ctl/t64")
    check("txn --base64 decodes", "wire", text(got["value"]))
    expect("txn with bad JSON", EXIT["usage"], ctl.run("txn", "{not json"))
    # pipe: many operations on one Pipeline stream, replies printed in input order.
    lines = "".join(f"put ctl/p{i} v{i}\nget ctl/p{i}\n" for i in range(300)) + "incr ctl/pn 5\n"
    p = ctl.run("pipe", "--window=16", stdin=lines)
    expect("pipe", 0, p)
    out = p.stdout.splitlines()
    check("pipe prints one line per operation", 601, len(out))
    check("pipe replies in order", [f"v{i}" for i in range(300)], out[1:600:2])
    check("pipe increment", "5", out[600])
    p = ctl.run("pipe", stdin="get ctl/p1\nput  x\nget ctl/p2\n")
    expect("pipe with a bad line runs the others", 1, p, err_has="line 2")
    check("pipe: the bad line's reply in its place",
          ["v1", "ERROR INVALID_ARGUMENT: line 2: expected get KEY, put KEY VALUE, del KEY or "
           "incr KEY [DELTA]", "v2"], p.stdout.splitlines())
    p = ctl.run("pipe", stdin='put "ctl/a b" "hello world"\nget \'ctl/a b\'\nput ctl/q "x\\"y"\n'
                'get ctl/q\nput ctl/e ""\nget ctl/e\n')
    expect("pipe with quoted words", 0, p)
    check("pipe quoting", ["hello world", 'x"y', ""], p.stdout.splitlines()[1:6:2])
    p = ctl.run("pipe", stdin='get "unterminated\n')
    expect("pipe with an unterminated quote", 1, p, out_has="line 1: unterminated quote")
    p = ctl.run("pipe", stdin="get ctl/p7\nincr ctl/a\nget ctl/nothing\n")
    expect("pipe with a failing operation", 1, p, out_has="ERROR FAILED_PRECONDITION")
    check("pipe goes on after a failure", ["v7", "(not found)"],
          [p.stdout.splitlines()[0], p.stdout.splitlines()[2]])
    p = ctl.run("--json", "pipe", "--ops-json", stdin='{"get":{"key":"Y3RsL3Ax"}}\n')
    reply = json.loads(p.stdout)
    check("pipe --ops-json --json", ("1", "djE="),
          (reply["id"], reply["result"]["get"]["entry"]["value"]))
    expect("status", 0, ctl.run("status"), out_has="keys:")
    code, [st] = ctl.json("status")
    check("status --json keys", True, int(st["keys"]) >= 5)
    expect("config show", 0, ctl.run("config"), out_has='"live"')

    for command in ["get", "put", "del", "incr", "range", "watch", "txn", "pipe", "status",
                    "config"]:
        expect(f"{command} --help", 0, ctl.run(command, "--help"), out_has="usage: shoalctl " + command)
    p = subprocess.run([binary, "--help"], capture_output=True, text=True)
    expect("--help", 0, p, out_has="exit codes")
    # Each command's line in the overview is a whole sentence, not its help cut at a line break.
    for line in p.stdout.splitlines():
        if line.startswith("  ") and not line.startswith("  --") and line.strip()[0].isalpha():
            words = line.split()
            if words[0] in ("get", "put", "del", "delete", "incr", "range", "watch", "txn", "pipe",
                            "status", "config") and not line.rstrip().endswith("."):
                raise Mismatch(f"--help cuts a line mid-sentence: {line!r}")
    p = subprocess.run([binary, "--version"], capture_output=True, text=True)
    expect("--version", 0, p, out_has="shoalctl ")
    if "usage" in p.stdout:
        raise Mismatch(f"--version printed help: {p.stdout!r}")
    expect("delete is del", 0, (ctl.run("put", "ctl/d", "x"), ctl.run("delete", "ctl/d"))[1],
           out_has="deleted 1")
    p = ctl.run("del", "", "--prefix")
    expect("del of every key wants --all", EXIT["usage"], p, err_has="--all")
    if "all_keys" in p.stderr:
        raise Mismatch(f"del '' --prefix names the proto field, not the flag: {p.stderr!r}")

    down = Ctl(binary, "127.0.0.1:1")
    p = down.run("get", "k")
    expect("server down", EXIT["unavailable"], p, err_has="cannot reach shoald at 127.0.0.1:1")
    if "Traceback" in p.stderr or "terminate" in p.stderr:
        raise Mismatch(f"server down: not a clean message: {p.stderr!r}")


def run_byte_checks(ctl):
    """Values come back as the bytes that were put: raw when stdout is not a terminal, escaped
    on one; --raw, --escaped, --base64 and --hex choose."""
    def run(*args, stdin=None):
        return subprocess.run([ctl.binary, f"--addr={ctl.address}", *args], input=stdin,
                              capture_output=True, timeout=20)

    value = random.Random(15).randbytes(3000)
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
        with open(src, "wb") as f:
            f.write(value)
        check("put @file of 3,000 random bytes", 0, run("put", "bytes/bin", "@" + src).returncode)
        with open(dst, "wb") as out:
            check("get > file", 0, subprocess.run([ctl.binary, f"--addr={ctl.address}", "get",
                                                    "bytes/bin"], stdout=out, timeout=20).returncode)
        with open(dst, "rb") as f:
            got = f.read()
        check("get > file gives back the bytes that were put (length)", len(value), len(got))
        check("get > file gives back the bytes that were put", True, got == value)
    check("echo hello | put k -", 0, run("put", "bytes/echo", "-", stdin=b"hello\n").returncode)
    check("get of echo's value", b"hello\n", run("get", "bytes/echo").stdout)
    check("--base64", base64.b64encode(value) + b"\n", run("get", "bytes/bin", "--base64").stdout)
    check("--hex", value.hex().encode() + b"\n", run("get", "bytes/bin", "--hex").stdout)
    check("--escaped", b"hello\\n\n", run("get", "bytes/echo", "--escaped").stdout)
    check("--raw", b"hello\n", run("get", "bytes/echo", "--raw").stdout)
    check("two encodings", 2, run("get", "bytes/echo", "--raw", "--hex").returncode)
    # On a terminal, escaped (a terminal never receives raw binary), with a line break.
    leader, follower = pty.openpty()
    p = subprocess.run([ctl.binary, f"--addr={ctl.address}", "get", "bytes/echo"],
                       stdout=follower, timeout=20)
    os.close(follower)
    shown = os.read(leader, 4096)
    os.close(leader)
    check("get on a terminal", (0, b"hello\\n\r\n"), (p.returncode, shown))
    print("bytes: ok")


def run_interrupt_checks(binary):
    """A watch of an unreachable server says it is retrying, and ends on Ctrl-C or SIGTERM
    within a second (it used to block in the reconnect, deaf to both)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen([binary, "--addr=127.0.0.1:1", "watch", "x"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The first failure, then the retries: waited for as a condition, with a bound.
        ready, _, _ = select.select([p.stderr], [], [], 10)
        line = p.stderr.readline() if ready else ""
        if "retrying" not in line:
            p.kill()
            raise Mismatch(f"watch of an unreachable server: no retry message: {line!r}")
        p.send_signal(sig)
        try:
            code = p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            p.kill()
            raise Mismatch(f"watch of an unreachable server ignored {sig.name} for a second")
        check(f"watch exit code after {sig.name}", 0, code)
    print("watch of an unreachable server ends on a signal: ok")


def run_secured_checks(binary, server, cert_dir):
    """--cacert, --cert, --key and --token, and their SHOAL_* variables, against a shoald with TLS
    and auth on (secured_server_args)."""
    def read(name):
        with open(os.path.join(cert_dir, name)) as f:
            return f.read().strip()

    def ctl(*args, env=None):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        return subprocess.run([binary, f"--addr={server.address}", *args], capture_output=True,
                              text=True, timeout=20, env={**clean, **(env or {})})

    ca = f"--cacert={cert_dir}/ca.crt"
    p = ctl(ca, f"--token={read('root.token')}", "put", "app/x", "secret")
    check("secured put: exit", EXIT["ok"], p.returncode)
    # The same from the environment, as a token is best passed (ps shows arguments).
    p = ctl("get", "app/x", env={"SHOAL_CACERT": f"{cert_dir}/ca.crt",
                                 "SHOAL_TOKEN": read("root.token")})
    check("secured get from SHOAL_* variables", (EXIT["ok"], "secret"), (p.returncode, p.stdout.strip()))
    p = ctl(ca, f"--cert={cert_dir}/client.crt", f"--key={cert_dir}/client.key", "get", "app/x")
    check("secured get as client-one (a certificate)", (EXIT["ok"], "secret"),
          (p.returncode, p.stdout.strip()))
    p = ctl(ca, "get", "app/x")
    check("secured get without credentials: exit", EXIT["unauthenticated"], p.returncode)
    check("secured get without credentials: says so", True, "UNAUTHENTICATED" in p.stderr)
    p = ctl(ca, f"--token={read('reader.token')}", "put", "app/x", "v")
    check("secured put by a reader: exit", EXIT["permission_denied"], p.returncode)
    p = ctl(f"--cacert={cert_dir}/missing.crt", "get", "app/x")
    check("a CA file that cannot be read: exit", EXIT["failed_precondition"], p.returncode)
    check("a CA file that cannot be read: names it", True, "missing.crt" in p.stderr)
    p = ctl(ca, f"--cert={cert_dir}/client.crt", "get", "app/x")
    check("a certificate without its key: exit", EXIT["invalid_argument"], p.returncode)
    print("secured: --cacert, --cert, --key, --token and SHOAL_* variables: ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoald", required=True)
    parser.add_argument("--shoalctl", required=True)
    args = parser.parse_args()
    binary = os.path.abspath(args.shoalctl)

    def scenario(server):
        ctl = Ctl(binary, server.address)
        # The CLI follows Range pages without showing them.
        run_scenario(lambda step: observe(ctl, step), load_steps(), unobservable={"pages"})
        run_checks(ctl, binary)
        run_byte_checks(ctl)
        run_interrupt_checks(binary)

    run_against_server(os.path.abspath(args.shoald), scenario)
    with tempfile.TemporaryDirectory() as cert_dir:
        run_against_server(os.path.abspath(args.shoald),
                           lambda server: run_secured_checks(binary, server, cert_dir),
                           secured_server_args(cert_dir))

    print("PASS")

if __name__ == "__main__":
    main()

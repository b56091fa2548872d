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
import subprocess
import tempfile
import time

from scenario_support import Mismatch, check, load_steps, run_against_server, run_scenario

EXIT = {"ok": 0, "usage": 2, "not_found": 3, "not_applied": 4, "invalid_argument": 5,
        "failed_precondition": 6, "out_of_range": 8, "unavailable": 9}


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
    expect("binary value shown escaped", 0, ctl.run("get", "ctl/bin"), out_has="\\001\\002ok\\n")
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("from a file")
    expect("value from @file", 0, ctl.run("put", "ctl/file", "@" + f.name))
    os.unlink(f.name)
    expect("@file read back", 0, ctl.run("get", "ctl/file"), out_has="from a file")
    expect("utf-8 shown as is", 0, (ctl.run("put", "ctl/u", "héllo ✓"), ctl.run("get", "ctl/u"))[1],
           out_has="héllo ✓")
    # txn: a put only if the key is absent; the second time the failure branch runs (exit 4).
    b64 = lambda t: base64.b64encode(t.encode()).decode()
    txn = json.dumps({"compares": [{"key": b64("ctl/t"), "target": "EXISTS", "exists": False}],
                      "success": [{"put": {"key": b64("ctl/t"), "value": b64("first")}}],
                      "failure": [{"get": {"key": b64("ctl/t")}}]})
    expect("txn applies", 0, ctl.run("txn", txn), out_has="succeeded, revision")
    expect("txn from stdin, failure branch", EXIT["not_applied"], ctl.run("txn", "-", stdin=txn),
           out_has="Zmlyc3Q=")
    expect("txn with bad JSON", EXIT["usage"], ctl.run("txn", "{not json"))
    # pipe: many operations on one Pipeline stream, replies printed in input order.
    lines = "".join(f"put ctl/p{i} v{i}\nget ctl/p{i}\n" for i in range(300)) + "incr ctl/pn 5\n"
    p = ctl.run("pipe", "--window=16", stdin=lines)
    expect("pipe", 0, p)
    out = p.stdout.splitlines()
    check("pipe prints one line per operation", 601, len(out))
    check("pipe replies in order", [f"v{i}" for i in range(300)], out[1:600:2])
    check("pipe increment", "5", out[600])
    p = ctl.run("pipe", stdin="get ctl/p1\nput  x\n")
    expect("pipe with a bad line", EXIT["usage"], p, err_has="line 2")
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
    expect("--help", 0, subprocess.run([binary, "--help"], capture_output=True, text=True),
           out_has="exit codes")

    down = Ctl(binary, "127.0.0.1:1")
    p = down.run("get", "k")
    expect("server down", EXIT["unavailable"], p, err_has="cannot reach shoald at 127.0.0.1:1")
    if "Traceback" in p.stderr or "terminate" in p.stderr:
        raise Mismatch(f"server down: not a clean message: {p.stderr!r}")


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

    run_against_server(os.path.abspath(args.shoald), scenario)

if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Runs tests/clients/scenario.json through the Python client against a fresh shoald, checks that
failures surface as ShoalError with the server's status code, and that SIGTERM exits 0.

    /usr/bin/python3 tests/clients/python_scenario_test.py --shoald build/service/shoald [--gen DIR]

Without --gen, the stubs are generated into a temporary directory with clients/python/generate.sh.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import grpc

from scenario_support import (
    ROOT,
    Mismatch,
    check,
    load_steps,
    run_against_server,
    run_scenario,
    secured_server_args,
)


def observe(client, step):
    """Runs one step; returns what it observed, under the scenario's expectation names."""
    op = step["op"]
    if op == "put":
        r = client.put(
            step["key"],
            step["value"],
            ttl_ms=step.get("ttl_ms"),
            if_absent=step.get("if_absent", False),
            if_revision=step.get("if_revision"),
        )
        current = None if r.applied or r.entry is None else r.entry.value.decode()
        return {"applied": r.applied, "revision": r.revision, "current_value": current}
    if op == "get":
        e = client.get(step["key"])
        if e is None:
            return {"found": False}
        return {
            "found": True,
            "value": e.value.decode(),
            "version": e.version,
            "create_revision": e.create_revision,
            "mod_revision": e.mod_revision,
        }
    if op == "incr":
        value = client.increment(step["key"], step["delta"])
        # increment returns the sum only; the key's mod_revision is the increment's revision.
        return {"value": value, "revision": client.get(step["key"]).mod_revision}
    if op == "range":
        pages = list(client.range_pages(step["prefix"], page_size=step["page_size"]))
        entries = [e for page in pages for e in page.entries]
        return {
            "keys": [e.key.decode() for e in entries],
            "values": [e.value.decode() for e in entries],
            "pages": len(pages),
        }
    if op == "delete":
        return {"deleted": client.delete(step["key"]).deleted}
    if op == "delete_prefix":
        return {"deleted": client.delete_prefix(step["prefix"])}
    if op == "sleep_ms":
        time.sleep(step["ms"] / 1000)
        return {}
    if op == "watch":
        events = []
        # The deadline turns too few events into an error instead of a hang.
        for ev in client.watch(step["prefix"], from_revision=step["from_revision"], timeout=10):
            events.append([ev.type.value, ev.key.decode(), ev.revision])
            if len(events) == step["count"]:
                break
        return {"events": events}
    raise Mismatch(f"unknown op {op!r}")


def run_txn(sc, client):
    """A compare-and-swap transfer between two keys, then the same Txn again: it fails."""
    a = client.put("txn/a", "10")
    client.put("txn/b", "0")
    ops = [sc.op_put("txn/a", "5"), sc.op_put("txn/b", "5")]
    cas = [sc.compare("txn/a", "mod_revision", "==", a.revision)]
    first = client.txn(cas, ops, [sc.op_get("txn/a")])
    check("txn succeeded", True, first.succeeded)
    check("both keys, one revision", [first.revision] * 2,
          [client.get(k).mod_revision for k in ("txn/a", "txn/b")])
    again = client.txn(cas, ops, [sc.op_get("txn/a")])
    check("txn failure branch", (False, 0, b"5"),
          (again.succeeded, again.revision, again.results[0].get.entry.value))
    print("txn: ok")


def run_pipeline(sc, client):
    """Many operations on one Pipeline stream: results in order, a failure in its place."""
    ops = []
    for i in range(200):
        ops += [sc.op_put(f"pipe/{i}", str(i)), sc.op_get(f"pipe/{i}")]
    ops.append(sc.op_increment("pipe/1"))  # "1" + 1
    ops.append(sc.op_increment("txn/a", 1))
    ops.append(sc.op_get(""))  # an empty key: INVALID_ARGUMENT, in its place
    results = list(client.pipeline(ops, window=8))
    check("pipeline results", len(ops), len(results))
    check("pipeline gets in order", [str(i).encode() for i in range(200)],
          [r.get.entry.value for r in results[1:400:2]])
    check("pipeline increment", 2, results[400].increment.value)
    check("pipeline error in its place", grpc.StatusCode.INVALID_ARGUMENT.value[0],
          results[402].error.code)
    print("pipeline: ok")


def run_errors(sc, client):
    """Failures raise ShoalError with the server's status code (sc: the shoal_client module)."""
    code = grpc.StatusCode

    def word_then_increment():
        client.put("scn/word", "seven")
        client.increment("scn/word")

    cases = [
        ("get of an empty key", code.INVALID_ARGUMENT, sc.ShoalError, lambda: client.get("")),
        ("put with a negative ttl", code.INVALID_ARGUMENT, sc.ShoalError,
         lambda: client.put("scn/x", "v", ttl_ms=-1)),
        ("increment of a non-integer", code.FAILED_PRECONDITION, sc.ShoalError,
         word_then_increment),
        # A start revision from another store (a restarted server) counts as compacted.
        ("watch from another store", code.OUT_OF_RANGE, sc.CompactedError,
         lambda: next(client.watch("scn/", from_revision=1, store_id="0" * 16, timeout=10))),
    ]
    for what, want_code, want_type, call in cases:
        try:
            call()
        except sc.ShoalError as err:
            check(f"error {what}: exception", want_type.__name__, type(err).__name__)
            check(f"error {what}: status", want_code, err.code)
            print(f"error {what}: {err.code.name}: ok")
        else:
            raise Mismatch(f"error {what}: expected {want_code.name}, but the call succeeded")


def run_secured(sc, server, cert_dir):
    """TLS, a client certificate and tokens against a shoald with auth on (secured_server_args)."""
    def read(name):
        with open(os.path.join(cert_dir, name), "rb") as f:
            return f.read()

    tls = sc.TlsOptions(root_certificates=read("ca.crt"))
    root = sc.ShoalClient(server.address, tls=tls, token=read("root.token").decode().strip())
    check("secured: put with the root token", True, root.put("app/x", "secret").applied)
    print("secured: TLS and a token: put: ok")
    mtls = sc.TlsOptions(root_certificates=read("ca.crt"), certificate_chain=read("client.crt"),
                         private_key=read("client.key"))
    client_one = sc.ShoalClient(server.address, tls=mtls, token="")
    check("secured: client-one reads app/x", b"secret", client_one.get("app/x").value)
    print("secured: a client certificate as the identity: get: ok")
    code = grpc.StatusCode
    cases = [
        ("no token", code.UNAUTHENTICATED, sc.ShoalClient(server.address, tls=tls, token="")),
        ("a read-only token writing", code.PERMISSION_DENIED,
         sc.ShoalClient(server.address, tls=tls, token=read("reader.token").decode().strip())),
        ("a CA not trusted", code.UNAVAILABLE,
         sc.ShoalClient(server.address, tls=sc.TlsOptions(), token="", timeout=3)),
    ]
    for what, want, client in cases:
        try:
            client.put("app/x", "v")
        except sc.ShoalError as err:
            check(f"secured: {what}", want, err.code)
            print(f"secured: {what}: {err.code.name}: ok")
        else:
            raise Mismatch(f"secured: {what}: the call succeeded")
        finally:
            client.close()
    root.close()
    client_one.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoald", required=True, help="the shoald binary")
    parser.add_argument("--gen", help="generated stubs (default: generate into a temporary dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gen = args.gen
        if gen is None:
            gen = tmp
            subprocess.run([ROOT / "clients/python/generate.sh", gen], check=True)
        sys.path[:0] = [str(gen), str(ROOT / "clients/python")]
        import shoal_client  # only now are the stubs it imports on the path

        steps = load_steps()

        def scenario(server):
            with shoal_client.ShoalClient(server.address) as client:
                run_scenario(lambda step: observe(client, step), steps)
                run_txn(shoal_client, client)
                run_pipeline(shoal_client, client)
                run_errors(shoal_client, client)

        run_against_server(os.path.abspath(args.shoald), scenario)
        cert_dir = os.path.join(tmp, "certs")
        run_against_server(os.path.abspath(args.shoald),
                           lambda server: run_secured(shoal_client, server, cert_dir),
                           secured_server_args(cert_dir))
        print("PASS")

if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The Python clients on a replicated store: given every replica (a follower first), ShoalClient
and AsyncShoalClient follow the leader, and when the leader is killed (SIGKILL) they find the
next one.

    python_failover_test.py --shoald build/service/shoald

Three real replicas on loopback, each with its own data directory under a temporary one. Release
builds only (CMake adds it there): a process-level fault test.
"""

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(shoald, tmp):
    clients = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    peers = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    members = ",".join(f"{i + 1}={peers[i]}/{clients[i]}" for i in range(3))
    procs = []
    for i in range(3):
        procs.append(subprocess.Popen(
            [shoald, f"--listen={clients[i]}", "--metrics_listen=", f"--data_dir={tmp}/r{i + 1}",
             f"--raft_id={i + 1}", f"--raft_members={members}", "--raft_bootstrap"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    for p in procs:  # each prints where it listens once the cluster has its store id
        if not re.search(r"listening on", p.stdout.readline()):
            sys.exit("a replica did not start")
    return clients, procs


def check(what, want, got):
    if want != got:
        sys.exit(f"FAIL {what}: want {want!r}, got {got!r}")


async def write_following(aio, value):
    """An async put that may meet the dead leader's broken connection (not resent: it may have
    been sent), then lands on the next leader."""
    import shoal_client

    try:
        return await aio.put("a", value)
    except shoal_client.ShoalError as err:
        check("a lost async write's code", "UNAVAILABLE", err.code.name)
        return await aio.put("a", value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoald", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([ROOT / "clients/python/generate.sh", f"{tmp}/gen"], check=True)
        sys.path[:0] = [f"{tmp}/gen", str(ROOT / "clients/python")]
        import shoal_client

        clients, procs = start_cluster(os.path.abspath(args.shoald), tmp)
        try:
            probe = shoal_client.ShoalClient(",".join(clients))
            leader = probe.status().replication.leader  # a replica that knows the leader
            deadline = time.monotonic() + 30
            while not leader and time.monotonic() < deadline:
                leader = probe.status().replication.leader
            probe.close()
            follower = next(c for c in clients if c != leader)
            order = [follower] + [c for c in clients if c != follower]
            from shoal_client.aio import AsyncShoalClient

            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # the channels bind to it as they are made
            aio = AsyncShoalClient(",".join(order), attempts=20)
            # A pipeline opened on the follower runs on the leader: every result comes, in
            # order, and each increment applies once (before, each write came back refused).
            with shoal_client.ShoalClient(",".join(order), attempts=20) as piped:
                ops = []
                for n in range(50):
                    ops += [
                        shoal_client.op_increment("pipe/counter"),
                        shoal_client.op_put(f"pipe/k{n}", f"v{n}"),
                        shoal_client.op_get(f"pipe/k{n}"),
                    ]
                results = list(piped.pipeline(ops, window=8))
                check("pipeline results", len(ops), len(results))
                for n, r in enumerate(results):
                    check(f"pipeline result {n} has no error", "", r.error.message)
                    if n % 3 == 0:
                        check(f"increment {n}", n // 3 + 1, r.increment.value)
                    if n % 3 == 2:
                        check(f"read back {n}", f"v{(n - 2) // 3}".encode(), r.get.entry.value)
                check("the pipeline went to the leader", leader, piped.current_target)
            with shoal_client.ShoalClient(",".join(order), attempts=20) as kv:
                first = kv.put("k", "1")
                check("the write went to the leader", leader, kv.current_target)
                first_async = loop.run_until_complete(aio.put("a", "1"))
                check("the async write went to the leader", leader, aio.current_target)
                procs[clients.index(leader)].send_signal(signal.SIGKILL)
                procs[clients.index(leader)].wait()
                again_async = loop.run_until_complete(write_following(aio, "2"))
                check("one revision later (async)", True, again_async.revision > first_async.revision)
                check("a new leader (async)", True, aio.current_target != leader)
                got = loop.run_until_complete(aio.get("a"))
                check("the value (async)", b"2", got.value)
                loop.run_until_complete(aio.close())
                loop.close()
                try:
                    again = kv.put("k", "2")
                except shoal_client.ShoalError as err:
                    # On the dead leader's broken connection: not resent (it may have been
                    # sent); the client moved on, and this retry lands.
                    check("a lost write's code", "UNAVAILABLE", err.code.name)
                    again = kv.put("k", "2")
                check("one revision later", True, again.revision > first.revision)
                check("a new leader", True, kv.current_target != leader)
                check("the value", b"2", kv.get("k").value)
                check("Status on the new leader", "leader", kv.status().replication.role)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()
    print("PASS")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The Python client as a user installs it: pip into a virtual environment (Debian's way:
--system-site-packages for python3-grpcio, --no-build-isolation, nothing from an index), then a
program outside Shoal's tree that uses the blocking and the asyncio clients against a real shoald.

    /usr/bin/python3 tests/clients/python_package_test.py --shoald build/service/shoald
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scenario_support import Mismatch, check, run_against_server

ROOT = Path(__file__).resolve().parents[2]

CONSUMER = '''
import asyncio, sys
import shoal_client
from shoal_client import ShoalClient, TlsOptions
from shoal_client.aio import AsyncShoalClient

target = sys.argv[1]
print("package", shoal_client.__file__)
with ShoalClient(target) as shoal:
    shoal.put("pkg/sync", b"\\x00\\xffbytes")
    print("sync get", shoal.get("pkg/sync").value.hex())

async def main():
    async with AsyncShoalClient(target) as shoal:
        r = await shoal.put("pkg/async", "hello")
        print("async get", (await shoal.get("pkg/async")).value.decode())
        print("async incr", await shoal.increment("pkg/n", 41), await shoal.increment("pkg/n"))
        print("async range", [e.key.decode() async for e in shoal.range("pkg/")])
        watch = shoal.watch("pkg/async", prefix=False, from_revision=r.revision)
        event = await watch.__anext__()
        print("async watch", event.type.name, event.value.decode(), event.revision == r.revision)
        await watch.aclose()
        print("async status keys", (await shoal.status()).keys)

asyncio.run(main())
TlsOptions(root_certificates=b"")  # the TLS options exist for servers that serve TLS
'''


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if p.returncode != 0:
        raise Mismatch(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoald", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-python-package-") as tmp:
        tmp = Path(tmp)
        # A copy of what pip needs (pip builds a local directory in place): the package and the
        # protos beside it, as in Shoal's tree.
        shutil.copytree(ROOT / "clients" / "python", tmp / "src" / "clients" / "python",
                        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        shutil.copytree(ROOT / "proto", tmp / "src" / "proto")
        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", "--system-site-packages", venv])
        run([venv / "bin" / "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
             tmp / "src" / "clients" / "python"])
        print("pip install --no-build-isolation: ok")
        consumer = tmp / "consumer"
        consumer.mkdir()
        (consumer / "app.py").write_text(CONSUMER)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

        def body(server):
            out = run([venv / "bin" / "python", "app.py", server.address], cwd=consumer, env=env)
            print(out, end="")
            lines = out.splitlines()
            if not lines or str(venv) not in lines[0]:
                raise Mismatch(f"the consumer did not use the installed package: {lines[:1]}")
            wanted = ["sync get 00ff6279746573", "async get hello", "async incr 41 42",
                      "async range ['pkg/async', 'pkg/n', 'pkg/sync']",
                      "async watch PUT hello True", "async status keys 3"]
            check("what the consumer printed", wanted, lines[1:])

        run_against_server(os.path.abspath(args.shoald), body)

        print("PASS")


if __name__ == "__main__":
    main()

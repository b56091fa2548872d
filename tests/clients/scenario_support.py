"""What the client scenario runners share: a shoald on an ephemeral port, the scenario file,
and the checker that compares what a client observed with the scenario's expectations.
"""

import itertools
import json
import re
import select
import signal
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_steps():
    return json.loads((ROOT / "tests/clients/scenario.json").read_text())["steps"]


class Mismatch(Exception):
    pass


def check(what, want, got):
    if want != got:
        raise Mismatch(f"{what}: expected {want!r}, got {got!r}")


class Shoald:
    """shoald on an ephemeral loopback port; its log goes to a temporary file, shown on failure."""

    def __init__(self, path, extra_args=()):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [path, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        match = re.fullmatch(r"shoald listening on (\S+)\n", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"shoald did not start (first line {line!r}):\n{self.log_text()}")
        self.address = match[1]

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "no exit within 30 s"


def canonical(events):
    """The keys of one delete_prefix come in no set order: sort the keys of each run of DELETE
    events, leaving the types and revisions where they are."""
    out = []
    for is_delete, run in itertools.groupby(events, key=lambda e: e[0] == "DELETE"):
        run = list(run)
        keys = sorted(e[1] for e in run) if is_delete else [e[1] for e in run]
        out += [[kind, key, revision] for (kind, _, revision), key in zip(run, keys)]
    return out


def run_scenario(observe, steps, unobservable=()):
    """observe(step) runs one step and returns what it saw, under the expectation names.
    unobservable: expectation names this client cannot see (they are skipped, and said so)."""
    for n, step in enumerate(steps, 1):
        label = f"step {n:2} {step['op']} {step.get('key', step.get('prefix', ''))}".rstrip()
        try:
            got = observe(step)
            for name, want in step.get("expect", {}).items():
                if name in unobservable:
                    print(f"{label}: {name} not visible to this client, skipped")
                    continue
                if name not in got:
                    raise Mismatch(f"{name!r}: not something {step['op']} reports")
                if name == "events":
                    want, events = canonical(want), canonical(got[name])
                    for i, (w, g) in enumerate(zip(want, events)):
                        check(f"event {i}", w, g)
                    check("number of events", len(want), len(events))
                else:
                    check(name, want, got[name])
        except Mismatch as err:
            raise Mismatch(f"{label}: {err}") from None
        except Exception as err:  # the client failed outright
            raise Mismatch(f"{label}: {type(err).__name__}: {err}") from err
        print(f"{label}: ok")


def run_against_server(shoald_path, body, extra_args=()):
    """Starts shoald, runs body(server), stops it with SIGTERM. Exits non-zero, with the server's
    log, on a Mismatch or when shoald does not exit 0."""
    import sys

    server = Shoald(shoald_path, extra_args)
    try:
        body(server)
    except Mismatch as err:
        server.terminate()
        sys.exit(f"FAIL {err}\n--- shoald log ---\n{server.log_text()}")
    except BaseException:
        server.terminate()
        raise
    code = server.terminate()
    if code != 0:
        sys.exit(f"FAIL shoald exited with {code} after SIGTERM\n{server.log_text()}")
    print("shoald exited 0 after SIGTERM")


def secured_server_args(cert_dir):
    """Makes what make_test_certs.sh makes in cert_dir; the flags of a shoald serving TLS (client
    certificates optional) with auth on."""
    subprocess.run([str(ROOT / "tests/clients/make_test_certs.sh"), str(cert_dir)], check=True)
    return [
        f"--tls_cert_file={cert_dir}/server.crt",
        f"--tls_key_file={cert_dir}/server.key",
        f"--tls_client_ca_file={cert_dir}/ca.crt",
        "--tls_client_auth=optional",
        f"--config={cert_dir}/auth.json",
    ]

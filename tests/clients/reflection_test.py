#!/usr/bin/python3
"""docs/grpcurl.md, run with the real grpcurl against a fresh shoald.

Every ```sh block of the document that runs grpcurl is run as it stands (its address replaced by
the test server's), and what grpcurl prints (stdout, then stderr for an error) must match the
```json or ```text block after it, line by line, where <placeholders> (revisions, ids, times)
match anything. A streaming example is read until grpcurl has printed as many messages as the
document shows, then interrupted as a person would (SIGINT). Server reflection
(grpc.reflection.v1alpha) is also asked directly: the services the document must cover, every
method with an example, and the server's count of open streams between examples.

    /usr/bin/python3 tests/clients/reflection_test.py --shoald build/service/shoald [--grpcurl PATH]

grpcurl is not packaged by Debian: the test takes --grpcurl, else $GRPCURL, else grpcurl on PATH,
else ../shared/tools/grpcurl beside the project; without one it reports SKIP and exits 77.
Needs Debian's python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc (for
grpc_python_plugin) and grpc-proto (for reflection.proto, compiled into a temporary directory).
"""

import argparse
import dataclasses
import difflib
import importlib
import os
import json
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from scenario_support import secured_server_args

ROOT = Path(__file__).resolve().parents[2]
REFLECTION_PROTO = Path("/usr/share/grpc-proto/grpc/reflection/v1alpha/reflection.proto")

# The address every example in the document uses; the test sends them to its own shoald.
DOC_ADDRESS = "localhost:50051"
# ... and the examples with TLS and a token, to a second shoald with TLS and auth on, run from a
# directory holding certs/ (make_test_certs.sh) and proto/, their tokens put in for these names.
DOC_TLS_ADDRESS = "localhost:50443"
DOC_TOKENS = {"$ROOT_TOKEN": "root.token", "$READER_TOKEN": "reader.token"}
# Flags the secured examples use, each with its value.
TLS_FLAGS = ("-cacert", "-cert", "-key", "-H", "-import-path", "-proto")
REQUIRED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "shoal.v1.Admin",
    "shoal.v1.KV",
)
# Every method of these must have an example.
DOCUMENTED_SERVICES = ("shoal.v1.KV", "shoal.v1.Admin", "grpc.health.v1.Health")

PLACEHOLDER = re.compile(r"<[a-z][a-z0-9-]*>")
CALL_TIMEOUT = 10  # seconds
SKIP = 77  # ctest's SKIP_RETURN_CODE for this test
STREAM_TIMEOUT = 20  # for all the messages a streaming example shows
START_TIMEOUT = 10
STOP_TIMEOUT = 30  # shoald's default grace is 10 s


class Failure(Exception):
    """A reason to fail, already worded for the person reading the output."""


# ------------------------------------------------------------------------------------------------
# The document


@dataclasses.dataclass
class Example:
    line: int  # of the command, 1-based
    command: str
    verb: str  # "list", "describe" or "call"
    target: str  # the symbol for describe, the method (service/Method) for call
    data: str  # -d, for call ("" when absent: an empty request)
    output: str
    output_line: int
    secured: bool = False  # TLS and a token: the second shoald

    def where(self, doc):
        return f"{doc}:{self.line}"


@dataclasses.dataclass
class Block:
    lang: str
    body: str
    first: int  # line of the opening fence
    last: int  # line of the closing fence


def fenced_blocks(text, doc):
    blocks, open_block, body = [], None, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.fullmatch(r"```\s*([\w-]*)\s*", line)
        if open_block is None:
            if fence:
                open_block, body = (fence.group(1), number), []
        elif fence and not fence.group(1):
            lang, first = open_block
            blocks.append(Block(lang, "\n".join(body), first, number))
            open_block = None
        else:
            body.append(line)
    if open_block is not None:
        raise Failure(f"{doc}:{open_block[1]}: code block is never closed")
    return blocks


def parse_command(command, where):
    """grpcurl's command line, as far as the document uses it."""
    args = shlex.split(command.replace("\\\n", " "), comments=True)
    if not args or args[0] != "grpcurl":
        raise Failure(f"{where}: expected a grpcurl command, got: {command}")
    args, data, plaintext, secured = args[1:], "", False, False
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "-plaintext":
            plaintext = True
        elif flag == "-d" and args:
            data = args.pop(0)
        elif flag in TLS_FLAGS and args:
            secured |= flag == "-cacert"
            args.pop(0)
        else:
            raise Failure(f"{where}: this test does not know grpcurl's {flag}")
    if plaintext == secured:
        raise Failure(f"{where}: a command needs -plaintext (to {DOC_ADDRESS}) or -cacert "
                      f"(to {DOC_TLS_ADDRESS}), not both")
    address = DOC_TLS_ADDRESS if secured else DOC_ADDRESS
    if not args or args[0] != address:
        raise Failure(f"{where}: examples talk to {address}: {command}")
    rest = args[1:]
    if rest == ["list"]:
        return "list", "", data, secured
    if len(rest) == 2 and rest[0] == "describe":
        return "describe", rest[1], data, secured
    if len(rest) == 1 and re.fullmatch(r"[\w.]+/\w+", rest[0]):
        return "call", rest[0], data, secured
    raise Failure(f"{where}: expected list, describe SYMBOL or SERVICE/METHOD: {command}")


def read_examples(doc):
    """Each ```sh block that runs grpcurl, with the ```json or ```text block right after it."""
    try:
        text = doc.read_text(encoding="utf-8")
    except OSError as e:
        raise Failure(f"cannot read the document: {e}") from None
    blocks = fenced_blocks(text, doc)
    lines = text.splitlines()
    examples = []
    for i, block in enumerate(blocks):
        commands = [l for l in block.body.replace("\\\n", " ").splitlines()
                    if l.strip() and not l.lstrip().startswith("#")]
        if block.lang != "sh" or not any(c.lstrip().startswith("grpcurl") for c in commands):
            continue
        where = f"{doc}:{block.first + 1}"
        if len(commands) != 1:
            raise Failure(f"{where}: a grpcurl example holds exactly one command")
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        between = lines[block.last:nxt.first - 1] if nxt else []
        if nxt is None or nxt.lang not in ("json", "text") or any(l.strip() for l in between):
            raise Failure(f"{where}: the command must be followed by a ```json or ```text block "
                          "with what grpcurl prints")
        verb, target, data, secured = parse_command(commands[0].strip(), where)
        examples.append(Example(block.first + 1, commands[0].strip(), verb, target, data,
                                nxt.body, nxt.first + 1, secured))
    if not examples:
        raise Failure(f"{doc}: no grpcurl examples found")
    return examples


def json_documents(text, where):
    """The messages of one output block: grpcurl prints a stream's messages one after another.

    A placeholder may stand for a number (`"depth": <depth>`): it reads as 0 here.
    """
    text = PLACEHOLDER.sub("0", text)
    decoder, documents, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return documents
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise Failure(f"{where}: the output is not JSON messages ({e})") from None
        documents.append(text[pos:end])
        pos = end


# ------------------------------------------------------------------------------------------------
# Comparing what the document shows with what the server said


def line_pattern(expected_line):
    pieces = PLACEHOLDER.split(expected_line)
    return re.compile(".*?".join(re.escape(p) for p in pieces))


def compare(example, doc, actual):
    expected = example.output.splitlines()
    got = actual.splitlines()
    if len(expected) == len(got) and all(
            line_pattern(e).fullmatch(g) for e, g in zip(expected, got)):
        return
    # Show the placeholders where they matched, so that the diff holds only real differences.
    shown = [expected[i] if i < len(expected) and line_pattern(expected[i]).fullmatch(line)
             else line for i, line in enumerate(got)]
    diff = "\n".join(difflib.unified_diff(
        expected, shown, f"{doc}:{example.output_line} (the document)", "grpcurl (what it printed)",
        lineterm=""))
    raise Failure(f"{example.where(doc)}: the answer differs from the document\n"
                  f"  $ {example.command}\n{diff}")


# ------------------------------------------------------------------------------------------------
# Reflection, the way grpcurl uses it


def compile_reflection_stubs(proto, out):
    """protoc's Python stubs for reflection.proto, imported from out.

    -I is the proto's own folder, so the modules are reflection_pb2 and reflection_pb2_grpc at
    the top level, and no generated grpc/ package shadows the real one.
    """
    if not proto.is_file():
        raise Failure(f"{proto} is missing: install Debian's grpc-proto")
    plugin = shutil.which("grpc_python_plugin")
    if not shutil.which("protoc") or not plugin:
        raise Failure("protoc and grpc_python_plugin are needed: install Debian's "
                      "protobuf-compiler and protobuf-compiler-grpc")
    subprocess.run(["protoc", f"-I{proto.parent}", f"--python_out={out}", f"--grpc_out={out}",
                    f"--plugin=protoc-gen-grpc={plugin}", proto.name], check=True)
    sys.path.insert(0, str(out))
    return importlib.import_module("reflection_pb2"), importlib.import_module(
        "reflection_pb2_grpc")


class Reflection:
    """Types learnt from the server alone, in a descriptor pool of their own."""

    def __init__(self, channel, stubs):
        self._messages, services = stubs
        self._stub = services.ServerReflectionStub(channel)
        self._channel = channel
        self.pool = descriptor_pool.DescriptorPool()
        self._factory = message_factory.MessageFactory(self.pool)
        self.files = {}  # name -> FileDescriptorProto, as the server sent it

    def _ask(self, **request):
        try:
            responses = list(self._stub.ServerReflectionInfo(
                iter([self._messages.ServerReflectionRequest(**request)]), timeout=CALL_TIMEOUT))
        except grpc.RpcError as e:
            raise Failure(f"reflection failed on {request}: {e.code().name}: {e.details()}")
        if len(responses) != 1:
            raise Failure(f"reflection answered {request} with {len(responses)} responses")
        response = responses[0]
        if response.HasField("error_response"):
            raise Failure(f"reflection could not answer {request}: "
                          f"{response.error_response.error_message} "
                          f"(code {response.error_response.error_code})")
        return response

    def list_services(self):
        response = self._ask(list_services="")
        return [s.name for s in response.list_services_response.service]

    def _add_files(self, serialized):
        """Adds files to the pool, each after the files it imports (fetched if not sent)."""
        sent = {}
        for data in serialized:
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            sent[proto.name] = proto

        def add(name, importer):
            if name in self.files:
                return
            proto = sent.get(name)
            if proto is None:
                proto = self._file_by_name(name, importer)
            for dependency in proto.dependency:
                add(dependency, name)
            self.pool.Add(proto)
            self.files[name] = proto

        for name in sent:
            add(name, None)

    def _file_by_name(self, name, importer):
        response = self._ask(file_by_filename=name)
        for data in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            if proto.name == name:
                return proto
        raise Failure(f"reflection does not have {name}, which {importer} imports")

    def service(self, name):
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            pass
        response = self._ask(file_containing_symbol=name)
        self._add_files(response.file_descriptor_response.file_descriptor_proto)
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            raise Failure(f"{name} is not a service, or reflection's files do not define it")

    def method(self, full_name):
        service_name, method_name = full_name.split("/")
        method = self.service(service_name).methods_by_name.get(method_name)
        if method is None:
            raise Failure(f"{service_name} has no method {method_name}")
        return method

    def message_class(self, descriptor):
        return self._factory.GetPrototype(descriptor)

    def multicallable(self, method):
        path = f"/{method.containing_service.full_name}/{method.name}"
        request, response = (self.message_class(method.input_type),
                             self.message_class(method.output_type))
        make = {
            (False, False): self._channel.unary_unary,
            (False, True): self._channel.unary_stream,
            (True, False): self._channel.stream_unary,
            (True, True): self._channel.stream_stream,
        }[(method.client_streaming, method.server_streaming)]
        return request, make(path, request_serializer=request.SerializeToString,
                             response_deserializer=response.FromString)


# ------------------------------------------------------------------------------------------------
# What grpcurl prints


def find_grpcurl(given):
    """The grpcurl to run: --grpcurl, $GRPCURL, PATH, or ../shared/tools/grpcurl; None if none."""
    for candidate in (given, os.environ.get("GRPCURL"), shutil.which("grpcurl"),
                      ROOT.parent / "shared" / "tools" / "grpcurl"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    return None


@dataclasses.dataclass
class Target:
    """Where examples run: the server's address; for the secured ones, the directory they run in
    (certs/ and proto/) and the tokens they name."""

    address: str
    cwd: str = None
    tokens: dict = dataclasses.field(default_factory=dict)


def grpcurl_args(grpcurl, example, target):
    """The example's command line, as the shell splits it (the tokens put in as a shell would
    expand them), run against the target's address."""
    args = shlex.split(example.command.replace("\\\n", " "), comments=True)
    out = []
    for a in args[1:]:
        if a in (DOC_ADDRESS, DOC_TLS_ADDRESS):
            a = target.address
        for name, token in target.tokens.items():
            a = a.replace(name, token)
        out.append(a)
    return [str(grpcurl)] + out


def messages_printed(text):
    """How many whole JSON messages grpcurl has printed: each ends with a "}" line of its own."""
    return sum(1 for line in text.splitlines() if line == "}")


def run_grpcurl(grpcurl, example, doc, target, streaming):
    """Runs the example with grpcurl; returns what it printed (stdout, then stderr).

    A server stream that the document shows in part (a Watch goes on until Ctrl-C) is read until
    grpcurl has printed as many messages as the document shows, then interrupted with SIGINT.
    """
    wanted = (len(json_documents(example.output, f"{doc}:{example.output_line}"))
              if streaming else 0)
    process = subprocess.Popen(grpcurl_args(grpcurl, example, target), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=target.cwd)
    # Read unbuffered, straight from the pipe: a buffered reader could hold printed messages
    # back while select() waits for more.
    out, interrupted = b"", False
    deadline = time.monotonic() + (STREAM_TIMEOUT if streaming else CALL_TIMEOUT)
    while True:
        if streaming and messages_printed(out.decode(errors="replace")) >= wanted:
            process.send_signal(signal.SIGINT)
            interrupted = True
            break
        left = deadline - time.monotonic()
        if left <= 0:
            process.kill()
            process.wait()
            raise Failure(f"{example.where(doc)}: grpcurl printed "
                          f"{messages_printed(out.decode(errors='replace'))} of the {wanted} "
                          f"messages shown in time\n  $ {example.command}")
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break  # grpcurl closed its output: it is exiting
        out += chunk
    try:
        rest, err = process.communicate(timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise Failure(f"{example.where(doc)}: grpcurl did not exit\n  $ {example.command}")
    if not interrupted:
        out += rest + err  # an error: grpcurl prints it on stderr, after the messages
    out = out.decode("utf-8", errors="replace")
    return out.rstrip("\n")


def wait_until_released(reflection):
    """After an interrupted stream, waits until shoald has let go of it.

    The server notices a cancelled, quiet stream on its next tick (a quarter of a second for a
    watch, a second for the health and config streams). A person pressing Ctrl-C and typing the
    next command never sees it still counted in Status; the test, being quicker, waits.
    """
    status = reflection.method("shoal.v1.Admin/Status")
    request_class, call = reflection.multicallable(status)
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        try:
            answer = call(request_class(), timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            raise Failure(f"Admin/Status failed: {e.code().name}: {e.details()}")
        if answer.watchers == 0 and answer.in_flight <= 1:  # this Status call itself
            return
        if time.monotonic() > deadline:
            raise Failure(f"shoald still counts a cancelled stream after {CALL_TIMEOUT} s "
                          f"(watchers {answer.watchers}, in flight {answer.in_flight})")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------
# shoald


class Shoald:
    def __init__(self, binary, log, extra_args=()):
        self._log = log
        try:
            self.process = subprocess.Popen([str(binary), "--listen=127.0.0.1:0",
                                             "--metrics_listen=127.0.0.1:0", *extra_args],
                                            stdout=subprocess.PIPE, stderr=log, text=True)
        except OSError as e:
            raise Failure(f"cannot start shoald: {e}") from None
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        found = re.fullmatch(r"shoald listening on (\S+)\n", line)
        if not found:
            self.kill()
            raise Failure(f"shoald did not say where it listens (first line: {line!r})\n"
                          f"{self.log_tail()}")
        self.address = found.group(1)

    def log_tail(self, lines=20):
        self._log.flush()
        text = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        tail = text.splitlines()[-lines:]
        return "shoald's log, last lines:\n" + "\n".join("  " + l for l in tail) if tail else ""

    def terminate(self):
        """SIGTERM, and shoald's exit code once it has drained."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure(f"shoald did not exit within {STOP_TIMEOUT} s of SIGTERM")

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------------------------


def check_document(reflection, grpcurl, targets, examples, doc):
    """targets: (plaintext, secured) Targets."""
    services = reflection.list_services()
    missing = [s for s in REQUIRED_SERVICES if s not in services]
    if missing:
        raise Failure(f"reflection does not list {', '.join(missing)} (it lists {services})")

    called = {e.target for e in examples if e.verb == "call"}
    for name in DOCUMENTED_SERVICES:
        for method in reflection.service(name).methods:
            if f"{name}/{method.name}" not in called:
                raise Failure(f"{doc} has no example of {name}/{method.name}")

    for example in examples:
        # A stream the server refuses ends by itself, with its error: read to the end.
        streamed = (example.verb == "call" and
                    reflection.method(example.target).server_streaming and
                    not example.output.lstrip().startswith("ERROR:"))
        actual = run_grpcurl(grpcurl, example, doc, targets[example.secured], streamed)
        compare(example, doc, actual)
        if streamed and not example.secured:
            wait_until_released(reflection)
        print(f"ok  {example.where(doc)}  {example.verb} {example.target}".rstrip())
    return len(examples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoald", required=True, type=Path, help="the shoald binary to test")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "grpcurl.md")
    parser.add_argument("--reflection-proto", type=Path, default=REFLECTION_PROTO)
    parser.add_argument("--grpcurl", help="the grpcurl binary (default: see above)")
    args = parser.parse_args()
    if args.grpcurl and not os.access(args.grpcurl, os.X_OK):
        print(f"FAIL --grpcurl {args.grpcurl}: not an executable", file=sys.stderr)
        return 1
    grpcurl = find_grpcurl(args.grpcurl)
    if grpcurl is None:
        print("SKIP grpcurl not found (--grpcurl, $GRPCURL, PATH, ../shared/tools/grpcurl): "
              "docs/grpcurl.md is not checked", file=sys.stderr)
        return SKIP
    print(f"grpcurl: {grpcurl}")

    try:
        doc = args.doc.resolve()
        if doc.is_relative_to(Path.cwd()):
            doc = doc.relative_to(Path.cwd())  # what the messages name
        examples = read_examples(args.doc)
        with tempfile.TemporaryDirectory(prefix="shoal-reflection-test-") as tmp:
            stubs = compile_reflection_stubs(args.reflection_proto, Path(tmp))
            # The secured examples' directory: certs/ and proto/, as the document has them.
            secured_dir = Path(tmp) / "secured"
            secured_dir.mkdir()
            (secured_dir / "proto").symlink_to(ROOT / "proto")
            secured_args = secured_server_args(secured_dir / "certs")
            tokens = {name: (secured_dir / "certs" / file).read_text().strip()
                      for name, file in DOC_TOKENS.items()}
            with open(Path(tmp) / "shoald.log", "w+", encoding="utf-8") as log:
                server = Shoald(args.shoald.resolve(), log)
                secured = Shoald(args.shoald.resolve(), log, secured_args)
                try:
                    with grpc.insecure_channel(server.address) as channel:
                        try:
                            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
                        except grpc.FutureTimeoutError:
                            raise Failure(f"cannot connect to shoald at {server.address}")
                        targets = (Target(server.address),
                                   Target(secured.address, str(secured_dir), tokens))
                        count = check_document(Reflection(channel, stubs), grpcurl, targets,
                                               examples, doc)
                except Failure as failure:
                    server.kill()
                    secured.kill()
                    raise Failure(f"{failure}\n{server.log_tail()}".rstrip()) from None
                except BaseException:
                    server.kill()
                    secured.kill()
                    raise
                for s in (server, secured):
                    code = s.terminate()
                    if code != 0:
                        raise Failure(f"shoald exited with {code} after SIGTERM, not 0\n"
                                      f"{s.log_tail()}")
    except Failure as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    print(f"PASS {count} examples of {doc} match what grpcurl prints; shoald drained and exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ShoalClient: a synchronous wrapper over the shoal.v1 KV and Admin services."""

from __future__ import annotations

import enum
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Optional, Union

import grpc

from shoal.v1 import admin_pb2, admin_pb2_grpc, kv_pb2, kv_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"

# Keys and values: str is sent as UTF-8; everything read back is bytes.
Data = Union[str, bytes]


def _bytes(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


@dataclass(frozen=True)
class TlsOptions:
    """TLS for the connection, all PEM: the CA that signs the server's certificate (None: the
    system's roots), and for mutual TLS the client's certificate chain and private key."""

    root_certificates: Optional[bytes] = None
    certificate_chain: Optional[bytes] = None
    private_key: Optional[bytes] = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            self.root_certificates, self.private_key, self.certificate_chain
        )


# The server bounds what it sends (max_message_bytes); a client must not refuse it below that.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]


def _target(target: Optional[str]) -> str:
    return target or os.environ.get("SHOAL_ADDR") or DEFAULT_TARGET


def _metadata(token: Optional[str]) -> Optional[tuple]:
    """A bearer token travels in every call's metadata."""
    return (("authorization", f"Bearer {token}"),) if token else None


class ShoalError(Exception):
    """A call that failed: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class CompactedError(ShoalError):
    """The watch's start revision is no longer in the server's history (or belongs to a store
    that has since restarted). Range again, then watch from that range's revision + 1."""

    def __init__(self, code: grpc.StatusCode, details: str, compact_revision: int):
        super().__init__(code, details)
        self.compact_revision = compact_revision  # the oldest revision still kept


class WatchCanceledError(ShoalError):
    """The server ended the watch (the watcher fell behind, or the server is shutting down).
    Every revision before resume_revision was delivered: watch again from there."""

    def __init__(self, code: grpc.StatusCode, details: str, resume_revision: int, reason: str):
        super().__init__(code, details)
        self.resume_revision = resume_revision
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    ttl_remaining_ms: int  # 0: no TTL

    @classmethod
    def _from_proto(cls, e: kv_pb2.Entry) -> Entry:
        return cls(e.key, e.value, e.create_revision, e.mod_revision, e.version, e.ttl_remaining_ms)


def _entry(msg, name: str) -> Optional[Entry]:
    return Entry._from_proto(getattr(msg, name)) if msg.HasField(name) else None


@dataclass(frozen=True)
class PutResult:
    applied: bool
    # Applied: the revision of this write. Not applied: the store's revision at the time.
    revision: int
    # Applied: the entry as written. Not applied: the current entry, None if the key is absent.
    entry: Optional[Entry]
    # With return_previous and applied: the entry before the put, if there was one.
    previous: Optional[Entry] = None


@dataclass(frozen=True)
class DeleteResult:
    applied: bool
    deleted: int
    revision: int  # the store's revision after the delete
    previous: list[Entry] = field(default_factory=list)  # with return_previous
    current: Optional[Entry] = None  # not applied: the entry that is still there


@dataclass(frozen=True)
class RangePage:
    entries: list[Entry]
    # The store's revision before the page was read: watch from revision + 1 to follow on from
    # the first page without a gap.
    revision: int
    store_id: str


class EventType(str, enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"
    EXPIRE = "EXPIRE"  # the key's TTL ran out


@dataclass(frozen=True)
class Event:
    type: EventType
    revision: int
    # PUT: the entry as written. DELETE / EXPIRE: the key only, mod_revision = this revision.
    entry: Entry
    previous: Optional[Entry] = None  # with prev_kv

    @property
    def key(self) -> bytes:
        return self.entry.key

    @property
    def value(self) -> bytes:
        return self.entry.value


def _condition(if_absent=False, if_present=False, if_revision=None) -> Optional[kv_pb2.Condition]:
    if sum((if_absent, if_present, if_revision is not None)) > 1:
        raise ValueError("if_absent, if_present and if_revision are mutually exclusive")
    if if_absent:
        return kv_pb2.Condition(if_absent=True)
    if if_present:
        return kv_pb2.Condition(if_present=True)
    if if_revision is not None:
        return kv_pb2.Condition(if_mod_revision=if_revision)
    return None


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool  # which branch ran
    revision: int  # the Txn's revision, 0 if it only read
    results: list  # kv_pb2.OpResult, one per operation of the branch that ran


_TARGETS = {"value": 0, "version": 1, "create_revision": 2, "mod_revision": 3, "exists": 4}
_RESULTS = {"==": 0, "!=": 1, "<": 2, ">": 3}


def compare(key: Data, target: str, op: str, operand) -> "kv_pb2.Compare":
    """compare("a", "mod_revision", "==", 7), compare("a", "value", "<", "m"),
    compare("a", "exists", "==", False)."""
    c = kv_pb2.Compare(key=_bytes(key), target=_TARGETS[target], result=_RESULTS[op])
    if target == "value":
        c.value = _bytes(operand)
    elif target == "exists":
        c.exists = bool(operand)
    else:
        c.number = int(operand)
    return c


def op_get(key: Data) -> "kv_pb2.Op":
    return kv_pb2.Op(get=kv_pb2.GetRequest(key=_bytes(key)))


def op_put(key: Data, value: Data, ttl_ms: Optional[int] = None) -> "kv_pb2.Op":
    req = kv_pb2.PutRequest(key=_bytes(key), value=_bytes(value))
    if ttl_ms is not None:
        req.ttl_ms = ttl_ms
    return kv_pb2.Op(put=req)


def op_delete(key: Data) -> "kv_pb2.Op":
    return kv_pb2.Op(delete=kv_pb2.DeleteRequest(key=_bytes(key)))


def op_increment(key: Data, delta: int = 1) -> "kv_pb2.Op":
    return kv_pb2.Op(increment=kv_pb2.IncrementRequest(key=_bytes(key), delta=delta))


def _event(e: kv_pb2.Event) -> Event:
    return Event(
        EventType[kv_pb2.Event.Type.Name(e.type)],
        e.revision,
        Entry._from_proto(e.entry),
        _entry(e, "previous"),
    )


def _watch_error(err: grpc.RpcError, final) -> ShoalError:
    """How a watch stream ended, given its last compacted or canceled response (or None)."""
    code, details = err.code(), err.details()
    if final is not None and final.compacted:
        return CompactedError(code, details, final.compact_revision)
    if final is not None and final.canceled:
        return WatchCanceledError(code, details, final.resume_revision, final.cancel_reason)
    return ShoalError(code, details)


def _leader_hint(metadata) -> Optional[str]:
    """shoal-leader from trailing metadata: grpc's (key, value) pairs, or grpc.aio's Metadata."""
    if metadata is None:
        return None
    if isinstance(metadata, tuple):
        return dict(metadata).get("shoal-leader")
    return metadata.get("shoal-leader")


def _refused_for_not_leading(result) -> bool:
    """A Pipeline result a follower refused for not leading: nothing applied, safe to resend."""
    return (
        result.HasField("error")
        and result.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        and result.error.message.startswith("this replica does not lead")
    )


def _writes(op) -> bool:
    return op.WhichOneof("op") in ("put", "delete", "increment")


class _PipelineStream:
    """One Pipeline stream for requests[start:], at most `window` unanswered: the request
    iterator grpc reads on its own thread waits for a slot, given back as each result is
    yielded (answered), or for the end (stop_sending, cancel)."""

    def __init__(self, stub, requests: list, start: int, window: int, metadata):
        self._slots = threading.Semaphore(window)
        self._stopped = threading.Event()

        def sending():
            for n in range(start, len(requests)):
                self._slots.acquire()
                if self._stopped.is_set():
                    return
                yield kv_pb2.PipelineRequest(id=n - start + 1, op=requests[n])

        self._call = stub.Pipeline(sending(), metadata=metadata)

    def results(self):
        for reply in self._call:
            yield reply.result

    def answered(self) -> None:
        self._slots.release()

    def stop_sending(self) -> None:
        self._stopped.set()
        self._slots.release()

    def cancel(self) -> None:
        self._call.cancel()
        self.stop_sending()


class _Replicas:
    """The replicas a client was given, which one calls go to, and how a failed call follows the
    cluster: shared by ShoalClient and AsyncShoalClient (aio.py), which make the channels."""

    def __init__(self, target, timeout, tls, token, attempts):
        self.target = _target(target)
        self.timeout = timeout
        self._metadata = _metadata(os.environ.get("SHOAL_TOKEN") if token is None else token)
        self.attempts = attempts
        self._tls = tls
        self._endpoints: list = []  # (target, channel, kv stub, admin stub)
        for t in self.target.split(","):
            if t.strip():
                self._endpoint(t.strip())
        self._current = 0

    def _channel(self, target: str):
        raise NotImplementedError

    def _endpoint(self, target: str) -> int:
        """The index of target's channel, made if it is new (a leader hint may name one)."""
        for i, e in enumerate(self._endpoints):
            if e[0] == target:
                return i
        channel = self._channel(target)
        self._endpoints.append(
            (target, channel, kv_pb2_grpc.KVStub(channel), admin_pb2_grpc.AdminStub(channel))
        )
        return len(self._endpoints) - 1

    @property
    def current_target(self) -> str:
        """The replica calls go to now."""
        return self._endpoints[self._current][0]

    @property
    def _kv(self):
        return self._endpoints[self._current][2]

    @property
    def _admin(self):
        return self._endpoints[self._current][3]

    def _tries(self) -> int:
        return self.attempts + len(self._endpoints)

    def _stub(self, admin: bool):
        return self._endpoints[self._current][3 if admin else 2]

    def _after_failure(self, err, tried: int, read: bool, pause: float) -> Optional[float]:
        """Where a call that failed on replica `tried` goes next: the pause before it is sent again
        (0: at once), or None to give up. A refusal that carries shoal-leader (nothing applied)
        goes to the leader it names, or, empty during an election, to the next replica after a
        pause; an unreachable replica moves the client on, and only a read (or a call that never
        left: "failed to connect") is sent again."""
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            return None
        hint = _leader_hint(err.trailing_metadata())
        if hint is not None:
            self._current = self._endpoint(hint) if hint else (tried + 1) % len(self._endpoints)
            return pause if not hint or self._current == tried else 0.0
        self._current = (tried + 1) % len(self._endpoints)
        if not read and not (err.details() or "").startswith("failed to connect"):
            return None  # a write that may have been applied is not sent again
        return pause


class ShoalClient(_Replicas):
    """A connection to shoald. Every call but watch has a deadline of `timeout` seconds.

        with ShoalClient() as shoal:          # SHOAL_ADDR, else 127.0.0.1:50051
            shoal.put("greeting", "hello")
            shoal.get("greeting").value       # b"hello"
    """

    def __init__(
        self,
        target: Optional[str] = None,
        *,
        timeout: Optional[float] = 5.0,
        tls: Optional[TlsOptions] = None,
        token: Optional[str] = None,
        attempts: int = 4,
    ):
        """target: host:port (None: $SHOAL_ADDR, else 127.0.0.1:50051), or a replicated store's
        replicas, comma-separated: the client follows the leader (a refusal naming it sends any
        call there; an unreachable replica moves it to the next one, where reads are retried, up
        to `attempts` more times). tls: None for plaintext. token: a bearer token sent with every
        call (for servers that require one); None: $SHOAL_TOKEN, if set."""
        super().__init__(target, timeout, tls, token, attempts)

    def _channel(self, target: str):
        if self._tls is None:
            return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        return grpc.secure_channel(target, self._tls.credentials(), options=_CHANNEL_OPTIONS)

    def close(self) -> None:
        for e in self._endpoints:
            e[1].close()

    def __enter__(self) -> ShoalClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, name: str, request, *, read: bool = False, admin: bool = False):
        """One call on the current replica, following the cluster (_Replicas._after_failure)."""
        pause = 0.05
        for _ in range(self._tries()):
            tried = self._current
            try:
                return getattr(self._stub(admin), name)(
                    request, timeout=self.timeout, metadata=self._metadata
                )
            except grpc.RpcError as err:
                last = err
                wait = self._after_failure(err, tried, read, pause)
                if wait is None:
                    break
                if wait:
                    time.sleep(wait)
                    pause = min(pause * 2, 1.0)
        raise ShoalError(last.code(), last.details()) from last

    def get(self, key: Data) -> Optional[Entry]:
        resp = self._call("Get", kv_pb2.GetRequest(key=_bytes(key)), read=True)
        return Entry._from_proto(resp.entry) if resp.found else None

    def put(
        self,
        key: Data,
        value: Data,
        *,
        ttl_ms: Optional[int] = None,
        keep_ttl: bool = False,
        if_absent: bool = False,
        if_present: bool = False,
        if_revision: Optional[int] = None,
        return_previous: bool = False,
    ) -> PutResult:
        """Sets key to value. ttl_ms: None for the server's default, 0 for none. A condition that
        does not hold is not an error: the result has applied = False and the current entry."""
        key, value = _bytes(key), _bytes(value)
        req = kv_pb2.PutRequest(
            key=key,
            value=value,
            ttl_ms=ttl_ms,
            keep_ttl=keep_ttl,
            condition=_condition(if_absent, if_present, if_revision),
            return_previous=return_previous,
        )
        resp = self._call("Put", req)
        if not resp.applied:
            return PutResult(False, resp.header.revision, _entry(resp, "entry"))
        # The server sends back only the metadata of what was written: the rest is ours.
        entry = replace(Entry._from_proto(resp.entry), key=key, value=value)
        return PutResult(True, entry.mod_revision, entry, _entry(resp, "previous"))

    def delete(
        self,
        key: Data,
        *,
        if_revision: Optional[int] = None,
        return_previous: bool = False,
    ) -> DeleteResult:
        """Deletes one key; deleted is 0 if it was absent. With if_revision, only if the key's
        mod_revision is that (applied = False and the current entry otherwise)."""
        req = kv_pb2.DeleteRequest(
            key=_bytes(key),
            condition=_condition(if_revision=if_revision),
            return_previous=return_previous,
        )
        resp = self._call("Delete", req)
        return DeleteResult(
            applied=resp.applied,
            deleted=resp.deleted,
            revision=resp.header.revision,
            previous=[Entry._from_proto(e) for e in resp.previous],
            current=_entry(resp, "current"),
        )

    def delete_prefix(self, prefix: Data, *, all_keys: bool = False) -> int:
        """Deletes every key starting with prefix; returns how many. An empty prefix (every key)
        also needs all_keys=True."""
        req = kv_pb2.DeleteRequest(key=_bytes(prefix), by_prefix=True, all_keys=all_keys)
        return self._call("Delete", req).deleted

    def increment(self, key: Data, delta: int = 1) -> int:
        """Adds delta to a decimal-integer value (an absent key counts as 0); returns the sum."""
        req = kv_pb2.IncrementRequest(key=_bytes(key), delta=delta)
        return self._call("Increment", req).value

    def range_pages(
        self,
        prefix: Optional[Data] = None,
        start: Optional[Data] = None,
        end: Optional[Data] = None,
        page_size: Optional[int] = None,
        keys_only: bool = False,
    ) -> Iterator[RangePage]:
        """The pages of a range: by prefix, or [start, end) (end None: no upper bound), or every
        key if neither is given. page_size None: the server's cap."""
        if prefix is not None and (start is not None or end is not None):
            raise ValueError("give a prefix or start/end, not both")
        req = kv_pb2.RangeRequest(limit=page_size or 0, keys_only=keys_only)
        if start is None and end is None:
            req.prefix = _bytes(prefix or b"")
        else:
            req.interval.start = _bytes(start or b"")
            req.interval.end = _bytes(end or b"")
        while True:
            resp = self._call("Range", req, read=True)
            yield RangePage(
                [Entry._from_proto(e) for e in resp.entries],
                resp.header.revision,
                resp.header.store_id,
            )
            if not resp.continuation:
                return
            req.continuation = resp.continuation

    def range(
        self,
        prefix: Optional[Data] = None,
        start: Optional[Data] = None,
        end: Optional[Data] = None,
        page_size: Optional[int] = None,
        keys_only: bool = False,
    ) -> Iterator[Entry]:
        """The entries of a range in key order, across pages (see range_pages). Not a snapshot:
        writes made meanwhile may or may not show."""
        for page in self.range_pages(prefix, start, end, page_size, keys_only):
            yield from page.entries

    def watch(
        self,
        key_or_prefix: Data,
        prefix: bool = True,
        from_revision: int = 0,
        prev_kv: bool = False,
        *,
        store_id: str = "",
        timeout: Optional[float] = None,
    ) -> Iterator[Event]:
        """Yields the changes to a key, or to every key under a prefix, in revision order.

        from_revision 0 means from the next mutation after the watch starts, which is when
        iteration begins; pass a revision to replay from the history without a gap (with the
        store_id it came from, to detect a restarted server). Raises CompactedError if that
        revision is gone, WatchCanceledError if the server ends the watch. timeout bounds the
        whole stream (None: no deadline). Stop iterating, or close the generator, to cancel."""
        req = kv_pb2.WatchRequest(
            key=_bytes(key_or_prefix),
            prefix=prefix,
            start_revision=from_revision,
            store_id=store_id,
            prev_kv=prev_kv,
        )
        call = self._kv.Watch(req, timeout=timeout, metadata=self._metadata)
        final = None  # a compacted or canceled response; the stream's status follows it
        try:
            for resp in call:
                yield from (_event(e) for e in resp.events)
                if resp.compacted or resp.canceled:
                    final = resp
        except grpc.RpcError as err:
            raise _watch_error(err, final) from err
        finally:
            call.cancel()

    def txn(self, compares=(), success=(), failure=()) -> TxnResult:
        """Compares, then the success operations if all hold, else the failure ones: atomically,
        in one revision. Build them with compare() and op_get/op_put/op_delete/op_increment."""
        req = kv_pb2.TxnRequest(compares=list(compares), success=list(success), failure=list(failure))
        resp = self._call("Txn", req)
        return TxnResult(resp.succeeded, resp.revision, list(resp.results))

    def pipeline(self, ops: Iterable, *, window: int = 64) -> Iterator["kv_pb2.OpResult"]:
        """Runs the operations (op_get/op_put/op_delete/op_increment) on a Pipeline stream, up
        to `window` of them unanswered, and yields each result in order; a failed operation
        yields a result whose `error` is set. The stream has no deadline.

        On a replicated store it follows the leader: from the first operation a follower refused
        for not leading (nothing applied; `error.leader` names the leader), the rest go to the
        leader on a new stream, once the refused stream's other replies show that every write
        after it was refused so too (else every result is yielded as it came). A stream that
        could not connect goes to the next replica; one that broke after connecting raises."""
        if window < 1:
            raise ValueError("window must be at least 1")
        requests = list(ops)
        done = 0  # operations whose result was yielded
        pause = 0.05
        for moves in range(1 << 30):
            tried = self._current
            may_move = moves < self._tries()
            stream = _PipelineStream(self._endpoints[tried][2], requests, done, window,
                                     self._metadata)
            refused = None
            after = []
            try:
                for result in stream.results():
                    if refused is not None:
                        after.append(result)
                    elif may_move and _refused_for_not_leading(result):
                        refused = result
                        stream.stop_sending()
                    else:
                        done += 1
                        stream.answered()
                        yield result
            except grpc.RpcError as err:
                if refused is not None:
                    # What was sent after these is unknown: the caller has what came, then the
                    # error.
                    yield from [refused, *after]
                    raise ShoalError(err.code(), err.details()) from err
                never_sent = (err.details() or "").startswith("failed to connect")
                if err.code() != grpc.StatusCode.UNAVAILABLE or not never_sent or not may_move:
                    raise ShoalError(err.code(), err.details()) from err
                self._current = (tried + 1) % len(self._endpoints)  # nothing of it left
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            finally:
                stream.cancel()
            if refused is None:
                return
            resend = all(
                not _writes(requests[done + 1 + k]) or _refused_for_not_leading(r)
                for k, r in enumerate(after)
            )
            if not resend:
                for r in [refused, *after]:
                    done += 1
                    yield r
            if done == len(requests):
                return
            leader = refused.error.leader
            self._current = self._endpoint(leader) if leader else (tried + 1) % len(self._endpoints)
            if not leader or self._current == tried:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def status(self) -> admin_pb2.StatusResponse:
        """The server's Admin/Status: keys, bytes, watchers, version, compact_revision..."""
        return self._call("Status", admin_pb2.StatusRequest(), read=True, admin=True)

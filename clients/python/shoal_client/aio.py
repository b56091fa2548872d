"""AsyncShoalClient: the shoal.v1 KV and Admin services for asyncio code (grpc.aio).

    import asyncio
    from shoal_client.aio import AsyncShoalClient

    async def main():
        async with AsyncShoalClient() as shoal:          # SHOAL_ADDR, else 127.0.0.1:50051
            await shoal.put("greeting", "hello")
            print((await shoal.get("greeting")).value)   # b"hello"
            async for event in shoal.watch("greeting", prefix=False):
                print(event.type, event.value)
                break                                     # leaving the loop cancels the stream

    asyncio.run(main())

The same results and errors as ShoalClient (Entry, PutResult, ShoalError...), and the same
way of following a replicated store's leader: give every replica, comma-separated
(AsyncShoalClient("a:50051,b:50051,c:50051")). A task that is cancelled while it awaits a call
cancels the call.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import AsyncIterator, Optional

import grpc
import grpc.aio

from shoal.v1 import admin_pb2, kv_pb2

from .client import (
    _CHANNEL_OPTIONS,
    Data,
    DeleteResult,
    Entry,
    Event,
    PutResult,
    ShoalError,
    TlsOptions,
    TxnResult,
    _Replicas,
    _bytes,
    _condition,
    _entry,
    _event,
    _watch_error,
)


class AsyncShoalClient(_Replicas):
    """A connection to shoald for asyncio. Every call but watch has a deadline of `timeout`."""

    def __init__(
        self,
        target: Optional[str] = None,
        *,
        timeout: Optional[float] = 5.0,
        tls: Optional[TlsOptions] = None,
        token: Optional[str] = None,
        attempts: int = 4,
    ):
        """As ShoalClient: one address, or a replicated store's replicas, comma-separated."""
        super().__init__(target, timeout, tls, token, attempts)

    def _channel(self, target: str):
        if self._tls is None:
            return grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(target, self._tls.credentials(), options=_CHANNEL_OPTIONS)

    async def close(self) -> None:
        for e in self._endpoints:
            await e[1].close()

    async def __aenter__(self) -> AsyncShoalClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _call(self, name: str, request, *, read: bool = False, admin: bool = False):
        """One call on the current replica, following the cluster (as ShoalClient's)."""
        pause = 0.05
        for _ in range(self._tries()):
            tried = self._current
            try:
                return await getattr(self._stub(admin), name)(
                    request, timeout=self.timeout, metadata=self._metadata
                )
            except grpc.aio.AioRpcError as err:
                last = err
                wait = self._after_failure(err, tried, read, pause)
                if wait is None:
                    break
                if wait:
                    await asyncio.sleep(wait)
                    pause = min(pause * 2, 1.0)
        raise ShoalError(last.code(), last.details()) from last

    async def get(self, key: Data) -> Optional[Entry]:
        resp = await self._call("Get", kv_pb2.GetRequest(key=_bytes(key)), read=True)
        return Entry._from_proto(resp.entry) if resp.found else None

    async def put(
        self,
        key: Data,
        value: Data,
        *,
        ttl_ms: Optional[int] = None,
        if_absent: bool = False,
        if_present: bool = False,
        if_revision: Optional[int] = None,
    ) -> PutResult:
        """As ShoalClient.put: a condition that does not hold gives applied = False."""
        key, value = _bytes(key), _bytes(value)
        req = kv_pb2.PutRequest(
            key=key,
            value=value,
            ttl_ms=ttl_ms,
            condition=_condition(if_absent, if_present, if_revision),
        )
        resp = await self._call("Put", req)
        if not resp.applied:
            return PutResult(False, resp.header.revision, _entry(resp, "entry"))
        entry = replace(Entry._from_proto(resp.entry), key=key, value=value)
        return PutResult(True, entry.mod_revision, entry, _entry(resp, "previous"))

    async def delete(self, key: Data, *, if_revision: Optional[int] = None) -> DeleteResult:
        req = kv_pb2.DeleteRequest(key=_bytes(key), condition=_condition(if_revision=if_revision))
        resp = await self._call("Delete", req)
        return DeleteResult(
            applied=resp.applied,
            deleted=resp.deleted,
            revision=resp.header.revision,
            previous=[Entry._from_proto(e) for e in resp.previous],
            current=_entry(resp, "current"),
        )

    async def increment(self, key: Data, delta: int = 1) -> int:
        req = kv_pb2.IncrementRequest(key=_bytes(key), delta=delta)
        return (await self._call("Increment", req)).value

    async def range(
        self, prefix: Data = b"", *, page_size: Optional[int] = None, keys_only: bool = False
    ) -> AsyncIterator[Entry]:
        """The entries under a prefix in key order, following pages."""
        req = kv_pb2.RangeRequest(prefix=_bytes(prefix), limit=page_size or 0, keys_only=keys_only)
        while True:
            resp = await self._call("Range", req, read=True)
            for e in resp.entries:
                yield Entry._from_proto(e)
            if not resp.continuation:
                return
            req.continuation = resp.continuation

    async def watch(
        self,
        key_or_prefix: Data,
        prefix: bool = True,
        from_revision: int = 0,
        *,
        store_id: str = "",
    ) -> AsyncIterator[Event]:
        """As ShoalClient.watch: events in revision order; CompactedError, WatchCanceledError.
        Leaving the `async for` (or cancelling the task) cancels the stream."""
        req = kv_pb2.WatchRequest(
            key=_bytes(key_or_prefix), prefix=prefix, start_revision=from_revision,
            store_id=store_id,
        )
        call = self._kv.Watch(req, metadata=self._metadata)
        final = None
        try:
            async for resp in call:
                for e in resp.events:
                    yield _event(e)
                if resp.compacted or resp.canceled:
                    final = resp
        except grpc.aio.AioRpcError as err:
            raise _watch_error(err, final) from err
        finally:
            call.cancel()

    async def txn(self, compares=(), success=(), failure=()) -> TxnResult:
        req = kv_pb2.TxnRequest(compares=list(compares), success=list(success), failure=list(failure))
        resp = await self._call("Txn", req)
        return TxnResult(resp.succeeded, resp.revision, list(resp.results))

    async def status(self) -> admin_pb2.StatusResponse:
        return await self._call("Status", admin_pb2.StatusRequest(), read=True, admin=True)

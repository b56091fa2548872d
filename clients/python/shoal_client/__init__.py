"""Python client for Shoal: ShoalClient (blocking) and, in shoal_client.aio, AsyncShoalClient
(asyncio). Installed with pip, the package carries the shoal.v1 modules; from the source tree,
put generate.sh's output on sys.path."""

from .client import (
    CompactedError,
    DeleteResult,
    Entry,
    Event,
    EventType,
    PutResult,
    RangePage,
    ShoalClient,
    ShoalError,
    TlsOptions,
    TxnResult,
    WatchCanceledError,
    compare,
    op_delete,
    op_get,
    op_increment,
    op_put,
)

__all__ = [
    "CompactedError",
    "DeleteResult",
    "Entry",
    "Event",
    "EventType",
    "PutResult",
    "RangePage",
    "ShoalClient",
    "ShoalError",
    "TlsOptions",
    "TxnResult",
    "WatchCanceledError",
    "compare",
    "op_delete",
    "op_get",
    "op_increment",
    "op_put",
]

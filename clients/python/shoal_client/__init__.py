"""Python client for Shoal. Needs the generated shoal.v1 modules on sys.path (see generate.sh)."""

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
    "TxnResult",
    "WatchCanceledError",
    "compare",
    "op_delete",
    "op_get",
    "op_increment",
    "op_put",
]

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
    WatchCanceledError,
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
    "WatchCanceledError",
]

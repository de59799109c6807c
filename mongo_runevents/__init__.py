"""MongoDB storage for the event streams of AI-agent runs.

A :class:`RunEventStore` keeps everything an agent run does: the chat messages
a UI displays (``category="message"``) and the traces kept for debugging and
audit. :class:`MongoRunEventStore` keeps them in MongoDB;
:class:`MemoryRunEventStore` is the dependency-free reference.
"""

from ._version import __version__
from .base import RunEventStore
from .errors import (
    ConfigurationError,
    EventIdConflictError,
    EventTooLargeError,
    IntegrityError,
    InvalidEventError,
    RunEventStoreError,
    StorageError,
    StoreUnavailableError,
)
from .memory import MemoryRunEventStore
from .models import NewEvent, RunEvent
from .mongo import MongoRunEventStore

__all__ = [
    "ConfigurationError",
    "EventIdConflictError",
    "EventTooLargeError",
    "IntegrityError",
    "InvalidEventError",
    "MemoryRunEventStore",
    "MongoRunEventStore",
    "NewEvent",
    "RunEvent",
    "RunEventStore",
    "RunEventStoreError",
    "StorageError",
    "StoreUnavailableError",
    "__version__",
]

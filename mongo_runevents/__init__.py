"""MongoDB storage for the event streams of AI-agent runs.

A :class:`RunEventStore` keeps everything an agent run does: the chat messages
a UI displays (``category="message"``) and the traces kept for debugging and
audit. :class:`MongoRunEventStore` keeps them in MongoDB;
:class:`MemoryRunEventStore` is the dependency-free reference.

Every read returns plain dicts, typed as :data:`RunEventRecord` (their
``TypedDict``), so a type checker knows the keys. The package ships ``py.typed``.
"""

from ._version import __version__
from .base import RunEventStore
from .errors import (
    ConfigurationError,
    EventIdConflictError,
    EventTooLargeError,
    ImportConflictError,
    IntegrityError,
    InvalidEventError,
    RunEventStoreError,
    StorageError,
    StoreClosedError,
    StoreUnavailableError,
)
from .importing import ImportConflict, ImportResult, Renumbered
from .memory import MemoryRunEventStore
from .models import NewEvent, RunEvent
from .mongo import MongoRunEventStore
from .records import AnotherUsersEvent, LookedUpRecord
from .records import StoredRecord as RunEventRecord

__all__ = [
    "AnotherUsersEvent",
    "ConfigurationError",
    "EventIdConflictError",
    "EventTooLargeError",
    "ImportConflict",
    "ImportConflictError",
    "ImportResult",
    "IntegrityError",
    "InvalidEventError",
    "LookedUpRecord",
    "MemoryRunEventStore",
    "MongoRunEventStore",
    "NewEvent",
    "Renumbered",
    "RunEvent",
    "RunEventRecord",
    "RunEventStore",
    "RunEventStoreError",
    "StorageError",
    "StoreClosedError",
    "StoreUnavailableError",
    "__version__",
]

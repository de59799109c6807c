"""The MongoDB store, one module per collection it owns and per flow (see :mod:`mongo_runevents.mongo.store`)."""

from ..importing import ImportResult
from .codec import DEFAULT_INLINE_LIMIT_BYTES, DEFAULT_MAX_EVENT_BYTES
from .events import BY_CATEGORY, BY_RUN, BY_SEQ, EVENT_INDEXES
from .setup import Deployment
from .store import DEFAULT_DATABASE, MongoRunEventStore

__all__ = [
    "BY_CATEGORY",
    "BY_RUN",
    "BY_SEQ",
    "DEFAULT_DATABASE",
    "DEFAULT_INLINE_LIMIT_BYTES",
    "DEFAULT_MAX_EVENT_BYTES",
    "EVENT_INDEXES",
    "Deployment",
    "ImportResult",
    "MongoRunEventStore",
]

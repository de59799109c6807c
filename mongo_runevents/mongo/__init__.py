"""The MongoDB store, one module per concern (see :mod:`mongo_runevents.mongo.store`)."""

from ..importing import ImportResult
from .setup import BY_CATEGORY, BY_RUN, BY_SEQ, EVENT_INDEXES, Deployment
from .store import DEFAULT_DATABASE, MongoRunEventStore
from .writes import DEFAULT_INLINE_LIMIT_BYTES, DEFAULT_MAX_EVENT_BYTES

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

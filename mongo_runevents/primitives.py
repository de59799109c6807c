"""The primitives a store implements, one per kind of query.

:class:`StorePrimitives` is what the shared code of :mod:`mongo_runevents.base`
and :mod:`mongo_runevents.operations` stands on: a store (the Memory store,
the MongoDB store) implements these and nothing else. Each takes a query of
:mod:`mongo_runevents.queries` that was already checked.
"""

from __future__ import annotations

import abc
from typing import Any

from .errors import StoreClosedError
from .importing import (
    ImportLookup,
    StoredChunk,
    ThreadHoldings,
)
from .models import (
    NewEvent,
)
from .policy import WritePolicy
from .queries import (
    Deletion,
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadEvents,
    ThreadList,
)
from .tail import NewsWaiter


class StorePrimitives(abc.ABC):
    """The abstract primitives of a store, and the state the shared code keeps."""

    #: Stores that do not call ``__init__`` (test doubles) get the defaults.
    _policy: WritePolicy = WritePolicy()
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")

    @abc.abstractmethod
    async def _write(self, events: list[NewEvent]) -> list[dict[str, Any]]:
        """Store validated events (at least one), all or nothing; their records in input order."""

    @abc.abstractmethod
    async def _write_if_absent(self, event: NewEvent) -> tuple[dict[str, Any], bool]:
        """Store ``event`` unless its run holds one of its type; see :meth:`put_if_absent`."""

    @abc.abstractmethod
    async def _read_page(self, query: MessagePage) -> list[dict[str, Any]]:
        """A page of messages (:meth:`list_messages`, :meth:`list_messages_by_run`)."""

    @abc.abstractmethod
    async def _read_run(self, query: RunEvents) -> list[dict[str, Any]]:
        """A run's events (:meth:`list_events`); never called for a query matching nothing."""

    @abc.abstractmethod
    async def _read_after(self, query: ThreadEvents) -> list[dict[str, Any]]:
        """A thread's events after a seq (:meth:`read_after`)."""

    @abc.abstractmethod
    async def _get_event(self, query: EventKey) -> dict[str, Any] | None:
        """One event (:meth:`get_event`)."""

    @abc.abstractmethod
    async def _list_threads(self, query: ThreadList) -> list[dict[str, Any]]:
        """A page of threads, newest activity first (:meth:`list_threads`)."""

    @abc.abstractmethod
    async def _thread_info(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's ``last_seq``, ``generation`` and ``updated_at`` (:meth:`get_thread`)."""

    @abc.abstractmethod
    async def _thread_ids(self, after: str | None, limit: int) -> list[str]:
        """The first ``limit`` thread ids greater than ``after``, ascending (for export)."""

    @abc.abstractmethod
    async def _count(self, query: EventCount) -> int:
        """How many events match (:meth:`count_messages`, :meth:`count_events`)."""

    @abc.abstractmethod
    async def _last_visible_replies(self, query: LastVisibleReplies) -> dict[str, int]:
        """:meth:`get_last_visible_ai_seq_by_run`, for at least one run id."""

    @abc.abstractmethod
    async def _message_seqs(self, query: MessageSeqs) -> dict[str, int]:
        """:meth:`get_message_seqs`, for at least one identity: through an index, not a scan."""

    @abc.abstractmethod
    async def _delete(self, query: Deletion) -> int:
        """Delete matching events; a thread left empty starts again at 1."""

    @abc.abstractmethod
    async def _import_lookup(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        """For each thread looked up: its last seq, whether an import renumbered it, the matching records.

        See :class:`~mongo_runevents.importing.ImportLookup`; a thread the store
        does not hold may be left out.
        """

    @abc.abstractmethod
    async def _import_chunk(
        self, thread_id: str, records: list[tuple[NewEvent, int]], renumber: bool
    ) -> StoredChunk:
        """Store records of one thread (ascending seqs) atomically; the seq each got.

        In one atomic step: read the thread's counter; keep the records' own
        seqs if ``renumber`` is false and the first is above the counter, else
        number them after it (remembering each renumbered record's own seq,
        and that the thread was renumbered); raise the counter to the last;
        insert. A record whose ``event_id`` the thread holds by then is left
        out (``None``). So no reader sees a seq before a lower one is visible.
        The thread's last activity becomes at least the latest ``created_at``.
        """

    def _news(self, thread_id: str, max_wait: float) -> NewsWaiter | None:
        """What tells the tail that a thread changed; ``None``: the tail polls."""
        return None

"""The store DeerFlow uses as it is: its own ``RunEventStore`` interface, on MongoDB.

:class:`DeerFlowRunEventStore` is a subclass of DeerFlow's abstract
``RunEventStore`` when ``deerflow`` is importable (a plain class when it is
not), and behaves as DeerFlow's database store does towards its callers:

- reads, counts and deletes take ``user_id=AUTO`` (the default), resolved by
  ``deerflow.runtime.user_context.resolve_user_id``: the signed-in user of the
  request, a ``RuntimeError`` when there is none; an explicit ``str`` is used
  as given and ``None`` means every user (migration and admin paths);
- writes never take a ``user_id`` argument: they are stamped with the context's
  user, ``str(get_current_user().id)``, or none outside a request; a
  ``put_batch`` event may carry its own ``user_id``, which wins;
- it is built synchronously from DeerFlow's ``RunEventsConfig`` (no I/O until
  the first call), and keeps one MongoDB client per event loop, since
  pymongo's async client belongs to the loop that created it and DeerFlow runs
  some work on loops of its own.

Everything else (values, seqs, filters, pages) is the MongoDB store's.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Iterable
from typing import Any, cast

from .._version import __version__
from ..mongo import MongoRunEventStore
from .config import MongoSettings, mongo_settings

try:  # DeerFlow's own interface and user context, when DeerFlow is installed
    from deerflow.runtime.events.store.base import RunEventStore as _DeerFlowInterface
    from deerflow.runtime.user_context import AUTO, get_current_user, resolve_user_id

    DEERFLOW_INSTALLED = True
except ImportError:  # pragma: no cover - depends on the environment
    from ._standalone import (
        AUTO,
        get_current_user,
        resolve_user_id,
    )
    from ._standalone import (
        Interface as _DeerFlowInterface,
    )

    DEERFLOW_INSTALLED = False


__all__ = ["AUTO", "DEERFLOW_INSTALLED", "DeerFlowRunEventStore"]


def _writer_user() -> str | None:
    """The user a write is stamped with: the context's, as DeerFlow's database store does."""
    user = get_current_user()
    return None if user is None else str(user.id)


class DeerFlowRunEventStore(_DeerFlowInterface):  # type: ignore[misc]
    """DeerFlow's ``RunEventStore`` on MongoDB; see the module's description."""

    def __init__(self, settings: MongoSettings, **store_options: Any) -> None:
        self._settings = settings
        self._store_options = {**settings.store_options(), **store_options}
        # Strong references, dropped when their loop shuts down (see _loop_store):
        # a store's client refers to its loop, so weak keys would never be freed.
        self._stores: dict[asyncio.AbstractEventLoop, MongoRunEventStore] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    @classmethod
    def from_config(cls, config: Any, **store_options: Any) -> DeerFlowRunEventStore:
        """Build from DeerFlow's ``RunEventsConfig`` (or the parsed section); no I/O."""
        return cls(mongo_settings(config), **store_options)

    @property
    def settings(self) -> MongoSettings:
        """The settings the store connects with."""
        return self._settings

    @property
    def store(self) -> MongoRunEventStore:
        """The MongoDB store of the running event loop (made on first use in that loop).

        Prefer awaiting :meth:`loop_store`, which also closes the store's client
        when its loop shuts down.
        """
        loop = asyncio.get_running_loop()
        store = self._stores.get(loop)
        if store is None:
            store = self._stores[loop] = self._new_store()
        return store

    async def loop_store(self) -> MongoRunEventStore:
        """The running loop's MongoDB store; its client is closed when the loop shuts down.

        pymongo's async client belongs to the loop that made it, and DeerFlow
        runs some work on loops of its own (``asyncio.run`` in a worker
        thread). Each loop gets a store, and an async generator registered on
        that loop closes it when the loop finalizes its generators
        (``asyncio.run`` and uvicorn do), so finished loops leave no client,
        socket or server connection behind.
        """
        loop = asyncio.get_running_loop()
        self._forget_closed_loops()
        store = self._stores.get(loop)
        if store is None:
            store = self._stores[loop] = self._new_store()
        if loop not in self._closers:
            closer = self._close_with_loop(loop, store)
            await closer.__anext__()  # reaches its yield at once: registered on the loop
            self._closers[loop] = closer
        return store

    def _new_store(self) -> MongoRunEventStore:
        return MongoRunEventStore.connect(
            self._settings.uri,
            database=self._settings.database,
            client_kwargs=self._settings.client_kwargs(),
            **self._store_options,
        )

    async def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, store: MongoRunEventStore
    ) -> AsyncGenerator[None, None]:
        """Suspended for the loop's life; its ``finally`` runs at the loop's shutdown."""
        try:
            yield
        finally:
            self._closers.pop(loop, None)
            if self._stores.get(loop) is store:
                del self._stores[loop]
            await store.close()

    def _forget_closed_loops(self) -> None:
        """Drop the stores of loops closed without finalizing their generators."""
        for loop in [loop for loop in self._stores if loop.is_closed()]:
            self._stores.pop(loop, None)
            self._closers.pop(loop, None)

    async def close(self) -> None:
        """Close the running loop's client (the others close with their loops)."""
        loop = asyncio.get_running_loop()
        store = self._stores.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if store is not None:
            await store.close()
        if closer is not None:
            await closer.aclose()

    # DeerFlow's interface types records as ``dict[str, Any]``: they are the plain dicts
    # the store returns (``RunEventRecord``), cast to its types at this boundary, not copied.

    # --- writes: stamped with the context's user ------------------------------------

    async def put(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        return cast(
            "dict[str, Any]",
            await (await self.loop_store()).put(
                thread_id=thread_id,
                run_id=run_id,
                event_type=event_type,
                category=category,
                content=content,
                metadata=metadata,
                created_at=created_at,
                user_id=_writer_user(),
            ),
        )

    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        user_id = _writer_user()
        if user_id is not None and isinstance(events, (list, tuple)):
            events = [
                event
                if not isinstance(event, dict) or "user_id" in event
                else {**event, "user_id": user_id}
                for event in events
            ]
        return cast("list[dict[str, Any]]", await (await self.loop_store()).put_batch(events))

    async def put_if_absent(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        return cast(
            "tuple[dict[str, Any], bool]",
            await (await self.loop_store()).put_if_absent(
                thread_id=thread_id,
                run_id=run_id,
                event_type=event_type,
                category=category,
                content=content,
                metadata=metadata,
                created_at=created_at,
                user_id=_writer_user(),
            ),
        )

    # --- reads, counts, deletes: user_id=AUTO resolved as DeerFlow resolves it -------

    async def list_messages(
        self,
        thread_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: Any = AUTO,
    ) -> list[dict[str, Any]]:
        return cast(
            "list[dict[str, Any]]",
            await (await self.loop_store()).list_messages(
                thread_id,
                limit=limit,
                before_seq=before_seq,
                after_seq=after_seq,
                user_id=resolve_user_id(user_id, method_name="list_messages"),
            ),
        )

    async def list_events(
        self,
        thread_id: str,
        run_id: str,
        *,
        event_types: Iterable[str] | None = None,
        task_id: str | None = None,
        limit: int = 500,
        after_seq: int | None = None,
        user_id: Any = AUTO,
    ) -> list[dict[str, Any]]:
        return cast(
            "list[dict[str, Any]]",
            await (await self.loop_store()).list_events(
                thread_id,
                run_id,
                event_types=event_types,
                task_id=task_id,
                limit=limit,
                after_seq=after_seq,
                user_id=resolve_user_id(user_id, method_name="list_events"),
            ),
        )

    async def list_messages_by_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: Any = AUTO,
    ) -> list[dict[str, Any]]:
        return cast(
            "list[dict[str, Any]]",
            await (await self.loop_store()).list_messages_by_run(
                thread_id,
                run_id,
                limit=limit,
                before_seq=before_seq,
                after_seq=after_seq,
                user_id=resolve_user_id(user_id, method_name="list_messages_by_run"),
            ),
        )

    async def get_last_visible_ai_seq_by_run(
        self, thread_id: str, run_ids: Iterable[str], *, user_id: Any = AUTO
    ) -> dict[str, int]:
        return await (await self.loop_store()).get_last_visible_ai_seq_by_run(
            thread_id,
            run_ids,
            user_id=resolve_user_id(user_id, method_name="get_last_visible_ai_seq_by_run"),
        )

    async def get_message_seqs(
        self, thread_id: str, identities: Iterable[str], *, user_id: Any = AUTO
    ) -> dict[str, int]:
        return await (await self.loop_store()).get_message_seqs(
            thread_id,
            identities,
            user_id=resolve_user_id(user_id, method_name="get_message_seqs"),
        )

    async def count_messages(self, thread_id: str, *, user_id: Any = AUTO) -> int:
        return await (await self.loop_store()).count_messages(
            thread_id, user_id=resolve_user_id(user_id, method_name="count_messages")
        )

    async def delete_by_thread(self, thread_id: str, *, user_id: Any = AUTO) -> int:
        return await (await self.loop_store()).delete_by_thread(
            thread_id, user_id=resolve_user_id(user_id, method_name="delete_by_thread")
        )

    async def delete_by_run(self, thread_id: str, run_id: str, *, user_id: Any = AUTO) -> int:
        return await (await self.loop_store()).delete_by_run(
            thread_id, run_id, user_id=resolve_user_id(user_id, method_name="delete_by_run")
        )

    # --- the optional operations, for operators' code ----------------------------------

    async def watch(
        self, thread_id: str, *, user_id: Any = AUTO, **options: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The MongoDB store's live tail (:meth:`RunEventStore.watch`), for the resolved user."""
        resolved = resolve_user_id(user_id, method_name="watch")
        async for record in (await self.loop_store()).watch(thread_id, user_id=resolved, **options):
            yield cast("dict[str, Any]", record)


def _unsupported(name: str) -> Any:
    """A stand-in for an abstract method of a newer DeerFlow: fails that call, and only it."""

    async def unsupported(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"DeerFlow's RunEventStore.{name} is newer than mongo_runevents {__version__}: "
            "upgrade mongo-runevents to serve it"
        )

    unsupported.__name__ = unsupported.__qualname__ = name
    return unsupported


def complete_interface(cls: type) -> list[str]:
    """Fill in the abstract methods of DeerFlow's interface ``cls`` does not know; their names.

    A DeerFlow release that adds an abstract method to ``RunEventStore``
    would otherwise make the store impossible to build, and stop the gateway
    at start; with this, only a call to the new method fails, saying why.
    """
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    for name in missing:
        setattr(cls, name, _unsupported(name))
    abc.update_abstractmethods(cls)
    return missing


#: DeerFlow interface methods this version does not implement (filled in to fail clearly).
UNSUPPORTED_METHODS = complete_interface(DeerFlowRunEventStore)

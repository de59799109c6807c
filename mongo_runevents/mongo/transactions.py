"""Running a unit of work in a multi-document transaction, retried while the server says so.

Why not pymongo's ``ClientSession.with_transaction``: it retries for a fixed
120 seconds with no back-off between attempts, which turns a hot thread's
write conflicts into a busy loop; its shape differs between pymongo's async
API and Motor; and it does not let the store count retries for its telemetry
or translate errors in its one place. This runner follows the same rules of
the transactions specification: retry the whole body on a
``TransientTransactionError`` label, retry only the commit on
``UnknownTransactionCommitResult`` (committing again is idempotent), abort
whatever else failed; with jittered exponential back-off, within a time
budget (``transaction_retry_seconds``).

Two things it adds, because a transaction left open on the server blocks
every other writer of its thread (their counter updates conflict with it)
until the server gives up on it, ``transactionLifetimeLimitSeconds`` later
(60 s by default):

- a commit that failed with a definite outcome leaves the transaction open,
  and the driver refuses to abort after a commit; the runner then kills the
  session on the server (``killSessions``), which aborts it at once;
- the default budget outlasts the server's transaction lifetime (read at
  set-up, 60 s if the server does not say), so that a transaction abandoned
  by a killed process delays other writers but does not fail them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bson.errors import BSONError
from pymongo.errors import PyMongoError

from ..errors import ConfigurationError, StorageError
from ..telemetry import count_retry
from . import compat
from .driver_errors import translate, translated

logger = logging.getLogger(__name__)

T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt``: exponential, capped, with full jitter."""
    return random.uniform(0, min(0.2, 0.002 * 2**attempt))


#: How much longer than the server's transaction lifetime the default budget is.
BUDGET_MARGIN_SECONDS = 15.0


def default_budget(transaction_lifetime_seconds: float) -> float:
    """The retry budget when the caller sets none: the server's transaction lifetime and a margin."""
    return transaction_lifetime_seconds + BUDGET_MARGIN_SECONDS


#: The longest retry budget a store accepts (a day): past that, a writer would
#: look hung, not patient.
MAX_RETRY_SECONDS = 86_400.0


def check_retry_seconds(value: object) -> float | None:
    """``transaction_retry_seconds`` checked when the store is built: ``None`` or finite seconds.

    A string, a bool, NaN or an infinity would otherwise fail every write
    later (a bare ``TypeError``) or retry a conflict forever.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"transaction_retry_seconds must be a number of seconds or None, "
            f"got {type(value).__name__}"
        )
    if not (math.isfinite(value) and 0 <= value <= MAX_RETRY_SECONDS):
        raise ConfigurationError(
            f"transaction_retry_seconds must be between 0 and {MAX_RETRY_SECONDS:.0f}, got {value}"
        )
    return float(value)


class TransactionRunner:
    """Runs ``body(session)`` in a transaction on ``database``'s client.

    ``retry_seconds`` is the budget for retrying transient errors; ``None``
    takes :func:`default_budget` of the lifetime each call is given.
    """

    def __init__(self, database: Any, retry_seconds: float | None) -> None:
        self._database = database
        self._retry_seconds = check_retry_seconds(retry_seconds)

    async def run(
        self,
        body: Callable[[Any], Awaitable[T]],
        action: str,
        transaction_lifetime_seconds: float = 60.0,
    ) -> T:
        """The result of ``body(session)``, committed; transient errors retried for a while."""
        budget = self._retry_seconds
        if budget is None:
            budget = default_budget(transaction_lifetime_seconds)
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            with translated(action):
                session = await compat.start_session(self._database)
            committing = False
            try:
                await compat.start_transaction(session)
                result = await body(session)
                committing = True
                await self._commit(session, deadline)
                return result
            except Exception as exc:
                if session.in_transaction:
                    await _abort(session)
                elif committing:
                    # The commit failed and the driver will not abort after a
                    # commit: end the transaction on the server, or it blocks
                    # the thread's other writers until it times out.
                    await self._kill(session)
                # The body may have translated the driver's error already.
                driver_error = exc if isinstance(exc, (PyMongoError, BSONError)) else exc.__cause__
                transient = isinstance(driver_error, PyMongoError) and driver_error.has_error_label(
                    "TransientTransactionError"
                )
                if not transient or time.monotonic() >= deadline:
                    if isinstance(exc, (PyMongoError, BSONError)):
                        raise translate(exc, action) from exc
                    raise
                logger.debug(
                    "%s: transient error on attempt %d, retrying: %s", action, attempt, exc
                )
                count_retry()
                await asyncio.sleep(backoff(attempt))
            finally:
                await _end_quietly(session)

    async def _commit(self, session: Any, deadline: float) -> None:
        """Commit, retrying while the outcome is unknown (commit is idempotent)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                unknown = exc.has_error_label("UnknownTransactionCommitResult")
                if not unknown or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(backoff(attempt))

    async def _kill(self, session: Any) -> None:
        """Kill ``session`` on the server, aborting its open transaction (best effort)."""
        try:
            await self._database.client.admin.command("killSessions", [session.session_id])
        except (PyMongoError, AttributeError, NotImplementedError):
            logger.debug(
                "could not kill a session after a failed commit; the server ends its "
                "transaction after transactionLifetimeLimitSeconds",
                exc_info=True,
            )


async def _abort(session: Any) -> None:
    try:
        await session.abort_transaction()
    except PyMongoError:
        logger.debug("abort failed; the server discards the transaction by itself", exc_info=True)


async def _end_quietly(session: Any) -> None:
    try:
        await compat.end_session(session)
    except (PyMongoError, StorageError):
        logger.debug("ending a session failed", exc_info=True)

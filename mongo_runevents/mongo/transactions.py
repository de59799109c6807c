"""The one retry loop of every write, and the one function that decides why a write is retried.

A flow (write, delete, import) runs its body in a loop of attempts::

    async for attempt in self._retrying.attempts(deployment, "writing events"):
        async with attempt as session:   # a transaction, or None in plain mode
            ...                          # the body, inline: no frame of its own

Each attempt runs in a multi-document transaction on deployments with
transactions (committed when the block ends, aborted when it fails), plainly
elsewhere. When the body or the commit fails, :func:`retry_reason` says
whether the write is tried again, and why:

- ``TRANSIENT``: the server labelled the error ``TransientTransactionError``
  (a write conflict with another writer of the thread, a failover): the whole
  body again, with jittered exponential back-off, within the time budget;
- ``COMMIT_UNKNOWN``: the commit's outcome is unknown
  (``UnknownTransactionCommitResult``): only the commit again (it is
  idempotent), within the budget;
- ``UNMEASURED_TOO_LARGE``: a batch sent without being measured held a
  document the server or driver refused as too large: again, measured;
- ``EVENT_ID_TAKEN``: the ``_id`` index refused an event whose key another
  writer stored meanwhile: again, looking the keys up first;
- ``COUNTER_RACE``: two writers upserted a thread's first counter at once and
  this one lost (:class:`~.counters.CounterRace`): again.

Nothing here translates driver errors: what is not retried leaves as the
driver raised it, and the store facade translates it.

Why not pymongo's ``ClientSession.with_transaction`` (decided again for the
supported pymongo 4.13 and later): since 4.17 it backs off between attempts
(jittered, 5 ms growing 1.5x to 500 ms in 4.20), so the busy loop that once
ruled it out is gone on new versions, but not on 4.13-4.16, which the package
still supports. What still rules it out on every version: its time limit is a
fixed 120 seconds, while the store's budget must outlast the server's
``transactionLifetimeLimitSeconds`` (configurable, so that a transaction left
open by a killed writer delays the thread's other writers but fails none) and
``transaction_retry_seconds`` lets the caller choose; it runs the body as a
callback, a closure and two frames per write; it retries only the driver's
reasons, not the store's own (below) in the same loop; it differs in shape
between pymongo's async API and Motor; and it leaves a transaction whose
commit failed open on the server. This loop follows the transactions
specification's rules (retry the body on ``TransientTransactionError``, the
commit on ``UnknownTransactionCommitResult``, abort whatever else failed),
backs off as the new ``with_transaction`` does (jittered, exponential,
capped), and adds:

- a commit that failed with a definite outcome leaves the transaction open,
  and the driver refuses to abort after a commit: the loop kills the session
  on the server (``killSessions``), which aborts it at once, instead of
  blocking the thread's other writers for ``transactionLifetimeLimitSeconds``;
- the default budget outlasts the server's transaction lifetime (read at
  set-up, 60 s if the server does not say), so that a transaction abandoned by
  a killed process delays other writers but does not fail them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from types import TracebackType

from pymongo.errors import PyMongoError

from ..errors import ConfigurationError, StorageError
from ..telemetry import count_retry
from . import compat
from .compat import Database, Session
from .counters import CounterRace
from .driver_errors import is_event_id_collision, refuses_as_too_large

logger = logging.getLogger(__name__)


class Retry(enum.Enum):
    """Why a write is tried again (see the module's description)."""

    TRANSIENT = "transient error"
    COMMIT_UNKNOWN = "unknown commit result"
    UNMEASURED_TOO_LARGE = "document too large, sent unmeasured"
    EVENT_ID_TAKEN = "event id another writer stored meanwhile"
    COUNTER_RACE = "counter upsert that lost a race"


#: How many attempts a write makes for each reason that is not bounded by time:
#: an event id once more after looking the keys up and once more if another
#: writer stored one in between; a counter race a few times.
_MAX_ATTEMPTS = {
    Retry.UNMEASURED_TOO_LARGE: 2,
    Retry.EVENT_ID_TAKEN: 3,
    Retry.COUNTER_RACE: 5,
}


def retry_reason(
    exc: BaseException, *, committing: bool, measured: bool, keyed: bool
) -> Retry | None:
    """Why the write that failed with ``exc`` may be tried again; ``None``: it may not.

    ``committing``: the body succeeded and the commit failed; ``measured``:
    the attempt's documents were measured before they were sent; ``keyed``:
    the write holds events with an ``event_id`` (or a ``put_if_absent`` key).
    """
    if isinstance(exc, CounterRace):
        return Retry.COUNTER_RACE
    if isinstance(exc, PyMongoError):
        if committing and exc.has_error_label("UnknownTransactionCommitResult"):
            return Retry.COMMIT_UNKNOWN
        if exc.has_error_label("TransientTransactionError"):
            return Retry.TRANSIENT
    if not measured and refuses_as_too_large(exc):
        return Retry.UNMEASURED_TOO_LARGE
    if keyed and is_event_id_collision(exc):
        return Retry.EVENT_ID_TAKEN
    return None


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


class Retrying:
    """The write attempts of one store: its database (for sessions) and its retry budget.

    ``retry_seconds`` bounds how long transient errors are retried; ``None``
    takes :func:`default_budget` of the deployment's transaction lifetime.
    """

    def __init__(self, database: Database, retry_seconds: float | None) -> None:
        self._database = database
        self._retry_seconds = check_retry_seconds(retry_seconds)

    def attempts(
        self,
        action: str,
        *,
        transactions: bool,
        transaction_lifetime_seconds: float,
        measured: bool = True,
        keyed: bool = False,
    ) -> Attempts:
        """A new loop of attempts for one write (see the module's description)."""
        budget = self._retry_seconds
        if budget is None:
            budget = default_budget(transaction_lifetime_seconds)
        return Attempts(
            self._database,
            action,
            transactions=transactions,
            deadline=time.monotonic() + budget,
            measured=measured,
            keyed=keyed,
        )


class Attempts:
    """One write's loop of attempts; each attempt is this object used as ``async with``.

    The body reads :attr:`measured` and :attr:`look_up_keys`, which a retry
    for ``UNMEASURED_TOO_LARGE`` or ``EVENT_ID_TAKEN`` turns on.
    """

    def __init__(
        self,
        database: Database,
        action: str,
        *,
        transactions: bool,
        deadline: float,
        measured: bool,
        keyed: bool,
    ) -> None:
        self._database = database
        self._action = action
        self._transactions = transactions
        self._deadline = deadline
        self._keyed = keyed
        self._session: Session | None = None
        self._done = False
        self._tries: dict[Retry, int] = {}
        self._wait = 0.0
        #: Attempts made so far (the current one included).
        self.number = 0
        #: Whether the documents are measured before they are sent.
        self.measured = measured
        #: Whether the body looks the events' keys up before writing (after a collision).
        self.look_up_keys = False

    def __aiter__(self) -> Attempts:
        return self

    async def __anext__(self) -> Attempts:
        if self._done:
            raise StopAsyncIteration
        if self._wait:
            await asyncio.sleep(self._wait)
            self._wait = 0.0
        self.number += 1
        return self

    async def __aenter__(self) -> Session | None:
        if not self._transactions:
            return None
        session = self._session = await compat.start_session(self._database)
        await compat.start_transaction(session)
        return session

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """Commit a body that succeeded; after a failure, say whether the loop goes on."""
        session, self._session = self._session, None
        try:
            if error is None:
                self._done = session is None or await self._committed(session)
                return False
            if not isinstance(error, Exception):
                return False  # a cancellation: the session's end aborts the transaction
            if session is not None and session.in_transaction:
                await _abort(session)
            return self._retry(error, committing=False)
        finally:
            if session is not None:
                await _end_quietly(session)

    async def _committed(self, session: Session) -> bool:
        """Commit, again while its outcome is unknown; ``False``: the body is to run again."""
        while True:
            try:
                await session.commit_transaction()
                return True
            except PyMongoError as exc:
                reason = self._reason(exc, committing=True)
                if reason is Retry.COMMIT_UNKNOWN:
                    await asyncio.sleep(backoff(self._tries[reason]))
                    continue
                # The driver will not abort after a commit: end the transaction
                # on the server, or it blocks the thread's other writers.
                await self._kill(session)
                if reason is None:
                    raise
                self._prepare_retry(reason, exc)
                return False

    def _retry(self, error: Exception, *, committing: bool) -> bool:
        """Whether the loop tries the body again after ``error`` (``False``: it propagates)."""
        reason = self._reason(error, committing=committing)
        if reason is None:
            return False
        self._prepare_retry(reason, error)
        return True

    def _reason(self, error: Exception, *, committing: bool) -> Retry | None:
        """:func:`retry_reason`, within the budget of time and attempts; counts the attempt."""
        reason = retry_reason(
            error, committing=committing, measured=self.measured, keyed=self._keyed
        )
        if reason is None:
            return None
        tries = self._tries[reason] = self._tries.get(reason, 0) + 1
        limit = _MAX_ATTEMPTS.get(reason)
        if limit is None:
            if time.monotonic() >= self._deadline:
                return None
        elif tries >= limit:
            if isinstance(error, CounterRace):  # a private signal: never leaves the loop
                raise StorageError(str(error), retryable=True) from error
            return None
        return reason

    def _prepare_retry(self, reason: Retry, error: Exception) -> None:
        logger.debug(
            "%s: %s on attempt %d, retrying: %s", self._action, reason.value, self.number, error
        )
        if reason is Retry.TRANSIENT:
            count_retry()
            self._wait = backoff(self.number)
        elif reason is Retry.UNMEASURED_TOO_LARGE:
            self.measured = True
        elif reason is Retry.EVENT_ID_TAKEN:
            self.look_up_keys = True

    async def _kill(self, session: Session) -> None:
        """Kill ``session`` on the server, aborting its open transaction (best effort)."""
        try:
            await self._database.client.admin.command("killSessions", [session.session_id])
        except (PyMongoError, AttributeError, NotImplementedError):
            logger.debug(
                "could not kill a session after a failed commit; the server ends its "
                "transaction after transactionLifetimeLimitSeconds",
                exc_info=True,
            )


async def _abort(session: Session) -> None:
    try:
        await session.abort_transaction()
    except PyMongoError:
        logger.debug("abort failed; the server discards the transaction by itself", exc_info=True)


async def _end_quietly(session: Session) -> None:
    try:
        await compat.end_session(session)
    except (PyMongoError, StorageError):
        logger.debug("ending a session failed", exc_info=True)

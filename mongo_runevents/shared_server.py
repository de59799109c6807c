"""One SecantusDB daemon per data folder, shared by the commands using it.

:class:`SharedServer` is what the command line uses: one daemon per data
folder, shared by every command that runs on that folder at the same time (a
``tail --follow`` and a ``count`` beside it), since only one process can open
the folder's storage. The daemon's pid and port and the pids of the commands
using it are kept in ``mongo-runevents-server.json`` in the folder, changed
under a lock (``mongo-runevents-server.lock``). A command that finds a record
checks that the daemon is alive, is SecantusDB on that folder and port, and
answers ``hello``; then it uses it. A daemon that a killed command left
running is found the same way and used; a record whose daemon is gone is
replaced by a new daemon. The last command to finish stops the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .embedded import DAEMON, EmbeddedServer

#: The record of a folder's daemon, in the folder.
STATE_FILE = "mongo-runevents-server.json"
#: The lock under which the record changes.
LOCK_FILE = "mongo-runevents-server.lock"


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # reap it if it is a child of ours that exited
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _command_line(pid: int) -> list[str]:
    """The command line of a process, or ``[]`` when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    except OSError:
        pass
    try:  # macOS and other systems without /proc
        shown = subprocess.run(
            ["ps", "-o", "args=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except OSError:
        return []
    return shown.split()


def _answers_hello(port: int, timeout: float = 3.0) -> bool:
    """Whether a MongoDB-compatible server on 127.0.0.1:``port`` answers ``hello``."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true",
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
    )
    try:
        client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (an exclusive ``flock``; none where the system has no ``fcntl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _State:
    """The record of a folder's daemon."""

    pid: int
    port: int
    standalone: bool
    users: list[int]

    @classmethod
    def read(cls, folder: Path) -> _State | None:
        try:
            raw = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            return cls(
                int(raw["pid"]), int(raw["port"]), bool(raw["standalone"]), list(raw["users"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        partial = folder / (STATE_FILE + ".partial")
        partial.write_text(json.dumps(self.__dict__), encoding="utf-8")
        partial.replace(folder / STATE_FILE)

    @staticmethod
    def remove(folder: Path) -> None:
        (folder / STATE_FILE).unlink(missing_ok=True)


class SharedServer:
    """The SecantusDB daemon of a data folder, started or joined; see the module's description.

    :meth:`start` returns what happened, in words, for the command to print:
    ``started``, ``shared with another command (pid N)``, ``left running by a
    command that was killed; reusing it``, or ``started; replaced a stale
    record of a server that is gone``. :meth:`stop` leaves the daemon to the
    other commands using it, and stops it when none is left.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, standalone: bool = False) -> None:
        # Absolute, so that the daemon's command line names the folder the
        # same way whatever directory a later command runs from.
        self.data_dir = Path(data_dir).absolute()
        self.standalone = standalone
        self.port = 0
        self._server: EmbeddedServer | None = None
        self._joined = False

    @property
    def uri(self) -> str:
        """The connection string of the daemon (a direct connection)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _ours(self, state: _State) -> bool:
        """Whether the recorded daemon is alive, SecantusDB on this folder and port, and answers."""
        if not _alive(state.pid):
            return False
        daemon = _daemon_of(state.pid)
        if daemon is None or not _same_folder(daemon.folder, self.data_dir):
            return False
        return daemon.port == state.port and _answers_hello(state.port)

    def start(self) -> str:
        """Start the folder's daemon, or join the one running; say which."""
        me = os.getpid()
        with _locked(self.data_dir):
            state = _State.read(self.data_dir)
            note = "started"
            if state is not None:
                if self._ours(state):
                    users = [pid for pid in state.users if pid != me and _alive(pid)]
                    if users:
                        note = f"shared with another command (pid {users[0]})"
                    else:
                        note = "left running by a command that was killed; reusing it"
                    state.users = [*users, me]
                    state.write(self.data_dir)
                    self.port, self._joined = state.port, True
                    return note
                note = "started; replaced a stale record of a server that is gone"
                _State.remove(self.data_dir)
            # A daemon on this folder that no record names (or a record does
            # not name right): a command was stopped before it wrote one. It
            # holds the folder's storage: use it if it answers, else stop it.
            # Only daemons on this very folder: a recorded pid that now
            # belongs to another folder's daemon is none of ours.
            for daemon in _daemons_on(self.data_dir):
                if _answers_hello(daemon.port):
                    _State(daemon.pid, daemon.port, self.standalone, [me]).write(self.data_dir)
                    self.port, self._joined = daemon.port, True
                    return "found running on this folder without a record; reusing it"
                _terminate(daemon.pid)
                note = "started; stopped a server on this folder that did not answer"
            server = EmbeddedServer(self.data_dir, standalone=self.standalone, detached=True)
            try:
                # The record is written as soon as the daemon exists, so that
                # a command stopped while it starts (even by SIGKILL) leaves
                # it findable; an interruption here stops it and drops it.
                pid = server.spawn()
                _State(pid, server.port, self.standalone, [me]).write(self.data_dir)
                server.wait_until_ready()
            except BaseException:
                server.stop(timeout=5.0)
                _State.remove(self.data_dir)
                raise
            self._server, self.port = server, server.port
            return note

    def stop(self) -> None:
        """Leave the daemon; stop it if no other command uses it."""
        me = os.getpid()
        with _locked(self.data_dir):
            state = _State.read(self.data_dir)
            if state is None:
                if self._server is not None:
                    self._server.stop()
                return
            users = [pid for pid in state.users if pid != me and _alive(pid)]
            if users:
                state.users = users
                state.write(self.data_dir)
                return
            _State.remove(self.data_dir)
            if self._server is not None and self._server.pid == state.pid:
                self._server.stop()
            elif _alive(state.pid) and _on_folder(state.pid, self.data_dir):
                # Never another folder's daemon that was given the same pid.
                _terminate(state.pid)
        self._server = None


@dataclass(frozen=True)
class _Daemon:
    """A running SecantusDB daemon, as its command line shows it."""

    pid: int
    folder: Path
    port: int


def _on_folder(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is a SecantusDB daemon whose storage is ``folder``."""
    daemon = _daemon_of(pid)
    return daemon is not None and _same_folder(daemon.folder, folder)


def _daemon_of(pid: int, words: list[str] | None = None) -> _Daemon | None:
    """The daemon ``pid`` runs, its storage folder made absolute; ``None`` if it is no SecantusDB."""
    if words is None:
        words = _command_line(pid)
    if not any(DAEMON in Path(word).name for word in words[:2]):
        return None
    folder = _option(words, "--storage-path")
    port = _option(words, "--port")
    if folder is None or port is None or not port.isdigit():
        return None
    path = Path(folder)
    if not path.is_absolute():
        # Relative to the daemon's own working directory, not ours.
        try:
            path = Path(os.readlink(f"/proc/{pid}/cwd")) / path
        except OSError:
            return None
    return _Daemon(pid, path, int(port))


def _option(words: list[str], name: str) -> str | None:
    """The value of ``name`` in a command line (``--name value`` or ``--name=value``)."""
    for index, word in enumerate(words):
        if word == name and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(name + "="):
            return word[len(name) + 1 :]
    return None


def _same_folder(first: Path, second: Path) -> bool:
    """Whether two paths name one folder (links and ``..`` included)."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return first.resolve() == second.resolve()


def _daemons_on(folder: Path) -> list[_Daemon]:
    """The SecantusDB daemons whose storage is ``folder`` (Linux: read from ``/proc``)."""
    found = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        words = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
        daemon = _daemon_of(pid, words)
        if daemon is not None and _same_folder(daemon.folder, folder):
            found.append(daemon)
    return found


def _terminate(pid: int, timeout: float = 20.0) -> None:
    """Stop a daemon that is not our child: SIGTERM, then SIGKILL if it does not exit in time."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

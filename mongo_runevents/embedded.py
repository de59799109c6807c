"""An embedded MongoDB-compatible server for the demo, development and tests.

Runs SecantusDB (the optional ``embedded`` extra: ``pip install
'mongo_runevents[embedded]'``) as a child process on 127.0.0.1, keeping its data
in a folder. SecantusDB reports itself as a one-member replica set, so the store
uses transactions on it; ``standalone=True`` makes it a plain standalone server.
SecantusDB is GPL-2.0 and a pre-release: it is never a required dependency.

The command line shares one daemon per data folder between its commands:
:mod:`mongo_runevents.shared_server`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .errors import ConfigurationError, StoreUnavailableError

#: The SecantusDB daemon's command.
DAEMON = "secantusd-py"

#: The daemon, started by this interpreter with a transaction lifetime of its
#: own (the first argument): ``secantusd-py`` has no flag for it and SecantusDB
#: refuses ``setParameter`` of ``transactionLifetimeLimitSeconds``, but its
#: server takes it.
_WITH_TRANSACTION_LIFETIME = (
    "import functools, sys\n"
    "from secantus import cli, server\n"
    "lifetime = float(sys.argv.pop(1))\n"
    "cli.SecantusDBServer = functools.partial(\n"
    "    server.SecantusDBServer, transaction_lifetime_seconds=lifetime\n"
    ")\n"
    "sys.exit(cli.main())\n"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _daemon_path() -> str:
    """The ``secantusd-py`` beside this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).with_name(DAEMON)
    if beside.exists():
        return str(beside)
    found = shutil.which(DAEMON)
    if found is None:
        raise ConfigurationError(
            "the embedded server needs SecantusDB: pip install 'mongo_runevents[embedded]' "
            "(or pass --uri / set MONGODB_URI to use your own MongoDB)"
        )
    return found


def available() -> bool:
    """Whether SecantusDB is installed, so that an embedded server can start."""
    try:
        _daemon_path()
    except ConfigurationError:
        return False
    return True


class EmbeddedServer:
    """A SecantusDB daemon on 127.0.0.1 with its data in ``data_dir``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``test_commands`` enables ``configureFailPoint`` for fault injection.
    ``transaction_lifetime_seconds`` (default: SecantusDB's, 60 s as mongod's)
    is how long the server keeps a transaction nobody uses before it aborts
    it; a test of an abandoned transaction sets it shorter. It needs
    SecantusDB importable by this interpreter.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        standalone: bool = False,
        test_commands: bool = False,
        extra_args: tuple[str, ...] = (),
        log_file: str | os.PathLike[str] | None = None,
        detached: bool = False,
        transaction_lifetime_seconds: float | None = None,
    ) -> None:
        if transaction_lifetime_seconds is not None and not transaction_lifetime_seconds > 0:
            raise ConfigurationError(
                "transaction_lifetime_seconds must be above 0, "
                f"got {transaction_lifetime_seconds!r}"
            )
        self.data_dir = Path(data_dir)
        #: In a session of its own: a Ctrl-C in the terminal does not reach it,
        #: and it may outlive the process that started it (:class:`SharedServer`).
        self.detached = detached
        self.port = port or free_port()
        self.standalone = standalone
        self.test_commands = test_commands
        self.extra_args = extra_args
        self.transaction_lifetime_seconds = transaction_lifetime_seconds
        self.log_file = (
            Path(log_file) if log_file else self.data_dir.with_name(self.data_dir.name + ".log")
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The connection string of the server (a direct connection)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        """The daemon's process id, while this object runs it."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the daemon process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        """Start the daemon and wait until it accepts connections.

        Interrupted while waiting (Ctrl-C, a signal turned into an exception),
        it stops the daemon before the interruption goes on: a detached daemon
        would otherwise outlive the command with nobody knowing about it.
        """
        if self.running:
            return self
        self.spawn()
        self.wait_until_ready(timeout)
        return self

    def spawn(self) -> int:
        """Start the daemon process, without waiting for it; return its pid."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [_daemon_path()]
        if self.transaction_lifetime_seconds is not None:
            lifetime = str(self.transaction_lifetime_seconds)
            command = [sys.executable, "-c", _WITH_TRANSACTION_LIFETIME, lifetime]
        command += ["--storage-path", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING"]
        if self.standalone:
            command.append("--standalone")
        if self.test_commands:
            command.append("--enable-test-commands")
        command += list(self.extra_args)
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.detached,
            )
        return self._process.pid

    def wait_until_ready(self, timeout: float = 60.0) -> None:
        """Wait until the spawned daemon accepts connections; stop it if that fails or is interrupted."""
        try:
            self._wait_until_listening(timeout)
        except BaseException:
            self.stop(timeout=5.0)
            raise

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise StoreUnavailableError(
                    f"the embedded server exited with code {self._process.returncode}; "
                    f"see {self.log_file}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StoreUnavailableError(
            f"the embedded server did not listen on port {self.port} within {timeout:.0f} s",
            timeout=True,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the daemon gracefully (SIGTERM), killing it if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the daemon at once (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
